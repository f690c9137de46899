// gRPC-Web framing over HTTP/1.1, as libSQL's embedded-replica client speaks it (tonic-web): the
// request and response bodies are sequences of frames, each a flag byte, a 4-byte big-endian
// length and a payload. Flag 0x00 is a data frame (one protobuf message); flag 0x80 is the
// trailer frame that ends a response and carries "grpc-status:N\r\ngrpc-message:...\r\n".
// Stateless functions; nothing here knows about sockets, SQLite or the messages themselves.
// See docs/replication-protocol.md for the contract and captures from the real client.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/expected.h"

namespace quire::replication {

// The canonical gRPC status codes (grpc/doc/statuscodes.md); the numbers are the wire values.
enum class GrpcStatus : std::uint8_t {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

// "OK", "FAILED_PRECONDITION", ...; "UNKNOWN_STATUS" for values outside the enum.
const char* grpc_status_name(GrpcStatus status);

// grpc-message texts the client matches exactly (with FAILED_PRECONDITION): NEED_SNAPSHOT makes it
// call Snapshot, NO_HELLO makes it handshake again, NAMESPACE_DOESNT_EXIST is fatal.
inline constexpr std::string_view kNeedSnapshotMessage = "NEED_SNAPSHOT";
inline constexpr std::string_view kNoHelloMessage = "NO_HELLO";
inline constexpr std::string_view kNamespaceDoesntExistMessage = "NAMESPACE_DOESNT_EXIST";

// Request metadata (HTTP headers) the client sends on RPCs.
inline constexpr std::string_view kAuthorizationHeader = "x-authorization";  // "Bearer <token>"
inline constexpr std::string_view kSessionTokenHeader = "x-session-token";   // from HelloResponse
inline constexpr std::string_view kNamespaceHeader = "x-namespace-bin";      // unpadded base64
inline constexpr std::string_view kClientVersionHeader = "x-libsql-client-version";

// quire's extensions (quire's own replica sends them; libSQL clients never do, so nothing changes
// for them). On BatchLogEntries: kWaitHeader asks a caught-up replica's call to wait up to N ms
// (at most kMaxWaitMs) for the next commit instead of answering empty at once (a long-poll);
// kLogIdHeader names the log the replica follows, and a call naming another log is answered
// NO_HELLO, so the replica's next Hello sees the new log before any of its frames is applied.
inline constexpr std::string_view kWaitHeader = "x-quire-wait-ms";
inline constexpr std::string_view kLogIdHeader = "x-quire-log-id";
inline constexpr int kMaxWaitMs = 500;

// The response content type. The client (tonic-web 0.11) does not check it, but it is the right
// one for a binary gRPC-Web body.
inline constexpr std::string_view kGrpcWebContentType = "application/grpc-web+proto";

inline constexpr std::uint8_t kDataFrameFlag = 0x00;
inline constexpr std::uint8_t kTrailerFrameFlag = 0x80;
inline constexpr std::uint8_t kCompressedFlagBit = 0x01;
inline constexpr std::size_t kFramePrefixSize = 5;

struct HeaderField {
  std::string_view name;
  std::string_view value;
};

// The headers a gRPC-Web response needs besides the framing (the HTTP status is always 200; the
// gRPC status travels in the trailer frame).
std::span<const HeaderField> grpc_web_response_headers();

struct GrpcWebError {
  std::string message;
};

struct GrpcWebFrame {
  bool trailers = false;     // flag 0x80
  std::string_view payload;  // points into the parsed body
};

// Splits a body into frames. Errors: a truncated prefix or payload, a frame longer than
// max_frame_bytes, the compressed bit (0x01; we never offer compression, so a client must not
// use it), or a flag with other unknown bits.
Expected<std::vector<GrpcWebFrame>, GrpcWebError> split_grpc_web_frames(
    std::string_view body, std::size_t max_frame_bytes);

// The data messages of a request body, in order (a client-streaming body holds several). A
// trailer frame in a request is an error.
Expected<std::vector<std::string_view>, GrpcWebError> parse_grpc_web_request(
    std::string_view body, std::size_t max_message_bytes);

// The single message of a unary request; zero or several messages are an error. An empty
// message (prefix 00 00000000, how the client sends a LogOffset of 0) is a valid message.
Expected<std::string_view, GrpcWebError> parse_unary_grpc_web_request(
    std::string_view body, std::size_t max_message_bytes);

// The results point into the body, so a temporary string would dangle.
Expected<std::vector<GrpcWebFrame>, GrpcWebError> split_grpc_web_frames(std::string&&,
                                                                        std::size_t) = delete;
Expected<std::vector<std::string_view>, GrpcWebError> parse_grpc_web_request(std::string&&,
                                                                             std::size_t) = delete;
Expected<std::string_view, GrpcWebError> parse_unary_grpc_web_request(std::string&&,
                                                                      std::size_t) = delete;

// --------------------------------------------------------------- responses

void append_grpc_web_data_frame(std::string& out, std::string_view message);
// The trailer frame. grpc-message is left out when `message` is empty, and percent-encoded
// otherwise.
void append_grpc_web_trailers(std::string& out, GrpcStatus status, std::string_view message);

// A whole response body: one data frame per message, then the trailer frame. A unary success is
// one message with kOk; an error is no messages with the error's status (the client reads the
// status from the trailer frame).
std::string grpc_web_response(std::span<const std::string> messages,
                              GrpcStatus status = GrpcStatus::kOk, std::string_view message = {});
std::string grpc_web_response(std::string_view message);  // unary success
std::string grpc_web_error(GrpcStatus status, std::string_view message);

// gRPC's percent-encoding for grpc-message: bytes outside 0x20..0x7E, and '%', become "%XX".
std::string percent_encode_grpc_message(std::string_view message);
// The inverse; a malformed escape is kept as it is (grpc-message is informational).
std::string percent_decode_grpc_message(std::string_view encoded);

// A parsed trailer frame payload. Used by tests and by anything acting as a client.
struct GrpcTrailers {
  int status = -1;      // -1 when the trailers have no grpc-status
  std::string message;  // percent-decoded
};
Expected<GrpcTrailers, GrpcWebError> parse_grpc_web_trailers(std::string_view payload);

}  // namespace quire::replication
