// The settings of one namespace as `quire db config NAME --set key=value` writes them, typed
// the way the admin API's POST /v1/namespaces/:ns/config expects:
//
//   block_reads, block_writes, allow_attach   true|false (also 1|0, yes|no, on|off)
//   block_reason, jwt_key                      text
//   max_db_size                                a size: 1048576, 512KiB, 10MB (sent as bytes;
//                                              MB = 10^6, MiB = 2^20, as the admin API reads it)
//   txn_timeout_s                              positive seconds, fractions allowed
//
// An empty value (`block_reason=`) sends JSON null: the setting goes back to its default.
//
// Thread model: pure functions; call from anywhere.
#pragma once

#include <boost/json/value.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/expected.h"

namespace quire::cli {

// The known keys, in the order `quire db config` prints them.
const std::vector<std::string>& namespace_config_keys();

// Parses one "key=value". The error names the key and what it accepts.
Expected<std::pair<std::string, boost::json::value>, std::string> parse_config_assignment(
    std::string_view text);

}  // namespace quire::cli
