#include "replication/http_forwarder.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <optional>

namespace quire::replication {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// One keep-alive connection with the event loop that drives it: each call runs its own
// io_context until the operation ends, so a connection is usable from any one thread at a time.
struct HttpForwarder::Connection {
  asio::io_context ioc{1};
  beast::tcp_stream stream{ioc};
  beast::flat_buffer buffer;
  Clock::time_point last_used;
};

HttpForwarder::HttpForwarder(RpcEndpoint endpoint, ForwarderOptions options)
    : endpoint_(std::move(endpoint)), options_(options) {}

HttpForwarder::~HttpForwarder() = default;

std::unique_ptr<HttpForwarder::Connection> HttpForwarder::take() {
  std::lock_guard lock(mu_);
  while (!idle_.empty()) {
    auto conn = std::move(idle_.back());
    idle_.pop_back();
    if (Clock::now() - conn->last_used < options_.max_idle) return conn;
  }
  return nullptr;
}

void HttpForwarder::give_back(std::unique_ptr<Connection> conn) {
  conn->last_used = Clock::now();
  std::lock_guard lock(mu_);
  if (idle_.size() < options_.max_idle_connections) idle_.push_back(std::move(conn));
}

Expected<HttpForwarder::Response, std::string> HttpForwarder::forward(Request req) {
  auto conn = take();
  if (!conn) {
    conn = std::make_unique<Connection>();
    boost::system::error_code ec;
    tcp::resolver resolver(conn->ioc);
    const auto results = resolver.resolve(endpoint_.host, endpoint_.port, ec);
    if (ec) return unexpected("cannot resolve the primary " + endpoint_.host + ": " + ec.message());
    conn->stream.expires_after(options_.connect_timeout);
    conn->stream.async_connect(results, [&](boost::system::error_code e, const tcp::endpoint&) {
      ec = e;
    });
    conn->ioc.run();
    if (ec) {
      return unexpected("cannot connect to the primary " + endpoint_.host_header + ": " +
                        ec.message());
    }
    conn->stream.socket().set_option(tcp::no_delay(true), ec);
  }

  req.set(http::field::host, endpoint_.host_header);
  req.keep_alive(true);
  req.prepare_payload();
  http::response_parser<http::string_body> parser;
  parser.body_limit(options_.max_response_bytes);
  parser.header_limit(64 * 1024);
  boost::system::error_code ec;
  conn->ioc.restart();
  conn->stream.expires_after(options_.request_timeout);
  http::async_write(conn->stream, req, [&](boost::system::error_code e, std::size_t) {
    ec = e;
    if (ec) return;
    http::async_read(conn->stream, conn->buffer, parser,
                     [&](boost::system::error_code e2, std::size_t) { ec = e2; });
  });
  conn->ioc.run();
  if (ec) {
    const bool timed_out = ec == beast::error::timeout;
    return unexpected(std::string(timed_out ? "the primary did not answer in time"
                                            : "the request to the primary failed") +
                      " (" + ec.message() + ")");
  }
  Response res = parser.release();
  conn->stream.expires_never();
  if (res.keep_alive()) give_back(std::move(conn));
  return res;
}

}  // namespace quire::replication
