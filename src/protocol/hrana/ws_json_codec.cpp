// Hrana-over-WebSocket messages in JSON (subprotocols hrana1, hrana2, hrana3), built from the
// same pieces as the HTTP bodies.
#include "protocol/hrana/json_detail.h"
#include "protocol/hrana/ws_model.h"

namespace quire::hrana::ws {

int min_version(const Request& request) {
  switch (request.index()) {
    case 0: case 1: case 2: case 3: return 1;          // open/close stream, execute, batch
    case 7: case 8: case 9: case 10: return 2;          // sequence, describe, store/close sql
    default: return 3;                                  // cursors, get_autocommit
  }
}

namespace json {

using namespace hrana::json::detail;

namespace {

struct WsDecoder : Decoder {
  bool int32_required(const bj::object& o, const char* name, std::int32_t& out) {
    std::optional<std::int32_t> v;
    if (!int32_field(o, name, v)) return false;
    if (!v) return fail(std::string("'") + name + "' is required");
    out = *v;
    return true;
  }

  bool ws_request(const bj::value& jv, Request& out) {
    auto* o = object(jv, "'request'");
    if (!o) return false;
    auto* t = field(*o, "type");
    if (!t || !t->is_string()) return fail("a request needs a string 'type'");
    std::string_view type = t->get_string();
    if (type == "open_stream") {
      OpenStreamReq r;
      if (!int32_required(*o, "stream_id", r.stream_id)) return false;
      out = r;
    } else if (type == "close_stream") {
      CloseStreamReq r;
      if (!int32_required(*o, "stream_id", r.stream_id)) return false;
      out = r;
    } else if (type == "execute") {
      ExecuteReq r;
      if (!int32_required(*o, "stream_id", r.stream_id)) return false;
      auto* s = field(*o, "stmt");
      if (!s) return fail("an execute request needs 'stmt'");
      if (!stmt(*s, r.stmt)) return false;
      out = std::move(r);
    } else if (type == "batch") {
      BatchReq r;
      if (!int32_required(*o, "stream_id", r.stream_id)) return false;
      auto* b = field(*o, "batch");
      if (!b) return fail("a batch request needs 'batch'");
      if (!batch(*b, r.batch)) return false;
      out = std::move(r);
    } else if (type == "open_cursor") {
      OpenCursorReq r;
      if (!int32_required(*o, "stream_id", r.stream_id) ||
          !int32_required(*o, "cursor_id", r.cursor_id)) {
        return false;
      }
      auto* b = field(*o, "batch");
      if (!b) return fail("an open_cursor request needs 'batch'");
      if (!batch(*b, r.batch)) return false;
      out = std::move(r);
    } else if (type == "close_cursor") {
      CloseCursorReq r;
      if (!int32_required(*o, "cursor_id", r.cursor_id)) return false;
      out = r;
    } else if (type == "fetch_cursor") {
      FetchCursorReq r;
      if (!int32_required(*o, "cursor_id", r.cursor_id) ||
          !uint32_field(*o, "max_count", r.max_count)) {
        return false;
      }
      out = r;
    } else if (type == "sequence") {
      SequenceReq r;
      if (!int32_required(*o, "stream_id", r.stream_id) || !sql_or_id(*o, r.sql, r.sql_id)) {
        return false;
      }
      out = std::move(r);
    } else if (type == "describe") {
      DescribeReq r;
      if (!int32_required(*o, "stream_id", r.stream_id) || !sql_or_id(*o, r.sql, r.sql_id)) {
        return false;
      }
      out = std::move(r);
    } else if (type == "store_sql") {
      StoreSqlReq r;
      std::optional<std::string> sql;
      if (!int32_required(*o, "sql_id", r.sql_id) || !string_field(*o, "sql", sql)) return false;
      if (!sql) return fail("a store_sql request needs 'sql'");
      r.sql = std::move(*sql);
      out = std::move(r);
    } else if (type == "close_sql") {
      CloseSqlReq r;
      if (!int32_required(*o, "sql_id", r.sql_id)) return false;
      out = r;
    } else if (type == "get_autocommit") {
      GetAutocommitReq r;
      if (!int32_required(*o, "stream_id", r.stream_id)) return false;
      out = r;
    } else {
      return fail("unknown request type '" + std::string(type) + "'");
    }
    return true;
  }
};

void append_cursor_entry_object(std::string& out, const CursorEntry& entry) {
  // append_cursor_entry writes one line; the WebSocket form is the same object, no newline.
  hrana::json::append_cursor_entry(entry, out);
  out.pop_back();
}

void append_ws_response(std::string& out, const Response& r) {
  out += R"({"type":")";
  out += kRequestNames[r.index()];
  out += '"';
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, ExecuteResp>) {
          out += R"(,"result":)";
          append_stmt_result(out, v.result);
        } else if constexpr (std::is_same_v<T, BatchResp>) {
          out += R"(,"result":)";
          append_batch_result(out, v.result);
        } else if constexpr (std::is_same_v<T, DescribeResp>) {
          out += R"(,"result":)";
          append_describe_result(out, v.result);
        } else if constexpr (std::is_same_v<T, GetAutocommitResp>) {
          out += R"(,"is_autocommit":)";
          out += v.is_autocommit ? "true" : "false";
        } else if constexpr (std::is_same_v<T, FetchCursorResp>) {
          out += R"(,"entries":[)";
          for (std::size_t i = 0; i < v.entries.size(); ++i) {
            if (i) out += ',';
            append_cursor_entry_object(out, v.entries[i]);
          }
          out += R"(],"done":)";
          out += v.done ? "true" : "false";
        }
      },
      r);
  out += '}';
}

}  // namespace

Expected<ClientMsg, ProtocolError> decode_client_msg(std::string_view text,
                                                   std::size_t max_items) {
  auto parsed = parse(text);
  if (!parsed) return unexpected(parsed.error());
  WsDecoder d;
  d.limit_items(max_items);
  auto* o = d.object(*parsed, "a message");
  if (!o) return unexpected(*d.error);
  auto* t = d.field(*o, "type");
  if (!t || !t->is_string()) return unexpected(ProtocolError{"a message needs a string 'type'"});
  std::string_view type = t->get_string();
  if (type == "hello") {
    HelloMsg hello;
    if (!d.string_field(*o, "jwt", hello.jwt)) return unexpected(*d.error);
    return ClientMsg(std::move(hello));
  }
  if (type == "request") {
    RequestMsg msg;
    auto* req = d.field(*o, "request");
    if (!d.int32_required(*o, "request_id", msg.request_id)) return unexpected(*d.error);
    if (!req) return unexpected(ProtocolError{"a request message needs 'request'"});
    if (!d.ws_request(*req, msg.request)) return unexpected(*d.error);
    return ClientMsg(std::move(msg));
  }
  return unexpected(ProtocolError{"unknown message type '" + std::string(type) + "'"});
}

std::string encode_server_msg(const ServerMsg& msg) {
  std::string out;
  out.reserve(128);
  std::visit(
      [&](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, HelloOkMsg>) {
          out += R"({"type":"hello_ok"})";
        } else if constexpr (std::is_same_v<T, HelloErrorMsg>) {
          out += R"({"type":"hello_error","error":)";
          append_error(out, m.error);
          out += '}';
        } else if constexpr (std::is_same_v<T, ResponseOkMsg>) {
          out += R"({"type":"response_ok","request_id":)";
          append_int(out, m.request_id);
          out += R"(,"response":)";
          append_ws_response(out, m.response);
          out += '}';
        } else {
          out += R"({"type":"response_error","request_id":)";
          append_int(out, m.request_id);
          out += R"(,"error":)";
          append_error(out, m.error);
          out += '}';
        }
      },
      msg);
  return out;
}

}  // namespace json
}  // namespace quire::hrana::ws
