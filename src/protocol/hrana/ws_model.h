// Hrana over WebSocket: the messages a connection carries, on top of the shared model in
// model.h. Variant alternative order matches protobuf oneof numbers so codecs can map them
// directly: ClientMsg 1 hello, 2 request; ServerMsg 1 hello_ok, 2 hello_error, 3 response_ok,
// 4 response_error; Request/Response alternatives are RequestMsg/ResponseOkMsg fields 2..13.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "protocol/hrana/model.h"
#include "protocol/limits.h"

namespace quire::hrana::ws {

struct OpenStreamReq { std::int32_t stream_id = 0; };
struct CloseStreamReq { std::int32_t stream_id = 0; };
struct ExecuteReq { std::int32_t stream_id = 0; Stmt stmt; };
struct BatchReq { std::int32_t stream_id = 0; Batch batch; };
struct OpenCursorReq { std::int32_t stream_id = 0; std::int32_t cursor_id = 0; Batch batch; };
struct CloseCursorReq { std::int32_t cursor_id = 0; };
struct FetchCursorReq { std::int32_t cursor_id = 0; std::uint32_t max_count = 0; };
struct SequenceReq {
  std::int32_t stream_id = 0;
  std::optional<std::string> sql;
  std::optional<std::int32_t> sql_id;
};
struct DescribeReq {
  std::int32_t stream_id = 0;
  std::optional<std::string> sql;
  std::optional<std::int32_t> sql_id;
};
struct StoreSqlReq { std::int32_t sql_id = 0; std::string sql; };
struct CloseSqlReq { std::int32_t sql_id = 0; };
struct GetAutocommitReq { std::int32_t stream_id = 0; };

using Request = std::variant<OpenStreamReq, CloseStreamReq, ExecuteReq, BatchReq, OpenCursorReq,
                             CloseCursorReq, FetchCursorReq, SequenceReq, DescribeReq,
                             StoreSqlReq, CloseSqlReq, GetAutocommitReq>;

struct OpenStreamResp {};
struct CloseStreamResp {};
struct ExecuteResp { StmtResult result; };
struct BatchResp { BatchResult result; };
struct OpenCursorResp {};
struct CloseCursorResp {};
struct FetchCursorResp { std::vector<CursorEntry> entries; bool done = false; };
struct SequenceResp {};
struct DescribeResp { DescribeResult result; };
struct StoreSqlResp {};
struct CloseSqlResp {};
struct GetAutocommitResp { bool is_autocommit = true; };

// Same order as Request: a response's index equals its request's.
using Response = std::variant<OpenStreamResp, CloseStreamResp, ExecuteResp, BatchResp,
                              OpenCursorResp, CloseCursorResp, FetchCursorResp, SequenceResp,
                              DescribeResp, StoreSqlResp, CloseSqlResp, GetAutocommitResp>;

struct HelloMsg { std::optional<std::string> jwt; };
struct RequestMsg { std::int32_t request_id = 0; Request request; };
using ClientMsg = std::variant<HelloMsg, RequestMsg>;

struct HelloOkMsg {};
struct HelloErrorMsg { Error error; };
struct ResponseOkMsg { std::int32_t request_id = 0; Response response; };
struct ResponseErrorMsg { std::int32_t request_id = 0; Error error; };
using ServerMsg = std::variant<HelloOkMsg, HelloErrorMsg, ResponseOkMsg, ResponseErrorMsg>;

// The request's name as it appears in JSON ("open_stream", ...), by variant index.
inline constexpr const char* kRequestNames[] = {
    "open_stream", "close_stream", "execute",  "batch",     "open_cursor", "close_cursor",
    "fetch_cursor", "sequence",    "describe", "store_sql", "close_sql",   "get_autocommit"};

namespace json {
// max_items: protocol::Limits::max_decoded_items().
Expected<ClientMsg, ProtocolError> decode_client_msg(std::string_view text,
                                                   std::size_t max_items = protocol::Limits{}.max_decoded_items());
std::string encode_server_msg(const ServerMsg& msg);
}  // namespace json

namespace protobuf {
Expected<ClientMsg, ProtocolError> decode_client_msg(std::string_view bytes,
                                                   std::size_t max_items = protocol::Limits{}.max_decoded_items());
std::string encode_server_msg(const ServerMsg& msg);
}  // namespace protobuf

// The lowest protocol version that has this request (1, 2 or 3).
int min_version(const Request& request);

}  // namespace quire::hrana::ws
