// Base64 (RFC 4648) as Hrana uses it: standard alphabet, emitted without padding, decoded
// leniently (padding optional). The URL-safe alphabet is accepted on decode too.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace quire::base64 {

enum class Padding { kNone, kPad };

std::string encode(const std::uint8_t* data, std::size_t size, Padding padding = Padding::kNone);
inline std::string encode(std::string_view s, Padding padding = Padding::kNone) {
  return encode(reinterpret_cast<const std::uint8_t*>(s.data()), s.size(), padding);
}

// Returns nullopt on a character outside both alphabets or an impossible length.
std::optional<std::vector<std::uint8_t>> decode(std::string_view text);

// URL-safe alphabet, no padding (JWT segments).
std::string encode_url(const std::uint8_t* data, std::size_t size);

}  // namespace quire::base64
