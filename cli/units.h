// The quantities people type on the `quire` command line and read back from it: durations
// ("30s", "15m", "12h", "7d", "2w") and byte sizes ("10MB", "512KiB", "1048576").
//
// Sizes follow the admin API (docs/admin-api.md) and sqld: k/KB/MB/GB/TB are powers of 1000,
// Ki/KiB/MiB/GiB/TiB powers of 1024, so `quire db` and a curl to the admin API agree on what
// "10MB" means (10,000,000 bytes).
//
// Thread model: pure functions; call from anywhere.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/expected.h"

namespace quire::cli {

// A positive whole number followed by exactly one unit: s, m, h, d or w. At most 100 years, so
// `now + duration` never overflows a NumericDate. The error says what was wrong.
Expected<std::chrono::seconds, std::string> parse_duration(std::string_view text);
// The same for settings where 0 means "off": also "0" and a plain number of seconds.
std::optional<std::chrono::seconds> parse_duration_setting(std::string_view text);

// A non-negative number (digits, an optional fraction), optional blanks, and an optional unit in
// any case: b; k, kb, m, mb, g, gb, t, tb (decimal); ki, kib, mi, mib, gi, gib, ti, tib (binary).
// Up to six fraction digits count; rounds down to whole bytes; at most 2^63 - 1.
Expected<std::uint64_t, std::string> parse_size(std::string_view text);

// "0 B", "512 B", "1.5 KiB", "10.0 MiB", "2.0 GiB", "1.0 TiB": one decimal above a KiB.
std::string format_size(std::uint64_t bytes);

}  // namespace quire::cli
