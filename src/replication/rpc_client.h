// A client for libSQL's replication RPCs (gRPC-Web over HTTP/1.1, docs/replication-protocol.md):
// one keep-alive connection to the primary, one unary call at a time, every step bounded by a
// timeout. The replica's pull loop (puller.h) is its only user.
//
// Thread model: call() runs on one thread at a time (the puller's), driving a private
// io_context until the call ends. cancel() may be called from any thread: it aborts the call in
// flight (or the next one, if none is in flight) with kCancelled.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/expected.h"

namespace quire::replication {

struct RpcEndpoint {
  std::string host;  // for the resolver
  std::string port;
  std::string host_header;  // "host:port", as the URL had it
};

// "http://host[:port][/]" -> endpoint. https and paths are refused (the primary serves the
// protocol on its root, and TLS is not implemented here).
Expected<RpcEndpoint, std::string> parse_primary_url(std::string_view url);

struct RpcOptions {
  std::chrono::milliseconds connect_timeout{3000};  // resolve + TCP connect
  std::chrono::milliseconds call_timeout{30000};    // write the request + read the whole answer
  std::size_t max_response_bytes = std::size_t{1} << 30;
};

struct RpcError {
  enum class Kind {
    kTransport,  // connect, read or write failed or timed out; the connection is dropped
    kHttp,       // a non-200 answer without a gRPC status
    kProtocol,   // a malformed gRPC-Web body
    kStatus,     // the call ended with a non-OK gRPC status (grpc_status, message)
    kCancelled,  // cancel() was called
    kHandler,    // the message handler of call_streamed() refused a message
  };
  Kind kind = Kind::kTransport;
  int grpc_status = -1;  // for kStatus; the HTTP status for kHttp
  std::string message;
  // "UNAUTHENTICATED (16): AUTH_MISSING: ..." or "transport: connection refused", for logs.
  std::string describe() const;
};

using RpcHeaders = std::vector<std::pair<std::string, std::string>>;

class RpcClient {
 public:
  RpcClient(RpcEndpoint endpoint, RpcOptions options);
  ~RpcClient();
  RpcClient(const RpcClient&) = delete;
  RpcClient& operator=(const RpcClient&) = delete;

  // POST /<method> with `message` as the single data frame and `headers` besides the gRPC-Web
  // ones. Returns the answer's data messages (one for a unary call, one per Frame for
  // Snapshot) when the trailer says OK. A request on a reused connection that the primary
  // closed meanwhile (idle timeout, restart) is retried once on a new connection: every
  // replication RPC is idempotent. `server_wait` is how long the primary may hold the answer on
  // purpose (a long-poll); it is added to the call timeout.
  Expected<std::vector<std::string>, RpcError> call(
      std::string_view method, std::string_view message, const RpcHeaders& headers,
      std::chrono::milliseconds server_wait = std::chrono::milliseconds(0));

  // Called with each data message of an answer as it arrives; the view is valid during the call
  // only. Returning false aborts the call (kHandler; the connection is dropped).
  using MessageHandler = std::function<bool(std::string_view)>;

  // The same call, with the answer's data messages handed to `on_message` as they are read
  // rather than collected: an answer of any size (a Snapshot is as large as the database) is
  // held in memory one message at a time. The call timeout bounds each wait for the next bytes
  // of the answer instead of the whole answer. Succeeds when the trailer says OK; messages
  // already handed over before a failure stay handed over.
  Expected<void, RpcError> call_streamed(
      std::string_view method, std::string_view message, const RpcHeaders& headers,
      const MessageHandler& on_message,
      std::chrono::milliseconds server_wait = std::chrono::milliseconds(0));

  // Aborts the call in flight, and every later call, with kCancelled; thread-safe.
  void cancel();

 private:
  struct Attempt;
  void run_attempt(Attempt& attempt);
  void close();

  const RpcEndpoint endpoint_;
  const RpcOptions options_;
  boost::asio::io_context ioc_;
  std::optional<boost::beast::tcp_stream> stream_;  // connected while set
  boost::beast::flat_buffer buffer_;
  std::vector<char> body_;  // the answer's bytes not yet handed over (a partial message)
  std::atomic<bool> cancelled_{false};
};

}  // namespace quire::replication
