// A SQL value as it crosses quire's layers: what SQLite stores, what Hrana carries.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace quire {

using Blob = std::vector<std::uint8_t>;

// The five SQLite storage classes. Index order matters to codecs: keep it stable.
//   monostate = NULL, int64 = INTEGER, double = REAL, string = TEXT (UTF-8), Blob = BLOB.
using Value = std::variant<std::monostate, std::int64_t, double, std::string, Blob>;

inline bool is_null(const Value& v) { return std::holds_alternative<std::monostate>(v); }

}  // namespace quire
