// Building blocks of Hrana's JSON codec, shared by the HTTP bodies (json_codec.cpp) and the
// WebSocket messages (ws_json_codec.cpp). Internal to the protocol library.
#pragma once

#include <boost/json.hpp>

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>

#include "common/base64.h"
#include "protocol/hrana/codec.h"

namespace quire::hrana::json::detail {

namespace bj = boost::json;


// Decoding helpers report the first problem as a ProtocolError; `where` names the field path.
struct Decoder {
  std::optional<ProtocolError> error;
  // Requests, steps, arguments and conditions this message may still decode into
  // (protocol::Limits::max_decoded_items()); the entry points set it.
  std::size_t items_left = SIZE_MAX;
  std::size_t items_limit = SIZE_MAX;

  bool fail(std::string msg) {
    if (!error) error = ProtocolError{"Invalid JSON request: " + std::move(msg)};
    return false;
  }

  void limit_items(std::size_t n) { items_left = items_limit = n; }
  // Called before `n` more elements of an array named `name` are decoded.
  bool take_items(std::size_t n, const char* name) {
    if (n <= items_left) {
      items_left -= n;
      return true;
    }
    return fail("more than " + std::to_string(items_limit) +
                " requests, steps, arguments and conditions in one message (at " + name + ")");
  }

  const bj::object* object(const bj::value& v, const char* where) {
    if (auto* o = v.if_object()) return o;
    fail(std::string(where) + " must be an object");
    return nullptr;
  }

  // Optional field: absent and null both mean "not given".
  const bj::value* field(const bj::object& o, const char* name) {
    auto it = o.find(name);
    if (it == o.end() || it->value().is_null()) return nullptr;
    return &it->value();
  }

  bool string_field(const bj::object& o, const char* name, std::optional<std::string>& out) {
    const bj::value* v = field(o, name);
    if (!v) return true;
    if (!v->is_string()) return fail(std::string("'") + name + "' must be a string");
    out = std::string(v->get_string());
    return true;
  }

  bool int32_field(const bj::object& o, const char* name, std::optional<std::int32_t>& out) {
    const bj::value* v = field(o, name);
    if (!v) return true;
    auto n = v->to_number<std::int64_t>(ec_);
    if (ec_ || n < INT32_MIN || n > INT32_MAX) {
      return fail(std::string("'") + name + "' must be a 32-bit integer");
    }
    out = static_cast<std::int32_t>(n);
    return true;
  }

  bool uint32_field(const bj::object& o, const char* name, std::uint32_t& out) {
    const bj::value* v = field(o, name);
    if (!v) return fail(std::string("'") + name + "' is required");
    auto n = v->to_number<std::int64_t>(ec_);
    if (ec_ || n < 0 || n > UINT32_MAX) {
      return fail(std::string("'") + name + "' must be a non-negative integer");
    }
    out = static_cast<std::uint32_t>(n);
    return true;
  }

  bool value(const bj::value& jv, Value& out) {
    auto* o = object(jv, "a value");
    if (!o) return false;
    auto* t = field(*o, "type");
    if (!t || !t->is_string()) return fail("a value needs a string 'type'");
    std::string_view type = t->get_string();
    if (type == "null") {
      out = std::monostate{};
    } else if (type == "integer") {
      auto* v = field(*o, "value");
      if (!v) return fail("an integer value needs 'value'");
      if (v->is_string()) {
        std::string_view s = v->get_string();
        std::int64_t n = 0;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
        if (ec != std::errc() || p != s.data() + s.size()) {
          return fail("integer value '" + std::string(s) + "' is not a 64-bit integer");
        }
        out = n;
      } else if (v->is_int64()) {
        out = v->get_int64();
      } else if (v->is_uint64() && v->get_uint64() <= INT64_MAX) {
        out = static_cast<std::int64_t>(v->get_uint64());
      } else {
        return fail("integer value must be a decimal string");
      }
    } else if (type == "float") {
      auto* v = field(*o, "value");
      if (!v) return fail("a float value needs 'value'");
      double d = v->to_number<double>(ec_);
      if (ec_) return fail("float value must be a number");
      out = d;
    } else if (type == "text") {
      auto* v = field(*o, "value");
      if (!v || !v->is_string()) return fail("a text value needs a string 'value'");
      out = std::string(v->get_string());
    } else if (type == "blob") {
      auto* v = field(*o, "base64");
      if (!v || !v->is_string()) return fail("a blob value needs a string 'base64'");
      auto bytes = base64::decode(v->get_string());
      if (!bytes) return fail("blob 'base64' is not valid base64");
      out = std::move(*bytes);
    } else {
      return fail("unknown value type '" + std::string(type) + "'");
    }
    return true;
  }

  bool stmt(const bj::value& jv, Stmt& out) {
    auto* o = object(jv, "'stmt'");
    if (!o) return false;
    if (!string_field(*o, "sql", out.sql) || !int32_field(*o, "sql_id", out.sql_id)) return false;
    if (auto* args = field(*o, "args")) {
      auto* arr = args->if_array();
      if (!arr) return fail("'args' must be an array");
      if (arr->size() > 32766) return fail("'args' has more arguments than any statement can have");
      if (!take_items(arr->size(), "'args'")) return false;
      out.args.reserve(arr->size());
      for (const auto& a : *arr) {
        out.args.emplace_back();
        if (!value(a, out.args.back())) return false;
      }
    }
    if (auto* named = field(*o, "named_args")) {
      auto* arr = named->if_array();
      if (!arr) return fail("'named_args' must be an array");
      if (arr->size() + out.args.size() > 32766) {
        return fail("'named_args' has more arguments than any statement can have");
      }
      if (!take_items(arr->size(), "'named_args'")) return false;
      for (const auto& a : *arr) {
        auto* ao = object(a, "a named argument");
        if (!ao) return false;
        auto* name = field(*ao, "name");
        if (!name || !name->is_string()) return fail("a named argument needs a string 'name'");
        NamedArg arg{std::string(name->get_string()), std::monostate{}};
        if (auto* v = field(*ao, "value"); v && !value(*v, arg.value)) return false;
        out.named_args.push_back(std::move(arg));
      }
    }
    if (auto* want = field(*o, "want_rows")) {
      if (!want->is_bool()) return fail("'want_rows' must be a boolean");
      out.want_rows = want->get_bool();
    }
    return true;
  }

  bool cond(const bj::value& jv, BatchCond& out, int depth) {
    if (depth > 64) return fail("batch condition nested too deeply");
    auto* o = object(jv, "a batch condition");
    if (!o) return false;
    auto* t = field(*o, "type");
    if (!t || !t->is_string()) return fail("a batch condition needs a string 'type'");
    std::string_view type = t->get_string();
    using K = BatchCond::Kind;
    if (type == "ok" || type == "error") {
      out.kind = type == "ok" ? K::kOk : K::kError;
      return uint32_field(*o, "step", out.step);
    }
    if (type == "not") {
      out.kind = K::kNot;
      auto* c = field(*o, "cond");
      if (!c) return fail("a 'not' condition needs 'cond'");
      if (!take_items(1, "a 'not' condition")) return false;
      out.conds.emplace_back();
      return cond(*c, out.conds.back(), depth + 1);
    }
    if (type == "and" || type == "or") {
      out.kind = type == "and" ? K::kAnd : K::kOr;
      auto* cs = field(*o, "conds");
      if (!cs || !cs->is_array()) return fail("an 'and'/'or' condition needs an array 'conds'");
      if (!take_items(cs->get_array().size(), "'conds'")) return false;
      for (const auto& c : cs->get_array()) {
        out.conds.emplace_back();
        if (!cond(c, out.conds.back(), depth + 1)) return false;
      }
      return true;
    }
    if (type == "is_autocommit") {
      out.kind = K::kIsAutocommit;
      return true;
    }
    return fail("unknown batch condition type '" + std::string(type) + "'");
  }

  bool batch(const bj::value& jv, Batch& out) {
    auto* o = object(jv, "'batch'");
    if (!o) return false;
    auto* steps = field(*o, "steps");
    if (!steps || !steps->is_array()) return fail("a batch needs an array 'steps'");
    if (!take_items(steps->get_array().size(), "'steps'")) return false;
    out.steps.reserve(steps->get_array().size());
    for (const auto& s : steps->get_array()) {
      auto* so = object(s, "a batch step");
      if (!so) return false;
      BatchStep step;
      if (auto* c = field(*so, "condition")) {
        step.condition.emplace();
        if (!cond(*c, *step.condition, 0)) return false;
      }
      auto* st = field(*so, "stmt");
      if (!st) return fail("a batch step needs 'stmt'");
      if (!stmt(*st, step.stmt)) return false;
      out.steps.push_back(std::move(step));
    }
    return true;
  }

  bool sql_or_id(const bj::object& o, std::optional<std::string>& sql,
                 std::optional<std::int32_t>& sql_id) {
    return string_field(o, "sql", sql) && int32_field(o, "sql_id", sql_id);
  }

  bool request(const bj::value& jv, StreamRequest& out) {
    auto* o = object(jv, "a request");
    if (!o) return false;
    auto* t = field(*o, "type");
    if (!t || !t->is_string()) return fail("a request needs a string 'type'");
    std::string_view type = t->get_string();
    if (type == "close") {
      out = CloseReq{};
    } else if (type == "execute") {
      ExecuteReq r;
      auto* s = field(*o, "stmt");
      if (!s) return fail("an execute request needs 'stmt'");
      if (!stmt(*s, r.stmt)) return false;
      out = std::move(r);
    } else if (type == "batch") {
      BatchReq r;
      auto* b = field(*o, "batch");
      if (!b) return fail("a batch request needs 'batch'");
      if (!batch(*b, r.batch)) return false;
      out = std::move(r);
    } else if (type == "sequence") {
      SequenceReq r;
      if (!sql_or_id(*o, r.sql, r.sql_id)) return false;
      out = std::move(r);
    } else if (type == "describe") {
      DescribeReq r;
      if (!sql_or_id(*o, r.sql, r.sql_id)) return false;
      out = std::move(r);
    } else if (type == "store_sql") {
      StoreSqlReq r;
      std::optional<std::int32_t> id;
      std::optional<std::string> sql;
      if (!int32_field(*o, "sql_id", id) || !string_field(*o, "sql", sql)) return false;
      if (!id || !sql) return fail("a store_sql request needs 'sql_id' and 'sql'");
      r.sql_id = *id;
      r.sql = std::move(*sql);
      out = std::move(r);
    } else if (type == "close_sql") {
      std::optional<std::int32_t> id;
      if (!int32_field(*o, "sql_id", id)) return false;
      if (!id) return fail("a close_sql request needs 'sql_id'");
      out = CloseSqlReq{*id};
    } else if (type == "get_autocommit") {
      out = GetAutocommitReq{};
    } else {
      return fail("unknown request type '" + std::string(type) + "'");
    }
    return true;
  }

  bool baton(const bj::object& o, std::optional<std::string>& out) {
    return string_field(o, "baton", out);
  }

  std::error_code ec_;
};

Expected<bj::value, ProtocolError> parse(std::string_view body);

void append_escaped(std::string& out, std::string_view s);
void append_int(std::string& out, std::int64_t n);
void append_uint(std::string& out, std::uint64_t n);
void append_double(std::string& out, double d);
void append_value(std::string& out, const Value& v);
void append_opt_string(std::string& out, const std::optional<std::string>& s);
void append_cols(std::string& out, const std::vector<Column>& cols);
void append_row(std::string& out, const std::vector<Value>& row);
void append_opt_rowid(std::string& out, const std::optional<std::int64_t>& id);
void append_stmt_result(std::string& out, const StmtResult& r);
void append_error(std::string& out, const Error& e);
void append_batch_result(std::string& out, const BatchResult& r);
void append_describe_result(std::string& out, const DescribeResult& r);

}  // namespace quire::hrana::json::detail
