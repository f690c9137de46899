// Protobuf codec for proxy.Proxy (write forwarding): see codec.h.
#include "protocol/replication/codec.h"
#include "protocol/replication/proto_detail.h"
#include "protocol/replication/value_codec.h"

namespace quire::replication {

using detail::Decoder;
using detail::wire::Field;
using detail::wire::Reader;
namespace wire = detail::wire;

namespace {

constexpr auto kLen = wire::WireType::kLen;

// ---------------------------------------------------------------- writing

void write_value(std::string& out, std::uint32_t field, const Value& v) {
  // Value { bytes data = 1 }: tag + length + bincode. The bincode is never empty (4-byte tag),
  // so field 1 is always written.
  std::string data = encode_bincode_value(v);
  const std::size_t body = wire::begin_message(out, field);
  wire::put_bytes_field(out, 1, data);
  wire::end_message(out, body);
}

void write_query(std::string& out, const Query& q) {
  detail::put_string(out, 1, q.stmt);
  if (const auto* p = std::get_if<Positional>(&q.params)) {
    const std::size_t body = wire::begin_message(out, 2);
    for (const Value& v : p->values) write_value(out, 1, v);
    wire::end_message(out, body);
  } else if (const auto* n = std::get_if<Named>(&q.params)) {
    const std::size_t body = wire::begin_message(out, 3);
    for (const std::string& name : n->names) wire::put_bytes_field(out, 1, name);
    for (const Value& v : n->values) write_value(out, 2, v);
    wire::end_message(out, body);
  }
  detail::put_bool(out, 4, q.skip_rows);
}

void write_cond(std::string& out, const Cond& c) {
  using K = Cond::Kind;
  auto sub = [&](std::uint32_t field, auto&& fill) {
    const std::size_t body = wire::begin_message(out, field);
    fill();
    wire::end_message(out, body);
  };
  auto write_conds = [&](std::uint32_t field) {
    sub(field, [&] {
      for (const Cond& inner : c.conds) {
        const std::size_t body = wire::begin_message(out, 1);
        write_cond(out, inner);
        wire::end_message(out, body);
      }
    });
  };
  switch (c.kind) {
    case K::kNone:
      return;
    case K::kOk:
      return sub(1, [&] { detail::put_i64(out, 1, c.step); });
    case K::kErr:
      return sub(2, [&] { detail::put_i64(out, 1, c.step); });
    case K::kNot:
      return sub(3, [&] {
        if (c.conds.empty()) return;
        const std::size_t body = wire::begin_message(out, 1);
        write_cond(out, c.conds.front());
        wire::end_message(out, body);
      });
    case K::kAnd:
      return write_conds(4);
    case K::kOr:
      return write_conds(5);
    case K::kIsAutocommit:
      return sub(6, [] {});
  }
}

void write_error(std::string& out, std::uint32_t field, const ProxyError& e) {
  const std::size_t body = wire::begin_message(out, field);
  detail::put_i32(out, 1, static_cast<std::int32_t>(e.code));
  detail::put_string(out, 2, e.message);
  detail::put_i32(out, 3, e.extended_code);
  wire::end_message(out, body);
}

void write_column(std::string& out, std::uint32_t field, const Column& c) {
  const std::size_t body = wire::begin_message(out, field);
  detail::put_string(out, 1, c.name);
  if (c.decl_type) wire::put_bytes_field(out, 3, *c.decl_type);
  wire::end_message(out, body);
}

void write_result_rows(std::string& out, const ResultRows& rows) {
  for (const Column& c : rows.column_descriptions) write_column(out, 1, c);
  for (const Row& row : rows.rows) {
    const std::size_t body = wire::begin_message(out, 2);
    for (const Value& v : row.values) write_value(out, 1, v);
    wire::end_message(out, body);
  }
  detail::put_u64(out, 3, rows.affected_row_count);
  if (rows.last_insert_rowid) {
    wire::put_varint_field(out, 4, static_cast<std::uint64_t>(*rows.last_insert_rowid));
  }
}

// ---------------------------------------------------------------- reading

bool read_value(Decoder& d, std::string_view in, Value& out, std::string_view where) {
  Reader r(in);
  Field f;
  std::string_view data;
  while (r.next(f)) {
    if (f.number != 1) continue;
    if (!d.expect(f, kLen, where)) return false;
    data = f.bytes;
  }
  if (!d.finish(r, where)) return false;
  // An absent data field is an empty bincode input, which is not a value.
  auto v = decode_bincode_value(data);
  if (!v) return d.fail(where, v.error().message);
  out = std::move(v).value();
  return true;
}

bool read_values_field(Decoder& d, const Field& f, std::vector<Value>& out,
                       std::string_view where) {
  if (!d.expect(f, kLen, where) || !d.take_item(where)) return false;
  return read_value(d, f.bytes, out.emplace_back(), where);
}

bool read_positional(Decoder& d, std::string_view in, Positional& m) {
  Reader r(in);
  Field f;
  while (r.next(f)) {
    if (f.number == 1 && !read_values_field(d, f, m.values, "Positional.values")) return false;
  }
  return d.finish(r, "Positional");
}

bool read_named(Decoder& d, std::string_view in, Named& m) {
  Reader r(in);
  Field f;
  while (r.next(f)) {
    bool ok = true;
    if (f.number == 1) {
      ok = d.take_item("Named.names") && d.get_string(f, m.names.emplace_back(), "Named.names");
    } else if (f.number == 2) {
      ok = read_values_field(d, f, m.values, "Named.values");
    }
    if (!ok) return false;
  }
  return d.finish(r, "Named");
}

bool read_query(Decoder& d, std::string_view in, Query& m) {
  Reader r(in);
  Field f;
  while (r.next(f)) {
    bool ok = true;
    switch (f.number) {
      case 1:
        ok = d.get_string(f, m.stmt, "Query.stmt");
        break;
      case 2:
        // oneof Params: a later member replaces an earlier one; the same member merges.
        ok = d.expect(f, kLen, "Query.positional");
        if (ok) {
          if (!std::holds_alternative<Positional>(m.params)) m.params = Positional{};
          ok = read_positional(d, f.bytes, std::get<Positional>(m.params));
        }
        break;
      case 3:
        ok = d.expect(f, kLen, "Query.named");
        if (ok) {
          if (!std::holds_alternative<Named>(m.params)) m.params = Named{};
          ok = read_named(d, f.bytes, std::get<Named>(m.params));
        }
        break;
      case 4:
        ok = d.get_bool(f, m.skip_rows, "Query.skip_rows");
        break;
      default:
        break;
    }
    if (!ok) return false;
  }
  return d.finish(r, "Query");
}

bool read_cond(Decoder& d, std::string_view in, Cond& m, int depth);

// Reads the body of OkCond/ErrCond: { int64 step = 1 }.
bool read_step_cond(Decoder& d, std::string_view in, Cond& m, Cond::Kind kind) {
  m = Cond{};
  m.kind = kind;
  Reader r(in);
  Field f;
  while (r.next(f)) {
    if (f.number == 1 && !d.get_i64(f, m.step, "Cond.step")) return false;
  }
  return d.finish(r, "Cond");
}

// Reads NotCond { Cond cond = 1 } (single) or And/OrCond { repeated Cond conds = 1 }.
bool read_nested_conds(Decoder& d, std::string_view in, Cond& m, Cond::Kind kind, int depth) {
  if (m.kind != kind) {
    m = Cond{};
    m.kind = kind;
  }
  Reader r(in);
  Field f;
  while (r.next(f)) {
    if (f.number != 1) continue;
    if (!d.expect(f, kLen, "Cond.conds")) return false;
    if (kind == Cond::Kind::kNot) {
      // A repeated singular message merges into the first.
      if (m.conds.empty()) m.conds.emplace_back();
      if (!read_cond(d, f.bytes, m.conds.front(), depth + 1)) return false;
    } else {
      if (!d.take_item("Cond.conds")) return false;
      if (!read_cond(d, f.bytes, m.conds.emplace_back(), depth + 1)) return false;
    }
  }
  return d.finish(r, "Cond");
}

bool read_cond(Decoder& d, std::string_view in, Cond& m, int depth) {
  if (depth > kMaxCondDepth) {
    return d.fail("Cond", "nested deeper than " + std::to_string(kMaxCondDepth));
  }
  Reader r(in);
  Field f;
  while (r.next(f)) {
    bool ok = true;
    if (f.number >= 1 && f.number <= 6) ok = d.expect(f, kLen, "Cond");
    if (!ok) return false;
    switch (f.number) {
      case 1:
        ok = read_step_cond(d, f.bytes, m, Cond::Kind::kOk);
        break;
      case 2:
        ok = read_step_cond(d, f.bytes, m, Cond::Kind::kErr);
        break;
      case 3:
        ok = read_nested_conds(d, f.bytes, m, Cond::Kind::kNot, depth);
        break;
      case 4:
        ok = read_nested_conds(d, f.bytes, m, Cond::Kind::kAnd, depth);
        break;
      case 5:
        ok = read_nested_conds(d, f.bytes, m, Cond::Kind::kOr, depth);
        break;
      case 6: {
        m = Cond{};
        m.kind = Cond::Kind::kIsAutocommit;
        Reader empty(f.bytes);  // IsAutocommitCond has no fields; still check it parses
        Field ignored;
        while (empty.next(ignored)) {
        }
        ok = d.finish(empty, "IsAutocommitCond");
        break;
      }
      default:
        break;
    }
    if (!ok) return false;
  }
  return d.finish(r, "Cond");
}

bool read_step(Decoder& d, std::string_view in, Step& m) {
  Reader r(in);
  Field f;
  while (r.next(f)) {
    bool ok = true;
    if (f.number == 1) {
      ok = d.expect(f, kLen, "Step.cond");
      if (ok) {
        if (!m.cond) m.cond.emplace();
        ok = read_cond(d, f.bytes, *m.cond, 1);
      }
    } else if (f.number == 2) {
      ok = d.expect(f, kLen, "Step.query") && read_query(d, f.bytes, m.query);
    }
    if (!ok) return false;
  }
  return d.finish(r, "Step");
}

bool read_program(Decoder& d, std::string_view in, Program& m) {
  Reader r(in);
  Field f;
  while (r.next(f)) {
    if (f.number != 1) continue;
    if (!d.expect(f, kLen, "Program.steps") || !d.take_item("Program.steps")) return false;
    if (!read_step(d, f.bytes, m.steps.emplace_back())) return false;
  }
  return d.finish(r, "Program");
}

bool read_program_req(Decoder& d, std::string_view in, ProgramReq& m) {
  Reader r(in);
  Field f;
  while (r.next(f)) {
    bool ok = true;
    if (f.number == 1) {
      ok = d.get_string(f, m.client_id, "ProgramReq.client_id");
    } else if (f.number == 2) {
      ok = d.expect(f, kLen, "ProgramReq.pgm") && read_program(d, f.bytes, m.pgm);
    }
    if (!ok) return false;
  }
  return d.finish(r, "ProgramReq");
}

bool read_error(Decoder& d, std::string_view in, ProxyError& m) {
  Reader r(in);
  Field f;
  while (r.next(f)) {
    bool ok = true;
    if (f.number == 1) {
      ok = d.get_enum(f, m.code, "Error.code");
    } else if (f.number == 2) {
      ok = d.get_string(f, m.message, "Error.message");
    } else if (f.number == 3) {
      ok = d.get_i32(f, m.extended_code, "Error.extended_code");
    }
    if (!ok) return false;
  }
  return d.finish(r, "Error");
}

bool read_column(Decoder& d, std::string_view in, Column& m) {
  Reader r(in);
  Field f;
  while (r.next(f)) {
    bool ok = true;
    if (f.number == 1) {
      ok = d.get_string(f, m.name, "Column.name");
    } else if (f.number == 3) {
      std::string decl;
      ok = d.get_string(f, decl, "Column.decltype");
      if (ok) m.decl_type = std::move(decl);
    }
    if (!ok) return false;
  }
  return d.finish(r, "Column");
}

bool read_row(Decoder& d, std::string_view in, Row& m) {
  Reader r(in);
  Field f;
  while (r.next(f)) {
    if (f.number == 1 && !read_values_field(d, f, m.values, "Row.values")) return false;
  }
  return d.finish(r, "Row");
}

bool read_result_rows(Decoder& d, std::string_view in, ResultRows& m) {
  Reader r(in);
  Field f;
  while (r.next(f)) {
    bool ok = true;
    switch (f.number) {
      case 1:
        ok = d.expect(f, kLen, "ResultRows.column_descriptions") &&
             read_column(d, f.bytes, m.column_descriptions.emplace_back());
        break;
      case 2:
        ok = d.expect(f, kLen, "ResultRows.rows") && read_row(d, f.bytes, m.rows.emplace_back());
        break;
      case 3:
        ok = d.get_u64(f, m.affected_row_count, "ResultRows.affected_row_count");
        break;
      case 4: {
        std::int64_t rowid = 0;
        ok = d.get_i64(f, rowid, "ResultRows.last_insert_rowid");
        if (ok) m.last_insert_rowid = rowid;
        break;
      }
      default:
        break;
    }
    if (!ok) return false;
  }
  return d.finish(r, "ResultRows");
}

// oneof { Error error = 1; <T> other = 2 } as in QueryResult and DescribeResult.
template <class T, class ReadT>
bool read_error_or(Decoder& d, std::string_view in, std::variant<std::monostate, ProxyError, T>& m,
                   std::string_view where, ReadT read_t) {
  Reader r(in);
  Field f;
  while (r.next(f)) {
    bool ok = true;
    if (f.number == 1) {
      ok = d.expect(f, kLen, where);
      if (ok) {
        if (!std::holds_alternative<ProxyError>(m)) m = ProxyError{};
        ok = read_error(d, f.bytes, std::get<ProxyError>(m));
      }
    } else if (f.number == 2) {
      ok = d.expect(f, kLen, where);
      if (ok) {
        if (!std::holds_alternative<T>(m)) m = T{};
        ok = read_t(d, f.bytes, std::get<T>(m));
      }
    }
    if (!ok) return false;
  }
  return d.finish(r, where);
}

bool read_execute_results(Decoder& d, std::string_view in, ExecuteResults& m) {
  Reader r(in);
  Field f;
  while (r.next(f)) {
    bool ok = true;
    if (f.number == 1) {
      ok = d.expect(f, kLen, "ExecuteResults.results") &&
           read_error_or<ResultRows>(d, f.bytes, m.results.emplace_back().result, "QueryResult",
                                     read_result_rows);
    } else if (f.number == 2) {
      ok = d.get_enum(f, m.state, "ExecuteResults.state");
    } else if (f.number == 3) {
      std::uint64_t frame_no = 0;
      ok = d.get_u64(f, frame_no, "ExecuteResults.current_frame_no");
      if (ok) m.current_frame_no = frame_no;
    }
    if (!ok) return false;
  }
  return d.finish(r, "ExecuteResults");
}

bool read_describe_request(Decoder& d, std::string_view in, DescribeRequest& m) {
  Reader r(in);
  Field f;
  while (r.next(f)) {
    bool ok = true;
    if (f.number == 1) {
      ok = d.get_string(f, m.client_id, "DescribeRequest.client_id");
    } else if (f.number == 2) {
      ok = d.get_string(f, m.stmt, "DescribeRequest.stmt");
    }
    if (!ok) return false;
  }
  return d.finish(r, "DescribeRequest");
}

bool read_description(Decoder& d, std::string_view in, Description& m) {
  Reader r(in);
  Field f;
  while (r.next(f)) {
    bool ok = true;
    if (f.number == 1) {
      ok = d.expect(f, kLen, "Description.column_descriptions") &&
           read_column(d, f.bytes, m.column_descriptions.emplace_back());
    } else if (f.number == 2) {
      ok = d.get_string(f, m.param_names.emplace_back(), "Description.param_names");
    } else if (f.number == 3) {
      ok = d.get_u64(f, m.param_count, "Description.param_count");
    }
    if (!ok) return false;
  }
  return d.finish(r, "Description");
}

bool read_disconnect(Decoder& d, std::string_view in, DisconnectMessage& m) {
  Reader r(in);
  Field f;
  while (r.next(f)) {
    if (f.number == 1 && !d.get_string(f, m.client_id, "DisconnectMessage.client_id")) {
      return false;
    }
  }
  return d.finish(r, "DisconnectMessage");
}

bool read_ack(Decoder& d, std::string_view in, Ack&) {
  Reader r(in);
  Field f;
  while (r.next(f)) {
  }
  return d.finish(r, "Ack");
}

}  // namespace

std::string encode_program_req(const ProgramReq& m) {
  std::string out;
  detail::put_string(out, 1, m.client_id);
  const std::size_t pgm = wire::begin_message(out, 2);
  for (const Step& s : m.pgm.steps) {
    const std::size_t step = wire::begin_message(out, 1);
    if (s.cond) {
      const std::size_t cond = wire::begin_message(out, 1);
      write_cond(out, *s.cond);
      wire::end_message(out, cond);
    }
    const std::size_t query = wire::begin_message(out, 2);
    write_query(out, s.query);
    wire::end_message(out, query);
    wire::end_message(out, step);
  }
  wire::end_message(out, pgm);
  return out;
}

Decoded<ProgramReq> decode_program_req(std::string_view bytes, std::size_t max_items) {
  detail::Decoder d;
  d.limit_items(max_items);
  ProgramReq m{};
  if (!read_program_req(d, bytes, m)) return unexpected(d.error());
  return m;
}

std::string encode_execute_results(const ExecuteResults& m) {
  std::string out;
  for (const QueryResult& qr : m.results) {
    const std::size_t body = wire::begin_message(out, 1);
    if (const auto* e = std::get_if<ProxyError>(&qr.result)) {
      write_error(out, 1, *e);
    } else if (const auto* rows = std::get_if<ResultRows>(&qr.result)) {
      const std::size_t rb = wire::begin_message(out, 2);
      write_result_rows(out, *rows);
      wire::end_message(out, rb);
    }
    wire::end_message(out, body);
  }
  detail::put_i32(out, 2, static_cast<std::int32_t>(m.state));
  if (m.current_frame_no) wire::put_varint_field(out, 3, *m.current_frame_no);
  return out;
}

Decoded<ExecuteResults> decode_execute_results(std::string_view bytes) {
  return detail::run_decoder<ExecuteResults>(bytes, read_execute_results);
}

std::string encode_describe_request(const DescribeRequest& m) {
  std::string out;
  detail::put_string(out, 1, m.client_id);
  detail::put_string(out, 2, m.stmt);
  return out;
}

Decoded<DescribeRequest> decode_describe_request(std::string_view bytes) {
  return detail::run_decoder<DescribeRequest>(bytes, read_describe_request);
}

std::string encode_describe_result(const DescribeResult& m) {
  std::string out;
  if (const auto* e = std::get_if<ProxyError>(&m.result)) {
    write_error(out, 1, *e);
  } else if (const auto* desc = std::get_if<Description>(&m.result)) {
    const std::size_t body = wire::begin_message(out, 2);
    for (const Column& c : desc->column_descriptions) write_column(out, 1, c);
    // Repeated strings are written even when empty: "" is a meaningful placeholder here.
    for (const std::string& name : desc->param_names) wire::put_bytes_field(out, 2, name);
    detail::put_u64(out, 3, desc->param_count);
    wire::end_message(out, body);
  }
  return out;
}

Decoded<DescribeResult> decode_describe_result(std::string_view bytes) {
  return detail::run_decoder<DescribeResult>(
      bytes, [](Decoder& d, std::string_view in, DescribeResult& m) {
        return read_error_or<Description>(d, in, m.result, "DescribeResult", read_description);
      });
}

std::string encode_disconnect_message(const DisconnectMessage& m) {
  std::string out;
  detail::put_string(out, 1, m.client_id);
  return out;
}

Decoded<DisconnectMessage> decode_disconnect_message(std::string_view bytes) {
  return detail::run_decoder<DisconnectMessage>(bytes, read_disconnect);
}

std::string encode_ack(const Ack&) { return {}; }

Decoded<Ack> decode_ack(std::string_view bytes) {
  return detail::run_decoder<Ack>(bytes, read_ack);
}

std::vector<std::string> client_param_names(const std::vector<std::optional<std::string>>& names) {
  std::vector<std::string> out;
  out.reserve(names.size() + 1);
  out.emplace_back();  // index 0: never asked for (parameters are 1-based)
  for (const auto& n : names) out.push_back(n.value_or(std::string{}));
  return out;
}

}  // namespace quire::replication
