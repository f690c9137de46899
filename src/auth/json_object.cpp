#include "auth/json_object.h"

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/parse.hpp>
#include <set>
#include <vector>

namespace quire::auth {
namespace {

namespace bj = boost::json;

// A SAX handler that only looks for repeated keys and excessive depth; the DOM is built by a
// second, ordinary parse once this pass has accepted the text.
struct DuplicateKeyFinder {
  static constexpr std::size_t max_array_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_object_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_string_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_key_size = static_cast<std::size_t>(-1);

  int max_depth = 0;
  bool duplicate = false;
  bool too_deep = false;
  std::vector<std::set<std::string>> keys;  // one set per open object
  std::string key;                          // the key being read
  int depth = 0;

  bool push(bj::error_code& ec) {
    if (++depth > max_depth) {
      too_deep = true;
      ec = bj::error::too_deep;
      return false;
    }
    return true;
  }

  bool on_document_begin(bj::error_code&) { return true; }
  bool on_document_end(bj::error_code&) { return true; }
  bool on_array_begin(bj::error_code& ec) { return push(ec); }
  bool on_array_end(std::size_t, bj::error_code&) {
    --depth;
    return true;
  }
  bool on_object_begin(bj::error_code& ec) {
    keys.emplace_back();
    return push(ec);
  }
  bool on_object_end(std::size_t, bj::error_code&) {
    keys.pop_back();
    --depth;
    return true;
  }
  bool on_string_part(bj::string_view, std::size_t, bj::error_code&) { return true; }
  bool on_string(bj::string_view, std::size_t, bj::error_code&) { return true; }
  bool on_key_part(bj::string_view s, std::size_t, bj::error_code&) {
    key.append(s.data(), s.size());
    return true;
  }
  bool on_key(bj::string_view s, std::size_t, bj::error_code& ec) {
    key.append(s.data(), s.size());
    bool fresh = keys.back().insert(std::move(key)).second;
    key.clear();
    if (!fresh) {
      duplicate = true;
      ec = bj::error::syntax;
      return false;
    }
    return true;
  }
  bool on_number_part(bj::string_view, bj::error_code&) { return true; }
  bool on_int64(std::int64_t, bj::string_view, bj::error_code&) { return true; }
  bool on_uint64(std::uint64_t, bj::string_view, bj::error_code&) { return true; }
  bool on_double(double, bj::string_view, bj::error_code&) { return true; }
  bool on_bool(bool, bj::error_code&) { return true; }
  bool on_null(bj::error_code&) { return true; }
  bool on_comment_part(bj::string_view, bj::error_code&) { return true; }
  bool on_comment(bj::string_view, bj::error_code&) { return true; }
};

}  // namespace

Expected<bj::object, std::string> parse_json_object(std::string_view text, int max_depth) {
  bj::parse_options strict;  // the defaults are RFC 8259: no comments, no trailing commas
  bj::basic_parser<DuplicateKeyFinder> finder(strict);
  finder.handler().max_depth = max_depth;
  bj::error_code ec;
  finder.write_some(false, text.data(), text.size(), ec);
  if (finder.handler().duplicate) return unexpected(std::string("duplicate key in JSON object"));
  if (finder.handler().too_deep) return unexpected(std::string("JSON nested too deeply"));
  if (ec) return unexpected("invalid JSON: " + ec.message());

  bj::value v = bj::parse(bj::string_view(text.data(), text.size()), ec);
  if (ec) return unexpected("invalid JSON: " + ec.message());
  if (!v.is_object()) return unexpected(std::string("JSON value is not an object"));
  return std::move(v.as_object());
}

}  // namespace quire::auth
