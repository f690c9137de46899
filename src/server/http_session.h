// One HTTP/1.1 connection: reads requests (bounded in size and time), hands each to the Router,
// writes the response, repeats while keep-alive holds.
//
// Thread model: lives on one io_context (one thread); every member runs there.
#pragma once

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>

#include <memory>

#include "server/config.h"
#include "server/router.h"

namespace quire::server {

class WsSession;

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  using BlockingExecutor = boost::asio::thread_pool::executor_type;

  HttpSession(boost::asio::ip::tcp::socket socket, const Config& config, Router& router,
              BlockingExecutor blocking);

  boost::asio::awaitable<void> run();

  // Shutdown: an idle connection is closed now; a busy one after its current response.
  void shutdown();

 private:
  // Hands the connection over to a WebSocket session (an `Upgrade: websocket` request).
  boost::asio::awaitable<void> upgrade(Request req);
  // Sends a final error response and lets the client read it before the connection closes.
  boost::asio::awaitable<void> reply_and_drain(Response& res);

 public:

 private:
  boost::beast::tcp_stream stream_;
  const Config& config_;
  Router& router_;
  BlockingExecutor blocking_;
  std::string client_;
  std::shared_ptr<WsSession> ws_;  // set once the connection is upgraded
  bool idle_ = true;
  bool closing_ = false;
};

}  // namespace quire::server
