// Parses a JWS header or claims set: one JSON object, valid UTF-8, and no key repeated within
// any object. Boost.JSON silently keeps the last of duplicate keys; sqld's serde rejects them.
// Accepting {"a":"ro","a":"rw"} would let two readers of one signed token disagree about what
// it grants, so a duplicate is an error here.
#pragma once

#include <boost/json/object.hpp>
#include <string>
#include <string_view>

#include "common/expected.h"

namespace quire::auth {

// Nesting deeper than `max_depth` is an error as well (claims are at most 4 levels deep).
Expected<boost::json::object, std::string> parse_json_object(std::string_view text,
                                                             int max_depth = 16);

}  // namespace quire::auth
