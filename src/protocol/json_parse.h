// A strict RFC 8259 JSON parser into Boost.JSON's DOM, written for one reason: Boost 1.81's own
// parser rounds some decimal numbers to a neighbouring double (about one in five random doubles),
// and Hrana carries SQL REAL values as JSON numbers that must survive bit for bit. Numbers here
// go through std::from_chars, which is exact. Integers that fit int64/uint64 stay integers.
#pragma once

#include <boost/json/value.hpp>

#include <string>
#include <string_view>

#include "common/expected.h"

namespace quire::protocol {

// Parses one JSON document (surrounding whitespace allowed). Strings must be valid UTF-8;
// nesting deeper than `max_depth` is an error. The error says what and where (byte offset).
Expected<boost::json::value, std::string> parse_json(std::string_view text, int max_depth = 128);

}  // namespace quire::protocol
