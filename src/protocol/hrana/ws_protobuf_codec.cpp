// Hrana-over-WebSocket messages in protobuf (subprotocol hrana3-protobuf): decodes ClientMsg
// into ws_model.h types and encodes ServerMsg, reusing the HTTP codec's messages from
// protobuf_detail.h. Field numbers follow the hrana.ws package of the Hrana 3 spec; see
// ../shared/specs/hrana.md section 4.
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

#include "protocol/hrana/protobuf_detail.h"
#include "protocol/hrana/protobuf_wire.h"
#include "protocol/hrana/ws_model.h"

namespace quire::hrana::ws::protobuf {

namespace {

namespace detail = hrana::protobuf::detail;
namespace wire = hrana::protobuf::wire;
using wire::WireType;

// RequestMsg's oneof numbers are the Request variant index + 2 (field 1 is request_id); the same
// holds for ResponseOkMsg and Response.
constexpr std::uint32_t kFirstRequestField = 2;
constexpr std::uint32_t kLastRequestField = kFirstRequestField + std::variant_size_v<Request> - 1;

struct WsDecoder : detail::Decoder {
  bool client_msg(std::string_view data, ClientMsg& out) {
    Reader r(data);
    Field f;
    bool typed = false;
    while (r.next(f)) {
      switch (f.number) {
        case 1:
          if (!want(f, WireType::kLen, "ClientMsg.hello")) return false;
          if (!hello(f.bytes, out.emplace<HelloMsg>())) return false;
          break;
        case 2:
          if (!want(f, WireType::kLen, "ClientMsg.request")) return false;
          if (!request_msg(f.bytes, out.emplace<RequestMsg>())) return false;
          break;
        default:
          continue;
      }
      typed = true;
    }
    if (!done(r, "ClientMsg")) return false;
    // An empty or all-unknown message cannot be answered: it has no request_id to reply to.
    if (!typed) return fail("ClientMsg has no known message type (expected field 1 or 2)");
    return true;
  }

 private:
  bool hello(std::string_view data, HelloMsg& out) {
    Reader r(data);
    Field f;
    while (r.next(f)) {
      if (f.number != 1) continue;
      if (!string(f, "HelloMsg.jwt", out.jwt.emplace())) return false;
    }
    return done(r, "HelloMsg");
  }

  bool request_msg(std::string_view data, RequestMsg& out) {
    Reader r(data);
    Field f;
    bool typed = false;
    while (r.next(f)) {
      if (f.number == 1) {
        // Absent means 0, as proto3 says; clients always send it anyway.
        if (!int32(f, "RequestMsg.request_id", out.request_id)) return false;
        continue;
      }
      if (f.number < kFirstRequestField || f.number > kLastRequestField) continue;
      if (!want(f, WireType::kLen, "RequestMsg.request")) return false;
      if (!request(f.number, f.bytes, out.request)) return false;
      typed = true;
    }
    if (!done(r, "RequestMsg")) return false;
    if (!typed) return fail("RequestMsg has no known request type (expected one of fields 2-13)");
    return true;
  }

  bool request(std::uint32_t number, std::string_view data, Request& out) {
    switch (number) {
      case 2:
        return only_int32(data, "OpenStreamReq", "OpenStreamReq.stream_id",
                          out.emplace<OpenStreamReq>().stream_id);
      case 3:
        return only_int32(data, "CloseStreamReq", "CloseStreamReq.stream_id",
                          out.emplace<CloseStreamReq>().stream_id);
      case 4:
        return execute(data, out.emplace<ExecuteReq>());
      case 5:
        return batch_req(data, out.emplace<BatchReq>());
      case 6:
        return open_cursor(data, out.emplace<OpenCursorReq>());
      case 7:
        return only_int32(data, "CloseCursorReq", "CloseCursorReq.cursor_id",
                          out.emplace<CloseCursorReq>().cursor_id);
      case 8:
        return fetch_cursor(data, out.emplace<FetchCursorReq>());
      case 9:
        return sql_or_id(data, out.emplace<SequenceReq>(), "SequenceReq", "SequenceReq.stream_id",
                         "SequenceReq.sql", "SequenceReq.sql_id");
      case 10:
        return sql_or_id(data, out.emplace<DescribeReq>(), "DescribeReq", "DescribeReq.stream_id",
                         "DescribeReq.sql", "DescribeReq.sql_id");
      case 11:
        return store_sql(data, out.emplace<StoreSqlReq>());
      case 12:
        return only_int32(data, "CloseSqlReq", "CloseSqlReq.sql_id",
                          out.emplace<CloseSqlReq>().sql_id);
      case 13:
        return only_int32(data, "GetAutocommitReq", "GetAutocommitReq.stream_id",
                          out.emplace<GetAutocommitReq>().stream_id);
      default:
        return fail("unknown request field " + std::to_string(number));  // unreachable
    }
  }

  // Most requests are a single int32 id in field 1.
  bool only_int32(std::string_view data, const char* message_name, const char* name,
                  std::int32_t& out) {
    Reader r(data);
    Field f;
    while (r.next(f)) {
      if (f.number != 1) continue;
      if (!int32(f, name, out)) return false;
    }
    return done(r, message_name);
  }

  // A missing stmt or batch stays empty, as proto3 reads it; validation rejects what that leaves
  // (a statement with neither sql nor sql_id), and an empty batch is a legal no-op.
  bool execute(std::string_view data, ExecuteReq& out) {
    Reader r(data);
    Field f;
    while (r.next(f)) {
      switch (f.number) {
        case 1:
          if (!int32(f, "ExecuteReq.stream_id", out.stream_id)) return false;
          break;
        case 2:
          if (!want(f, WireType::kLen, "ExecuteReq.stmt")) return false;
          out.stmt = Stmt{};
          if (!stmt(f.bytes, out.stmt)) return false;
          break;
        default:
          break;
      }
    }
    return done(r, "ExecuteReq");
  }

  bool batch_req(std::string_view data, BatchReq& out) {
    Reader r(data);
    Field f;
    while (r.next(f)) {
      switch (f.number) {
        case 1:
          if (!int32(f, "BatchReq.stream_id", out.stream_id)) return false;
          break;
        case 2:
          if (!want(f, WireType::kLen, "BatchReq.batch")) return false;
          out.batch = Batch{};
          if (!batch(f.bytes, out.batch)) return false;
          break;
        default:
          break;
      }
    }
    return done(r, "BatchReq");
  }

  bool open_cursor(std::string_view data, OpenCursorReq& out) {
    Reader r(data);
    Field f;
    while (r.next(f)) {
      switch (f.number) {
        case 1:
          if (!int32(f, "OpenCursorReq.stream_id", out.stream_id)) return false;
          break;
        case 2:
          if (!int32(f, "OpenCursorReq.cursor_id", out.cursor_id)) return false;
          break;
        case 3:
          if (!want(f, WireType::kLen, "OpenCursorReq.batch")) return false;
          out.batch = Batch{};
          if (!batch(f.bytes, out.batch)) return false;
          break;
        default:
          break;
      }
    }
    return done(r, "OpenCursorReq");
  }

  bool fetch_cursor(std::string_view data, FetchCursorReq& out) {
    Reader r(data);
    Field f;
    while (r.next(f)) {
      switch (f.number) {
        case 1:
          if (!int32(f, "FetchCursorReq.cursor_id", out.cursor_id)) return false;
          break;
        case 2:
          if (!uint32(f, "FetchCursorReq.max_count", out.max_count)) return false;
          break;
        default:
          break;
      }
    }
    return done(r, "FetchCursorReq");
  }

  // Sequence and describe share their shape; unlike the HTTP stream requests, stream_id comes
  // first, so sql and sql_id are fields 2 and 3 here.
  template <class Req>
  bool sql_or_id(std::string_view data, Req& out, const char* message_name,
                 const char* stream_id_name, const char* sql_name, const char* sql_id_name) {
    Reader r(data);
    Field f;
    while (r.next(f)) {
      switch (f.number) {
        case 1:
          if (!int32(f, stream_id_name, out.stream_id)) return false;
          break;
        case 2:
          if (!string(f, sql_name, out.sql.emplace())) return false;
          break;
        case 3:
          if (!int32(f, sql_id_name, out.sql_id.emplace())) return false;
          break;
        default:
          break;
      }
    }
    return done(r, message_name);
  }

  bool store_sql(std::string_view data, StoreSqlReq& out) {
    Reader r(data);
    Field f;
    while (r.next(f)) {
      switch (f.number) {
        case 1:
          if (!int32(f, "StoreSqlReq.sql_id", out.sql_id)) return false;
          break;
        case 2:
          if (!string(f, "StoreSqlReq.sql", out.sql)) return false;
          break;
        default:
          break;
      }
    }
    return done(r, "StoreSqlReq");
  }
};

// Proto3 int32: negative values are sign-extended to 64 bits (10 varint bytes); 0 is omitted.
void put_int32_field(std::string& out, std::uint32_t field, std::int32_t v) {
  if (v != 0) {
    wire::put_varint_field(out, field, static_cast<std::uint64_t>(static_cast<std::int64_t>(v)));
  }
}

void put_response(std::string& out, const Response& response) {
  const auto m =
      wire::begin_message(out, kFirstRequestField + static_cast<std::uint32_t>(response.index()));
  std::visit(
      [&out](const auto& r) {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, ExecuteResp>) {
          detail::put_stmt_result(out, 1, r.result);
        } else if constexpr (std::is_same_v<T, BatchResp>) {
          detail::put_batch_result(out, 1, r.result);
        } else if constexpr (std::is_same_v<T, DescribeResp>) {
          detail::put_describe_result(out, 1, r.result);
        } else if constexpr (std::is_same_v<T, FetchCursorResp>) {
          for (const CursorEntry& entry : r.entries) {
            const auto em = wire::begin_message(out, 1);
            detail::put_cursor_entry_body(out, entry);
            wire::end_message(out, em);
          }
          if (r.done) wire::put_bool_field(out, 2, true);
        } else if constexpr (std::is_same_v<T, GetAutocommitResp>) {
          if (r.is_autocommit) wire::put_bool_field(out, 1, true);
        }
        // The other responses are empty messages.
      },
      response);
  wire::end_message(out, m);
}

}  // namespace

Expected<ClientMsg, ProtocolError> decode_client_msg(std::string_view bytes,
                                                   std::size_t max_items) {
  WsDecoder d;
  d.limit_items(max_items);
  ClientMsg msg;
  if (!d.client_msg(bytes, msg)) return unexpected(std::move(*d.error));
  return msg;
}

// ServerMsg's oneof numbers are the variant index + 1. Every member is written even when empty:
// presence of the member is what tells the client which message this is.
std::string encode_server_msg(const ServerMsg& msg) {
  std::string out;
  out.reserve(64);
  const auto m = wire::begin_message(out, static_cast<std::uint32_t>(msg.index() + 1));
  std::visit(
      [&out](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, HelloErrorMsg>) {
          detail::put_error(out, 1, v.error);
        } else if constexpr (std::is_same_v<T, ResponseOkMsg>) {
          put_int32_field(out, 1, v.request_id);
          put_response(out, v.response);
        } else if constexpr (std::is_same_v<T, ResponseErrorMsg>) {
          put_int32_field(out, 1, v.request_id);
          detail::put_error(out, 2, v.error);
        }
        // HelloOkMsg has no fields.
      },
      msg);
  wire::end_message(out, m);
  return out;
}

}  // namespace quire::hrana::ws::protobuf
