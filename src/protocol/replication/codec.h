// Protobuf encoding and decoding of the replication messages in messages.h. Proto3 rules: default
// scalars are not written; on decode, unknown fields are skipped, the last value of a repeated
// scalar field wins, repeated fields append, a repeated embedded message merges, and the last
// member of a oneof wins. Decoders never throw and never read outside their input: malformed
// bytes, a known field with the wrong wire type, invalid UTF-8 in a string, a bad bincode value
// or nesting deeper than kMaxCondDepth become a DecodeError naming the field.
//
// The server decodes requests and encodes responses; the opposite directions exist for tests
// and for a future replica written in C++.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/limits.h"
#include "protocol/replication/frame.h"
#include "protocol/replication/messages.h"

namespace quire::replication {

// Cond nests (NotCond, AndCond, OrCond); deeper programs are rejected rather than recursed into.
inline constexpr int kMaxCondDepth = 64;

// wal_log.ReplicationLog ------------------------------------------------------------------
std::string encode_hello_request(const HelloRequest& m);
Decoded<HelloRequest> decode_hello_request(std::string_view bytes);
std::string encode_hello_response(const HelloResponse& m);
Decoded<HelloResponse> decode_hello_response(std::string_view bytes);
std::string encode_log_offset(const LogOffset& m);
Decoded<LogOffset> decode_log_offset(std::string_view bytes);
// A Frame is both a message of its own (the streams of LogEntries and Snapshot: one Frame per
// gRPC-Web data frame) and an element of Frames (BatchLogEntries).
std::string encode_frame(const Frame& m);
Decoded<Frame> decode_frame(std::string_view bytes);
std::string encode_frames(const Frames& m);
// Appends one element to a Frames message being built in `out`, without building the vector.
void append_frames_element(std::string& out, const Frame& frame);
Decoded<Frames> decode_frames(std::string_view bytes);
// The same without copying the frames' data: the views point into `bytes`.
Decoded<FrameRef> decode_frame_ref(std::string_view bytes);
Decoded<std::vector<FrameRef>> decode_frames_ref(std::string_view bytes);
// The views would dangle on a temporary.
Decoded<FrameRef> decode_frame_ref(std::string&&) = delete;
Decoded<std::vector<FrameRef>> decode_frames_ref(std::string&&) = delete;
// Appends one gRPC-Web data frame holding a Frame message whose data is `header` + `page`
// (4096 bytes), written straight into `out`: what a Snapshot answer is made of, without a
// temporary per page. Returns where the page's 4096 bytes start in `out`, so a caller may also
// append a zeroed page and read the page into place.
std::size_t append_grpc_web_frame_message(std::string& out, const FrameHeader& header,
                                          std::string_view page);
// The size append_grpc_web_frame_message adds.
std::size_t grpc_web_frame_message_size();

// metadata ----------------------------------------------------------------------------------
std::string encode_database_config(const DatabaseConfig& m);
Decoded<DatabaseConfig> decode_database_config(std::string_view bytes);

// proxy.Proxy --------------------------------------------------------------------------------
std::string encode_program_req(const ProgramReq& m);
// max_items: protocol::Limits::max_decoded_items().
Decoded<ProgramReq> decode_program_req(
    std::string_view bytes, std::size_t max_items = protocol::Limits{}.max_decoded_items());
std::string encode_execute_results(const ExecuteResults& m);
Decoded<ExecuteResults> decode_execute_results(std::string_view bytes);
std::string encode_describe_request(const DescribeRequest& m);
Decoded<DescribeRequest> decode_describe_request(std::string_view bytes);
std::string encode_describe_result(const DescribeResult& m);
Decoded<DescribeResult> decode_describe_result(std::string_view bytes);
std::string encode_disconnect_message(const DisconnectMessage& m);
Decoded<DisconnectMessage> decode_disconnect_message(std::string_view bytes);
std::string encode_ack(const Ack& m);
Decoded<Ack> decode_ack(std::string_view bytes);

// Description.param_names as the 0.5.x client can use them. libsql-js binds named parameters by
// asking for parameter_name(i) with i 1-based, and libsql's remote statement answers
// param_names[i], 0-based: a list in sqld's shape (the names of named parameters only) is read
// off by one and the client panics. So the list must start with a placeholder and then hold
// every parameter's name in position order, "" for an unnamed one. `names` is indexed by
// parameter position (0-based), std::nullopt for "?".
std::vector<std::string> client_param_names(const std::vector<std::optional<std::string>>& names);

}  // namespace quire::replication
