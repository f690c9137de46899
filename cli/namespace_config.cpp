#include "cli/namespace_config.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

#include "cli/units.h"

namespace quire::cli {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string known_keys_text() {
  std::string out;
  for (const auto& k : namespace_config_keys()) out += (out.empty() ? "" : ", ") + k;
  return out;
}

}  // namespace

const std::vector<std::string>& namespace_config_keys() {
  static const std::vector<std::string> keys = {"block_reads", "block_writes",  "block_reason",
                                                "max_db_size", "txn_timeout_s", "jwt_key",
                                                "allow_attach"};
  return keys;
}

Expected<std::pair<std::string, boost::json::value>, std::string> parse_config_assignment(
    std::string_view text) {
  const auto eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    return unexpected("--set takes key=value, got '" + std::string(text) + "'");
  }
  std::string key(text.substr(0, eq));
  const std::string_view value = text.substr(eq + 1);
  const auto& keys = namespace_config_keys();
  if (std::find(keys.begin(), keys.end(), key) == keys.end()) {
    return unexpected("unknown config key '" + key + "' (known: " + known_keys_text() + ")");
  }
  if (value.empty()) return std::pair{std::move(key), boost::json::value(nullptr)};

  if (key == "block_reads" || key == "block_writes" || key == "allow_attach") {
    const auto v = lower(value);
    if (v == "true" || v == "1" || v == "yes" || v == "on") {
      return std::pair{std::move(key), boost::json::value(true)};
    }
    if (v == "false" || v == "0" || v == "no" || v == "off") {
      return std::pair{std::move(key), boost::json::value(false)};
    }
    return unexpected(key + " takes true or false, got '" + std::string(value) + "'");
  }
  if (key == "max_db_size") {
    auto bytes = parse_size(value);
    if (!bytes) return unexpected("max_db_size: " + bytes.error());
    if (*bytes == 0) return unexpected(std::string("max_db_size must be positive"));
    return std::pair{std::move(key), boost::json::value(*bytes)};
  }
  if (key == "txn_timeout_s") {
    const std::string v(value);
    char* end = nullptr;
    const double seconds = std::strtod(v.c_str(), &end);
    // strtod also takes "inf", "nan" and hex; only plain decimals are meant here.
    const bool plain = std::all_of(v.begin(), v.end(), [](char c) {
      return std::isdigit(static_cast<unsigned char>(c)) || c == '.';
    });
    if (!plain || end != v.c_str() + v.size() || !std::isfinite(seconds) || seconds <= 0) {
      return unexpected("txn_timeout_s takes positive seconds, got '" + v + "'");
    }
    if (seconds == std::floor(seconds) && seconds < 1e15) {
      return std::pair{std::move(key), boost::json::value(static_cast<std::int64_t>(seconds))};
    }
    return std::pair{std::move(key), boost::json::value(seconds)};
  }
  // block_reason, jwt_key: text as given.
  return std::pair{std::move(key), boost::json::value(std::string(value))};
}

}  // namespace quire::cli
