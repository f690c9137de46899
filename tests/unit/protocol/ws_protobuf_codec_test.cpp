// Tests for Hrana-over-WebSocket protobuf messages (protocol/hrana/ws_protobuf_codec.cpp,
// subprotocol hrana3-protobuf). Production code only decodes client messages and encodes server
// messages, so this file has its own client-message encoder and server-message decoder, built on
// the wire primitives alone; golden bytes worked out by hand from the Hrana 3 proto schema pin
// the format independently of both.
#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "protocol/hrana/protobuf_wire.h"
#include "protocol/hrana/ws_model.h"

namespace quire::hrana::ws::protobuf {
namespace {

namespace w = hrana::protobuf::wire;
using w::WireType;

// ---------------------------------------------------------------- byte helpers

std::string bytes(std::initializer_list<int> list) {
  std::string s;
  for (int b : list) s.push_back(static_cast<char>(b));
  return s;
}

std::string hex(std::string_view s) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
    out.push_back(' ');
  }
  return out;
}

std::string len_field(std::uint32_t field, std::string_view body) {
  std::string out;
  w::put_bytes_field(out, field, body);
  return out;
}

std::string varint_field(std::uint32_t field, std::uint64_t v) {
  std::string out;
  w::put_varint_field(out, field, v);
  return out;
}

// A ClientMsg carrying a RequestMsg whose body is `body`.
std::string request_msg(std::string_view body) { return len_field(2, body); }

// ---------------------------------------------------------------- canonical text of the model

// Two model values are equal iff their show() strings are. Doubles are shown by bit pattern so
// -0.0 and NaN payloads count.
std::string show_text(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out + "\"";
}

std::string show_opt(const std::optional<std::string>& s) { return s ? show_text(*s) : "-"; }

template <class T>
std::string show_opt_num(const std::optional<T>& n) {
  return n ? std::to_string(*n) : "-";
}

std::string show_double(double d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llx",
                static_cast<unsigned long long>(std::bit_cast<std::uint64_t>(d)));
  return buf;
}

std::string show(const Value& v) {
  switch (v.index()) {
    case 0:
      return "null";
    case 1:
      return "int:" + std::to_string(std::get<std::int64_t>(v));
    case 2:
      return "float:" + show_double(std::get<double>(v));
    case 3:
      return "text:" + show_text(std::get<std::string>(v));
    default: {
      const auto& b = std::get<Blob>(v);
      return "blob:" + hex(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
    }
  }
}

std::string show(const std::vector<Value>& row) {
  std::string out = "[";
  for (const Value& v : row) out += show(v) + ",";
  return out + "]";
}

std::string show(const Stmt& s) {
  std::string out = "stmt{sql=" + show_opt(s.sql) + " id=" + show_opt_num(s.sql_id) +
                    " args=" + show(s.args) + " named=[";
  for (const NamedArg& a : s.named_args) out += show_text(a.name) + "=" + show(a.value) + ",";
  return out + "] rows=" + (s.want_rows ? "1" : "0") + "}";
}

std::string show(const BatchCond& c) {
  static constexpr const char* kNames[] = {"ok", "error", "not", "and", "or", "is_autocommit"};
  std::string out = std::string(kNames[static_cast<int>(c.kind)]) + "(";
  if (c.kind == BatchCond::Kind::kOk || c.kind == BatchCond::Kind::kError) {
    out += std::to_string(c.step);
  }
  for (const BatchCond& sub : c.conds) out += show(sub) + ",";
  return out + ")";
}

std::string show(const Batch& b) {
  std::string out = "batch[";
  for (const BatchStep& s : b.steps) {
    out += "{" + (s.condition ? show(*s.condition) : std::string("-")) + " " + show(s.stmt) + "}";
  }
  return out + "]";
}

std::string show(const Request& r) {
  return std::visit(
      [](const auto& q) -> std::string {
        using T = std::decay_t<decltype(q)>;
        if constexpr (std::is_same_v<T, OpenStreamReq>) {
          return "open_stream " + std::to_string(q.stream_id);
        } else if constexpr (std::is_same_v<T, CloseStreamReq>) {
          return "close_stream " + std::to_string(q.stream_id);
        } else if constexpr (std::is_same_v<T, ExecuteReq>) {
          return "execute " + std::to_string(q.stream_id) + " " + show(q.stmt);
        } else if constexpr (std::is_same_v<T, BatchReq>) {
          return "batch " + std::to_string(q.stream_id) + " " + show(q.batch);
        } else if constexpr (std::is_same_v<T, OpenCursorReq>) {
          return "open_cursor " + std::to_string(q.stream_id) + " " + std::to_string(q.cursor_id) +
                 " " + show(q.batch);
        } else if constexpr (std::is_same_v<T, CloseCursorReq>) {
          return "close_cursor " + std::to_string(q.cursor_id);
        } else if constexpr (std::is_same_v<T, FetchCursorReq>) {
          return "fetch_cursor " + std::to_string(q.cursor_id) + " " + std::to_string(q.max_count);
        } else if constexpr (std::is_same_v<T, SequenceReq>) {
          return "sequence " + std::to_string(q.stream_id) + " " + show_opt(q.sql) + " " +
                 show_opt_num(q.sql_id);
        } else if constexpr (std::is_same_v<T, DescribeReq>) {
          return "describe " + std::to_string(q.stream_id) + " " + show_opt(q.sql) + " " +
                 show_opt_num(q.sql_id);
        } else if constexpr (std::is_same_v<T, StoreSqlReq>) {
          return "store_sql " + std::to_string(q.sql_id) + " " + show_text(q.sql);
        } else if constexpr (std::is_same_v<T, CloseSqlReq>) {
          return "close_sql " + std::to_string(q.sql_id);
        } else {
          return "get_autocommit " + std::to_string(q.stream_id);
        }
      },
      r);
}

std::string show(const ClientMsg& m) {
  if (const auto* h = std::get_if<HelloMsg>(&m)) return "hello " + show_opt(h->jwt);
  const auto& r = std::get<RequestMsg>(m);
  return "request " + std::to_string(r.request_id) + " " + show(r.request);
}

std::string show(const Error& e) {
  return "error{" + show_text(e.message) + " " + show_text(e.code) + " " +
         show_text(e.extended_code) + "}";
}

std::string show(const std::vector<Column>& cols) {
  std::string out = "cols[";
  for (const Column& c : cols) out += show_text(c.name) + ":" + show_opt(c.decltype_) + ",";
  return out + "]";
}

std::string show(const StmtResult& r) {
  std::string out = "result{" + show(r.cols) + " rows[";
  for (const auto& row : r.rows) out += show(row);
  return out + "] n=" + std::to_string(r.affected_row_count) +
         " rowid=" + show_opt_num(r.last_insert_rowid) + " read=" + std::to_string(r.rows_read) +
         " written=" + std::to_string(r.rows_written) + " ms=" + show_double(r.query_duration_ms) +
         "}";
}

// Only executed steps: protobuf carries maps, so trailing skipped steps leave no trace.
std::string show(const BatchResult& r) {
  std::string out = "batch_result{";
  for (std::size_t i = 0; i < r.step_results.size(); ++i) {
    if (r.step_results[i]) out += std::to_string(i) + ":" + show(*r.step_results[i]) + ",";
  }
  out += " errors:";
  for (std::size_t i = 0; i < r.step_errors.size(); ++i) {
    if (r.step_errors[i]) out += std::to_string(i) + ":" + show(*r.step_errors[i]) + ",";
  }
  return out + "}";
}

std::string show(const DescribeResult& r) {
  std::string out = "describe{params[";
  for (const auto& p : r.params) out += show_opt(p.name) + ",";
  return out + "] " + show(r.cols) + " explain=" + (r.is_explain ? "1" : "0") +
         " readonly=" + (r.is_readonly ? "1" : "0") + "}";
}

std::string show(const CursorEntry& e) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, StepBeginEntry>) {
          return "step_begin " + std::to_string(x.step) + " " + show(x.cols);
        } else if constexpr (std::is_same_v<T, StepEndEntry>) {
          return "step_end " + std::to_string(x.affected_row_count) + " " +
                 show_opt_num(x.last_insert_rowid);
        } else if constexpr (std::is_same_v<T, StepErrorEntry>) {
          return "step_error " + std::to_string(x.step) + " " + show(x.error);
        } else if constexpr (std::is_same_v<T, RowEntry>) {
          return "row " + show(x.row);
        } else {
          return "error " + show(x.error);
        }
      },
      e);
}

std::string show(const Response& r) {
  std::string out = kRequestNames[r.index()];
  std::visit(
      [&out](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, ExecuteResp> || std::is_same_v<T, BatchResp> ||
                      std::is_same_v<T, DescribeResp>) {
          out += " " + show(x.result);
        } else if constexpr (std::is_same_v<T, FetchCursorResp>) {
          out += " [";
          for (const CursorEntry& e : x.entries) out += show(e) + ";";
          out += std::string("] done=") + (x.done ? "1" : "0");
        } else if constexpr (std::is_same_v<T, GetAutocommitResp>) {
          out += x.is_autocommit ? " 1" : " 0";
        }
      },
      r);
  return out;
}

std::string show(const ServerMsg& m) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, HelloOkMsg>) {
          return "hello_ok";
        } else if constexpr (std::is_same_v<T, HelloErrorMsg>) {
          return "hello_error " + show(x.error);
        } else if constexpr (std::is_same_v<T, ResponseOkMsg>) {
          return "response_ok " + std::to_string(x.request_id) + " " + show(x.response);
        } else {
          return "response_error " + std::to_string(x.request_id) + " " + show(x.error);
        }
      },
      m);
}

// ---------------------------------------------------------------- test-local client encoder

// Writes every field the way @libsql/hrana-client does: ids always, even when 0.
void enc_int32(std::string& out, std::uint32_t field, std::int32_t v) {
  w::put_varint_field(out, field, static_cast<std::uint64_t>(static_cast<std::int64_t>(v)));
}

void enc_value(std::string& out, std::uint32_t field, const Value& v) {
  std::string b;
  switch (v.index()) {
    case 0:
      w::put_bytes_field(b, 1, "");
      break;
    case 1:
      w::put_sint64_field(b, 2, std::get<std::int64_t>(v));
      break;
    case 2:
      w::put_double_field(b, 3, std::get<double>(v));
      break;
    case 3:
      w::put_bytes_field(b, 4, std::get<std::string>(v));
      break;
    default: {
      const auto& blob = std::get<Blob>(v);
      w::put_bytes_field(b, 5, blob.data(), blob.size());
    }
  }
  w::put_bytes_field(out, field, b);
}

std::string enc_stmt(const Stmt& s) {
  std::string b;
  if (s.sql) w::put_bytes_field(b, 1, *s.sql);
  if (s.sql_id) enc_int32(b, 2, *s.sql_id);
  for (const Value& v : s.args) enc_value(b, 3, v);
  for (const NamedArg& a : s.named_args) {
    std::string nb;
    w::put_bytes_field(nb, 1, a.name);
    enc_value(nb, 2, a.value);
    w::put_bytes_field(b, 4, nb);
  }
  w::put_bool_field(b, 5, s.want_rows);
  return b;
}

std::string enc_cond(const BatchCond& c) {
  std::string b;
  switch (c.kind) {
    case BatchCond::Kind::kOk:
      w::put_varint_field(b, 1, c.step);
      break;
    case BatchCond::Kind::kError:
      w::put_varint_field(b, 2, c.step);
      break;
    case BatchCond::Kind::kNot:
      w::put_bytes_field(b, 3, enc_cond(c.conds.at(0)));
      break;
    case BatchCond::Kind::kAnd:
    case BatchCond::Kind::kOr: {
      std::string list;
      for (const BatchCond& sub : c.conds) w::put_bytes_field(list, 1, enc_cond(sub));
      w::put_bytes_field(b, c.kind == BatchCond::Kind::kAnd ? 4 : 5, list);
      break;
    }
    case BatchCond::Kind::kIsAutocommit:
      w::put_bytes_field(b, 6, "");
      break;
  }
  return b;
}

std::string enc_batch(const Batch& batch) {
  std::string b;
  for (const BatchStep& s : batch.steps) {
    std::string sb;
    if (s.condition) w::put_bytes_field(sb, 1, enc_cond(*s.condition));
    w::put_bytes_field(sb, 2, enc_stmt(s.stmt));
    w::put_bytes_field(b, 1, sb);
  }
  return b;
}

std::string enc_request_body(const Request& r) {
  std::string b;
  std::visit(
      [&b](const auto& q) {
        using T = std::decay_t<decltype(q)>;
        if constexpr (std::is_same_v<T, OpenStreamReq> || std::is_same_v<T, CloseStreamReq> ||
                      std::is_same_v<T, GetAutocommitReq>) {
          enc_int32(b, 1, q.stream_id);
        } else if constexpr (std::is_same_v<T, ExecuteReq>) {
          enc_int32(b, 1, q.stream_id);
          w::put_bytes_field(b, 2, enc_stmt(q.stmt));
        } else if constexpr (std::is_same_v<T, BatchReq>) {
          enc_int32(b, 1, q.stream_id);
          w::put_bytes_field(b, 2, enc_batch(q.batch));
        } else if constexpr (std::is_same_v<T, OpenCursorReq>) {
          enc_int32(b, 1, q.stream_id);
          enc_int32(b, 2, q.cursor_id);
          w::put_bytes_field(b, 3, enc_batch(q.batch));
        } else if constexpr (std::is_same_v<T, CloseCursorReq>) {
          enc_int32(b, 1, q.cursor_id);
        } else if constexpr (std::is_same_v<T, FetchCursorReq>) {
          enc_int32(b, 1, q.cursor_id);
          w::put_varint_field(b, 2, q.max_count);
        } else if constexpr (std::is_same_v<T, SequenceReq> || std::is_same_v<T, DescribeReq>) {
          enc_int32(b, 1, q.stream_id);
          if (q.sql) w::put_bytes_field(b, 2, *q.sql);
          if (q.sql_id) enc_int32(b, 3, *q.sql_id);
        } else if constexpr (std::is_same_v<T, StoreSqlReq>) {
          enc_int32(b, 1, q.sql_id);
          w::put_bytes_field(b, 2, q.sql);
        } else {
          static_assert(std::is_same_v<T, CloseSqlReq>);
          enc_int32(b, 1, q.sql_id);
        }
      },
      r);
  return b;
}

std::string encode_client(const ClientMsg& m) {
  std::string body;
  if (const auto* h = std::get_if<HelloMsg>(&m)) {
    if (h->jwt) w::put_bytes_field(body, 1, *h->jwt);
    return len_field(1, body);
  }
  const auto& r = std::get<RequestMsg>(m);
  enc_int32(body, 1, r.request_id);
  w::put_bytes_field(body, static_cast<std::uint32_t>(r.request.index() + 2),
                     enc_request_body(r.request));
  return len_field(2, body);
}

// ---------------------------------------------------------------- test-local server decoder

// Reads the fields of `data`, calling on_field for each; a malformed message fails the test.
template <class F>
void each_field(std::string_view data, F on_field) {
  w::Reader r(data);
  w::Field f;
  while (r.next(f)) on_field(f);
  EXPECT_TRUE(r.ok()) << r.error() << " in " << hex(data);
}

void expect_type(const w::Field& f, WireType t) {
  EXPECT_EQ(static_cast<int>(f.type), static_cast<int>(t)) << "field " << f.number;
}

std::string read_string(const w::Field& f) {
  expect_type(f, WireType::kLen);
  return std::string(f.bytes);
}

std::uint64_t read_varint(const w::Field& f) {
  expect_type(f, WireType::kVarint);
  return f.value;
}

std::int32_t read_int32(const w::Field& f) {
  return static_cast<std::int32_t>(static_cast<std::uint32_t>(read_varint(f)));
}

Value dec_value(std::string_view data) {
  Value v;
  int kinds = 0;
  each_field(data, [&](const w::Field& f) {
    ++kinds;
    switch (f.number) {
      case 1:
        expect_type(f, WireType::kLen);
        EXPECT_TRUE(f.bytes.empty());
        v = std::monostate{};
        break;
      case 2:
        v = w::zigzag_decode(read_varint(f));
        break;
      case 3:
        expect_type(f, WireType::kFixed64);
        v = std::bit_cast<double>(f.value);
        break;
      case 4:
        v = read_string(f);
        break;
      case 5: {
        expect_type(f, WireType::kLen);
        const auto* p = reinterpret_cast<const std::uint8_t*>(f.bytes.data());
        v = Blob(p, p + f.bytes.size());
        break;
      }
      default:
        ADD_FAILURE() << "unexpected Value field " << f.number;
    }
  });
  EXPECT_EQ(kinds, 1) << "a Value carries exactly one field";
  return v;
}

std::vector<Value> dec_row(std::string_view data) {
  std::vector<Value> row;
  each_field(data, [&](const w::Field& f) {
    EXPECT_EQ(f.number, 1u);
    expect_type(f, WireType::kLen);
    row.push_back(dec_value(f.bytes));
  });
  return row;
}

Column dec_col(std::string_view data) {
  Column c;
  each_field(data, [&](const w::Field& f) {
    if (f.number == 1) {
      c.name = read_string(f);
    } else if (f.number == 2) {
      c.decltype_ = read_string(f);
    } else {
      ADD_FAILURE() << "unexpected Col field " << f.number;
    }
  });
  return c;
}

Error dec_error(std::string_view data) {
  Error e;
  each_field(data, [&](const w::Field& f) {
    if (f.number == 1) {
      e.message = read_string(f);
    } else if (f.number == 2) {
      e.code = read_string(f);
    } else if (f.number == 3) {
      e.extended_code = read_string(f);
    } else {
      ADD_FAILURE() << "unexpected Error field " << f.number;
    }
  });
  return e;
}

StmtResult dec_stmt_result(std::string_view data) {
  StmtResult r;
  each_field(data, [&](const w::Field& f) {
    switch (f.number) {
      case 1:
        expect_type(f, WireType::kLen);
        r.cols.push_back(dec_col(f.bytes));
        break;
      case 2:
        expect_type(f, WireType::kLen);
        r.rows.push_back(dec_row(f.bytes));
        break;
      case 3:
        r.affected_row_count = read_varint(f);
        break;
      case 4:
        r.last_insert_rowid = w::zigzag_decode(read_varint(f));
        break;
      case 6:
        r.rows_read = read_varint(f);
        break;
      case 7:
        r.rows_written = read_varint(f);
        break;
      case 8:
        expect_type(f, WireType::kFixed64);
        r.query_duration_ms = std::bit_cast<double>(f.value);
        break;
      default:
        ADD_FAILURE() << "unexpected StmtResult field " << f.number;
    }
  });
  return r;
}

// A map<uint32, M> entry: key 1, value 2, both required here.
template <class M, class Dec>
void dec_map_entry(std::string_view data, std::vector<std::optional<M>>& out, Dec dec) {
  std::optional<std::uint32_t> key;
  std::optional<M> value;
  each_field(data, [&](const w::Field& f) {
    if (f.number == 1) {
      key = static_cast<std::uint32_t>(read_varint(f));
    } else if (f.number == 2) {
      expect_type(f, WireType::kLen);
      value = dec(f.bytes);
    } else {
      ADD_FAILURE() << "unexpected map entry field " << f.number;
    }
  });
  ASSERT_TRUE(key && value) << "a step map entry needs key and value";
  ASSERT_LT(*key, 1000u);
  if (out.size() <= *key) out.resize(*key + 1);
  out[*key] = std::move(value);
}

BatchResult dec_batch_result(std::string_view data) {
  BatchResult r;
  each_field(data, [&](const w::Field& f) {
    expect_type(f, WireType::kLen);
    if (f.number == 1) {
      dec_map_entry(f.bytes, r.step_results, dec_stmt_result);
    } else if (f.number == 2) {
      dec_map_entry(f.bytes, r.step_errors, dec_error);
    } else {
      ADD_FAILURE() << "unexpected BatchResult field " << f.number;
    }
  });
  return r;
}

DescribeResult dec_describe_result(std::string_view data) {
  DescribeResult r;
  each_field(data, [&](const w::Field& f) {
    switch (f.number) {
      case 1: {
        expect_type(f, WireType::kLen);
        auto& p = r.params.emplace_back();
        each_field(f.bytes, [&](const w::Field& pf) {
          EXPECT_EQ(pf.number, 1u);
          p.name = read_string(pf);
        });
        break;
      }
      case 2:
        expect_type(f, WireType::kLen);
        r.cols.push_back(dec_col(f.bytes));
        break;
      case 3:
        r.is_explain = read_varint(f) != 0;
        break;
      case 4:
        r.is_readonly = read_varint(f) != 0;
        break;
      default:
        ADD_FAILURE() << "unexpected DescribeResult field " << f.number;
    }
  });
  return r;
}

CursorEntry dec_cursor_entry(std::string_view data) {
  CursorEntry entry;
  int kinds = 0;
  each_field(data, [&](const w::Field& f) {
    ++kinds;
    expect_type(f, WireType::kLen);
    switch (f.number) {
      case 1: {
        StepBeginEntry e;
        each_field(f.bytes, [&](const w::Field& g) {
          if (g.number == 1) {
            e.step = static_cast<std::uint32_t>(read_varint(g));
          } else {
            EXPECT_EQ(g.number, 2u);
            e.cols.push_back(dec_col(g.bytes));
          }
        });
        entry = std::move(e);
        break;
      }
      case 2: {
        StepEndEntry e;
        each_field(f.bytes, [&](const w::Field& g) {
          if (g.number == 1) {
            e.affected_row_count = read_varint(g);
          } else {
            EXPECT_EQ(g.number, 2u);
            e.last_insert_rowid = w::zigzag_decode(read_varint(g));
          }
        });
        entry = e;
        break;
      }
      case 3: {
        StepErrorEntry e;
        each_field(f.bytes, [&](const w::Field& g) {
          if (g.number == 1) {
            e.step = static_cast<std::uint32_t>(read_varint(g));
          } else {
            EXPECT_EQ(g.number, 2u);
            e.error = dec_error(g.bytes);
          }
        });
        entry = std::move(e);
        break;
      }
      case 4:
        entry = RowEntry{dec_row(f.bytes)};
        break;
      case 5:
        entry = ErrorEntry{dec_error(f.bytes)};
        break;
      default:
        ADD_FAILURE() << "unexpected CursorEntry field " << f.number;
    }
  });
  EXPECT_EQ(kinds, 1) << "a CursorEntry carries exactly one field";
  return entry;
}

// `index` is the Response variant index (the ResponseOkMsg field number minus 2).
Response dec_response(std::size_t index, std::string_view data) {
  Response resp;
  switch (index) {
    case 0:
      resp = OpenStreamResp{};
      break;
    case 1:
      resp = CloseStreamResp{};
      break;
    case 4:
      resp = OpenCursorResp{};
      break;
    case 5:
      resp = CloseCursorResp{};
      break;
    case 7:
      resp = SequenceResp{};
      break;
    case 9:
      resp = StoreSqlResp{};
      break;
    case 10:
      resp = CloseSqlResp{};
      break;
    case 2: {
      ExecuteResp r;
      each_field(data, [&](const w::Field& f) {
        EXPECT_EQ(f.number, 1u);
        r.result = dec_stmt_result(f.bytes);
      });
      return r;
    }
    case 3: {
      BatchResp r;
      each_field(data, [&](const w::Field& f) {
        EXPECT_EQ(f.number, 1u);
        r.result = dec_batch_result(f.bytes);
      });
      return r;
    }
    case 6: {
      FetchCursorResp r;
      each_field(data, [&](const w::Field& f) {
        if (f.number == 1) {
          expect_type(f, WireType::kLen);
          r.entries.push_back(dec_cursor_entry(f.bytes));
        } else {
          EXPECT_EQ(f.number, 2u);
          r.done = read_varint(f) != 0;
        }
      });
      return r;
    }
    case 8: {
      DescribeResp r;
      each_field(data, [&](const w::Field& f) {
        EXPECT_EQ(f.number, 1u);
        r.result = dec_describe_result(f.bytes);
      });
      return r;
    }
    case 11: {
      // Proto3 default: absent means false (hrana-client reads it the same way).
      GetAutocommitResp r{false};
      each_field(data, [&](const w::Field& f) {
        EXPECT_EQ(f.number, 1u);
        r.is_autocommit = read_varint(f) != 0;
      });
      return r;
    }
    default:
      ADD_FAILURE() << "no response kind " << index;
      return resp;
  }
  EXPECT_TRUE(data.empty()) << "empty response message has fields: " << hex(data);
  return resp;
}

ServerMsg decode_server(std::string_view data) {
  ServerMsg msg;
  int kinds = 0;
  each_field(data, [&](const w::Field& f) {
    ++kinds;
    expect_type(f, WireType::kLen);
    switch (f.number) {
      case 1:
        EXPECT_TRUE(f.bytes.empty());
        msg = HelloOkMsg{};
        break;
      case 2: {
        HelloErrorMsg m;
        each_field(f.bytes, [&](const w::Field& g) {
          EXPECT_EQ(g.number, 1u);
          m.error = dec_error(g.bytes);
        });
        msg = std::move(m);
        break;
      }
      case 3: {
        ResponseOkMsg m;
        int responses = 0;
        each_field(f.bytes, [&](const w::Field& g) {
          if (g.number == 1) {
            m.request_id = read_int32(g);
            return;
          }
          ++responses;
          expect_type(g, WireType::kLen);
          EXPECT_GE(g.number, 2u);
          EXPECT_LE(g.number, 13u);
          if (g.number >= 2 && g.number <= 13) m.response = dec_response(g.number - 2, g.bytes);
        });
        EXPECT_EQ(responses, 1);
        msg = std::move(m);
        break;
      }
      case 4: {
        ResponseErrorMsg m;
        each_field(f.bytes, [&](const w::Field& g) {
          if (g.number == 1) {
            m.request_id = read_int32(g);
          } else {
            EXPECT_EQ(g.number, 2u);
            m.error = dec_error(g.bytes);
          }
        });
        msg = std::move(m);
        break;
      }
      default:
        ADD_FAILURE() << "unexpected ServerMsg field " << f.number;
    }
  });
  EXPECT_EQ(kinds, 1) << "a ServerMsg carries exactly one field";
  return msg;
}

// ---------------------------------------------------------------- sample messages

std::vector<Value> sample_values() {
  return {std::monostate{},
          std::int64_t{0},
          std::int64_t{-1},
          std::numeric_limits<std::int64_t>::min(),
          std::numeric_limits<std::int64_t>::max(),
          1.5,
          -0.0,
          std::numeric_limits<double>::infinity(),
          std::string(),
          std::string("h\xc3\xa9llo \xf0\x9f\x98\x80"),
          Blob{},
          Blob{0, 1, 255}};
}

Stmt full_stmt() {
  Stmt s;
  s.sql = "SELECT ?, :a";
  s.args = sample_values();
  s.named_args = {{":a", std::string("x")}, {"@b", std::monostate{}}, {"$c", 2.25}};
  s.want_rows = false;
  return s;
}

BatchCond cond_ok(std::uint32_t step) { return {BatchCond::Kind::kOk, step, {}}; }
BatchCond cond_error(std::uint32_t step) { return {BatchCond::Kind::kError, step, {}}; }

Batch full_batch() {
  Batch b;
  b.steps.push_back({std::nullopt, full_stmt()});
  Stmt by_id;
  by_id.sql_id = 7;
  b.steps.push_back({cond_ok(0), by_id});
  BatchCond not_error{BatchCond::Kind::kNot, 0, {cond_error(1)}};
  BatchCond all{
      BatchCond::Kind::kAnd, 0, {not_error, {BatchCond::Kind::kIsAutocommit, 0, {}}, cond_ok(1)}};
  BatchCond any{BatchCond::Kind::kOr, 0, {all, cond_error(0), {BatchCond::Kind::kAnd, 0, {}}}};
  Stmt plain;
  plain.sql = "COMMIT";
  b.steps.push_back({any, plain});
  return b;
}

std::vector<ClientMsg> sample_client_msgs() {
  Stmt simple;
  simple.sql = "SELECT 1";
  SequenceReq seq_sql{3, "BEGIN; SELECT 1", std::nullopt};
  SequenceReq seq_id{3, std::nullopt, 12};
  DescribeReq desc_sql{4, "SELECT ?", std::nullopt};
  DescribeReq desc_both{4, "", -2};
  return {
      HelloMsg{},
      HelloMsg{"eyJhbGciOiJFZERTQSJ9.e30.sig"},
      HelloMsg{""},
      RequestMsg{1, OpenStreamReq{1}},
      RequestMsg{0, OpenStreamReq{0}},
      RequestMsg{-7, OpenStreamReq{std::numeric_limits<std::int32_t>::max()}},
      RequestMsg{std::numeric_limits<std::int32_t>::min(), CloseStreamReq{-1}},
      RequestMsg{2, ExecuteReq{1, simple}},
      RequestMsg{3, ExecuteReq{1, full_stmt()}},
      RequestMsg{4, BatchReq{2, full_batch()}},
      RequestMsg{5, BatchReq{2, Batch{}}},
      RequestMsg{6, OpenCursorReq{2, 9, full_batch()}},
      RequestMsg{7, CloseCursorReq{9}},
      RequestMsg{8, FetchCursorReq{9, 1000}},
      RequestMsg{9, FetchCursorReq{9, std::numeric_limits<std::uint32_t>::max()}},
      RequestMsg{10, seq_sql},
      RequestMsg{11, seq_id},
      RequestMsg{12, desc_sql},
      RequestMsg{13, desc_both},
      RequestMsg{14, StoreSqlReq{12, "INSERT INTO t VALUES (?)"}},
      RequestMsg{15, StoreSqlReq{0, ""}},
      RequestMsg{16, CloseSqlReq{12}},
      RequestMsg{17, GetAutocommitReq{5}},
  };
}

StmtResult full_result() {
  StmtResult r;
  r.cols = {{"a", "INTEGER"}, {"", std::nullopt}, {"c\xc3\xa9", ""}};
  r.rows = {sample_values(), {}, {std::int64_t{42}}};
  r.affected_row_count = 3;
  r.last_insert_rowid = -5;
  r.rows_read = 7;
  r.rows_written = 2;
  r.query_duration_ms = 0.25;
  return r;
}

std::vector<CursorEntry> sample_entries() {
  return {StepBeginEntry{0, {}},
          StepBeginEntry{2, {{"x", "TEXT"}, {"y", std::nullopt}}},
          RowEntry{{}},
          RowEntry{sample_values()},
          StepEndEntry{0, std::nullopt},
          StepEndEntry{5, std::numeric_limits<std::int64_t>::min()},
          StepErrorEntry{0, {"boom", "SQLITE_ERROR", ""}},
          StepErrorEntry{3, {"", "", ""}},
          ErrorEntry{{"cursor failed", "SQLITE_BUSY", "SQLITE_BUSY_SNAPSHOT"}}};
}

std::vector<ServerMsg> sample_server_msgs() {
  Error err{"no such table: t", "SQLITE_ERROR", "SQLITE_ERROR"};
  BatchResult batch;
  batch.step_results = {full_result(), std::nullopt, StmtResult{}, std::nullopt};
  batch.step_errors = {std::nullopt, err, std::nullopt, std::nullopt};
  DescribeResult desc;
  desc.params = {{":a"}, {std::nullopt}};
  desc.cols = {{"x", "TEXT"}, {"", std::nullopt}};
  desc.is_explain = true;
  desc.is_readonly = true;
  return {
      HelloOkMsg{},
      HelloErrorMsg{{"Authentication failed", "AUTH_JWT_INVALID", ""}},
      HelloErrorMsg{{}},
      ResponseErrorMsg{3, err},
      ResponseErrorMsg{0, {}},
      ResponseErrorMsg{-3, {"m", "", ""}},
      ResponseOkMsg{1, OpenStreamResp{}},
      ResponseOkMsg{0, CloseStreamResp{}},
      ResponseOkMsg{std::numeric_limits<std::int32_t>::min(), ExecuteResp{full_result()}},
      ResponseOkMsg{4, ExecuteResp{StmtResult{}}},
      ResponseOkMsg{5, BatchResp{batch}},
      ResponseOkMsg{5, BatchResp{BatchResult{}}},
      ResponseOkMsg{6, OpenCursorResp{}},
      ResponseOkMsg{7, CloseCursorResp{}},
      ResponseOkMsg{8, FetchCursorResp{sample_entries(), true}},
      ResponseOkMsg{8, FetchCursorResp{{}, false}},
      ResponseOkMsg{9, SequenceResp{}},
      ResponseOkMsg{10, DescribeResp{desc}},
      ResponseOkMsg{10, DescribeResp{DescribeResult{}}},
      ResponseOkMsg{11, StoreSqlResp{}},
      ResponseOkMsg{12, CloseSqlResp{}},
      ResponseOkMsg{13, GetAutocommitResp{true}},
      ResponseOkMsg{std::numeric_limits<std::int32_t>::max(), GetAutocommitResp{false}},
  };
}

// ---------------------------------------------------------------- decode helpers

std::string decode_ok(std::string_view data) {
  auto m = decode_client_msg(data);
  if (!m) {
    ADD_FAILURE() << "decode failed: " << m.error().message << "\n  input: " << hex(data);
    return "";
  }
  return show(*m);
}

// The error message, or "" with a test failure if the input decoded.
std::string decode_err(std::string_view data) {
  auto m = decode_client_msg(data);
  if (m) {
    ADD_FAILURE() << "decoded as " << show(*m) << "\n  input: " << hex(data);
    return "";
  }
  EXPECT_FALSE(m.error().message.empty());
  return m.error().message;
}

// ---------------------------------------------------------------- round trips

TEST(WsProtobufCodecTest, ClientMessagesRoundTrip) {
  const auto samples = sample_client_msgs();
  bool seen[2 + std::variant_size_v<Request>] = {};
  for (const ClientMsg& msg : samples) {
    SCOPED_TRACE(show(msg));
    const std::string wire = encode_client(msg);
    auto decoded = decode_client_msg(wire);
    ASSERT_TRUE(decoded) << decoded.error().message << "\n  " << hex(wire);
    EXPECT_EQ(show(*decoded), show(msg));
    ASSERT_EQ(decoded->index(), msg.index());
    if (const auto* r = std::get_if<RequestMsg>(&*decoded)) {
      seen[2 + r->request.index()] = true;
    } else {
      seen[0] = true;
    }
  }
  for (std::size_t i = 2; i < std::size(seen); ++i) {
    EXPECT_TRUE(seen[i]) << "no sample of request " << kRequestNames[i - 2];
  }
}

TEST(WsProtobufCodecTest, ServerMessagesRoundTrip) {
  const auto samples = sample_server_msgs();
  bool seen_kind[std::variant_size_v<ServerMsg>] = {};
  bool seen_response[std::variant_size_v<Response>] = {};
  for (const ServerMsg& msg : samples) {
    SCOPED_TRACE(show(msg));
    const std::string wire = encode_server_msg(msg);
    EXPECT_EQ(show(decode_server(wire)), show(msg)) << hex(wire);
    seen_kind[msg.index()] = true;
    if (const auto* ok = std::get_if<ResponseOkMsg>(&msg))
      seen_response[ok->response.index()] = true;
  }
  for (bool s : seen_kind) EXPECT_TRUE(s);
  for (std::size_t i = 0; i < std::size(seen_response); ++i) {
    EXPECT_TRUE(seen_response[i]) << "no sample of response " << kRequestNames[i];
  }
}

TEST(WsProtobufCodecTest, ResponseFieldNumberMatchesRequestFieldNumber) {
  // The response to the request in RequestMsg field N sits in ResponseOkMsg field N.
  const Response responses[] = {OpenStreamResp{},  CloseStreamResp{}, ExecuteResp{},
                                BatchResp{},       OpenCursorResp{},  CloseCursorResp{},
                                FetchCursorResp{}, SequenceResp{},    DescribeResp{},
                                StoreSqlResp{},    CloseSqlResp{},    GetAutocommitResp{false}};
  for (std::size_t i = 0; i < std::size(responses); ++i) {
    const std::string out = encode_server_msg(ResponseOkMsg{1, responses[i]});
    // 1a LEN 08 01 <tag of field i+2, length-delimited> ...
    ASSERT_GE(out.size(), 5u);
    EXPECT_EQ(static_cast<unsigned char>(out[4]), ((i + 2) << 3) | 2) << kRequestNames[i];
  }
}

// A deterministic generator of arbitrary model values, for round trips beyond the samples.
class Gen {
 public:
  explicit Gen(std::uint32_t seed) : rng_(seed) {}

  std::uint64_t below(std::uint64_t n) { return rng_() % n; }
  bool coin() { return below(2) == 0; }
  std::int32_t i32() {
    switch (below(4)) {
      case 0:
        return 0;
      case 1:
        return static_cast<std::int32_t>(below(200)) - 100;
      default:
        return static_cast<std::int32_t>(static_cast<std::uint32_t>(rng_()));
    }
  }
  std::int64_t i64() {
    return coin() ? static_cast<std::int64_t>(below(1000)) - 500
                  : static_cast<std::int64_t>(rng_() << 32 ^ rng_());
  }
  std::string text() {
    static constexpr std::string_view kPieces[] = {
        "a", "SELECT ", "\xc3\xa9", "\xf0\x9f\x98\x80", "\"", "\n", std::string_view("\0", 1),
        "zz"};
    std::string s;
    const auto n = below(6);
    for (std::uint64_t i = 0; i < n; ++i) s += kPieces[below(std::size(kPieces))];
    if (below(8) == 0) s += std::string(200, 'x');  // lengths needing 2-byte varints
    return s;
  }
  std::optional<std::string> opt_text() { return coin() ? std::optional(text()) : std::nullopt; }
  Value value() {
    switch (below(5)) {
      case 0:
        return std::monostate{};
      case 1:
        return i64();
      case 2:
        return std::bit_cast<double>(rng_() << 32 ^ rng_());
      case 3:
        return text();
      default: {
        Blob b(below(5));
        for (auto& x : b) x = static_cast<std::uint8_t>(rng_());
        return b;
      }
    }
  }
  Stmt stmt() {
    Stmt s;
    s.sql = opt_text();
    if (coin()) s.sql_id = i32();
    for (auto n = below(4); n > 0; --n) s.args.push_back(value());
    for (auto n = below(3); n > 0; --n) s.named_args.push_back({text(), value()});
    s.want_rows = coin();
    return s;
  }
  BatchCond cond(int depth) {
    BatchCond c;
    c.kind = static_cast<BatchCond::Kind>(below(depth > 3 ? 2 : 6));
    switch (c.kind) {
      case BatchCond::Kind::kOk:
      case BatchCond::Kind::kError:
        c.step = static_cast<std::uint32_t>(below(10));
        break;
      case BatchCond::Kind::kNot:
        c.conds.push_back(cond(depth + 1));
        break;
      case BatchCond::Kind::kAnd:
      case BatchCond::Kind::kOr:
        for (auto n = below(3); n > 0; --n) c.conds.push_back(cond(depth + 1));
        break;
      case BatchCond::Kind::kIsAutocommit:
        break;
    }
    return c;
  }
  Batch batch() {
    Batch b;
    for (auto n = below(4); n > 0; --n) {
      b.steps.push_back({coin() ? std::optional(cond(0)) : std::nullopt, stmt()});
    }
    return b;
  }
  Request request() {
    switch (below(12)) {
      case 0:
        return OpenStreamReq{i32()};
      case 1:
        return CloseStreamReq{i32()};
      case 2:
        return ExecuteReq{i32(), stmt()};
      case 3:
        return BatchReq{i32(), batch()};
      case 4:
        return OpenCursorReq{i32(), i32(), batch()};
      case 5:
        return CloseCursorReq{i32()};
      case 6:
        return FetchCursorReq{i32(), static_cast<std::uint32_t>(rng_())};
      case 7:
        return SequenceReq{i32(), opt_text(), coin() ? std::optional(i32()) : std::nullopt};
      case 8:
        return DescribeReq{i32(), opt_text(), coin() ? std::optional(i32()) : std::nullopt};
      case 9:
        return StoreSqlReq{i32(), text()};
      case 10:
        return CloseSqlReq{i32()};
      default:
        return GetAutocommitReq{i32()};
    }
  }
  ClientMsg client_msg() {
    if (below(6) == 0) return HelloMsg{opt_text()};
    return RequestMsg{i32(), request()};
  }
  std::vector<Column> cols() {
    std::vector<Column> c;
    for (auto n = below(3); n > 0; --n) c.push_back({text(), opt_text()});
    return c;
  }
  Error error() { return {text(), text(), coin() ? text() : ""}; }
  StmtResult stmt_result() {
    StmtResult r;
    r.cols = cols();
    for (auto n = below(3); n > 0; --n) {
      auto& row = r.rows.emplace_back();
      for (auto m = below(3); m > 0; --m) row.push_back(value());
    }
    r.affected_row_count = coin() ? 0 : rng_();
    if (coin()) r.last_insert_rowid = i64();
    r.rows_read = coin() ? 0 : rng_();
    r.rows_written = coin() ? 0 : rng_();
    r.query_duration_ms = coin() ? 0.0 : static_cast<double>(below(1000)) / 8;
    return r;
  }
  CursorEntry entry() {
    switch (below(5)) {
      case 0:
        return StepBeginEntry{static_cast<std::uint32_t>(below(5)), cols()};
      case 1:
        return StepEndEntry{rng_(), coin() ? std::optional(i64()) : std::nullopt};
      case 2:
        return StepErrorEntry{static_cast<std::uint32_t>(below(5)), error()};
      case 3: {
        RowEntry e;
        for (auto n = below(4); n > 0; --n) e.row.push_back(value());
        return e;
      }
      default:
        return ErrorEntry{error()};
    }
  }
  Response response() {
    switch (below(12)) {
      case 0:
        return OpenStreamResp{};
      case 1:
        return CloseStreamResp{};
      case 2:
        return ExecuteResp{stmt_result()};
      case 3: {
        BatchResult r;
        for (auto n = below(4); n > 0; --n) {
          const auto kind = below(3);  // result, error or skipped
          r.step_results.push_back(kind == 0 ? std::optional(stmt_result()) : std::nullopt);
          r.step_errors.push_back(kind == 1 ? std::optional(error()) : std::nullopt);
        }
        return BatchResp{r};
      }
      case 4:
        return OpenCursorResp{};
      case 5:
        return CloseCursorResp{};
      case 6: {
        FetchCursorResp r;
        for (auto n = below(5); n > 0; --n) r.entries.push_back(entry());
        r.done = coin();
        return r;
      }
      case 7:
        return SequenceResp{};
      case 8: {
        DescribeResult d;
        for (auto n = below(3); n > 0; --n) d.params.push_back({opt_text()});
        d.cols = cols();
        d.is_explain = coin();
        d.is_readonly = coin();
        return DescribeResp{d};
      }
      case 9:
        return StoreSqlResp{};
      case 10:
        return CloseSqlResp{};
      default:
        return GetAutocommitResp{coin()};
    }
  }
  ServerMsg server_msg() {
    switch (below(8)) {
      case 0:
        return HelloOkMsg{};
      case 1:
        return HelloErrorMsg{error()};
      case 2:
        return ResponseErrorMsg{i32(), error()};
      default:
        return ResponseOkMsg{i32(), response()};
    }
  }

 private:
  std::mt19937_64 rng_;
};

TEST(WsProtobufCodecTest, GeneratedMessagesRoundTrip) {
  Gen gen(20240611);
  for (int i = 0; i < 2000; ++i) {
    const ClientMsg c = gen.client_msg();
    const std::string cw = encode_client(c);
    auto decoded = decode_client_msg(cw);
    ASSERT_TRUE(decoded) << decoded.error().message << "\n  " << show(c);
    ASSERT_EQ(show(*decoded), show(c));

    const ServerMsg s = gen.server_msg();
    const std::string sw = encode_server_msg(s);
    ASSERT_EQ(show(decode_server(sw)), show(s)) << hex(sw);
  }
}

// ---------------------------------------------------------------- golden bytes

TEST(WsProtobufCodecTest, DecodesHelloGolden) {
  // ClientMsg{hello(1): HelloMsg{jwt(1): "abc"}}
  EXPECT_EQ(decode_ok(bytes({0x0a, 0x05, 0x0a, 0x03, 'a', 'b', 'c'})), "hello \"abc\"");
  // No jwt at all is not the same as an empty one.
  EXPECT_EQ(decode_ok(bytes({0x0a, 0x00})), "hello -");
  EXPECT_EQ(decode_ok(bytes({0x0a, 0x02, 0x0a, 0x00})), "hello \"\"");
}

TEST(WsProtobufCodecTest, DecodesRequestGolden) {
  // ClientMsg{request(2): RequestMsg{request_id(1): 1, open_stream(2): {stream_id(1): 7}}}
  EXPECT_EQ(decode_ok(bytes({0x12, 0x06, 0x08, 0x01, 0x12, 0x02, 0x08, 0x07})),
            "request 1 open_stream 7");
  // RequestMsg{request_id: 2, execute(4): {stream_id: 1, stmt(2): {sql: "SELECT 1",
  // want_rows(5): false}}}
  const std::string execute =
      bytes({0x12, 0x14, 0x08, 0x02, 0x22, 0x10, 0x08, 0x01, 0x12, 0x0c, 0x0a, 0x08}) + "SELECT 1" +
      bytes({0x28, 0x00});
  EXPECT_EQ(decode_ok(execute),
            "request 2 execute 1 stmt{sql=\"SELECT 1\" id=- args=[] named=[] rows=0}");
  // get_autocommit(13): tag 0x6a; fetch_cursor(8) with max_count(2) 300 = ac 02.
  EXPECT_EQ(decode_ok(bytes({0x12, 0x06, 0x08, 0x03, 0x6a, 0x02, 0x08, 0x04})),
            "request 3 get_autocommit 4");
  EXPECT_EQ(decode_ok(bytes({0x12, 0x09, 0x08, 0x04, 0x42, 0x05, 0x08, 0x01, 0x10, 0xac, 0x02})),
            "request 4 fetch_cursor 1 300");
  // sequence(9) {stream_id 1, sql_id(3) 5}: sql_id is field 3 here, not 2 as over HTTP.
  EXPECT_EQ(decode_ok(bytes({0x12, 0x08, 0x08, 0x05, 0x4a, 0x04, 0x08, 0x01, 0x18, 0x05})),
            "request 5 sequence 1 - 5");
}

TEST(WsProtobufCodecTest, DecodesBytesHranaClientWrote) {
  // Captured from @libsql/hrana-client 0.10's own ClientMsg encoder.
  EXPECT_EQ(decode_ok(bytes({0x0a, 0x05, 0x0a, 0x03, 0x61, 0x62, 0x63})), "hello \"abc\"");
  EXPECT_EQ(decode_ok(bytes({0x12, 0x06, 0x08, 0x01, 0x12, 0x02, 0x08, 0x00})),
            "request 1 open_stream 0");
  EXPECT_EQ(decode_ok(bytes({0x12, 0x09, 0x08, 0x06, 0x42, 0x05, 0x08, 0x02, 0x10, 0xe8, 0x07})),
            "request 6 fetch_cursor 2 1000");
  EXPECT_EQ(decode_ok(bytes({0x12, 0x0d, 0x08, 0x07, 0x4a, 0x09, 0x08, 0x01, 0x12, 0x05, 'B', 'E',
                             'G', 'I', 'N'})),
            "request 7 sequence 1 \"BEGIN\" -");
  EXPECT_EQ(
      decode_ok(bytes({0x12, 0x0a, 0x08, 0xff, 0xff, 0xff, 0xff, 0x07, 0x6a, 0x02, 0x08, 0x01})),
      "request 2147483647 get_autocommit 1");
}

TEST(WsProtobufCodecTest, EncodesHelloOkGolden) {
  // The empty oneof member must still be written: it is what says "hello_ok".
  EXPECT_EQ(hex(encode_server_msg(HelloOkMsg{})), hex(bytes({0x0a, 0x00})));
}

TEST(WsProtobufCodecTest, EncodesHelloErrorGolden) {
  // ServerMsg{hello_error(2): {error(1): Error{message: "no", code: "AUTH"}}}
  EXPECT_EQ(
      hex(encode_server_msg(HelloErrorMsg{{"no", "AUTH", ""}})),
      hex(bytes({0x12, 0x0c, 0x0a, 0x0a, 0x0a, 0x02, 'n', 'o', 0x12, 0x04, 'A', 'U', 'T', 'H'})));
}

TEST(WsProtobufCodecTest, EncodesOpenStreamResponseGolden) {
  // ServerMsg{response_ok(3): {request_id(1): 1, open_stream(2): {}}}
  EXPECT_EQ(hex(encode_server_msg(ResponseOkMsg{1, OpenStreamResp{}})),
            hex(bytes({0x1a, 0x04, 0x08, 0x01, 0x12, 0x00})));
  // request_id 0 is the proto3 default and is omitted; sequence(9) is tag 0x4a.
  EXPECT_EQ(hex(encode_server_msg(ResponseOkMsg{0, SequenceResp{}})),
            hex(bytes({0x1a, 0x02, 0x4a, 0x00})));
}

TEST(WsProtobufCodecTest, EncodesNegativeRequestIdAsTenByteVarint) {
  // Proto3 int32 sign-extends negatives to 64 bits.
  EXPECT_EQ(hex(encode_server_msg(ResponseOkMsg{-1, CloseStreamResp{}})),
            hex(bytes({0x1a, 0x0d, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                       0x1a, 0x00})));
}

TEST(WsProtobufCodecTest, EncodesResponseErrorGolden) {
  // ServerMsg{response_error(4): {request_id(1): 2, error(2): {message: "x", code: "C"}}}
  EXPECT_EQ(hex(encode_server_msg(ResponseErrorMsg{2, {"x", "C", ""}})),
            hex(bytes({0x22, 0x0a, 0x08, 0x02, 0x12, 0x06, 0x0a, 0x01, 'x', 0x12, 0x01, 'C'})));
  // An empty error is still present (message fields have presence).
  EXPECT_EQ(hex(encode_server_msg(ResponseErrorMsg{2, {}})),
            hex(bytes({0x22, 0x04, 0x08, 0x02, 0x12, 0x00})));
}

TEST(WsProtobufCodecTest, EncodesGetAutocommitGolden) {
  // get_autocommit(13) is tag 0x6a; false is the default and leaves the message empty.
  EXPECT_EQ(hex(encode_server_msg(ResponseOkMsg{5, GetAutocommitResp{true}})),
            hex(bytes({0x1a, 0x06, 0x08, 0x05, 0x6a, 0x02, 0x08, 0x01})));
  EXPECT_EQ(hex(encode_server_msg(ResponseOkMsg{5, GetAutocommitResp{false}})),
            hex(bytes({0x1a, 0x04, 0x08, 0x05, 0x6a, 0x00})));
}

TEST(WsProtobufCodecTest, EncodesExecuteAndFetchCursorGolden) {
  // execute(4){result(1): StmtResult{}}: the empty result is still present.
  EXPECT_EQ(hex(encode_server_msg(ResponseOkMsg{1, ExecuteResp{}})),
            hex(bytes({0x1a, 0x06, 0x08, 0x01, 0x22, 0x02, 0x0a, 0x00})));
  // fetch_cursor(8){entries(1): [CursorEntry{row(4): Row{values(1): [integer 1 = zigzag 2]}}],
  // done(2): true}
  EXPECT_EQ(hex(encode_server_msg(
                ResponseOkMsg{3, FetchCursorResp{{RowEntry{{std::int64_t{1}}}}, true}})),
            hex(bytes({0x1a, 0x0e, 0x08, 0x03, 0x42, 0x0a, 0x0a, 0x06, 0x22, 0x04, 0x0a, 0x02, 0x10,
                       0x02, 0x10, 0x01})));
}

// ---------------------------------------------------------------- malformed and odd input

TEST(WsProtobufCodecTest, RejectsEmptyAndTypelessMessages) {
  decode_err("");
  // Only an unknown ClientMsg member (field 3).
  EXPECT_NE(decode_err(bytes({0x1a, 0x00})).find("ClientMsg"), std::string::npos);
  // A RequestMsg with a request_id but no request.
  EXPECT_NE(decode_err(request_msg(varint_field(1, 1))).find("RequestMsg"), std::string::npos);
  // A RequestMsg whose only request is an unknown member (field 14).
  decode_err(request_msg(varint_field(1, 1) + len_field(14, "")));
}

TEST(WsProtobufCodecTest, RejectsTruncatedInput) {
  const std::string full = encode_client(RequestMsg{9, ExecuteReq{1, full_stmt()}});
  ASSERT_TRUE(decode_client_msg(full));
  // The outer length covers everything, so every strict prefix is truncated somewhere.
  for (std::size_t n = 0; n < full.size(); ++n) {
    SCOPED_TRACE(n);
    decode_err(std::string_view(full).substr(0, n));
  }
  // Truncated inside a nested message whose outer lengths are consistent.
  decode_err(request_msg(varint_field(1, 1) + len_field(4, bytes({0x08}))));
  decode_err(request_msg(varint_field(1, 1) + len_field(2, bytes({0x08, 0x80}))));
}

TEST(WsProtobufCodecTest, RejectsWrongWireTypes) {
  // hello as a varint.
  EXPECT_NE(decode_err(bytes({0x08, 0x01})).find("ClientMsg.hello"), std::string::npos);
  // request as a 32-bit value.
  decode_err(bytes({0x15, 0x01, 0x00, 0x00, 0x00}));
  // jwt as a varint.
  EXPECT_NE(decode_err(bytes({0x0a, 0x02, 0x08, 0x01})).find("HelloMsg.jwt"), std::string::npos);
  // request_id as a length-delimited field.
  EXPECT_NE(decode_err(request_msg(len_field(1, "") + len_field(2, ""))).find("request_id"),
            std::string::npos);
  // A request member as a varint.
  decode_err(request_msg(varint_field(1, 1) + varint_field(2, 5)));
  // stream_id as a 32-bit value.
  decode_err(request_msg(varint_field(1, 1) + len_field(2, bytes({0x0d, 1, 0, 0, 0}))));
  // stmt as a varint; batch as a varint; cursor_id as 64-bit; max_count as bytes.
  decode_err(
      request_msg(varint_field(1, 1) + len_field(4, varint_field(1, 1) + varint_field(2, 1))));
  decode_err(request_msg(varint_field(1, 1) + len_field(5, varint_field(2, 1))));
  decode_err(request_msg(varint_field(1, 1) + len_field(6, bytes({0x11, 1, 0, 0, 0, 0, 0, 0, 0}))));
  decode_err(request_msg(varint_field(1, 1) + len_field(8, len_field(2, "x"))));
  // sql as a varint in sequence; sql in store_sql as a varint.
  decode_err(request_msg(varint_field(1, 1) + len_field(9, varint_field(2, 1))));
  decode_err(request_msg(varint_field(1, 1) + len_field(11, varint_field(2, 1))));
  // Groups are not supported anywhere.
  decode_err(bytes({0x0b, 0x0c}));
}

TEST(WsProtobufCodecTest, RejectsInvalidUtf8) {
  decode_err(len_field(1, len_field(1, "\xff")));
  decode_err(request_msg(varint_field(1, 1) +
                         len_field(9, varint_field(1, 1) + len_field(2, "SELECT \xc3"))));
  decode_err(request_msg(varint_field(1, 1) + len_field(11, len_field(2, "\xed\xa0\x80"))));
}

TEST(WsProtobufCodecTest, RejectsMalformedStatementsInsideRequests) {
  // A Value with no known type inside execute's stmt args.
  const std::string stmt = len_field(1, "SELECT ?") + len_field(3, varint_field(9, 1));
  decode_err(request_msg(varint_field(1, 1) + len_field(4, len_field(2, stmt))));
  // A batch step condition with no known kind.
  const std::string step = len_field(1, "") + len_field(2, len_field(1, "SELECT 1"));
  decode_err(request_msg(varint_field(1, 1) + len_field(5, len_field(2, len_field(1, step)))));
}

TEST(WsProtobufCodecTest, MissingFieldsTakeProto3Defaults) {
  // No request_id: 0, as proto3 reads it.
  EXPECT_EQ(decode_ok(request_msg(len_field(2, ""))), "request 0 open_stream 0");
  // Every request with an empty body.
  const char* const expected[] = {"open_stream 0",
                                  "close_stream 0",
                                  "execute 0 stmt{sql=- id=- args=[] named=[] rows=1}",
                                  "batch 0 batch[]",
                                  "open_cursor 0 0 batch[]",
                                  "close_cursor 0",
                                  "fetch_cursor 0 0",
                                  "sequence 0 - -",
                                  "describe 0 - -",
                                  "store_sql 0 \"\"",
                                  "close_sql 0",
                                  "get_autocommit 0"};
  for (std::uint32_t field = 2; field <= 13; ++field) {
    EXPECT_EQ(decode_ok(request_msg(len_field(field, ""))),
              std::string("request 0 ") + expected[field - 2]);
  }
}

TEST(WsProtobufCodecTest, SkipsUnknownFields) {
  // Unknown fields of every wire type, at every level, before and after the known ones.
  // Numbers above 13 so they are unknown in every message here, RequestMsg included.
  const std::string junk = varint_field(15, 300) + bytes({0xa1, 0x01, 1, 2, 3, 4, 5, 6, 7, 8}) +
                           len_field(100, "whatever") + bytes({0x7d, 1, 2, 3, 4});
  EXPECT_EQ(decode_ok(junk + len_field(1, junk + len_field(1, "t") + junk) + junk), "hello \"t\"");
  const std::string open = junk + varint_field(1, 7) + junk;
  EXPECT_EQ(decode_ok(junk +
                      request_msg(junk + varint_field(1, 3) + junk + len_field(2, open) +
                                  len_field(1000, "")) +
                      junk),
            "request 3 open_stream 7");
  const std::string stmt = junk + len_field(1, "SELECT 1") + junk + varint_field(6, 99);
  EXPECT_EQ(decode_ok(request_msg(varint_field(1, 4) +
                                  len_field(4, varint_field(1, 2) + len_field(2, stmt) + junk))),
            "request 4 execute 2 stmt{sql=\"SELECT 1\" id=- args=[] named=[] rows=1}");
}

TEST(WsProtobufCodecTest, LastOneofMemberWins) {
  const std::string hello = len_field(1, len_field(1, "jwt"));
  const std::string req = request_msg(varint_field(1, 1) + len_field(2, varint_field(1, 2)));
  EXPECT_EQ(decode_ok(hello + req), "request 1 open_stream 2");
  EXPECT_EQ(decode_ok(req + hello), "hello \"jwt\"");
  // Within RequestMsg, and a repeated request_id: the last one counts.
  EXPECT_EQ(decode_ok(request_msg(varint_field(1, 1) + len_field(2, varint_field(1, 2)) +
                                  varint_field(1, 5) + len_field(7, varint_field(1, 3)))),
            "request 5 close_cursor 3");
}

TEST(WsProtobufCodecTest, Int32KeepsLowBits) {
  // A negative int32 arrives sign-extended to 10 bytes.
  const std::string minus_one =
      bytes({0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01});
  EXPECT_EQ(decode_ok(request_msg(minus_one + len_field(3, minus_one))),
            "request -1 close_stream -1");
  // @libsql/hrana-client 0.10 writes int32s as unsigned 32-bit varints, so -1 is 5 bytes.
  EXPECT_EQ(decode_ok(request_msg(bytes({0x08, 0xff, 0xff, 0xff, 0xff, 0x0f}) +
                                  len_field(3, bytes({0x08, 0xfb, 0xff, 0xff, 0xff, 0x0f})))),
            "request -1 close_stream -5");
  // A varint wider than 32 bits keeps its low 32 bits, as protobuf parsers do.
  EXPECT_EQ(
      decode_ok(request_msg(varint_field(1, (std::uint64_t{1} << 32) + 5) + len_field(2, ""))),
      "request 5 open_stream 0");
  // An 11-byte varint is malformed.
  decode_err(
      request_msg(bytes({0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})));
}

TEST(WsProtobufCodecTest, BoundsBatchConditionDepth) {
  auto nested_not = [](int depth) {
    // Built outside-in from precomputed lengths: wrapping the inner message repeatedly would
    // copy it `depth` times.
    const std::string innermost = varint_field(1, 0);
    std::vector<std::string> headers;  // innermost wrapper first
    std::uint64_t len = innermost.size();
    for (int i = 0; i < depth; ++i) {
      std::string h;
      w::put_tag(h, 3, WireType::kLen);
      w::put_varint(h, len);
      len += h.size();
      headers.push_back(std::move(h));
    }
    std::string cond;
    cond.reserve(len);
    for (auto it = headers.rbegin(); it != headers.rend(); ++it) cond += *it;
    cond += innermost;
    const std::string step = len_field(1, cond) + len_field(2, len_field(1, "SELECT 1"));
    return request_msg(varint_field(1, 1) + len_field(5, len_field(2, len_field(1, step))));
  };
  EXPECT_TRUE(decode_client_msg(nested_not(50)));
  decode_err(nested_not(100));
  decode_err(nested_not(1000000));  // deep enough to overflow the stack if unbounded
}

// ---------------------------------------------------------------- mutation fuzzing

TEST(WsProtobufCodecTest, MutatedInputNeverCrashes) {
  std::vector<std::string> seeds;
  for (const ClientMsg& m : sample_client_msgs()) seeds.push_back(encode_client(m));
  Gen gen(7);
  for (int i = 0; i < 50; ++i) seeds.push_back(encode_client(gen.client_msg()));

  std::mt19937_64 rng(0x5eed);
  auto below = [&rng](std::size_t n) { return n == 0 ? 0 : static_cast<std::size_t>(rng() % n); };
  int accepted = 0, rejected = 0;
  for (int iter = 0; iter < 60000; ++iter) {
    std::string s = seeds[below(seeds.size())];
    for (auto edits = 1 + below(4); edits > 0; --edits) {
      const std::size_t pos = below(s.size() + 1);
      switch (below(7)) {
        case 0:  // flip a bit
          if (!s.empty()) s[below(s.size())] ^= static_cast<char>(1 << below(8));
          break;
        case 1:  // overwrite a byte, favouring bytes that matter to the format
          if (!s.empty()) {
            static constexpr unsigned char kInteresting[] = {0x00, 0x01, 0x02, 0x7f, 0x80,
                                                             0xff, 0x0a, 0x12, 0x08, 0x0b};
            s[below(s.size())] =
                static_cast<char>(below(2) ? kInteresting[below(std::size(kInteresting))] : rng());
          }
          break;
        case 2:  // insert a byte
          s.insert(pos, 1, static_cast<char>(rng()));
          break;
        case 3:  // delete a range
          s.erase(pos, 1 + below(4));
          break;
        case 4:  // truncate
          s.resize(pos);
          break;
        case 5:  // duplicate a range
          s.insert(pos, s.substr(below(s.size() + 1), below(16)));
          break;
        default: {  // splice in part of another seed
          const std::string& other = seeds[below(seeds.size())];
          s = s.substr(0, pos) + other.substr(below(other.size() + 1));
        }
      }
    }
    auto decoded = decode_client_msg(s);
    if (!decoded) {
      ++rejected;
      ASSERT_FALSE(decoded.error().message.empty());
      continue;
    }
    ++accepted;
    // Whatever was accepted is a well-formed model value: it survives a round trip.
    const std::string again = encode_client(*decoded);
    auto redecoded = decode_client_msg(again);
    ASSERT_TRUE(redecoded) << redecoded.error().message << "\n  from " << hex(s);
    ASSERT_EQ(show(*redecoded), show(*decoded)) << "from " << hex(s);
  }
  // Both outcomes must be common, or the mutations are not exercising the decoder.
  EXPECT_GT(accepted, 1000);
  EXPECT_GT(rejected, 1000);
}

}  // namespace
}  // namespace quire::hrana::ws::protobuf
