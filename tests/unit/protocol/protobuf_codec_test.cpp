// Tests for Hrana's protobuf codec (protocol/hrana/protobuf_codec.cpp) and its wire helpers
// (protocol/hrana/protobuf_wire.h). Production code only decodes requests and encodes responses,
// so this file has its own request encoder and response decoder; golden bytes worked out by hand
// from the protobuf encoding rules pin the format independently of both.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "protocol/hrana/codec.h"
#include "protocol/hrana/protobuf_wire.h"

namespace quire::hrana::protobuf {
namespace {

namespace w = wire;
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
  out.reserve(s.size() * 3);
  for (unsigned char c : s) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
    out.push_back(' ');
  }
  return out;
}

// A length-delimited field holding `body` (which need not be a valid message).
std::string len_field(std::uint32_t field, std::string_view body) {
  std::string out;
  w::put_bytes_field(out, field, body);
  return out;
}

// A pipeline body with one request whose StreamRequest oneof member `kind` holds `body`.
std::string pipeline_with(std::uint32_t kind, std::string_view body) {
  return len_field(2, len_field(kind, body));
}

// A pipeline body with one execute request whose Stmt is `stmt_bytes`.
std::string execute_with_stmt(std::string_view stmt_bytes) {
  return pipeline_with(2, len_field(1, stmt_bytes));
}

// A pipeline body with one batch request whose only step has condition `cond_bytes`.
std::string batch_with_cond(std::string_view cond_bytes) {
  std::string step = len_field(1, cond_bytes) + len_field(2, len_field(1, "SELECT 1"));
  return pipeline_with(3, len_field(1, len_field(1, step)));
}

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
std::string show_opt(const std::optional<T>& v) {
  return v ? std::to_string(*v) : "-";
}

std::string show(const Value& v) {
  switch (v.index()) {
    case 0:
      return "null";
    case 1:
      return "int:" + std::to_string(std::get<std::int64_t>(v));
    case 2: {
      char buf[64];
      std::snprintf(
          buf, sizeof buf, "float:%016llx",
          static_cast<unsigned long long>(std::bit_cast<std::uint64_t>(std::get<double>(v))));
      return buf;
    }
    case 3:
      return "text:" + show_text(std::get<std::string>(v));
    default: {
      const Blob& b = std::get<Blob>(v);
      return "blob:" + hex(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
    }
  }
}

std::string show(const std::vector<Value>& values) {
  std::string out = "[";
  for (const Value& v : values) out += show(v) + ",";
  return out + "]";
}

std::string show(const Stmt& s) {
  std::ostringstream o;
  o << "Stmt{sql=" << show_opt(s.sql) << " id=" << show_opt(s.sql_id) << " args=" << show(s.args)
    << " named=[";
  for (const auto& a : s.named_args) o << show_text(a.name) << "=" << show(a.value) << ",";
  o << "] want_rows=" << s.want_rows << "}";
  return o.str();
}

std::string show(const BatchCond& c) {
  std::ostringstream o;
  o << "cond" << static_cast<int>(c.kind) << "(" << c.step;
  for (const auto& sub : c.conds) o << "," << show(sub);
  o << ")";
  return o.str();
}

std::string show(const Batch& b) {
  std::string out = "Batch[";
  for (const auto& step : b.steps) {
    out += "{" + (step.condition ? show(*step.condition) : std::string("-")) + " " +
           show(step.stmt) + "}";
  }
  return out + "]";
}

std::string show(const StreamRequest& r) {
  std::ostringstream o;
  o << "req" << r.index() << ":";
  if (auto* e = std::get_if<ExecuteReq>(&r)) o << show(e->stmt);
  if (auto* b = std::get_if<BatchReq>(&r)) o << show(b->batch);
  if (auto* s = std::get_if<SequenceReq>(&r)) o << show_opt(s->sql) << "/" << show_opt(s->sql_id);
  if (auto* d = std::get_if<DescribeReq>(&r)) o << show_opt(d->sql) << "/" << show_opt(d->sql_id);
  if (auto* s = std::get_if<StoreSqlReq>(&r)) o << s->sql_id << "/" << show_text(s->sql);
  if (auto* c = std::get_if<CloseSqlReq>(&r)) o << c->sql_id;
  return o.str();
}

std::string show(const PipelineRequest& p) {
  std::string out = "Pipeline{baton=" + show_opt(p.baton) + " ";
  for (const auto& r : p.requests) out += show(r) + "; ";
  return out + "}";
}

std::string show(const CursorRequest& c) {
  return "Cursor{baton=" + show_opt(c.baton) + " " + show(c.batch) + "}";
}

std::string show(const Column& c) { return show_text(c.name) + ":" + show_opt(c.decltype_); }

std::string show(const std::vector<Column>& cols) {
  std::string out = "cols[";
  for (const auto& c : cols) out += show(c) + ",";
  return out + "]";
}

std::string show(const StmtResult& r) {
  std::ostringstream o;
  o << "Result{" << show(r.cols) << " rows[";
  for (const auto& row : r.rows) o << show(row);
  o << "] affected=" << r.affected_row_count << " rowid=" << show_opt(r.last_insert_rowid)
    << " read=" << r.rows_read << " written=" << r.rows_written << " ms=" << std::hex
    << std::bit_cast<std::uint64_t>(r.query_duration_ms) << "}";
  return o.str();
}

std::string show(const Error& e) {
  return "Error{" + show_text(e.message) + " " + show_text(e.code) + " " +
         show_text(e.extended_code) + "}";
}

// Only executed steps, with their index: the protobuf maps carry no entry for skipped steps.
std::string show(const BatchResult& r) {
  std::string out = "BatchResult{";
  for (std::size_t i = 0; i < r.step_results.size(); ++i) {
    if (r.step_results[i]) out += "ok" + std::to_string(i) + "=" + show(*r.step_results[i]) + " ";
  }
  for (std::size_t i = 0; i < r.step_errors.size(); ++i) {
    if (r.step_errors[i]) out += "err" + std::to_string(i) + "=" + show(*r.step_errors[i]) + " ";
  }
  return out + "}";
}

std::string show(const DescribeResult& r) {
  std::string out = "Describe{params[";
  for (const auto& p : r.params) out += show_opt(p.name) + ",";
  out += "] " + show(r.cols) + " explain=" + std::to_string(r.is_explain) +
         " readonly=" + std::to_string(r.is_readonly) + "}";
  return out;
}

std::string show(const StreamResponse& r) {
  std::string out = "resp" + std::to_string(r.index()) + ":";
  if (auto* e = std::get_if<ExecuteResp>(&r)) out += show(e->result);
  if (auto* b = std::get_if<BatchResp>(&r)) out += show(b->result);
  if (auto* d = std::get_if<DescribeResp>(&r)) out += show(d->result);
  if (auto* a = std::get_if<GetAutocommitResp>(&r)) out += std::to_string(a->is_autocommit);
  return out;
}

std::string show(const PipelineResponse& p) {
  std::string out = "PipelineResp{baton=" + show_opt(p.baton) + " url=" + show_opt(p.base_url);
  for (const auto& r : p.results) {
    if (auto* ok = std::get_if<StreamResponse>(&r)) {
      out += " ok:" + show(*ok);
    } else {
      out += " " + show(std::get<Error>(r));
    }
  }
  return out + "}";
}

std::string show(const CursorResponseHead& h) {
  return "Head{" + show_opt(h.baton) + " " + show_opt(h.base_url) + "}";
}

std::string show(const CursorEntry& e) {
  if (auto* b = std::get_if<StepBeginEntry>(&e)) {
    return "begin" + std::to_string(b->step) + show(b->cols);
  }
  if (auto* s = std::get_if<StepEndEntry>(&e)) {
    return "end" + std::to_string(s->affected_row_count) + "/" + show_opt(s->last_insert_rowid);
  }
  if (auto* s = std::get_if<StepErrorEntry>(&e)) {
    return "step_error" + std::to_string(s->step) + show(s->error);
  }
  if (auto* r = std::get_if<RowEntry>(&e)) return "row" + show(r->row);
  return "error" + show(std::get<ErrorEntry>(e).error);
}

// ---------------------------------------------------------------- test-local request encoder

// Writes requests the way clients do. With `noise`, every message also gets unknown fields of
// each wire type at its start and end, which a decoder must skip.
struct RequestEncoder {
  bool noise = false;

  void unknowns(std::string& out) const {
    if (!noise) return;
    w::put_varint_field(out, 9, 12345);
    w::put_fixed64_field(out, 16, 0x0123456789abcdefull);
    w::put_bytes_field(out, 2047, bytes({0xff, 0xff, 0x03}));  // not a valid message: opaque
    w::put_fixed32_field(out, 536870911, 0xdeadbeef);          // the largest field number
  }

  std::size_t begin(std::string& out, std::uint32_t field) const {
    auto m = w::begin_message(out, field);
    unknowns(out);
    return m;
  }

  void end(std::string& out, std::size_t m) const {
    unknowns(out);
    w::end_message(out, m);
  }

  void value(std::string& out, std::uint32_t field, const Value& v) const {
    auto m = begin(out, field);
    switch (v.index()) {
      case 0:
        end(out, begin(out, 1));
        break;
      case 1:
        w::put_sint64_field(out, 2, std::get<std::int64_t>(v));
        break;
      case 2:
        w::put_double_field(out, 3, std::get<double>(v));
        break;
      case 3:
        w::put_bytes_field(out, 4, std::get<std::string>(v));
        break;
      default: {
        const Blob& b = std::get<Blob>(v);
        w::put_bytes_field(out, 5, b.data(), b.size());
      }
    }
    end(out, m);
  }

  static void int32(std::string& out, std::uint32_t field, std::int32_t v) {
    // Protobuf int32: the varint of the sign-extended 64-bit value.
    w::put_varint_field(out, field, static_cast<std::uint64_t>(static_cast<std::int64_t>(v)));
  }

  void stmt(std::string& out, std::uint32_t field, const Stmt& s) const {
    auto m = begin(out, field);
    if (s.sql) w::put_bytes_field(out, 1, *s.sql);
    if (s.sql_id) int32(out, 2, *s.sql_id);
    for (const Value& v : s.args) value(out, 3, v);
    for (const NamedArg& a : s.named_args) {
      auto am = begin(out, 4);
      w::put_bytes_field(out, 1, a.name);
      value(out, 2, a.value);
      end(out, am);
    }
    w::put_bool_field(out, 5, s.want_rows);  // clients always send it
    end(out, m);
  }

  void cond(std::string& out, std::uint32_t field, const BatchCond& c) const {
    auto m = begin(out, field);
    switch (c.kind) {
      case BatchCond::Kind::kOk:
        w::put_varint_field(out, 1, c.step);
        break;
      case BatchCond::Kind::kError:
        w::put_varint_field(out, 2, c.step);
        break;
      case BatchCond::Kind::kNot:
        cond(out, 3, c.conds.at(0));
        break;
      case BatchCond::Kind::kAnd:
      case BatchCond::Kind::kOr: {
        auto lm = begin(out, c.kind == BatchCond::Kind::kAnd ? 4 : 5);
        for (const auto& sub : c.conds) cond(out, 1, sub);
        end(out, lm);
        break;
      }
      case BatchCond::Kind::kIsAutocommit:
        end(out, begin(out, 6));
        break;
    }
    end(out, m);
  }

  void batch(std::string& out, std::uint32_t field, const Batch& b) const {
    auto m = begin(out, field);
    for (const auto& step : b.steps) {
      auto sm = begin(out, 1);
      if (step.condition) cond(out, 1, *step.condition);
      stmt(out, 2, step.stmt);
      end(out, sm);
    }
    end(out, m);
  }

  void sql_or_id(std::string& out, const std::optional<std::string>& sql,
                 const std::optional<std::int32_t>& id) const {
    if (sql) w::put_bytes_field(out, 1, *sql);
    if (id) int32(out, 2, *id);
  }

  void request(std::string& out, const StreamRequest& r) const {
    auto m = begin(out, 2);
    auto km = begin(out, static_cast<std::uint32_t>(r.index() + 1));
    if (auto* e = std::get_if<ExecuteReq>(&r)) stmt(out, 1, e->stmt);
    if (auto* b = std::get_if<BatchReq>(&r)) batch(out, 1, b->batch);
    if (auto* s = std::get_if<SequenceReq>(&r)) sql_or_id(out, s->sql, s->sql_id);
    if (auto* d = std::get_if<DescribeReq>(&r)) sql_or_id(out, d->sql, d->sql_id);
    if (auto* s = std::get_if<StoreSqlReq>(&r)) {
      int32(out, 1, s->sql_id);
      w::put_bytes_field(out, 2, s->sql);
    }
    if (auto* c = std::get_if<CloseSqlReq>(&r)) int32(out, 1, c->sql_id);
    end(out, km);
    end(out, m);
  }

  std::string pipeline(const PipelineRequest& p) const {
    std::string out;
    unknowns(out);
    if (p.baton) w::put_bytes_field(out, 1, *p.baton);
    for (const auto& r : p.requests) request(out, r);
    unknowns(out);
    return out;
  }

  std::string cursor(const CursorRequest& c) const {
    std::string out;
    unknowns(out);
    if (c.baton) w::put_bytes_field(out, 1, *c.baton);
    batch(out, 2, c.batch);
    unknowns(out);
    return out;
  }
};

// ---------------------------------------------------------------- test-local response decoder

// Strict about what the server writes: wire types must match, and fields the encoder must not
// write (replication_index) fail the test.
std::vector<w::Field> fields_of(std::string_view data) {
  w::Reader r(data);
  w::Field f;
  std::vector<w::Field> out;
  while (r.next(f)) out.push_back(f);
  EXPECT_TRUE(r.ok()) << r.error() << " in " << hex(data);
  return out;
}

std::string_view len(const w::Field& f) {
  EXPECT_EQ(static_cast<int>(f.type), 2) << "field " << f.number;
  return f.bytes;
}

std::uint64_t var(const w::Field& f) {
  EXPECT_EQ(static_cast<int>(f.type), 0) << "field " << f.number;
  return f.value;
}

Value dec_value(std::string_view data) {
  auto fields = fields_of(data);
  EXPECT_EQ(fields.size(), 1u) << "a Value has exactly one field: " << hex(data);
  if (fields.empty()) return Value{};
  const w::Field& f = fields[0];
  switch (f.number) {
    case 1:
      EXPECT_EQ(len(f), "");
      return std::monostate{};
    case 2:
      return w::zigzag_decode(var(f));
    case 3:
      EXPECT_EQ(static_cast<int>(f.type), 1);
      return std::bit_cast<double>(f.value);
    case 4:
      return std::string(len(f));
    case 5: {
      auto b = len(f);
      return Blob(b.begin(), b.end());
    }
  }
  ADD_FAILURE() << "unexpected Value field " << f.number;
  return Value{};
}

std::vector<Value> dec_row(std::string_view data) {
  std::vector<Value> row;
  for (const auto& f : fields_of(data)) {
    EXPECT_EQ(f.number, 1u);
    row.push_back(dec_value(len(f)));
  }
  return row;
}

Column dec_col(std::string_view data) {
  Column c;
  for (const auto& f : fields_of(data)) {
    if (f.number == 1)
      c.name = len(f);
    else if (f.number == 2)
      c.decltype_ = std::string(len(f));
    else
      ADD_FAILURE() << "unexpected Col field " << f.number;
  }
  return c;
}

StmtResult dec_stmt_result(std::string_view data) {
  StmtResult r;
  for (const auto& f : fields_of(data)) {
    switch (f.number) {
      case 1:
        r.cols.push_back(dec_col(len(f)));
        break;
      case 2:
        r.rows.push_back(dec_row(len(f)));
        break;
      case 3:
        r.affected_row_count = var(f);
        break;
      case 4:
        r.last_insert_rowid = w::zigzag_decode(var(f));
        break;
      case 6:
        r.rows_read = var(f);
        break;
      case 7:
        r.rows_written = var(f);
        break;
      case 8:
        EXPECT_EQ(static_cast<int>(f.type), 1);
        r.query_duration_ms = std::bit_cast<double>(f.value);
        break;
      default:
        ADD_FAILURE() << "unexpected StmtResult field " << f.number;
    }
  }
  return r;
}

Error dec_error(std::string_view data) {
  Error e;
  for (const auto& f : fields_of(data)) {
    if (f.number == 1)
      e.message = len(f);
    else if (f.number == 2)
      e.code = len(f);
    else if (f.number == 3)
      e.extended_code = len(f);
    else
      ADD_FAILURE() << "unexpected Error field " << f.number;
  }
  return e;
}

// Map entries {1 key, 2 value}; the result vectors are as long as the largest key needs.
template <class M, class Dec>
void dec_map_entry(std::string_view data, std::vector<std::optional<M>>& out, Dec dec) {
  std::uint32_t key = 0;
  M value{};
  for (const auto& f : fields_of(data)) {
    if (f.number == 1)
      key = static_cast<std::uint32_t>(var(f));
    else if (f.number == 2)
      value = dec(len(f));
    else
      ADD_FAILURE() << "unexpected map entry field " << f.number;
  }
  if (out.size() <= key) out.resize(key + 1);
  EXPECT_FALSE(out[key]) << "duplicate map key " << key;
  out[key] = std::move(value);
}

BatchResult dec_batch_result(std::string_view data) {
  BatchResult r;
  for (const auto& f : fields_of(data)) {
    if (f.number == 1)
      dec_map_entry(len(f), r.step_results, dec_stmt_result);
    else if (f.number == 2)
      dec_map_entry(len(f), r.step_errors, dec_error);
    else
      ADD_FAILURE() << "unexpected BatchResult field " << f.number;
  }
  return r;
}

DescribeResult dec_describe_result(std::string_view data) {
  DescribeResult r;
  for (const auto& f : fields_of(data)) {
    switch (f.number) {
      case 1: {
        auto& p = r.params.emplace_back();
        for (const auto& pf : fields_of(len(f))) {
          EXPECT_EQ(pf.number, 1u);
          p.name = std::string(len(pf));
        }
        break;
      }
      case 2:
        r.cols.push_back(dec_col(len(f)));
        break;
      case 3:
        r.is_explain = var(f) != 0;
        break;
      case 4:
        r.is_readonly = var(f) != 0;
        break;
      default:
        ADD_FAILURE() << "unexpected DescribeResult field " << f.number;
    }
  }
  return r;
}

// The body of a response kind with a single `result` field 1.
std::string_view result_field(std::string_view data) {
  auto fields = fields_of(data);
  EXPECT_EQ(fields.size(), 1u);
  if (fields.empty()) return {};
  EXPECT_EQ(fields[0].number, 1u);
  return len(fields[0]);
}

StreamResponse dec_stream_response(std::string_view data) {
  auto fields = fields_of(data);
  EXPECT_EQ(fields.size(), 1u) << "StreamResponse has exactly one field";
  if (fields.empty()) return CloseResp{};
  const w::Field& f = fields[0];
  std::string_view body = len(f);
  switch (f.number) {
    case 1:
      EXPECT_EQ(body, "");
      return CloseResp{};
    case 2:
      return ExecuteResp{dec_stmt_result(result_field(body))};
    case 3:
      return BatchResp{dec_batch_result(result_field(body))};
    case 4:
      EXPECT_EQ(body, "");
      return SequenceResp{};
    case 5:
      return DescribeResp{dec_describe_result(result_field(body))};
    case 6:
      EXPECT_EQ(body, "");
      return StoreSqlResp{};
    case 7:
      EXPECT_EQ(body, "");
      return CloseSqlResp{};
    case 8: {
      GetAutocommitResp a{false};  // the proto3 default, unlike the model's
      for (const auto& af : fields_of(body)) {
        EXPECT_EQ(af.number, 1u);
        a.is_autocommit = var(af) != 0;
      }
      return a;
    }
  }
  ADD_FAILURE() << "unexpected StreamResponse field " << f.number;
  return CloseResp{};
}

PipelineResponse dec_pipeline_response(std::string_view data) {
  PipelineResponse p;
  for (const auto& f : fields_of(data)) {
    switch (f.number) {
      case 1:
        p.baton = std::string(len(f));
        break;
      case 2:
        p.base_url = std::string(len(f));
        break;
      case 3: {
        auto rf = fields_of(len(f));
        EXPECT_EQ(rf.size(), 1u) << "StreamResult has exactly one field";
        if (rf.empty()) break;
        if (rf[0].number == 1) {
          p.results.emplace_back(dec_stream_response(len(rf[0])));
        } else {
          EXPECT_EQ(rf[0].number, 2u);
          p.results.emplace_back(dec_error(len(rf[0])));
        }
        break;
      }
      default:
        ADD_FAILURE() << "unexpected PipelineRespBody field " << f.number;
    }
  }
  return p;
}

// Splits a varint-length-delimited stream into its messages.
std::vector<std::string_view> split_frames(std::string_view data) {
  std::vector<std::string_view> frames;
  while (!data.empty()) {
    std::uint64_t n = 0;
    int shift = 0;
    std::size_t i = 0;
    for (;; ++i, shift += 7) {
      if (i >= data.size() || shift > 63) {
        ADD_FAILURE() << "bad frame length in " << hex(data);
        return frames;
      }
      const auto b = static_cast<std::uint8_t>(data[i]);
      n |= std::uint64_t{b & 0x7Fu} << shift;
      if (!(b & 0x80)) break;
    }
    data.remove_prefix(i + 1);
    if (n > data.size()) {
      ADD_FAILURE() << "frame longer than the data";
      return frames;
    }
    frames.push_back(data.substr(0, n));
    data.remove_prefix(n);
  }
  return frames;
}

CursorResponseHead dec_cursor_head(std::string_view data) {
  CursorResponseHead h;
  for (const auto& f : fields_of(data)) {
    if (f.number == 1)
      h.baton = std::string(len(f));
    else if (f.number == 2)
      h.base_url = std::string(len(f));
    else
      ADD_FAILURE() << "unexpected CursorRespBody field " << f.number;
  }
  return h;
}

CursorEntry dec_cursor_entry(std::string_view data) {
  auto fields = fields_of(data);
  EXPECT_EQ(fields.size(), 1u) << "CursorEntry has exactly one field";
  if (fields.empty()) return RowEntry{};
  const w::Field& f = fields[0];
  std::string_view body = len(f);
  switch (f.number) {
    case 1: {
      StepBeginEntry e;
      for (const auto& ef : fields_of(body)) {
        if (ef.number == 1)
          e.step = static_cast<std::uint32_t>(var(ef));
        else if (ef.number == 2)
          e.cols.push_back(dec_col(len(ef)));
        else
          ADD_FAILURE() << "unexpected StepBeginEntry field " << ef.number;
      }
      return e;
    }
    case 2: {
      StepEndEntry e;
      for (const auto& ef : fields_of(body)) {
        if (ef.number == 1)
          e.affected_row_count = var(ef);
        else if (ef.number == 2)
          e.last_insert_rowid = w::zigzag_decode(var(ef));
        else
          ADD_FAILURE() << "unexpected StepEndEntry field " << ef.number;
      }
      return e;
    }
    case 3: {
      StepErrorEntry e;
      for (const auto& ef : fields_of(body)) {
        if (ef.number == 1)
          e.step = static_cast<std::uint32_t>(var(ef));
        else if (ef.number == 2)
          e.error = dec_error(len(ef));
        else
          ADD_FAILURE() << "unexpected StepErrorEntry field " << ef.number;
      }
      return e;
    }
    case 4:
      return RowEntry{dec_row(body)};
    case 5:
      return ErrorEntry{dec_error(body)};
  }
  ADD_FAILURE() << "unexpected CursorEntry field " << f.number;
  return RowEntry{};
}

// ---------------------------------------------------------------- model builders

Stmt sql_stmt(std::string sql, std::vector<Value> args = {}) {
  Stmt s;
  s.sql = std::move(sql);
  s.args = std::move(args);
  return s;
}

BatchCond leaf(BatchCond::Kind kind, std::uint32_t step = 0) {
  BatchCond c;
  c.kind = kind;
  c.step = step;
  return c;
}

BatchCond node(BatchCond::Kind kind, std::vector<BatchCond> conds) {
  BatchCond c;
  c.kind = kind;
  c.conds = std::move(conds);
  return c;
}

Blob blob_of(std::string_view s) { return Blob(s.begin(), s.end()); }

// Every Value kind and the edge cases of each.
std::vector<Value> all_values() {
  Blob all_bytes;
  for (int i = 0; i < 256; ++i) all_bytes.push_back(static_cast<std::uint8_t>(i));
  return {
      std::monostate{}, std::int64_t{0}, std::int64_t{1}, std::int64_t{-1}, std::int64_t{63},
      std::int64_t{-64}, std::int64_t{64}, std::numeric_limits<std::int64_t>::max(),
      std::numeric_limits<std::int64_t>::min(), 0.0, -0.0, 1.5, -2.25e300,
      std::numeric_limits<double>::denorm_min(), std::numeric_limits<double>::infinity(),
      -std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN(),
      std::string(), std::string("plain ascii"),
      // U+00E9, U+20AC, U+1F600 and two CJK ideographs: 2-, 3- and 4-byte sequences.
      std::string("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80 \xe4\xb8\xad\xe6\x96\x87"),
      std::string("nul\0inside", 10), std::string(300, 'x'),  // two-byte length
      Blob{}, all_bytes, Blob(70000, 0xAB),                   // three-byte length
  };
}

Batch rich_batch() {
  using K = BatchCond::Kind;
  Batch b;
  b.steps.push_back({std::nullopt, sql_stmt("BEGIN IMMEDIATE")});
  b.steps.push_back({leaf(K::kOk, 0), sql_stmt("INSERT INTO t VALUES (?)", {std::int64_t{7}})});
  Stmt by_id;
  by_id.sql_id = 3;
  by_id.want_rows = false;
  b.steps.push_back({leaf(K::kError, 1), by_id});
  b.steps.push_back({node(K::kNot, {leaf(K::kOk, 2)}), sql_stmt("ROLLBACK")});
  b.steps.push_back(
      {node(K::kAnd, {leaf(K::kOk, 0), node(K::kOr, {leaf(K::kError, 1), leaf(K::kIsAutocommit)})}),
       sql_stmt("COMMIT")});
  b.steps.push_back({node(K::kAnd, {}), sql_stmt("SELECT 'empty and'")});
  b.steps.push_back({node(K::kOr, {}), sql_stmt("SELECT 'empty or'")});
  b.steps.push_back({leaf(K::kIsAutocommit), sql_stmt("SELECT 1")});
  return b;
}

PipelineRequest rich_pipeline() {
  PipelineRequest p;
  p.baton = "aGVsbG8gYmF0b24";
  p.requests.push_back(CloseReq{});

  Stmt s = sql_stmt("SELECT ?, ?, :a, @b", all_values());
  s.named_args.push_back({"a", std::string("named")});
  s.named_args.push_back({":b", std::int64_t{-5}});
  s.named_args.push_back({"", std::monostate{}});
  p.requests.push_back(ExecuteReq{s});

  Stmt by_id;
  by_id.sql_id = -1;
  by_id.want_rows = false;
  p.requests.push_back(ExecuteReq{by_id});
  p.requests.push_back(ExecuteReq{Stmt{}});  // neither sql nor sql_id: kept as received
  p.requests.push_back(BatchReq{rich_batch()});
  p.requests.push_back(BatchReq{Batch{}});
  p.requests.push_back(SequenceReq{"CREATE TABLE t(a); INSERT INTO t VALUES (1);", std::nullopt});
  p.requests.push_back(SequenceReq{std::nullopt, 42});
  p.requests.push_back(DescribeReq{"SELECT :x", std::nullopt});
  p.requests.push_back(DescribeReq{std::string(), std::numeric_limits<std::int32_t>::max()});
  p.requests.push_back(StoreSqlReq{7, "SELECT 'stored'"});
  p.requests.push_back(StoreSqlReq{std::numeric_limits<std::int32_t>::min(), ""});
  p.requests.push_back(CloseSqlReq{7});
  p.requests.push_back(CloseSqlReq{0});
  p.requests.push_back(GetAutocommitReq{});
  return p;
}

StmtResult rich_stmt_result() {
  StmtResult r;
  r.cols = {{"a", "INTEGER"}, {"b", std::nullopt}, {"", "TEXT"}, {"\xc3\xa9", ""}};
  r.rows.push_back(all_values());
  r.rows.push_back({});
  r.rows.push_back({std::int64_t{1}, std::monostate{}, std::string("x"), blob_of("y")});
  r.affected_row_count = 3;
  r.last_insert_rowid = -9;
  r.rows_read = 1000;
  r.rows_written = std::numeric_limits<std::uint64_t>::max();
  r.query_duration_ms = 0.125;
  return r;
}

PipelineResponse rich_pipeline_response() {
  PipelineResponse p;
  p.baton = "next-baton";
  p.base_url = "https://db.example.com/";
  p.results.emplace_back(StreamResponse{CloseResp{}});
  p.results.emplace_back(StreamResponse{ExecuteResp{rich_stmt_result()}});
  p.results.emplace_back(StreamResponse{ExecuteResp{StmtResult{}}});

  StmtResult zero_rowid;
  zero_rowid.last_insert_rowid = 0;
  p.results.emplace_back(StreamResponse{ExecuteResp{zero_rowid}});

  BatchResult batch;
  batch.step_results = {rich_stmt_result(), std::nullopt, std::nullopt, StmtResult{}};
  batch.step_errors = {std::nullopt, Error{"boom", "SQLITE_CONSTRAINT", "SQLITE_CONSTRAINT_UNIQUE"},
                       std::nullopt, std::nullopt};
  p.results.emplace_back(StreamResponse{BatchResp{batch}});
  p.results.emplace_back(StreamResponse{BatchResp{BatchResult{}}});
  p.results.emplace_back(StreamResponse{SequenceResp{}});

  DescribeResult d;
  d.params = {{":a"}, {std::nullopt}, {"@b"}, {""}};
  d.cols = {{"x", "INT"}, {"y", std::nullopt}};
  d.is_explain = true;
  d.is_readonly = true;
  p.results.emplace_back(StreamResponse{DescribeResp{d}});
  p.results.emplace_back(StreamResponse{DescribeResp{DescribeResult{}}});
  p.results.emplace_back(StreamResponse{StoreSqlResp{}});
  p.results.emplace_back(StreamResponse{CloseSqlResp{}});
  p.results.emplace_back(StreamResponse{GetAutocommitResp{true}});
  p.results.emplace_back(StreamResponse{GetAutocommitResp{false}});
  p.results.emplace_back(Error{"no such table: t", "SQLITE_ERROR", ""});
  p.results.emplace_back(Error{});
  return p;
}

// Decodes `body` as a pipeline request and expects a ProtocolError mentioning `what`.
void expect_error(const std::string& body, std::string_view what) {
  auto r = decode_pipeline_request(body);
  ASSERT_FALSE(r.has_value()) << "decoded: " << show(r.value()) << "\nfrom " << hex(body);
  EXPECT_NE(r.error().message.find(what), std::string::npos)
      << "message: " << r.error().message << "\nexpected to mention: " << what;
}

PipelineRequest decode_ok(const std::string& body) {
  auto r = decode_pipeline_request(body);
  EXPECT_TRUE(r.has_value()) << r.error().message << "\nfrom " << hex(body);
  return r.has_value() ? std::move(r).value() : PipelineRequest{};
}

// ================================================================ wire helpers

TEST(ProtobufWireTest, VarintEncodingMatchesTheSpec) {
  const std::pair<std::uint64_t, std::string> cases[] = {
      {0, bytes({0x00})},
      {1, bytes({0x01})},
      {127, bytes({0x7f})},
      {128, bytes({0x80, 0x01})},
      {300, bytes({0xac, 0x02})},
      {16383, bytes({0xff, 0x7f})},
      {16384, bytes({0x80, 0x80, 0x01})},
      {std::uint64_t{1} << 63, bytes({0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})},
      {~std::uint64_t{0}, bytes({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})},
  };
  for (const auto& [v, expected] : cases) {
    std::string out;
    w::put_varint(out, v);
    EXPECT_EQ(hex(out), hex(expected)) << v;
    EXPECT_EQ(w::varint_size(v), expected.size()) << v;

    w::Field f;
    const std::string field = bytes({0x08}) + expected;  // field 1, varint
    w::Reader r(field);
    ASSERT_TRUE(r.next(f)) << r.error();
    EXPECT_EQ(f.value, v);
  }
}

TEST(ProtobufWireTest, ZigzagMatchesTheSpec) {
  EXPECT_EQ(w::zigzag_encode(0), 0u);
  EXPECT_EQ(w::zigzag_encode(-1), 1u);
  EXPECT_EQ(w::zigzag_encode(1), 2u);
  EXPECT_EQ(w::zigzag_encode(-2), 3u);
  EXPECT_EQ(w::zigzag_encode(2147483647), 4294967294u);
  EXPECT_EQ(w::zigzag_encode(-2147483648LL), 4294967295u);
  EXPECT_EQ(w::zigzag_encode(std::numeric_limits<std::int64_t>::max()), ~std::uint64_t{0} - 1);
  EXPECT_EQ(w::zigzag_encode(std::numeric_limits<std::int64_t>::min()), ~std::uint64_t{0});
  for (std::int64_t v :
       {std::int64_t{0}, std::int64_t{-1}, std::int64_t{12345},
        std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max()}) {
    EXPECT_EQ(w::zigzag_decode(w::zigzag_encode(v)), v);
  }
}

TEST(ProtobufWireTest, FixedWidthFieldsAreLittleEndian) {
  std::string out;
  w::put_double_field(out, 1, 1.5);
  w::put_fixed32_field(out, 2, 0x01020304);
  EXPECT_EQ(hex(out),
            hex(bytes({0x09, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 0x15, 0x04, 0x03, 0x02, 0x01})));
  w::Reader r(out);
  w::Field f;
  ASSERT_TRUE(r.next(f));
  EXPECT_EQ(f.type, WireType::kFixed64);
  EXPECT_EQ(std::bit_cast<double>(f.value), 1.5);
  ASSERT_TRUE(r.next(f));
  EXPECT_EQ(f.type, WireType::kFixed32);
  EXPECT_EQ(f.value, 0x01020304u);
  EXPECT_FALSE(r.next(f));
  EXPECT_TRUE(r.ok());
}

TEST(ProtobufWireTest, DelimitedLengthGrowsWithTheBody) {
  for (std::size_t n : {0u, 1u, 127u, 128u, 16383u, 16384u, 2097151u, 2097152u}) {
    std::string out = "prefix";
    auto m = w::begin_message(out, 7);
    out.append(n, 'z');
    w::end_message(out, m);
    std::string expected = "prefix";
    w::put_bytes_field(expected, 7, std::string(n, 'z'));
    EXPECT_TRUE(out == expected) << "body of " << n << " bytes";
  }
}

TEST(ProtobufWireTest, ReaderSkipsEveryWireTypeButGroups) {
  std::string data;
  w::put_varint_field(data, 1, 5);
  w::put_fixed64_field(data, 2, 6);
  w::put_bytes_field(data, 3, "abc");
  w::put_fixed32_field(data, 4, 7);
  w::Reader r(data);
  w::Field f;
  std::vector<std::uint32_t> numbers;
  while (r.next(f)) numbers.push_back(f.number);
  EXPECT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(numbers, (std::vector<std::uint32_t>{1, 2, 3, 4}));

  const std::string group_data = bytes({0x0b, 0x0c});
  w::Reader groups(group_data);
  EXPECT_FALSE(groups.next(f));
  EXPECT_NE(groups.error().find("groups"), std::string::npos) << groups.error();
}

TEST(ProtobufWireTest, Utf8ValidationIsStrict) {
  const std::string valid[] = {
      "",
      "ascii only, longer than eight bytes",
      "\xc2\x80",                  // U+0080
      "\xdf\xbf",                  // U+07FF
      "\xe0\xa0\x80",              // U+0800
      "\xed\x9f\xbf",              // U+D7FF
      "\xee\x80\x80",              // U+E000
      "\xef\xbf\xbf",              // U+FFFF
      "\xf0\x90\x80\x80",          // U+10000
      "\xf4\x8f\xbf\xbf",          // U+10FFFF
      std::string("a\0b", 3),      // NUL is valid UTF-8
      "12345678\xf0\x9f\x98\x80",  // after the 8-byte fast path
  };
  for (const auto& s : valid) EXPECT_TRUE(w::valid_utf8(s)) << hex(s);
  const std::string invalid[] = {
      "\x80",              // lone continuation byte
      "\xc0\x80",          // overlong NUL
      "\xc1\xbf",          // overlong
      "\xe0\x9f\xbf",      // overlong 3-byte
      "\xf0\x8f\xbf\xbf",  // overlong 4-byte
      "\xed\xa0\x80",      // surrogate U+D800
      "\xed\xbf\xbf",      // surrogate U+DFFF
      "\xf4\x90\x80\x80",  // U+110000
      "\xf5\x80\x80\x80",  // invalid lead byte
      "\xff",              // invalid byte
      "\xe2\x82",          // truncated
      "abcdefgh\xe2\x82",  // truncated after the fast path
      "\xe2\x28\xa1",      // bad continuation
      "\xf0\x9f\x98",      // truncated 4-byte
  };
  for (const auto& s : invalid) EXPECT_FALSE(w::valid_utf8(s)) << hex(s);
}

// ================================================================ golden bytes

TEST(ProtobufCodecTest, ErrorGoldenBytes) {
  EXPECT_EQ(hex(encode_error(Error{"m", "c", ""})), hex(bytes({0x0a, 0x01, 'm', 0x12, 0x01, 'c'})));
  EXPECT_EQ(hex(encode_error(Error{"m", "c", "x"})),
            hex(bytes({0x0a, 0x01, 'm', 0x12, 0x01, 'c', 0x1a, 0x01, 'x'})));
  // Proto3 defaults are omitted: an empty Error is an empty message.
  EXPECT_EQ(encode_error(Error{}), "");
}

TEST(ProtobufCodecTest, CursorRowOfMinusOneGoldenBytes) {
  // Value{integer: zigzag(-1) = 1} = 10 01; Row{1: value} = 0a 02 10 01;
  // CursorEntry{4: row} = 22 04 ...; then the frame's varint length 06.
  std::string out;
  append_cursor_entry(RowEntry{{std::int64_t{-1}}}, out);
  EXPECT_EQ(hex(out), hex(bytes({0x06, 0x22, 0x04, 0x0a, 0x02, 0x10, 0x01})));
}

TEST(ProtobufCodecTest, EveryValueKindGoldenBytes) {
  std::string out;
  append_cursor_entry(RowEntry{{std::monostate{}, std::int64_t{0}, std::int64_t{-1}, 1.5,
                                std::string("a"), Blob{0xff}}},
                      out);
  const std::string row = bytes({
      0x0a, 0x02, 0x0a, 0x00,                                            // null: empty Null msg
      0x0a, 0x02, 0x10, 0x00,                                            // 0: still written
      0x0a, 0x02, 0x10, 0x01,                                            // -1
      0x0a, 0x09, 0x19, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf8, 0x3f,  // 1.5
      0x0a, 0x03, 0x22, 0x01, 'a',                                       // "a"
      0x0a, 0x03, 0x2a, 0x01, 0xff,                                      // x'ff'
  });
  ASSERT_EQ(row.size(), 33u);
  EXPECT_EQ(hex(out), hex(bytes({35, 0x22, 33}) + row));
}

TEST(ProtobufCodecTest, CursorHeadGoldenBytes) {
  std::string out;
  append_cursor_head(CursorResponseHead{"b", std::nullopt}, out);
  append_cursor_head(CursorResponseHead{std::nullopt, "u"}, out);
  append_cursor_head(CursorResponseHead{}, out);
  append_cursor_head(CursorResponseHead{"", std::nullopt}, out);  // present but empty: written
  EXPECT_EQ(hex(out),
            hex(bytes({0x03, 0x0a, 0x01, 'b', 0x03, 0x12, 0x01, 'u', 0x00, 0x02, 0x0a, 0x00})));
}

TEST(ProtobufCodecTest, CursorErrorEntryHoldsTheErrorDirectly) {
  // CursorEntry{5: Error{1: "m"}}, not wrapped in another message (Hrana 3 schema, sqld and
  // hrana-client all agree).
  std::string out;
  append_cursor_entry(ErrorEntry{Error{"m", "", ""}}, out);
  EXPECT_EQ(hex(out), hex(bytes({0x05, 0x2a, 0x03, 0x0a, 0x01, 'm'})));
}

TEST(ProtobufCodecTest, CursorStepEntriesGoldenBytes) {
  std::string out;
  append_cursor_entry(StepBeginEntry{1, {{"a", "INT"}}}, out);
  // StepBegin{1: 1, 2: Col{1: "a", 2: "INT"}}: col = 0a 01 61 12 03 49 4e 54 (8 bytes).
  EXPECT_EQ(hex(out), hex(bytes({0x0e, 0x0a, 0x0c, 0x08, 0x01, 0x12, 0x08, 0x0a, 0x01, 'a', 0x12,
                                 0x03, 'I', 'N', 'T'})));
  // Step 0 is the proto3 default and omitted; a column name is always written, even empty.
  out.clear();
  append_cursor_entry(StepBeginEntry{0, {{"", std::nullopt}}}, out);
  EXPECT_EQ(hex(out), hex(bytes({0x06, 0x0a, 0x04, 0x12, 0x02, 0x0a, 0x00})));
  out.clear();
  append_cursor_entry(StepEndEntry{2, -1}, out);
  EXPECT_EQ(hex(out), hex(bytes({0x06, 0x12, 0x04, 0x08, 0x02, 0x10, 0x01})));
  out.clear();
  append_cursor_entry(StepEndEntry{0, std::nullopt}, out);
  EXPECT_EQ(hex(out), hex(bytes({0x02, 0x12, 0x00})));
  out.clear();
  append_cursor_entry(StepErrorEntry{3, Error{"m", "", ""}}, out);
  EXPECT_EQ(hex(out), hex(bytes({0x09, 0x1a, 0x07, 0x08, 0x03, 0x12, 0x03, 0x0a, 0x01, 'm'})));
}

TEST(ProtobufCodecTest, PipelineResponseGoldenBytes) {
  PipelineResponse close_only;
  close_only.results.emplace_back(StreamResponse{CloseResp{}});
  // PipelineRespBody{3: StreamResult{1: StreamResponse{1: {}}}}
  EXPECT_EQ(hex(encode_pipeline_response(close_only)),
            hex(bytes({0x1a, 0x04, 0x0a, 0x02, 0x0a, 0x00})));

  PipelineResponse with_error;
  with_error.baton = "b";
  with_error.base_url = "u";
  with_error.results.emplace_back(Error{"m", "c", ""});
  EXPECT_EQ(hex(encode_pipeline_response(with_error)),
            hex(bytes({0x0a, 0x01, 'b', 0x12, 0x01, 'u', 0x1a, 0x08, 0x12, 0x06, 0x0a, 0x01, 'm',
                       0x12, 0x01, 'c'})));

  EXPECT_EQ(encode_pipeline_response(PipelineResponse{}), "");
}

TEST(ProtobufCodecTest, StmtResultGoldenBytes) {
  StmtResult r;
  r.cols = {{"a", "INT"}};
  r.affected_row_count = 1;
  r.last_insert_rowid = -1;
  PipelineResponse p;
  p.results.emplace_back(StreamResponse{ExecuteResp{r}});
  // StmtResult = 0a 08 <col> 18 01 20 01 (14 bytes); ExecuteStreamResp{1: it} (16);
  // StreamResponse{2: ...} (18); StreamResult{1: ...} (20); PipelineRespBody{3: ...}.
  EXPECT_EQ(hex(encode_pipeline_response(p)),
            hex(bytes({0x1a, 0x14, 0x0a, 0x12, 0x12, 0x10, 0x0a, 0x0e, 0x0a, 0x08, 0x0a,
                       0x01, 'a',  0x12, 0x03, 'I',  'N',  'T',  0x18, 0x01, 0x20, 0x01})));

  // A present last_insert_rowid of 0 is written (it is `optional`); an absent one is not.
  StmtResult zero;
  zero.last_insert_rowid = 0;
  PipelineResponse pz;
  pz.results.emplace_back(StreamResponse{ExecuteResp{zero}});
  EXPECT_EQ(hex(encode_pipeline_response(pz)),
            hex(bytes({0x1a, 0x08, 0x0a, 0x06, 0x12, 0x04, 0x0a, 0x02, 0x20, 0x00})));
  PipelineResponse pe;
  pe.results.emplace_back(StreamResponse{ExecuteResp{StmtResult{}}});
  EXPECT_EQ(hex(encode_pipeline_response(pe)),
            hex(bytes({0x1a, 0x06, 0x0a, 0x04, 0x12, 0x02, 0x0a, 0x00})));
}

TEST(ProtobufCodecTest, SqldExtensionFieldsGoldenBytes) {
  StmtResult r;
  r.rows_read = 2;
  r.rows_written = 3;
  r.query_duration_ms = 1.5;
  PipelineResponse p;
  p.results.emplace_back(StreamResponse{ExecuteResp{r}});
  // StmtResult = 30 02 38 03 41 <1.5 LE> (13 bytes); replication_index (5) is never written.
  EXPECT_EQ(hex(encode_pipeline_response(p)),
            hex(bytes({0x1a, 0x13, 0x0a, 0x11, 0x12, 0x0f, 0x0a, 0x0d, 0x30, 0x02, 0x38,
                       0x03, 0x41, 0,    0,    0,    0,    0,    0,    0xf8, 0x3f})));
}

TEST(ProtobufCodecTest, BatchResultGoldenBytes) {
  BatchResult b;
  b.step_results = {StmtResult{}, std::nullopt, std::nullopt};
  b.step_errors = {std::nullopt, Error{"m", "", ""}, std::nullopt};
  PipelineResponse p;
  p.results.emplace_back(StreamResponse{BatchResp{b}});
  // step_results entry {1: 0, 2: {}} = 0a 04 08 00 12 00; step_errors entry {1: 1, 2: {1: "m"}}
  // = 12 07 08 01 12 03 0a 01 6d. Step 2 was skipped: no entry in either map.
  EXPECT_EQ(hex(encode_pipeline_response(p)),
            hex(bytes({0x1a, 0x15, 0x0a, 0x13, 0x1a, 0x11, 0x0a, 0x0f, 0x0a, 0x04, 0x08, 0x00,
                       0x12, 0x00, 0x12, 0x07, 0x08, 0x01, 0x12, 0x03, 0x0a, 0x01, 'm'})));
}

TEST(ProtobufCodecTest, GetAutocommitGoldenBytes) {
  PipelineResponse p;
  p.results.emplace_back(StreamResponse{GetAutocommitResp{true}});
  p.results.emplace_back(StreamResponse{GetAutocommitResp{false}});
  EXPECT_EQ(hex(encode_pipeline_response(p)),
            hex(bytes({0x1a, 0x06, 0x0a, 0x04, 0x42, 0x02, 0x08, 0x01,  // true
                       0x1a, 0x04, 0x0a, 0x02, 0x42, 0x00})));          // false: the default
}

TEST(ProtobufCodecTest, DescribeResultGoldenBytes) {
  DescribeResult d;
  d.params = {{":a"}, {std::nullopt}};
  d.cols = {{"x", std::nullopt}};
  d.is_readonly = true;
  PipelineResponse p;
  p.results.emplace_back(StreamResponse{DescribeResp{d}});
  // params: 0a 04 0a 02 ':' 'a', 0a 00; cols: 12 03 0a 01 'x'; is_readonly: 20 01 (15 bytes).
  EXPECT_EQ(hex(encode_pipeline_response(p)),
            hex(bytes({0x1a, 0x15, 0x0a, 0x13, 0x2a, 0x11, 0x0a, 0x0f, 0x0a, 0x04, 0x0a, 0x02,
                       ':',  'a',  0x0a, 0x00, 0x12, 0x03, 0x0a, 0x01, 'x',  0x20, 0x01})));
}

TEST(ProtobufCodecTest, DecodesHandWrittenExecuteRequest) {
  // PipelineReqBody{1: "x", 2: StreamRequest{2: ExecuteStreamReq{1: Stmt{1: "SELECT 1",
  // 3: Value{2: zigzag 1}, 5: false}}}}
  const std::string body =
      bytes({0x0a, 0x01, 'x', 0x12, 0x14, 0x12, 0x12, 0x0a, 0x10, 0x0a, 0x08, 'S', 'E',
             'L',  'E',  'C', 'T',  ' ',  '1',  0x1a, 0x02, 0x10, 0x01, 0x28, 0x00});
  PipelineRequest p = decode_ok(body);
  ASSERT_EQ(p.requests.size(), 1u);
  EXPECT_EQ(p.baton, "x");
  const auto* e = std::get_if<ExecuteReq>(&p.requests[0]);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->stmt.sql, "SELECT 1");
  EXPECT_FALSE(e->stmt.sql_id);
  ASSERT_EQ(e->stmt.args.size(), 1u);
  EXPECT_EQ(show(e->stmt.args[0]), "int:-1");
  EXPECT_TRUE(e->stmt.named_args.empty());
  EXPECT_FALSE(e->stmt.want_rows);
}

TEST(ProtobufCodecTest, DecodesHandWrittenBatchRequest) {
  // Batch{steps: [{stmt: {sql: "A"}}, {condition: {not: {step_ok: 0}}, stmt: {sql_id: 1}}]}
  const std::string body =
      bytes({0x12, 0x17, 0x1a, 0x15, 0x0a, 0x13, 0x0a, 0x05, 0x12, 0x03, 0x0a, 0x01, 'A',
             0x0a, 0x0a, 0x0a, 0x04, 0x1a, 0x02, 0x08, 0x00, 0x12, 0x02, 0x10, 0x01});
  PipelineRequest p = decode_ok(body);
  EXPECT_FALSE(p.baton);
  ASSERT_EQ(p.requests.size(), 1u);
  const auto* b = std::get_if<BatchReq>(&p.requests[0]);
  ASSERT_NE(b, nullptr);
  ASSERT_EQ(b->batch.steps.size(), 2u);
  EXPECT_FALSE(b->batch.steps[0].condition);
  EXPECT_EQ(b->batch.steps[0].stmt.sql, "A");
  ASSERT_TRUE(b->batch.steps[1].condition);
  EXPECT_EQ(show(*b->batch.steps[1].condition),
            show(node(BatchCond::Kind::kNot, {leaf(BatchCond::Kind::kOk, 0)})));
  EXPECT_EQ(b->batch.steps[1].stmt.sql_id, 1);
  EXPECT_FALSE(b->batch.steps[1].stmt.sql);
  EXPECT_TRUE(b->batch.steps[1].stmt.want_rows);
}

std::string wrap(std::uint32_t field, const std::string& inner) {
  std::string out;
  w::put_tag(out, field, WireType::kLen);
  w::put_varint(out, inner.size());
  return out + inner;
}

// A Batch of `steps` empty steps (two bytes each on the wire).
std::string empty_steps(std::size_t steps) {
  std::string batch;
  for (std::size_t i = 0; i < steps; ++i) batch += bytes({0x0a, 0x00});
  return batch;
}

// A pipeline with one batch request of `steps` empty steps.
std::string batch_of_empty_steps(std::size_t steps) {
  return wrap(2, wrap(3, wrap(1, empty_steps(steps))));  // requests -> batch req -> batch
}

TEST(ProtobufCodecTest, AMessageDecodesIntoNoMoreItemsThanTheLimit) {
  // One request and 99 steps: 100 items.
  EXPECT_TRUE(decode_pipeline_request(batch_of_empty_steps(99), 100));
  auto r = decode_pipeline_request(batch_of_empty_steps(100), 100);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("more than 100 requests, steps, arguments and conditions"),
            std::string::npos)
      << r.error().message;
  // The default budget follows protocol::Limits: a full default batch decodes, and a body of
  // two-byte steps larger than the budget is refused rather than expanded in memory.
  EXPECT_TRUE(decode_pipeline_request(batch_of_empty_steps(10'000)));
  // Limits so large that the budget's sum would overflow mean no budget, not a small one.
  protocol::Limits huge;
  huge.max_batch_steps = SIZE_MAX;
  EXPECT_EQ(huge.max_decoded_items(), SIZE_MAX);
  huge.max_batch_steps = std::size_t{1} << 60;
  EXPECT_EQ(huge.max_decoded_items(), SIZE_MAX);
  const std::size_t budget = protocol::Limits{}.max_decoded_items();
  EXPECT_FALSE(decode_pipeline_request(batch_of_empty_steps(budget)));
  // A cursor request: CursorReqBody.batch, its steps the only items.
  EXPECT_TRUE(decode_cursor_request(wrap(2, empty_steps(50)), 50));
  EXPECT_FALSE(decode_cursor_request(wrap(2, empty_steps(51)), 50));
}

// ================================================================ round trips

TEST(ProtobufCodecTest, EveryRequestKindRoundTrips) {
  const PipelineRequest p = rich_pipeline();
  auto decoded = decode_pipeline_request(RequestEncoder{}.pipeline(p));
  ASSERT_TRUE(decoded.has_value()) << decoded.error().message;
  EXPECT_EQ(show(decoded.value()), show(p));
}

TEST(ProtobufCodecTest, EveryValueKindRoundTripsAsArgument) {
  for (const Value& v : all_values()) {
    PipelineRequest p;
    p.requests.push_back(ExecuteReq{sql_stmt("SELECT ?", {v})});
    auto decoded = decode_pipeline_request(RequestEncoder{}.pipeline(p));
    ASSERT_TRUE(decoded.has_value()) << decoded.error().message;
    EXPECT_EQ(show(decoded.value()), show(p));
  }
}

TEST(ProtobufCodecTest, EmptyBodyIsAnEmptyPipelineWithoutBaton) {
  auto r = decode_pipeline_request("");
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r.value().baton);
  EXPECT_TRUE(r.value().requests.empty());
}

TEST(ProtobufCodecTest, CursorRequestRoundTrips) {
  CursorRequest c;
  c.baton = "cursor-baton";
  c.batch = rich_batch();
  auto decoded = decode_cursor_request(RequestEncoder{}.cursor(c));
  ASSERT_TRUE(decoded.has_value()) << decoded.error().message;
  EXPECT_EQ(show(decoded.value()), show(c));

  auto empty = decode_cursor_request("");
  ASSERT_TRUE(empty.has_value());
  EXPECT_FALSE(empty.value().baton);
  EXPECT_TRUE(empty.value().batch.steps.empty());
}

TEST(ProtobufCodecTest, EveryResponseKindRoundTrips) {
  const PipelineResponse p = rich_pipeline_response();
  EXPECT_EQ(show(dec_pipeline_response(encode_pipeline_response(p))), show(p));
}

TEST(ProtobufCodecTest, EveryValueKindRoundTripsAsResultRow) {
  for (const Value& v : all_values()) {
    StmtResult r;
    r.rows = {{v}, {v, v}};
    PipelineResponse p;
    p.results.emplace_back(StreamResponse{ExecuteResp{r}});
    EXPECT_EQ(show(dec_pipeline_response(encode_pipeline_response(p))), show(p));
  }
}

TEST(ProtobufCodecTest, BatchResultMapsHoldOnlyExecutedSteps) {
  BatchResult b;
  b.step_results = {StmtResult{}, std::nullopt, std::nullopt, std::nullopt};
  b.step_errors = {std::nullopt, Error{"e", "", ""}, std::nullopt, std::nullopt};
  PipelineResponse p;
  p.results.emplace_back(StreamResponse{BatchResp{b}});
  const std::string encoded = encode_pipeline_response(p);
  BatchResult decoded =
      std::get<BatchResp>(std::get<StreamResponse>(dec_pipeline_response(encoded).results.at(0)))
          .result;
  // Skipped steps 2 and 3 left no entries, so the decoded "arrays" stop at the last executed step.
  EXPECT_EQ(decoded.step_results.size(), 1u);
  EXPECT_EQ(decoded.step_errors.size(), 2u);
  EXPECT_EQ(show(decoded), show(b));
}

TEST(ProtobufCodecTest, CursorStreamRoundTrips) {
  const CursorResponseHead head{"baton", "https://example.com"};
  const std::vector<CursorEntry> entries = {
      StepBeginEntry{0, {{"a", "INTEGER"}, {"b", std::nullopt}}},
      RowEntry{all_values()},
      RowEntry{{}},
      StepEndEntry{0, std::nullopt},
      StepBeginEntry{1, {}},
      StepEndEntry{std::numeric_limits<std::uint64_t>::max(),
                   std::numeric_limits<std::int64_t>::min()},
      StepErrorEntry{2, Error{"constraint failed", "SQLITE_CONSTRAINT", "SQLITE_CONSTRAINT_CHECK"}},
      StepErrorEntry{0, Error{}},
      ErrorEntry{Error{"interrupted", "SQLITE_INTERRUPT", ""}},
  };
  std::string out;
  append_cursor_head(head, out);
  for (const auto& e : entries) append_cursor_entry(e, out);

  auto frames = split_frames(out);
  ASSERT_EQ(frames.size(), entries.size() + 1);
  EXPECT_EQ(show(dec_cursor_head(frames[0])), show(head));
  for (std::size_t i = 0; i < entries.size(); ++i) {
    EXPECT_EQ(show(dec_cursor_entry(frames[i + 1])), show(entries[i])) << "entry " << i;
  }
}

TEST(ProtobufCodecTest, AppendingToAStreamKeepsEarlierBytes) {
  std::string out = "already sent";
  append_cursor_entry(RowEntry{{std::string(200, 'q')}}, out);  // multi-byte frame length
  ASSERT_EQ(out.substr(0, 12), "already sent");
  auto frames = split_frames(std::string_view(out).substr(12));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(show(dec_cursor_entry(frames[0])),
            show(CursorEntry{RowEntry{{std::string(200, 'q')}}}));
}

TEST(ProtobufCodecTest, LargeResultsRoundTrip) {
  StmtResult r;
  r.cols = {{"id", "INTEGER"}, {"payload", "BLOB"}};
  for (int i = 0; i < 2000; ++i) {
    r.rows.push_back({std::int64_t{i} * 1000003, Blob(static_cast<std::size_t>(i % 300), 7)});
  }
  r.rows.push_back({std::int64_t{-1}, Blob(3u << 20, 1)});  // a 3 MiB cell
  PipelineResponse p;
  p.results.emplace_back(StreamResponse{ExecuteResp{r}});
  p.results.emplace_back(StreamResponse{ExecuteResp{r}});
  EXPECT_EQ(show(dec_pipeline_response(encode_pipeline_response(p))), show(p));
}

// ================================================================ decoding semantics

TEST(ProtobufCodecTest, WantRowsDefaultsToTrueWhenAbsent) {
  PipelineRequest p = decode_ok(execute_with_stmt(len_field(1, "SELECT 1")));
  EXPECT_TRUE(std::get<ExecuteReq>(p.requests.at(0)).stmt.want_rows);

  p = decode_ok(execute_with_stmt(len_field(1, "SELECT 1") + bytes({0x28, 0x01})));
  EXPECT_TRUE(std::get<ExecuteReq>(p.requests.at(0)).stmt.want_rows);

  p = decode_ok(execute_with_stmt(len_field(1, "SELECT 1") + bytes({0x28, 0x00})));
  EXPECT_FALSE(std::get<ExecuteReq>(p.requests.at(0)).stmt.want_rows);
}

TEST(ProtobufCodecTest, AnyNonZeroBooleanIsTrue) {
  PipelineRequest p = decode_ok(execute_with_stmt(bytes({0x28, 0x02})));
  EXPECT_TRUE(std::get<ExecuteReq>(p.requests.at(0)).stmt.want_rows);
  // 2^63: a ten-byte varint whose low 32 bits are all clear.
  p = decode_ok(
      execute_with_stmt(bytes({0x28, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})));
  EXPECT_TRUE(std::get<ExecuteReq>(p.requests.at(0)).stmt.want_rows);
}

TEST(ProtobufCodecTest, SqlAndSqlIdAreKeptExactlyAsReceived) {
  // Both given, neither given, and an empty sql: "exactly one" is checked by validate().
  PipelineRequest p = decode_ok(execute_with_stmt(len_field(1, "SELECT 1") + bytes({0x10, 0x05})));
  const Stmt& both = std::get<ExecuteReq>(p.requests.at(0)).stmt;
  EXPECT_EQ(both.sql, "SELECT 1");
  EXPECT_EQ(both.sql_id, 5);

  p = decode_ok(execute_with_stmt(""));
  const Stmt& neither = std::get<ExecuteReq>(p.requests.at(0)).stmt;
  EXPECT_FALSE(neither.sql);
  EXPECT_FALSE(neither.sql_id);

  p = decode_ok(execute_with_stmt(bytes({0x0a, 0x00})));
  EXPECT_EQ(std::get<ExecuteReq>(p.requests.at(0)).stmt.sql, "");

  p = decode_ok(pipeline_with(4, ""));
  const auto& seq = std::get<SequenceReq>(p.requests.at(0));
  EXPECT_FALSE(seq.sql);
  EXPECT_FALSE(seq.sql_id);
}

TEST(ProtobufCodecTest, NegativeSqlIdArrivesAsTenByteVarint) {
  // int32 -1 is sent sign-extended: ff ff ff ff ff ff ff ff ff 01.
  PipelineRequest p = decode_ok(
      execute_with_stmt(bytes({0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})));
  EXPECT_EQ(std::get<ExecuteReq>(p.requests.at(0)).stmt.sql_id, -1);
}

TEST(ProtobufCodecTest, NamedArgWithoutValueIsNull) {
  const std::string named = len_field(4, len_field(1, "n"));
  PipelineRequest p = decode_ok(execute_with_stmt(len_field(1, "SELECT :n") + named));
  const Stmt& s = std::get<ExecuteReq>(p.requests.at(0)).stmt;
  ASSERT_EQ(s.named_args.size(), 1u);
  EXPECT_EQ(s.named_args[0].name, "n");
  EXPECT_TRUE(is_null(s.named_args[0].value));
}

TEST(ProtobufCodecTest, LastOccurrenceOfAFieldWins) {
  // sql twice; a Value whose oneof is set to integer and then text; a BatchCond set twice.
  std::string value;
  w::put_sint64_field(value, 2, 5);
  w::put_bytes_field(value, 4, "last");
  PipelineRequest p = decode_ok(
      execute_with_stmt(len_field(1, "first") + len_field(1, "second") + len_field(3, value)));
  const Stmt& s = std::get<ExecuteReq>(p.requests.at(0)).stmt;
  EXPECT_EQ(s.sql, "second");
  ASSERT_EQ(s.args.size(), 1u);
  EXPECT_EQ(show(s.args[0]), "text:\"last\"");

  std::string cond = len_field(3, bytes({0x08, 0x01}));  // not(ok 1)...
  w::put_varint_field(cond, 2, 4);                       // ...then error 4
  p = decode_ok(batch_with_cond(cond));
  const auto& step = std::get<BatchReq>(p.requests.at(0)).batch.steps.at(0);
  EXPECT_EQ(show(*step.condition), show(leaf(BatchCond::Kind::kError, 4)));

  // A request oneof set twice keeps the last kind.
  p = decode_ok(len_field(2, len_field(1, "") + len_field(8, "")));
  EXPECT_TRUE(std::holds_alternative<GetAutocommitReq>(p.requests.at(0)));
}

TEST(ProtobufCodecTest, ReplicationIndexIsIgnored) {
  std::string stmt = len_field(1, "SELECT 1");
  w::put_varint_field(stmt, 6, 99);
  std::string batch = len_field(1, len_field(2, stmt));
  w::put_varint_field(batch, 2, 100);
  PipelineRequest p = decode_ok(pipeline_with(3, len_field(1, batch)));
  EXPECT_EQ(std::get<BatchReq>(p.requests.at(0)).batch.steps.at(0).stmt.sql, "SELECT 1");
}

TEST(ProtobufCodecTest, UnknownFieldsOfEveryWireTypeAreSkipped) {
  // RequestEncoder{true} puts unknown varint, 64-bit, length-delimited and 32-bit fields at the
  // start and end of every message, the top-level bodies included.
  const PipelineRequest p = rich_pipeline();
  auto decoded = decode_pipeline_request(RequestEncoder{true}.pipeline(p));
  ASSERT_TRUE(decoded.has_value()) << decoded.error().message;
  EXPECT_EQ(show(decoded.value()), show(p));

  CursorRequest c{"b", rich_batch()};
  auto cursor = decode_cursor_request(RequestEncoder{true}.cursor(c));
  ASSERT_TRUE(cursor.has_value()) << cursor.error().message;
  EXPECT_EQ(show(cursor.value()), show(c));
}

TEST(ProtobufCodecTest, ConditionsNestUpToSixtyFourLevels) {
  // ok(0) wrapped in not() until the outermost BatchCond is `depth` levels deep.
  auto nested_not = [](int depth) {
    std::string cond = bytes({0x08, 0x00});
    for (int i = 1; i < depth; ++i) cond = len_field(3, cond);
    return cond;
  };
  PipelineRequest p = decode_ok(batch_with_cond(nested_not(64)));
  const BatchCond* c = &*std::get<BatchReq>(p.requests.at(0)).batch.steps.at(0).condition;
  int depth = 1;
  while (c->kind == BatchCond::Kind::kNot) {
    c = &c->conds.at(0);
    ++depth;
  }
  EXPECT_EQ(depth, 64);
  EXPECT_EQ(c->kind, BatchCond::Kind::kOk);

  expect_error(batch_with_cond(nested_not(65)), "nested deeper than 64");
  expect_error(batch_with_cond(nested_not(3000)), "nested deeper than 64");
}

TEST(ProtobufCodecTest, ConditionListsCountTowardsTheNestingLimit) {
  auto nested_and = [](int depth) {
    std::string cond = len_field(6, "");
    for (int i = 1; i < depth; ++i) cond = len_field(4, len_field(1, cond));
    return cond;
  };
  decode_ok(batch_with_cond(nested_and(64)));
  expect_error(batch_with_cond(nested_and(65)), "nested deeper than 64");
}

// ================================================================ malformed input

TEST(ProtobufCodecTest, TruncatedVarintIsAProtocolError) {
  expect_error(bytes({0x80}), "truncated varint in a field key");
  expect_error(execute_with_stmt(bytes({0x10, 0x80})), "field 2: truncated varint");
  expect_error(execute_with_stmt(bytes({0x10})), "truncated varint");
  expect_error(bytes({0x0a, 0x80}), "truncated varint");  // a length
}

TEST(ProtobufCodecTest, OverlongVarintIsAProtocolError) {
  std::string eleven = bytes({0x10});
  eleven.append(10, '\x80');
  eleven.push_back('\x01');
  expect_error(execute_with_stmt(eleven), "varint longer than 10 bytes");

  // Ten bytes whose last one carries more than bit 63.
  std::string overflow = bytes({0x10});
  overflow.append(9, '\xff');
  overflow.push_back('\x02');
  expect_error(execute_with_stmt(overflow), "varint overflows 64 bits");
}

TEST(ProtobufCodecTest, LengthPastTheEndIsAProtocolError) {
  expect_error(bytes({0x12, 0x05, 0x0a}), "field 2: length 5 exceeds the 1 bytes left");
  expect_error(bytes({0x12, 0x02, 0x0a}), "field 2: length 2 exceeds the 1 bytes left");
  expect_error(execute_with_stmt(bytes({0x0a, 0x01})), "length 1 exceeds the 0 bytes left");
  expect_error(execute_with_stmt(bytes({0x0a, 0x05, 'a', 'b'})), "length 5 exceeds");
  // A length near 2^64 must not wrap around a pointer comparison.
  std::string huge = bytes({0x0a});
  huge.append(9, '\xff');
  huge.push_back('\x01');
  expect_error(execute_with_stmt(huge + "abc"), "exceeds");
}

TEST(ProtobufCodecTest, TruncatedFixedWidthValueIsAProtocolError) {
  expect_error(execute_with_stmt(len_field(3, bytes({0x19, 0x00, 0x00}))),
               "truncated 64-bit value");
  expect_error(execute_with_stmt(bytes({0x4d, 0x00})), "truncated 32-bit value");  // unknown 9
  expect_error(bytes({0x49, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}), "truncated 64-bit");
}

TEST(ProtobufCodecTest, GroupsAreAProtocolError) {
  expect_error(execute_with_stmt(bytes({0x4b})), "groups");  // field 9, start group
  expect_error(execute_with_stmt(bytes({0x4c})), "groups");  // field 9, end group
  expect_error(bytes({0x13, 0x14}), "groups");               // field 2 as a group
}

TEST(ProtobufCodecTest, InvalidWireTypeIsAProtocolError) {
  expect_error(bytes({0x4e, 0x00}), "invalid wire type 6");
  expect_error(bytes({0x4f, 0x00}), "invalid wire type 7");
}

TEST(ProtobufCodecTest, InvalidFieldNumberIsAProtocolError) {
  expect_error(bytes({0x00, 0x00}), "invalid field number 0");
  expect_error(bytes({0x02, 0x00}), "invalid field number 0");
  // Key = 2^29 << 3: one past the largest field number.
  std::string key;
  w::put_varint(key, (std::uint64_t{1} << 29) << 3);
  expect_error(key + bytes({0x00}), "invalid field number 536870912");
}

TEST(ProtobufCodecTest, WrongWireTypeForAKnownFieldIsAProtocolError) {
  expect_error(bytes({0x08, 0x01}), "PipelineReqBody.baton must be length-delimited, not varint");
  expect_error(bytes({0x10, 0x01}), "PipelineReqBody.requests must be length-delimited");
  expect_error(len_field(2, bytes({0x10, 0x00})), "StreamRequest must be length-delimited");
  expect_error(execute_with_stmt(bytes({0x08, 0x01})), "Stmt.sql must be length-delimited");
  expect_error(execute_with_stmt(len_field(2, "")), "Stmt.sql_id must be varint");
  expect_error(execute_with_stmt(bytes({0x18, 0x01})), "Stmt.args must be length-delimited");
  expect_error(execute_with_stmt(bytes({0x2a, 0x00})), "Stmt.want_rows must be varint");
  expect_error(execute_with_stmt(len_field(3, bytes({0x12, 0x00}))),
               "Value.integer must be varint, not length-delimited");
  expect_error(execute_with_stmt(len_field(3, bytes({0x18, 0x00}))),
               "Value.float must be 64-bit, not varint");
  expect_error(execute_with_stmt(len_field(3, bytes({0x25, 0, 0, 0, 0}))),
               "Value.text must be length-delimited, not 32-bit");
  expect_error(execute_with_stmt(len_field(3, bytes({0x08, 0x00}))), "Value.null");
  expect_error(batch_with_cond(bytes({0x0a, 0x00})), "BatchCond.step_ok must be varint");
  expect_error(batch_with_cond(bytes({0x18, 0x00})), "BatchCond.not must be length-delimited");
  expect_error(batch_with_cond(bytes({0x30, 0x01})), "BatchCond.is_autocommit");
  expect_error(pipeline_with(6, bytes({0x0a, 0x00})), "StoreSqlStreamReq.sql_id must be varint");
  expect_error(pipeline_with(4, bytes({0x08, 0x00})), "SequenceStreamReq.sql must be");
  expect_error(pipeline_with(5, bytes({0x12, 0x00})), "DescribeStreamReq.sql_id must be");
  std::string cursor_bad_batch = bytes({0x10, 0x00});
  auto r = decode_cursor_request(cursor_bad_batch);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("CursorReqBody.batch"), std::string::npos);
}

TEST(ProtobufCodecTest, InvalidUtf8InStringsIsAProtocolError) {
  expect_error(execute_with_stmt(len_field(1, "SELECT '\xff'")), "Stmt.sql is not valid UTF-8");
  expect_error(execute_with_stmt(len_field(3, len_field(4, "\xc0\x80"))),
               "Value.text is not valid UTF-8");
  expect_error(execute_with_stmt(len_field(3, len_field(4, "\xed\xa0\x80"))),
               "Value.text is not valid UTF-8");
  expect_error(execute_with_stmt(len_field(4, len_field(1, "\xe2\x82"))),
               "NamedArg.name is not valid UTF-8");
  expect_error(len_field(1, "\x80"), "PipelineReqBody.baton is not valid UTF-8");
  expect_error(pipeline_with(6, len_field(2, "\xf4\x90\x80\x80")),
               "StoreSqlStreamReq.sql is not valid UTF-8");
  expect_error(pipeline_with(4, len_field(1, "\xfe")), "SequenceStreamReq.sql is not valid");
  // Blobs are bytes: anything goes.
  PipelineRequest p = decode_ok(execute_with_stmt(len_field(3, len_field(5, "\xff\xfe"))));
  EXPECT_EQ(show(std::get<ExecuteReq>(p.requests.at(0)).stmt.args.at(0)), "blob:ff fe ");
}

TEST(ProtobufCodecTest, ValueWithoutKnownTypeIsAProtocolError) {
  expect_error(execute_with_stmt(len_field(3, "")), "Value has no known type");
  std::string unknown_only;
  w::put_varint_field(unknown_only, 6, 1);
  expect_error(execute_with_stmt(len_field(3, unknown_only)), "Value has no known type");
  expect_error(execute_with_stmt(len_field(4, len_field(1, "n") + len_field(2, ""))),
               "Value has no known type");
}

TEST(ProtobufCodecTest, ConditionWithoutKnownKindIsAProtocolError) {
  expect_error(batch_with_cond(""), "BatchCond has no known condition");
  expect_error(batch_with_cond(len_field(3, "")), "BatchCond has no known condition");
  expect_error(batch_with_cond(len_field(4, len_field(1, ""))), "BatchCond has no known condition");
}

TEST(ProtobufCodecTest, RequestWithoutKnownKindIsAProtocolError) {
  expect_error(len_field(2, ""), "StreamRequest has no known request type");
  expect_error(pipeline_with(9, ""), "StreamRequest has no known request type");  // a future kind
}

TEST(ProtobufCodecTest, GarbageInsideEmptyMessagesIsAProtocolError) {
  expect_error(pipeline_with(1, bytes({0xff})), "malformed StreamRequest.close");
  expect_error(pipeline_with(8, bytes({0x0a, 0x09})), "malformed StreamRequest.get_autocommit");
  expect_error(execute_with_stmt(len_field(3, len_field(1, bytes({0x07})))), "Value.null");
  // Well-formed unknown fields inside them are fine.
  decode_ok(pipeline_with(1, bytes({0x08, 0x01})));
}

TEST(ProtobufCodecTest, ErrorsComeFromTheInnermostMessage) {
  auto r = decode_pipeline_request(execute_with_stmt(len_field(3, bytes({0x10, 0x80}))));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message,
            "Invalid protobuf request: malformed Value: field 2: truncated varint");
}

TEST(ProtobufCodecTest, CursorRequestErrorsAreProtocolErrors) {
  const std::string body = RequestEncoder{}.cursor(CursorRequest{"b", rich_batch()});
  for (std::size_t cut = 1; cut < body.size(); ++cut) {
    auto r = decode_cursor_request(std::string_view(body).substr(0, cut));
    if (!r.has_value()) {
      EXPECT_NE(r.error().message.find("Invalid protobuf request"), std::string::npos);
    }
  }
  EXPECT_FALSE(decode_cursor_request(body.substr(0, body.size() - 1)).has_value());
}

// Every proper prefix of a valid body either fails or decodes to something shorter; a cut inside
// a length-delimited field must fail.
TEST(ProtobufCodecTest, TruncatedBodiesNeverDecodeToTheOriginal) {
  const PipelineRequest p = rich_pipeline();
  const std::string body = RequestEncoder{}.pipeline(p);
  const std::string full = show(p);
  for (std::size_t cut = 0; cut < body.size(); ++cut) {
    auto r = decode_pipeline_request(std::string_view(body).substr(0, cut));
    if (r.has_value()) {
      EXPECT_NE(show(r.value()), full) << "cut at " << cut;
    }
  }
}

// Random mutations of valid encodings must never crash or read out of bounds (run under ASan
// and UBSan); each may decode or fail.
TEST(ProtobufCodecTest, MutatedInputNeverCrashes) {
  const std::vector<std::string> seeds = {
      RequestEncoder{}.pipeline(rich_pipeline()),
      RequestEncoder{true}.pipeline(rich_pipeline()),
      RequestEncoder{}.cursor(CursorRequest{"b", rich_batch()}),
      execute_with_stmt(len_field(1, "SELECT 1")),
      batch_with_cond(len_field(4, len_field(1, len_field(3, bytes({0x08, 0x00}))))),
  };
  std::mt19937_64 rng(20240607);
  auto pick = [&rng](std::size_t n) { return n == 0 ? 0 : static_cast<std::size_t>(rng() % n); };
  int ok = 0, failed = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string data = seeds[pick(seeds.size())];
    const int mutations = 1 + static_cast<int>(pick(4));
    for (int m = 0; m < mutations; ++m) {
      switch (pick(6)) {
        case 0:  // flip a bit
          if (!data.empty()) data[pick(data.size())] ^= static_cast<char>(1u << pick(8));
          break;
        case 1:  // overwrite a byte
          if (!data.empty()) data[pick(data.size())] = static_cast<char>(rng());
          break;
        case 2:  // insert a byte
          data.insert(data.begin() + static_cast<std::ptrdiff_t>(pick(data.size() + 1)),
                      static_cast<char>(rng()));
          break;
        case 3:  // delete a byte
          if (!data.empty()) data.erase(pick(data.size()), 1);
          break;
        case 4:  // truncate
          data.resize(pick(data.size() + 1));
          break;
        default: {  // duplicate a slice
          const std::size_t from = pick(data.size() + 1);
          const std::size_t n = pick(data.size() - from + 1);
          data.insert(pick(data.size() + 1), data.substr(from, n));
        }
      }
    }
    // Exact-size heap copies so ASan sees any read past the end.
    auto copy = std::make_unique<char[]>(data.size());
    std::copy(data.begin(), data.end(), copy.get());
    const std::string_view view(copy.get(), data.size());
    auto p = decode_pipeline_request(view);
    auto c = decode_cursor_request(view);
    (p.has_value() ? ok : failed)++;
    (c.has_value() ? ok : failed)++;
    if (!p.has_value()) {
      EXPECT_FALSE(p.error().message.empty());
    }
  }
  // Both outcomes happen, or the mutations are not exercising anything.
  EXPECT_GT(ok, 1000);
  EXPECT_GT(failed, 1000);
}

TEST(ProtobufCodecTest, RandomBytesNeverCrash) {
  std::mt19937_64 rng(7);
  for (int iter = 0; iter < 20000; ++iter) {
    const std::size_t n = static_cast<std::size_t>(rng() % 64);
    auto data = std::make_unique<char[]>(n);
    for (std::size_t i = 0; i < n; ++i) data[i] = static_cast<char>(rng());
    decode_pipeline_request(std::string_view(data.get(), n));
    decode_cursor_request(std::string_view(data.get(), n));
  }
}

}  // namespace
}  // namespace quire::hrana::protobuf
