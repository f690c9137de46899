// Strict base64url (RFC 4648 §5) for JWS segments: URL-safe alphabet only, no padding, no
// whitespace, and the unused low bits of the last character must be zero. Strictness matters
// here: each token then has exactly one spelling, so a signed token cannot be re-encoded into a
// different string that still verifies. (common/base64.h is the lenient decoder Hrana needs.)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace quire::auth::base64url {

std::string encode(const std::uint8_t* data, std::size_t size);
inline std::string encode(std::string_view s) {
  return encode(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

// nullopt on any character outside [A-Za-z0-9_-] (padding included), a length of 4k+1, or
// non-zero trailing bits.
std::optional<std::vector<std::uint8_t>> decode(std::string_view text);
std::optional<std::string> decode_string(std::string_view text);

}  // namespace quire::auth::base64url
