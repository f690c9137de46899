// Bounds on what one client can make the server do. Every one is configurable from the command
// line (cli/main.cpp) and documented in docs/configuration.md.
#pragma once

#include <chrono>
#include <cstddef>

namespace quire::protocol {

struct Limits {
  // Largest request body accepted (HTTP 413 above it).
  std::size_t max_body_bytes = 16u << 20;
  // Largest result a single request may produce; beyond it the statement fails with
  // RESPONSE_TOO_LARGE (nothing is truncated silently).
  std::size_t max_response_bytes = 16u << 20;
  // Requests in one HTTP pipeline, and steps in one batch.
  std::size_t max_requests_per_pipeline = 10'000;
  std::size_t max_batch_steps = 10'000;
  // SQL texts stored with store_sql per stream (HTTP) or connection (WebSocket), and the size of
  // each text.
  std::size_t max_stored_sql = 1'000;
  std::size_t max_stored_sql_bytes = 1u << 20;
  // An HTTP stream (baton) not used for this long is closed and its transaction rolled back.
  std::chrono::milliseconds stream_idle_timeout{10'000};
  // Open HTTP streams in total and per client address.
  std::size_t max_streams = 10'000;
  std::size_t max_streams_per_client = 500;
};

}  // namespace quire::protocol
