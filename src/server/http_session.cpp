#include "server/http_session.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/beast/http.hpp>

namespace quire::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::ip::tcp;

namespace {
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kHeaderLimit = 64 * 1024;
}  // namespace

HttpSession::HttpSession(tcp::socket socket, const Config& config, Router& router)
    : stream_(std::move(socket)), config_(config), router_(router) {
  boost::system::error_code ec;
  auto ep = stream_.socket().remote_endpoint(ec);
  client_ = ec ? "unknown" : ep.address().to_string();
  stream_.socket().set_option(tcp::no_delay(true), ec);
}

void HttpSession::shutdown() {
  closing_ = true;
  if (idle_) {
    boost::system::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_receive, ec);
    stream_.cancel();
  }
}

asio::awaitable<void> HttpSession::run() {
  auto self = shared_from_this();
  beast::flat_buffer buffer;
  while (!closing_) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(kHeaderLimit);
    parser.body_limit(config_.limits.max_body_bytes);

    idle_ = true;
    stream_.expires_after(config_.idle_connection_timeout);
    // The first read waits for the request to begin (keep-alive idle time); once its header
    // is in, the body must follow within the request timeout.
    boost::system::error_code hec;
    std::size_t hn = 0;
    std::tie(hec, hn) = co_await http::async_read_header(stream_, buffer, parser, kUseTuple);
    idle_ = false;
    if (!hec && !parser.is_done()) {
      stream_.expires_after(config_.request_read_timeout);
      std::tie(hec, hn) = co_await http::async_read(stream_, buffer, parser, kUseTuple);
    }
    if (hec) {
      if (hec == http::error::body_limit || hec == http::error::header_limit) {
        auto res = Router::error(
            hec == http::error::body_limit ? http::status::payload_too_large
                                           : http::status::request_header_fields_too_large,
            hec == http::error::body_limit
                ? "The request body is larger than the limit of " +
                      std::to_string(config_.limits.max_body_bytes) + " bytes (--max-body-size)"
                : "The request headers are too large",
            "HTTP_PAYLOAD_TOO_LARGE", 11, false);
        stream_.expires_after(std::chrono::seconds(5));
        co_await http::async_write(stream_, res, kUseTuple);
      } else if (hec != http::error::end_of_stream && hec != asio::error::eof &&
                 hec != asio::error::operation_aborted && hec != beast::error::timeout &&
                 hec != asio::error::connection_reset) {
        // Malformed HTTP: tell the client, then close (the stream cannot be resynchronised).
        auto res = Router::error(http::status::bad_request, "Malformed HTTP request: " + hec.message(),
                                 "HTTP_BAD_REQUEST", 11, false);
        stream_.expires_after(std::chrono::seconds(5));
        co_await http::async_write(stream_, res, kUseTuple);
      }
      break;
    }

    Request req = parser.release();
    Response res;
    try {
      res = router_.handle(req, client_);
    } catch (const std::exception& e) {
      spdlog::error("internal error serving {} {}: {}", std::string(req.method_string()),
                    std::string(req.target()), e.what());
      res = Router::error(http::status::internal_server_error, "Internal server error",
                          "INTERNAL_ERROR", req.version(), req.keep_alive());
    }
    if (closing_) res.keep_alive(false);
    const bool keep_alive = res.keep_alive();
    stream_.expires_after(config_.request_read_timeout);
    auto [wec, wn] = co_await http::async_write(stream_, res, kUseTuple);
    if (wec || !keep_alive) break;
  }
  boost::system::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream_.socket().close(ec);
}

}  // namespace quire::server
