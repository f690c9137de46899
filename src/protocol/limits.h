// Bounds on what one client can make the server do, all documented in docs/configuration.md.
// Most are configurable from the command line (cli/main.cpp); the stored-SQL byte limits are
// fixed, and max_decoded_items() follows the pipeline and batch limits.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

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
  // All the texts stored on one stream or connection together.
  std::size_t max_stored_sql_total_bytes = 16u << 20;
  // An HTTP stream (baton) not used for this long is closed and its transaction rolled back.
  std::chrono::milliseconds stream_idle_timeout{10'000};
  // Open HTTP streams in total and per client address.
  std::size_t max_streams = 10'000;
  std::size_t max_streams_per_client = 500;

  // Requests, batch steps, arguments and conditions one request body or message may decode
  // into, all together. Each takes up to about 150 bytes of memory for as little as two bytes
  // on the wire, so without a bound a body of max_body_bytes could need seventy times that
  // before any other limit is checked. It follows the two limits above (a full pipeline, or a
  // full batch whose steps have 63 arguments each, plus one statement with as many arguments as
  // SQLite allows): about 680,000 items, at most about 100 MB, by default. Limits so large that
  // the sum would overflow mean no budget.
  std::size_t max_decoded_items() const {
    constexpr std::size_t kPerStep = 64;
    if (max_batch_steps > (SIZE_MAX / 2) / kPerStep || max_requests_per_pipeline > SIZE_MAX / 4) {
      return SIZE_MAX;
    }
    return max_requests_per_pipeline + kPerStep * max_batch_steps + kMaxStatementArgs;
  }
  // SQLite's highest parameter number: no statement can bind more arguments.
  static constexpr std::size_t kMaxStatementArgs = 32766;
};

}  // namespace quire::protocol
