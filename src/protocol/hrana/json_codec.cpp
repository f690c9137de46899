// Hrana's JSON encoding (HTTP /v2, /v3 and the hrana1-3 WebSocket subprotocols).
// Decoding goes through Boost.JSON's DOM; encoding appends straight to a string, because the
// response path is hot and its shapes are fixed.
#include <boost/json.hpp>

#include <charconv>
#include <cmath>
#include <cstdio>

#include "common/base64.h"
#include "protocol/hrana/codec.h"

namespace quire::hrana::json {

namespace bj = boost::json;

namespace {

// ---------------------------------------------------------------- decoding

// Decoding helpers report the first problem as a ProtocolError; `where` names the field path.
struct Decoder {
  std::optional<ProtocolError> error;

  bool fail(std::string msg) {
    if (!error) error = ProtocolError{"Invalid JSON request: " + std::move(msg)};
    return false;
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
      out.args.reserve(arr->size());
      for (const auto& a : *arr) {
        out.args.emplace_back();
        if (!value(a, out.args.back())) return false;
      }
    }
    if (auto* named = field(*o, "named_args")) {
      auto* arr = named->if_array();
      if (!arr) return fail("'named_args' must be an array");
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
      out.conds.emplace_back();
      return cond(*c, out.conds.back(), depth + 1);
    }
    if (type == "and" || type == "or") {
      out.kind = type == "and" ? K::kAnd : K::kOr;
      auto* cs = field(*o, "conds");
      if (!cs || !cs->is_array()) return fail("an 'and'/'or' condition needs an array 'conds'");
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

Expected<bj::value, ProtocolError> parse(std::string_view body) {
  boost::system::error_code ec;
  bj::parse_options opts;
  opts.max_depth = 128;
  bj::value v = bj::parse(body, ec, {}, opts);
  if (ec) return unexpected(ProtocolError{"Invalid JSON request: " + ec.message()});
  return v;
}

// ---------------------------------------------------------------- encoding

void append_escaped(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

void append_int(std::string& out, std::int64_t n) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, n);
  out.append(buf, r.ptr);
}

void append_uint(std::string& out, std::uint64_t n) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, n);
  out.append(buf, r.ptr);
}

void append_double(std::string& out, double d) {
  if (std::isnan(d)) {
    out += "null";
  } else if (std::isinf(d)) {
    // JSON has no infinity; 1e999 parses (in JavaScript and most parsers) as one.
    out += d > 0 ? "1e999" : "-1e999";
  } else {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, d);
    out.append(buf, r.ptr);
  }
}

void append_value(std::string& out, const Value& v) {
  switch (v.index()) {
    case 0: out += R"({"type":"null"})"; break;
    case 1:
      out += R"({"type":"integer","value":")";
      append_int(out, std::get<1>(v));
      out += "\"}";
      break;
    case 2:
      if (std::isnan(std::get<2>(v))) {
        out += R"({"type":"null"})";
        break;
      }
      out += R"({"type":"float","value":)";
      append_double(out, std::get<2>(v));
      out += '}';
      break;
    case 3:
      out += R"({"type":"text","value":)";
      append_escaped(out, std::get<3>(v));
      out += '}';
      break;
    default: {
      const auto& b = std::get<4>(v);
      out += R"({"type":"blob","base64":")";
      out += base64::encode(b.data(), b.size());
      out += "\"}";
    }
  }
}

void append_opt_string(std::string& out, const std::optional<std::string>& s) {
  if (s) {
    append_escaped(out, *s);
  } else {
    out += "null";
  }
}

void append_cols(std::string& out, const std::vector<Column>& cols) {
  out += '[';
  for (std::size_t i = 0; i < cols.size(); ++i) {
    if (i) out += ',';
    out += R"({"name":)";
    append_escaped(out, cols[i].name);
    out += R"(,"decltype":)";
    append_opt_string(out, cols[i].decltype_);
    out += '}';
  }
  out += ']';
}

void append_row(std::string& out, const std::vector<Value>& row) {
  out += '[';
  for (std::size_t j = 0; j < row.size(); ++j) {
    if (j) out += ',';
    append_value(out, row[j]);
  }
  out += ']';
}

void append_opt_rowid(std::string& out, const std::optional<std::int64_t>& id) {
  if (id) {
    out += '"';
    append_int(out, *id);
    out += '"';
  } else {
    out += "null";
  }
}

void append_stmt_result(std::string& out, const StmtResult& r) {
  out += R"({"cols":)";
  append_cols(out, r.cols);
  out += R"(,"rows":[)";
  for (std::size_t i = 0; i < r.rows.size(); ++i) {
    if (i) out += ',';
    append_row(out, r.rows[i]);
  }
  out += R"(],"affected_row_count":)";
  append_uint(out, r.affected_row_count);
  out += R"(,"last_insert_rowid":)";
  append_opt_rowid(out, r.last_insert_rowid);
  out += R"(,"replication_index":null,"rows_read":)";
  append_uint(out, r.rows_read);
  out += R"(,"rows_written":)";
  append_uint(out, r.rows_written);
  out += R"(,"query_duration_ms":)";
  append_double(out, r.query_duration_ms);
  out += '}';
}

void append_error(std::string& out, const Error& e) {
  out += R"({"message":)";
  append_escaped(out, e.message);
  out += R"(,"code":)";
  append_escaped(out, e.code);
  if (!e.extended_code.empty()) {
    out += R"(,"extended_code":)";
    append_escaped(out, e.extended_code);
  }
  out += '}';
}

void append_batch_result(std::string& out, const BatchResult& r) {
  out += R"({"step_results":[)";
  for (std::size_t i = 0; i < r.step_results.size(); ++i) {
    if (i) out += ',';
    if (r.step_results[i]) {
      append_stmt_result(out, *r.step_results[i]);
    } else {
      out += "null";
    }
  }
  out += R"(],"step_errors":[)";
  for (std::size_t i = 0; i < r.step_errors.size(); ++i) {
    if (i) out += ',';
    if (r.step_errors[i]) {
      append_error(out, *r.step_errors[i]);
    } else {
      out += "null";
    }
  }
  out += "]}";
}

void append_describe_result(std::string& out, const DescribeResult& r) {
  out += R"({"params":[)";
  for (std::size_t i = 0; i < r.params.size(); ++i) {
    if (i) out += ',';
    out += R"({"name":)";
    append_opt_string(out, r.params[i].name);
    out += '}';
  }
  out += R"(],"cols":)";
  append_cols(out, r.cols);
  out += R"(,"is_explain":)";
  out += r.is_explain ? "true" : "false";
  out += R"(,"is_readonly":)";
  out += r.is_readonly ? "true" : "false";
  out += '}';
}

constexpr const char* kResponseTypes[] = {"close",    "execute",   "batch",     "sequence",
                                          "describe", "store_sql", "close_sql", "get_autocommit"};

void append_stream_response(std::string& out, const StreamResponse& r) {
  out += R"({"type":")";
  out += kResponseTypes[r.index()];
  out += '"';
  if (auto* e = std::get_if<ExecuteResp>(&r)) {
    out += R"(,"result":)";
    append_stmt_result(out, e->result);
  } else if (auto* b = std::get_if<BatchResp>(&r)) {
    out += R"(,"result":)";
    append_batch_result(out, b->result);
  } else if (auto* d = std::get_if<DescribeResp>(&r)) {
    out += R"(,"result":)";
    append_describe_result(out, d->result);
  } else if (auto* g = std::get_if<GetAutocommitResp>(&r)) {
    out += R"(,"is_autocommit":)";
    out += g->is_autocommit ? "true" : "false";
  }
  out += '}';
}

}  // namespace

Expected<PipelineRequest, ProtocolError> decode_pipeline_request(std::string_view body) {
  auto parsed = parse(body);
  if (!parsed) return unexpected(parsed.error());
  Decoder d;
  PipelineRequest req;
  auto* o = d.object(*parsed, "the request body");
  if (o && d.baton(*o, req.baton)) {
    auto* reqs = d.field(*o, "requests");
    if (!reqs || !reqs->is_array()) {
      d.fail("the body needs an array 'requests'");
    } else {
      req.requests.reserve(reqs->get_array().size());
      for (const auto& r : reqs->get_array()) {
        req.requests.emplace_back();
        if (!d.request(r, req.requests.back())) break;
      }
    }
  }
  if (d.error) return unexpected(*d.error);
  return req;
}

Expected<CursorRequest, ProtocolError> decode_cursor_request(std::string_view body) {
  auto parsed = parse(body);
  if (!parsed) return unexpected(parsed.error());
  Decoder d;
  CursorRequest req;
  auto* o = d.object(*parsed, "the request body");
  if (o && d.baton(*o, req.baton)) {
    auto* b = d.field(*o, "batch");
    if (!b) {
      d.fail("the body needs 'batch'");
    } else {
      d.batch(*b, req.batch);
    }
  }
  if (d.error) return unexpected(*d.error);
  return req;
}

std::string encode_pipeline_response(const PipelineResponse& r) {
  std::string out;
  out.reserve(256);
  out += R"({"baton":)";
  append_opt_string(out, r.baton);
  out += R"(,"base_url":)";
  append_opt_string(out, r.base_url);
  out += R"(,"results":[)";
  for (std::size_t i = 0; i < r.results.size(); ++i) {
    if (i) out += ',';
    if (auto* ok = std::get_if<StreamResponse>(&r.results[i])) {
      out += R"({"type":"ok","response":)";
      append_stream_response(out, *ok);
      out += '}';
    } else {
      out += R"({"type":"error","error":)";
      append_error(out, std::get<Error>(r.results[i]));
      out += '}';
    }
  }
  out += "]}";
  return out;
}

void append_cursor_head(const CursorResponseHead& head, std::string& out) {
  out += R"({"baton":)";
  append_opt_string(out, head.baton);
  out += R"(,"base_url":)";
  append_opt_string(out, head.base_url);
  out += "}\n";
}

void append_cursor_entry(const CursorEntry& entry, std::string& out) {
  std::visit(
      [&](const auto& e) {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, StepBeginEntry>) {
          out += R"({"type":"step_begin","step":)";
          append_uint(out, e.step);
          out += R"(,"cols":)";
          append_cols(out, e.cols);
          out += '}';
        } else if constexpr (std::is_same_v<T, StepEndEntry>) {
          out += R"({"type":"step_end","affected_row_count":)";
          append_uint(out, e.affected_row_count);
          out += R"(,"last_insert_rowid":)";
          append_opt_rowid(out, e.last_insert_rowid);
          out += '}';
        } else if constexpr (std::is_same_v<T, StepErrorEntry>) {
          out += R"({"type":"step_error","step":)";
          append_uint(out, e.step);
          out += R"(,"error":)";
          append_error(out, e.error);
          out += '}';
        } else if constexpr (std::is_same_v<T, RowEntry>) {
          out += R"({"type":"row","row":)";
          append_row(out, e.row);
          out += '}';
        } else {
          out += R"({"type":"error","error":)";
          append_error(out, e.error);
          out += '}';
        }
      },
      entry);
  out += '\n';
}

std::string encode_error(const Error& e) {
  std::string out;
  append_error(out, e);
  return out;
}

}  // namespace quire::hrana::json
