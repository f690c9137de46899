// Hrana's protobuf encoding (HTTP /v3-protobuf): decodes request bodies into model.h types and
// encodes responses, straight on the wire format (protobuf_wire.h). Field numbers follow the
// Hrana 3 spec plus sqld's extensions; see ../shared/specs/hrana.md section 4. The pieces that
// WebSocket messages share (Stmt, Batch, results...) are declared in protobuf_detail.h and
// defined here.
#include <bit>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "protocol/hrana/codec.h"
#include "protocol/hrana/protobuf_detail.h"
#include "protocol/hrana/protobuf_wire.h"

namespace quire::hrana::protobuf {

// ---------------------------------------------------------------- shared encoders

namespace detail {

using wire::WireType;

// Values are most of a response and their size is known up front, so they skip the
// placeholder-and-patch of wire::begin_message.
void put_value(std::string& out, std::uint32_t field, const Value& v) {
  wire::put_tag(out, field, WireType::kLen);
  switch (v.index()) {
    case 0:
      out.append("\x02\x0a\x00", 3);  // 2 bytes: field 1, empty Null message
      return;
    case 1: {
      const std::uint64_t z = wire::zigzag_encode(std::get<std::int64_t>(v));
      wire::put_varint(out, 1 + wire::varint_size(z));
      wire::put_varint_field(out, 2, z);
      return;
    }
    case 2:
      out.push_back(9);
      wire::put_double_field(out, 3, std::get<double>(v));
      return;
    case 3: {
      const auto& s = std::get<std::string>(v);
      wire::put_varint(out, 1 + wire::varint_size(s.size()) + s.size());
      wire::put_bytes_field(out, 4, s);
      return;
    }
    default: {
      const auto& b = std::get<Blob>(v);
      wire::put_varint(out, 1 + wire::varint_size(b.size()) + b.size());
      wire::put_bytes_field(out, 5, b.data(), b.size());
      return;
    }
  }
}

void put_row(std::string& out, std::uint32_t field, const std::vector<Value>& row) {
  const auto m = wire::begin_message(out, field);
  for (const Value& v : row) put_value(out, 1, v);
  wire::end_message(out, m);
}

// Col (StmtResult, StepBeginEntry) and DescribeCol share this shape. A column always has a name,
// so it is written even when empty.
void put_col(std::string& out, std::uint32_t field, const Column& c) {
  const auto m = wire::begin_message(out, field);
  wire::put_bytes_field(out, 1, c.name);
  if (c.decltype_) wire::put_bytes_field(out, 2, *c.decltype_);
  wire::end_message(out, m);
}

void put_stmt_result_body(std::string& out, const StmtResult& r) {
  for (const Column& c : r.cols) put_col(out, 1, c);
  for (const auto& row : r.rows) put_row(out, 2, row);
  if (r.affected_row_count != 0) wire::put_varint_field(out, 3, r.affected_row_count);
  if (r.last_insert_rowid) wire::put_sint64_field(out, 4, *r.last_insert_rowid);
  if (r.rows_read != 0) wire::put_varint_field(out, 6, r.rows_read);
  if (r.rows_written != 0) wire::put_varint_field(out, 7, r.rows_written);
  // Bit test rather than != 0: proto3 drops only +0.0, so -0.0 would still be written.
  if (std::bit_cast<std::uint64_t>(r.query_duration_ms) != 0) {
    wire::put_double_field(out, 8, r.query_duration_ms);
  }
}

void put_stmt_result(std::string& out, std::uint32_t field, const StmtResult& r) {
  const auto m = wire::begin_message(out, field);
  put_stmt_result_body(out, r);
  wire::end_message(out, m);
}

void put_error_body(std::string& out, const Error& e) {
  if (!e.message.empty()) wire::put_bytes_field(out, 1, e.message);
  if (!e.code.empty()) wire::put_bytes_field(out, 2, e.code);
  if (!e.extended_code.empty()) wire::put_bytes_field(out, 3, e.extended_code);
}

void put_error(std::string& out, std::uint32_t field, const Error& e) {
  const auto m = wire::begin_message(out, field);
  put_error_body(out, e);
  wire::end_message(out, m);
}

namespace {

// map<uint32, M> entries, one per executed step. Key and value are always written, as sqld does.
template <class M, class PutValue>
void put_step_map(std::string& out, std::uint32_t field, const std::vector<std::optional<M>>& steps,
                  PutValue put_value_field) {
  for (std::size_t i = 0; i < steps.size(); ++i) {
    if (!steps[i]) continue;
    const auto m = wire::begin_message(out, field);
    wire::put_varint_field(out, 1, static_cast<std::uint32_t>(i));
    put_value_field(out, 2, *steps[i]);
    wire::end_message(out, m);
  }
}

}  // namespace

void put_batch_result(std::string& out, std::uint32_t field, const BatchResult& r) {
  const auto m = wire::begin_message(out, field);
  put_step_map(out, 1, r.step_results, put_stmt_result);
  put_step_map(out, 2, r.step_errors, put_error);
  wire::end_message(out, m);
}

void put_describe_result(std::string& out, std::uint32_t field, const DescribeResult& r) {
  const auto m = wire::begin_message(out, field);
  for (const auto& p : r.params) {
    const auto pm = wire::begin_message(out, 1);
    if (p.name) wire::put_bytes_field(out, 1, *p.name);
    wire::end_message(out, pm);
  }
  for (const Column& c : r.cols) put_col(out, 2, c);
  if (r.is_explain) wire::put_bool_field(out, 3, true);
  if (r.is_readonly) wire::put_bool_field(out, 4, true);
  wire::end_message(out, m);
}

void put_cursor_entry_body(std::string& out, const CursorEntry& entry) {
  std::visit(
      [&out](const auto& e) {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, StepBeginEntry>) {
          const auto m = wire::begin_message(out, 1);
          if (e.step != 0) wire::put_varint_field(out, 1, e.step);
          for (const Column& c : e.cols) put_col(out, 2, c);
          wire::end_message(out, m);
        } else if constexpr (std::is_same_v<T, StepEndEntry>) {
          const auto m = wire::begin_message(out, 2);
          if (e.affected_row_count != 0) wire::put_varint_field(out, 1, e.affected_row_count);
          if (e.last_insert_rowid) wire::put_sint64_field(out, 2, *e.last_insert_rowid);
          wire::end_message(out, m);
        } else if constexpr (std::is_same_v<T, StepErrorEntry>) {
          const auto m = wire::begin_message(out, 3);
          if (e.step != 0) wire::put_varint_field(out, 1, e.step);
          put_error(out, 2, e.error);
          wire::end_message(out, m);
        } else if constexpr (std::is_same_v<T, RowEntry>) {
          put_row(out, 4, e.row);
        } else {
          // The Error itself is the oneof member (Hrana 3 spec, sqld and hrana-client agree); it
          // is not wrapped in an {error} message as in JSON.
          put_error(out, 5, e.error);
        }
      },
      entry);
}

}  // namespace detail

namespace {

using detail::put_batch_result;
using detail::put_describe_result;
using detail::put_error;
using detail::put_error_body;
using detail::put_stmt_result;
using wire::WireType;

// ---------------------------------------------------------------- decoding

// The HTTP bodies and the stream requests they carry, on top of the shared messages.
struct HttpDecoder : detail::Decoder {
  bool pipeline_request(std::string_view data, PipelineRequest& out) {
    Reader r(data);
    Field f;
    while (r.next(f)) {
      switch (f.number) {
        case 1:
          if (!string(f, "PipelineReqBody.baton", out.baton.emplace())) return false;
          break;
        case 2:
          if (!want(f, WireType::kLen, "PipelineReqBody.requests")) return false;
          if (!take_item("PipelineReqBody.requests")) return false;
          if (!stream_request(f.bytes, out.requests.emplace_back())) return false;
          break;
        default:
          break;
      }
    }
    return done(r, "PipelineReqBody");
  }

  bool cursor_request(std::string_view data, CursorRequest& out) {
    Reader r(data);
    Field f;
    while (r.next(f)) {
      switch (f.number) {
        case 1:
          if (!string(f, "CursorReqBody.baton", out.baton.emplace())) return false;
          break;
        case 2:
          if (!want(f, WireType::kLen, "CursorReqBody.batch")) return false;
          out.batch = Batch{};
          if (!batch(f.bytes, out.batch)) return false;
          break;
        default:
          break;
      }
    }
    return done(r, "CursorReqBody");
  }

  // Sequence and describe requests share their shape.
  template <class Req>
  bool sql_or_id(std::string_view data, Req& out, const char* message_name, const char* sql_name,
                 const char* id_name) {
    Reader r(data);
    Field f;
    while (r.next(f)) {
      switch (f.number) {
        case 1:
          if (!string(f, sql_name, out.sql.emplace())) return false;
          break;
        case 2:
          if (!int32(f, id_name, out.sql_id.emplace())) return false;
          break;
        default:
          break;
      }
    }
    return done(r, message_name);
  }

  bool execute_req(std::string_view data, ExecuteReq& out) {
    Reader r(data);
    Field f;
    while (r.next(f)) {
      if (f.number != 1) continue;
      if (!want(f, WireType::kLen, "ExecuteStreamReq.stmt")) return false;
      out.stmt = Stmt{};
      if (!stmt(f.bytes, out.stmt)) return false;
    }
    return done(r, "ExecuteStreamReq");
  }

  bool batch_req(std::string_view data, BatchReq& out) {
    Reader r(data);
    Field f;
    while (r.next(f)) {
      if (f.number != 1) continue;
      if (!want(f, WireType::kLen, "BatchStreamReq.batch")) return false;
      out.batch = Batch{};
      if (!batch(f.bytes, out.batch)) return false;
    }
    return done(r, "BatchStreamReq");
  }

  bool store_sql_req(std::string_view data, StoreSqlReq& out) {
    Reader r(data);
    Field f;
    while (r.next(f)) {
      switch (f.number) {
        case 1:
          if (!int32(f, "StoreSqlStreamReq.sql_id", out.sql_id)) return false;
          break;
        case 2:
          if (!string(f, "StoreSqlStreamReq.sql", out.sql)) return false;
          break;
        default:
          break;
      }
    }
    return done(r, "StoreSqlStreamReq");
  }

  bool close_sql_req(std::string_view data, CloseSqlReq& out) {
    Reader r(data);
    Field f;
    while (r.next(f)) {
      if (f.number != 1) continue;
      if (!int32(f, "CloseSqlStreamReq.sql_id", out.sql_id)) return false;
    }
    return done(r, "CloseSqlStreamReq");
  }

  bool stream_request(std::string_view data, StreamRequest& out) {
    Reader r(data);
    Field f;
    bool typed = false;
    while (r.next(f)) {
      // All request kinds are embedded messages.
      if (f.number >= 1 && f.number <= 8 && !want(f, WireType::kLen, "StreamRequest")) {
        return false;
      }
      switch (f.number) {
        case 1:
          if (!empty_message(f, "StreamRequest.close")) return false;
          out.emplace<CloseReq>();
          break;
        case 2:
          if (!execute_req(f.bytes, out.emplace<ExecuteReq>())) return false;
          break;
        case 3:
          if (!batch_req(f.bytes, out.emplace<BatchReq>())) return false;
          break;
        case 4:
          if (!sql_or_id(f.bytes, out.emplace<SequenceReq>(), "SequenceStreamReq",
                         "SequenceStreamReq.sql", "SequenceStreamReq.sql_id")) {
            return false;
          }
          break;
        case 5:
          if (!sql_or_id(f.bytes, out.emplace<DescribeReq>(), "DescribeStreamReq",
                         "DescribeStreamReq.sql", "DescribeStreamReq.sql_id")) {
            return false;
          }
          break;
        case 6:
          if (!store_sql_req(f.bytes, out.emplace<StoreSqlReq>())) return false;
          break;
        case 7:
          if (!close_sql_req(f.bytes, out.emplace<CloseSqlReq>())) return false;
          break;
        case 8:
          if (!empty_message(f, "StreamRequest.get_autocommit")) return false;
          out.emplace<GetAutocommitReq>();
          break;
        default:
          continue;
      }
      typed = true;
    }
    if (!done(r, "StreamRequest")) return false;
    if (!typed) return fail("StreamRequest has no known request type (expected one of fields 1-8)");
    return true;
  }
};

// StreamResponse's oneof numbers are the variant index + 1 (model.h keeps them aligned).
void put_stream_response(std::string& out, std::uint32_t field, const StreamResponse& resp) {
  const auto m = wire::begin_message(out, field);
  const auto km = wire::begin_message(out, static_cast<std::uint32_t>(resp.index() + 1));
  if (const auto* e = std::get_if<ExecuteResp>(&resp)) {
    put_stmt_result(out, 1, e->result);
  } else if (const auto* b = std::get_if<BatchResp>(&resp)) {
    put_batch_result(out, 1, b->result);
  } else if (const auto* d = std::get_if<DescribeResp>(&resp)) {
    put_describe_result(out, 1, d->result);
  } else if (const auto* a = std::get_if<GetAutocommitResp>(&resp)) {
    if (a->is_autocommit) wire::put_bool_field(out, 1, true);
  }
  wire::end_message(out, km);
  wire::end_message(out, m);
}

}  // namespace

Expected<PipelineRequest, ProtocolError> decode_pipeline_request(std::string_view body,
                                                                 std::size_t max_items) {
  HttpDecoder d;
  d.limit_items(max_items);
  PipelineRequest request;
  if (!d.pipeline_request(body, request)) return unexpected(std::move(*d.error));
  return request;
}

Expected<CursorRequest, ProtocolError> decode_cursor_request(std::string_view body,
                                                             std::size_t max_items) {
  HttpDecoder d;
  d.limit_items(max_items);
  CursorRequest request;
  if (!d.cursor_request(body, request)) return unexpected(std::move(*d.error));
  return request;
}

std::string encode_pipeline_response(const PipelineResponse& r) {
  std::string out;
  out.reserve(256);
  if (r.baton) wire::put_bytes_field(out, 1, *r.baton);
  if (r.base_url) wire::put_bytes_field(out, 2, *r.base_url);
  for (const StreamResult& result : r.results) {
    const auto m = wire::begin_message(out, 3);
    if (const auto* ok = std::get_if<StreamResponse>(&result)) {
      put_stream_response(out, 1, *ok);
    } else {
      put_error(out, 2, std::get<Error>(result));
    }
    wire::end_message(out, m);
  }
  return out;
}

void append_cursor_head(const CursorResponseHead& head, std::string& out) {
  const auto m = wire::begin_delimited(out);
  if (head.baton) wire::put_bytes_field(out, 1, *head.baton);
  if (head.base_url) wire::put_bytes_field(out, 2, *head.base_url);
  wire::end_delimited(out, m);
}

void append_cursor_entry(const CursorEntry& entry, std::string& out) {
  const auto frame = wire::begin_delimited(out);
  detail::put_cursor_entry_body(out, entry);
  wire::end_delimited(out, frame);
}

std::string encode_error(const Error& e) {
  std::string out;
  put_error_body(out, e);
  return out;
}

}  // namespace quire::hrana::protobuf
