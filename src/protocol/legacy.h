// sqld's original HTTP API: `POST /` with {"statements": [...]}. The statements run as one
// transaction that is rolled back if any of them fails; plain JSON values in and out.
#pragma once

#include <string>
#include <string_view>

#include "engine/database.h"
#include "protocol/limits.h"

namespace quire::protocol {

struct LegacyResponse {
  int status = 200;
  std::string body;  // JSON
};

// `access` is what the client's token allows.
LegacyResponse run_legacy_query(engine::Database& db, const sqlite::Connection::Access& access,
                                std::string_view body, const Limits& limits);

}  // namespace quire::protocol
