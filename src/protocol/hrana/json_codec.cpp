// Hrana's JSON encoding (HTTP /v2, /v3 and the hrana1-3 WebSocket subprotocols).
// Decoding goes through Boost.JSON's DOM; encoding appends straight to a string, because the
// response path is hot and its shapes are fixed.

#include <charconv>
#include <cmath>
#include <cstdio>

#include "protocol/hrana/json_detail.h"
#include "protocol/json_parse.h"

namespace quire::hrana::json {

namespace bj = boost::json;

namespace detail {

Expected<bj::value, ProtocolError> parse(std::string_view body) {
  auto v = protocol::parse_json(body);
  if (!v) return unexpected(ProtocolError{"Invalid JSON request: " + v.error()});
  return std::move(v.value());
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

}  // namespace detail

using namespace detail;

Expected<PipelineRequest, ProtocolError> decode_pipeline_request(std::string_view body,
                                                                 std::size_t max_items) {
  auto parsed = parse(body);
  if (!parsed) return unexpected(parsed.error());
  Decoder d;
  d.limit_items(max_items);
  PipelineRequest req;
  auto* o = d.object(*parsed, "the request body");
  if (o && d.baton(*o, req.baton)) {
    auto* reqs = d.field(*o, "requests");
    if (!reqs || !reqs->is_array()) {
      d.fail("the body needs an array 'requests'");
    } else if (d.take_items(reqs->get_array().size(), "'requests'")) {
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

Expected<CursorRequest, ProtocolError> decode_cursor_request(std::string_view body,
                                                             std::size_t max_items) {
  auto parsed = parse(body);
  if (!parsed) return unexpected(parsed.error());
  Decoder d;
  d.limit_items(max_items);
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
