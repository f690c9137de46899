#include "protocol/json_parse.h"

#include <boost/json.hpp>

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>

namespace quire::protocol {

namespace bj = boost::json;

namespace {

class Parser {
 public:
  Parser(std::string_view text, int max_depth) : s_(text), max_depth_(max_depth) {}

  Expected<bj::value, std::string> run() {
    bj::value v;
    skip_ws();
    if (!value(v, 0)) return unexpected(std::move(error_));
    skip_ws();
    if (i_ != s_.size()) {
      fail("unexpected data after the JSON value");
      return unexpected(std::move(error_));
    }
    return v;
  }

 private:
  bool fail(const char* what) {
    if (error_.empty()) error_ = std::string(what) + " at offset " + std::to_string(i_);
    return false;
  }

  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) {
      ++i_;
    }
  }

  bool literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) return fail("invalid literal");
    i_ += word.size();
    return true;
  }

  bool value(bj::value& out, int depth) {
    if (i_ >= s_.size()) return fail("unexpected end of input");
    switch (s_[i_]) {
      case '{': return object(out, depth + 1);
      case '[': return array(out, depth + 1);
      case '"': {
        std::string str;
        if (!string(str)) return false;
        out = bj::string(str);
        return true;
      }
      case 't': out = true; return literal("true");
      case 'f': out = false; return literal("false");
      case 'n': out = nullptr; return literal("null");
      default: return number(out);
    }
  }

  bool object(bj::value& out, int depth) {
    if (depth > max_depth_) return fail("JSON nested too deeply");
    ++i_;  // '{'
    bj::object& obj = out.emplace_object();
    skip_ws();
    if (i_ < s_.size() && s_[i_] == '}') {
      ++i_;
      return true;
    }
    while (true) {
      skip_ws();
      if (i_ >= s_.size() || s_[i_] != '"') return fail("expected a string key");
      std::string key;
      if (!string(key)) return false;
      skip_ws();
      if (i_ >= s_.size() || s_[i_] != ':') return fail("expected ':'");
      ++i_;
      skip_ws();
      bj::value v;
      if (!value(v, depth)) return false;
      obj[key] = std::move(v);  // a repeated key: the last one wins
      skip_ws();
      if (i_ < s_.size() && s_[i_] == ',') {
        ++i_;
        continue;
      }
      if (i_ < s_.size() && s_[i_] == '}') {
        ++i_;
        return true;
      }
      return fail("expected ',' or '}'");
    }
  }

  bool array(bj::value& out, int depth) {
    if (depth > max_depth_) return fail("JSON nested too deeply");
    ++i_;  // '['
    bj::array& arr = out.emplace_array();
    skip_ws();
    if (i_ < s_.size() && s_[i_] == ']') {
      ++i_;
      return true;
    }
    while (true) {
      skip_ws();
      bj::value v;
      if (!value(v, depth)) return false;
      arr.push_back(std::move(v));
      skip_ws();
      if (i_ < s_.size() && s_[i_] == ',') {
        ++i_;
        continue;
      }
      if (i_ < s_.size() && s_[i_] == ']') {
        ++i_;
        return true;
      }
      return fail("expected ',' or ']'");
    }
  }

  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  bool hex4(std::uint32_t& out) {
    if (i_ + 4 > s_.size()) return fail("truncated \\u escape");
    out = 0;
    for (int k = 0; k < 4; ++k) {
      int h = hex(s_[i_ + k]);
      if (h < 0) return fail("invalid \\u escape");
      out = (out << 4) | static_cast<std::uint32_t>(h);
    }
    i_ += 4;
    return true;
  }

  static void put_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  // Length of the valid UTF-8 sequence starting at s_[i], or 0.
  std::size_t utf8_length(std::size_t i) const {
    const auto b0 = static_cast<unsigned char>(s_[i]);
    std::size_t n;
    std::uint32_t min;
    if (b0 < 0x80) return 1;
    if ((b0 & 0xE0) == 0xC0) { n = 2; min = 0x80; }
    else if ((b0 & 0xF0) == 0xE0) { n = 3; min = 0x800; }
    else if ((b0 & 0xF8) == 0xF0) { n = 4; min = 0x10000; }
    else return 0;
    if (i + n > s_.size()) return 0;
    std::uint32_t cp = b0 & (0x7F >> n);
    for (std::size_t k = 1; k < n; ++k) {
      const auto b = static_cast<unsigned char>(s_[i + k]);
      if ((b & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (b & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
  }

  bool string(std::string& out) {
    ++i_;  // '"'
    while (true) {
      // Copy the run of plain characters in one go.
      std::size_t start = i_;
      while (i_ < s_.size()) {
        const auto c = static_cast<unsigned char>(s_[i_]);
        if (c == '"' || c == '\\' || c < 0x20) break;
        if (c < 0x80) {
          ++i_;
        } else {
          std::size_t n = utf8_length(i_);
          if (n == 0) return fail("invalid UTF-8 in a string");
          i_ += n;
        }
      }
      out.append(s_.data() + start, i_ - start);
      if (i_ >= s_.size()) return fail("unterminated string");
      const char c = s_[i_];
      if (c == '"') {
        ++i_;
        return true;
      }
      if (c != '\\') return fail("control character in a string");
      if (++i_ >= s_.size()) return fail("unterminated escape");
      switch (s_[i_++]) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          std::uint32_t cp = 0;
          if (!hex4(cp)) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            std::uint32_t lo = 0;
            if (s_.substr(i_, 2) != "\\u") return fail("unpaired surrogate in \\u escape");
            i_ += 2;
            if (!hex4(lo)) return false;
            if (lo < 0xDC00 || lo > 0xDFFF) return fail("unpaired surrogate in \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return fail("unpaired surrogate in \\u escape");
          }
          put_utf8(out, cp);
          break;
        }
        default: return fail("invalid escape");
      }
    }
  }

  bool number(bj::value& out) {
    const std::size_t start = i_;
    bool is_float = false;
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    if (i_ >= s_.size() || !std::isdigit(static_cast<unsigned char>(s_[i_]))) {
      return fail("invalid value");
    }
    if (s_[i_] == '0') {
      ++i_;
    } else {
      while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
    }
    if (i_ < s_.size() && s_[i_] == '.') {
      is_float = true;
      ++i_;
      if (i_ >= s_.size() || !std::isdigit(static_cast<unsigned char>(s_[i_]))) {
        return fail("invalid number");
      }
      while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      is_float = true;
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      if (i_ >= s_.size() || !std::isdigit(static_cast<unsigned char>(s_[i_]))) {
        return fail("invalid number");
      }
      while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
    }
    const char* first = s_.data() + start;
    const char* last = s_.data() + i_;
    if (!is_float) {
      std::int64_t n = 0;
      if (auto r = std::from_chars(first, last, n); r.ec == std::errc() && r.ptr == last) {
        out = n;
        return true;
      }
      std::uint64_t u = 0;
      if (auto r = std::from_chars(first, last, u); r.ec == std::errc() && r.ptr == last) {
        out = u;
        return true;
      }
    }
    double d = 0;
    auto r = std::from_chars(first, last, d);
    if (r.ptr != last) return fail("invalid number");
    if (r.ec == std::errc::result_out_of_range) {
      // Overflow: +-infinity, as JavaScript's JSON.parse gives; underflow: zero.
      bool negative = *first == '-';
      bool big = false;
      for (const char* p = first; p != last; ++p) {
        if (*p == 'e' || *p == 'E') {
          big = p[1] != '-';
          break;
        }
      }
      if (big) {
        d = negative ? -HUGE_VAL : HUGE_VAL;
      } else {
        d = negative ? -0.0 : 0.0;
      }
    }
    out = d;
    return true;
  }

  std::string_view s_;
  std::size_t i_ = 0;
  int max_depth_;
  std::string error_;
};

}  // namespace

Expected<bj::value, std::string> parse_json(std::string_view text, int max_depth) {
  return Parser(text, max_depth).run();
}

}  // namespace quire::protocol
