// Forwards whole HTTP requests to the primary (a read replica's writes and transactions) over a
// small pool of keep-alive connections.
//
// A forwarded request is never retried: a write may have reached the primary even when its
// answer did not come back, and only the client may decide to try again. To keep that from
// costing a spurious error when the primary closed an idle connection, connections idle for
// longer than `max_idle` (well under the primary's keep-alive timeout) are not reused.
//
// Thread model: forward() is called from many threads at once (the server's blocking pool); each
// call uses a connection of its own, taken from the pool or newly opened, for its whole duration.
#pragma once

#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/expected.h"
#include "replication/rpc_client.h"

namespace quire::replication {

struct ForwarderOptions {
  std::chrono::milliseconds connect_timeout{3000};
  // Writing the request and reading the whole answer. A forwarded write may wait for the
  // primary's write lock (its transaction timeout, 5 s by default) before it runs.
  std::chrono::milliseconds request_timeout{60000};
  std::chrono::seconds max_idle{20};
  std::size_t max_idle_connections = 16;
  std::size_t max_response_bytes = std::size_t{64} << 20;
};

class HttpForwarder {
 public:
  using Request = boost::beast::http::request<boost::beast::http::string_body>;
  using Response = boost::beast::http::response<boost::beast::http::string_body>;

  HttpForwarder(RpcEndpoint endpoint, ForwarderOptions options);
  ~HttpForwarder();
  HttpForwarder(const HttpForwarder&) = delete;
  HttpForwarder& operator=(const HttpForwarder&) = delete;

  // Sends `req` (its Host is replaced by the primary's, keep-alive is forced) and returns the
  // primary's answer, or why there is none (connect, write, read failure or timeout).
  Expected<Response, std::string> forward(Request req);

  const RpcEndpoint& endpoint() const { return endpoint_; }

 private:
  struct Connection;
  std::unique_ptr<Connection> take();
  void give_back(std::unique_ptr<Connection> conn);

  const RpcEndpoint endpoint_;
  const ForwarderOptions options_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Connection>> idle_;  // guarded by mu_
};

}  // namespace quire::replication
