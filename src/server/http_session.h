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

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(boost::asio::ip::tcp::socket socket, const Config& config, Router& router);

  boost::asio::awaitable<void> run();

  // Shutdown: an idle connection is closed now; a busy one after its current response.
  void shutdown();

 private:
  boost::beast::tcp_stream stream_;
  const Config& config_;
  Router& router_;
  std::string client_;
  bool idle_ = true;
  bool closing_ = false;
};

}  // namespace quire::server
