// Plain-text tables and key/value listings for the human-readable output of `quire db`.
//
//   NAME     SIZE     LAST ACCESS           OPEN
//   default  4.0 KiB  2025-01-02T03:04:05Z  yes
//
// Columns are separated by two spaces and padded to the widest cell, counted in UTF-8 code
// points (a namespace name may hold any character); the last column is never padded, so lines
// carry no trailing blanks. Cells must not contain newlines (sanitize_cell() makes sure).
//
// Thread model: pure functions; call from anywhere.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace quire::cli {

enum class Align { kLeft, kRight };

// `align` may be shorter than `headers`: missing columns align left. Rows shorter than
// `headers` are padded with empty cells; longer rows are an error of the caller (asserted).
std::string render_table(const std::vector<std::string>& headers,
                         const std::vector<std::vector<std::string>>& rows,
                         const std::vector<Align>& align = {});

// "key  value" lines with the keys padded to one width; no header.
std::string render_key_values(const std::vector<std::pair<std::string, std::string>>& pairs);

// `text` with control characters (newlines, tabs, escapes) replaced by '?', so a value from
// the server cannot break a table's layout or drive the terminal.
std::string sanitize_cell(std::string_view text);

// UTF-8 code points in `text` (bytes that are not continuation bytes).
std::size_t display_width(std::string_view text);

}  // namespace quire::cli
