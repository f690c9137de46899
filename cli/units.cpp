#include "cli/units.h"

#include <cctype>
#include <cstdio>
#include <limits>

namespace quire::cli {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

Expected<std::chrono::seconds, std::string> parse_duration(std::string_view text) {
  const std::string shown = "'" + std::string(text) + "'";
  std::size_t i = 0;
  std::uint64_t n = 0;
  for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i) {
    if (n > 1'000'000'000'000ULL) return unexpected("duration " + shown + " is too long");
    n = n * 10 + static_cast<std::uint64_t>(text[i] - '0');
  }
  if (i == 0) {
    return unexpected("duration " + shown +
                      " must be a whole number and a unit, e.g. 30s, 15m, "
                      "12h, 7d or 2w");
  }
  const std::string unit = lower(text.substr(i));
  std::uint64_t mult = 0;
  if (unit == "s")
    mult = 1;
  else if (unit == "m")
    mult = 60;
  else if (unit == "h")
    mult = 3600;
  else if (unit == "d")
    mult = 86400;
  else if (unit == "w")
    mult = 7 * 86400;
  else
    return unexpected("duration " + shown + " needs a unit: s, m, h, d or w (e.g. 7d)");
  if (n == 0) return unexpected("duration " + shown + " must be positive");
  constexpr std::uint64_t kMaxSeconds = 100ULL * 366 * 86400;
  if (n > kMaxSeconds / mult) return unexpected("duration " + shown + " is over 100 years");
  return std::chrono::seconds(static_cast<std::int64_t>(n * mult));
}

Expected<std::uint64_t, std::string> parse_size(std::string_view text) {
  const std::string shown = "'" + std::string(text) + "'";
  const std::string usage =
      "size " + shown + " must look like 1048576, 512KiB, 10MB (decimal) or 1.5GiB (binary)";
  std::size_t i = 0;
  // Whole part and fraction kept exact in integers: 1.5GiB is 1610612736, not a float's guess.
  std::uint64_t whole = 0;
  std::uint64_t frac = 0, frac_scale = 1;
  bool any_digit = false;
  for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i) {
    if (whole > std::numeric_limits<std::uint64_t>::max() / 10 - 9) {
      return unexpected("size " + shown + " is too large");
    }
    whole = whole * 10 + static_cast<std::uint64_t>(text[i] - '0');
    any_digit = true;
  }
  if (i < text.size() && text[i] == '.') {
    ++i;
    for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i) {
      // Six digits are kept: frac * mult then stays below 2^64 (1e6 * 2^40 at most).
      if (frac_scale < 1'000'000ULL) {
        frac = frac * 10 + static_cast<std::uint64_t>(text[i] - '0');
        frac_scale *= 10;
      }
      any_digit = true;
    }
  }
  if (!any_digit) return unexpected(usage);
  while (i < text.size() && text[i] == ' ') ++i;
  const std::string unit = lower(text.substr(i));
  std::uint64_t mult = 0;
  if (unit.empty() || unit == "b")
    mult = 1;
  else if (unit == "k" || unit == "kb")
    mult = 1'000;
  else if (unit == "m" || unit == "mb")
    mult = 1'000'000;
  else if (unit == "g" || unit == "gb")
    mult = 1'000'000'000;
  else if (unit == "t" || unit == "tb")
    mult = 1'000'000'000'000;
  else if (unit == "ki" || unit == "kib")
    mult = 1ULL << 10;
  else if (unit == "mi" || unit == "mib")
    mult = 1ULL << 20;
  else if (unit == "gi" || unit == "gib")
    mult = 1ULL << 30;
  else if (unit == "ti" || unit == "tib")
    mult = 1ULL << 40;
  else
    return unexpected(usage);
  constexpr std::uint64_t kMax =
      static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  if (whole > kMax / mult) return unexpected("size " + shown + " is too large");
  const std::uint64_t bytes = whole * mult + frac * mult / frac_scale;
  if (bytes > kMax) return unexpected("size " + shown + " is too large");
  return bytes;
}

std::string format_size(std::uint64_t bytes) {
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double value = static_cast<double>(bytes) / 1024;
  std::size_t unit = 0;
  // Move up while the value would print as 1024.0 or more.
  while (value >= 1023.95 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", value, kUnits[unit]);
  return buf;
}

std::optional<std::chrono::seconds> parse_duration_setting(std::string_view text) {
  if (text.empty()) return std::nullopt;
  if (text.find_first_not_of("0123456789") == std::string_view::npos) {
    if (text.size() > 12) return std::nullopt;
    return std::chrono::seconds(std::stoll(std::string(text)));
  }
  auto d = parse_duration(text);
  if (!d) return std::nullopt;
  return *d;
}

}  // namespace quire::cli
