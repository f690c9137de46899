// One Hrana-over-WebSocket connection (subprotocols hrana1, hrana2, hrana3, hrana3-protobuf):
// hello, then requests on numbered streams, each stream a database connection of its own.
//
// Requests are handled one at a time in arrival order: each is read, executed, and its response
// written before the next is read. Pipelined requests wait in the socket's buffers, so a client
// that never reads its responses stops being read from (backpressure) and costs the server one
// response, not an unbounded queue.
//
// Thread model: lives on one io_context (one thread); every member runs there.
#pragma once

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <deque>
#include <functional>
#include <variant>
#include <memory>
#include <unordered_map>

#include "engine/database.h"
#include "protocol/hrana/stream.h"
#include "protocol/hrana/ws_model.h"
#include "server/config.h"

namespace quire::server {

struct Subprotocol {
  std::string name;  // as echoed to the client; empty when the client offered none
  int version = 1;
  bool protobuf = false;
};

// Picks the best subprotocol the client offers (hrana3-protobuf > hrana3 > hrana2 > hrana1).
// No header at all means hrana1. Returns nullopt when the client offers only unknown ones.
std::optional<Subprotocol> negotiate_subprotocol(std::string_view offered);

class WsSession : public std::enable_shared_from_this<WsSession> {
 public:
  using BlockingExecutor = boost::asio::thread_pool::executor_type;

  WsSession(boost::beast::tcp_stream stream, const Config& config,
            std::shared_ptr<engine::Database> db, Subprotocol subprotocol,
            BlockingExecutor blocking);

  // Completes the upgrade for `req`, then serves the connection until it closes.
  boost::asio::awaitable<void> run(boost::beast::http::request<boost::beast::http::string_body> req);

  // Shutdown: closes the connection with 1001 (going away) once the current request is done.
  void shutdown();

 private:
  struct Cursor {
    std::int32_t stream_id = 0;
    std::deque<hrana::CursorEntry> entries;
  };
  // What handling one message leads to: a message to send, and/or closing the connection.
  struct Outcome {
    std::optional<hrana::ws::ServerMsg> reply;
    std::optional<boost::beast::websocket::close_reason> close;
  };

  // Work that may wait for a write lock, to run on the blocking pool (see Router::Deferred).
  using Deferred = std::function<Outcome()>;
  using Handled = std::variant<Outcome, Deferred>;

  Handled handle(std::string_view payload, bool binary);
  bool may_block(const hrana::ws::Request& request);
  Outcome handle_request(hrana::ws::RequestMsg& msg);
  Outcome protocol_error(std::string message,
                         boost::beast::websocket::close_code code =
                             boost::beast::websocket::close_code::policy_error);
  hrana::Stream* find_stream(std::int32_t id);

  boost::beast::websocket::stream<boost::beast::tcp_stream> ws_;
  const Config& config_;
  std::shared_ptr<engine::Database> db_;
  Subprotocol subprotocol_;
  BlockingExecutor blocking_;
  hrana::SqlStore sqls_;
  std::unordered_map<std::int32_t, std::unique_ptr<hrana::Stream>> streams_;
  std::unordered_map<std::int32_t, Cursor> cursors_;
  bool hello_done_ = false;
  bool reading_ = false;
  bool closing_ = false;
};

}  // namespace quire::server
