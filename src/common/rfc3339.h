// RFC 3339 timestamps as microseconds since the Unix epoch (UTC): what --timestamp options and
// the admin API's restore and fork take, and what they report.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace quire {

// "2026-01-02T03:04:05Z", with optional fraction ("...05.123456Z") and offset ("+02:00"). The
// offset is required (a timestamp without one is ambiguous); nullopt for anything else.
std::optional<std::int64_t> parse_rfc3339_us(std::string_view s);

// "2026-01-02T03:04:05.123456Z".
std::string format_rfc3339_us(std::int64_t us);

}  // namespace quire
