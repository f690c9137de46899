#include "cli/table.h"

#include <algorithm>
#include <cassert>

namespace quire::cli {
namespace {

void append_padded(std::string& out, const std::string& cell, std::size_t width, Align align,
                   bool last) {
  const std::size_t pad = width - std::min(width, display_width(cell));
  if (align == Align::kRight) out.append(pad, ' ');
  out += cell;
  if (align == Align::kLeft && !last) out.append(pad, ' ');
}

}  // namespace

std::size_t display_width(std::string_view text) {
  return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

std::string sanitize_cell(std::string_view text) {
  std::string out(text);
  for (auto& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) c = '?';
  }
  return out;
}

std::string render_table(const std::vector<std::string>& headers,
                         const std::vector<std::vector<std::string>>& rows,
                         const std::vector<Align>& align) {
  const std::size_t columns = headers.size();
  std::vector<std::size_t> widths(columns);
  for (std::size_t c = 0; c < columns; ++c) widths[c] = display_width(headers[c]);
  for (const auto& row : rows) {
    assert(row.size() <= columns);
    for (std::size_t c = 0; c < row.size(); ++c) {
      widths[c] = std::max(widths[c], display_width(row[c]));
    }
  }
  auto line = [&](const std::vector<std::string>& cells, std::string& out) {
    for (std::size_t c = 0; c < columns; ++c) {
      if (c > 0) out += "  ";
      static const std::string kEmpty;
      const std::string& cell = c < cells.size() ? cells[c] : kEmpty;
      const Align a = c < align.size() ? align[c] : Align::kLeft;
      append_padded(out, cell, widths[c], a, c + 1 == columns);
    }
    // An empty last cell would leave the separator behind.
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out += '\n';
  };
  std::string out;
  line(headers, out);
  for (const auto& row : rows) line(row, out);
  return out;
}

std::string render_key_values(const std::vector<std::pair<std::string, std::string>>& pairs) {
  std::size_t width = 0;
  for (const auto& [key, value] : pairs) width = std::max(width, display_width(key));
  std::string out;
  for (const auto& [key, value] : pairs) {
    out += key;
    if (value.empty()) {
      out += '\n';
      continue;
    }
    out.append(width - display_width(key) + 2, ' ');
    out += value;
    out += '\n';
  }
  return out;
}

}  // namespace quire::cli
