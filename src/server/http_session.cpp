#include "server/http_session.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include "server/ws_session.h"

namespace quire::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::ip::tcp;

namespace {
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kHeaderLimit = 64 * 1024;
}  // namespace

HttpSession::HttpSession(tcp::socket socket, const Config& config, HttpHandler& handler,
                         BlockingExecutor blocking)
    : stream_(std::move(socket)), config_(config), handler_(handler), blocking_(blocking) {
  boost::system::error_code ec;
  auto ep = stream_.socket().remote_endpoint(ec);
  client_ = ec ? "unknown" : ep.address().to_string();
  stream_.socket().set_option(tcp::no_delay(true), ec);
}

void HttpSession::shutdown() {
  closing_ = true;
  if (ws_) {
    ws_->shutdown();
    return;
  }
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
      const auto length = parser.content_length();
      if (length && buffer.size() >= *length) {
        // The whole body came with the header (the usual case): parse it from the buffer now,
        // without another trip through the event loop. No socket read happens here.
        http::read(stream_, buffer, parser, hec);
      } else {
        stream_.expires_after(config_.request_read_timeout);
        std::tie(hec, hn) = co_await http::async_read(stream_, buffer, parser, kUseTuple);
      }
    }
    if (hec) {
      if (hec == http::error::body_limit || hec == http::error::header_limit) {
        auto res = handler_.error(
            hec == http::error::body_limit ? http::status::payload_too_large
                                           : http::status::request_header_fields_too_large,
            hec == http::error::body_limit
                ? "The request body is larger than the limit of " +
                      std::to_string(config_.limits.max_body_bytes) + " bytes (--max-body-size)"
                : "The request headers are too large",
            "HTTP_PAYLOAD_TOO_LARGE", 11, false);
        co_await reply_and_drain(res);
      } else if (hec != http::error::end_of_stream && hec != asio::error::eof &&
                 hec != asio::error::operation_aborted && hec != beast::error::timeout &&
                 hec != asio::error::connection_reset) {
        // Malformed HTTP: tell the client, then close (the stream cannot be resynchronised).
        auto res = handler_.error(http::status::bad_request, "Malformed HTTP request: " + hec.message(),
                                  "HTTP_BAD_REQUEST", 11, false);
        co_await reply_and_drain(res);
      }
      break;
    }

    Request req = parser.release();
    if (boost::beast::websocket::is_upgrade(req)) {
      co_await upgrade(std::move(req));
      co_return;
    }
    Response res;
    try {
      auto routed = handler_.handle(req, client_);
      if (auto* deferred = std::get_if<Router::Deferred>(&routed)) {
        // May wait for a write lock: run it on the blocking pool, resume here afterwards.
        res = co_await asio::co_spawn(
            blocking_, [deferred]() -> asio::awaitable<Response> { co_return (*deferred)(); },
            asio::use_awaitable);
      } else if (auto* write = std::get_if<Router::LaneWrite>(&routed)) {
        auto done = co_await in_write_lane(*write->lane, std::move(write->task));
        res = write->finish(std::move(done));
      } else {
        res = std::move(std::get<Response>(routed));
      }
    } catch (const std::exception& e) {
      spdlog::error("internal error serving {} {}: {}", std::string(req.method_string()),
                    std::string(req.target()), e.what());
      res = handler_.error(http::status::internal_server_error, "Internal server error",
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

asio::awaitable<Expected<void, engine::WriteLane::Failure>> HttpSession::in_write_lane(
    engine::WriteLane& lane, engine::WriteLane::Task task) {
  using Result = Expected<void, engine::WriteLane::Failure>;
  // Not a coroutine itself: it returns the operation to await. The lane reports on its own
  // thread; the awaiting coroutine resumes on its executor (this session's I/O thread) through
  // a post. Until then the executor counts the write as outstanding work, so a stopping server
  // answers it before its I/O threads return.
  return asio::async_initiate<decltype(asio::use_awaitable), void(Result)>(
      [&lane, task = std::move(task)](auto handler) mutable {
        auto executor = asio::prefer(asio::get_associated_executor(handler),
                                     asio::execution::outstanding_work.tracked);
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        lane.submit(std::move(task), [shared, executor](Result result) mutable {
          // The handler owns the coroutine: moved on, so it is only ever destroyed on the
          // I/O thread.
          asio::post(executor, [shared = std::move(shared), result = std::move(result)]() mutable {
            std::move(*shared)(std::move(result));
          });
        });
      },
      asio::use_awaitable);
}

asio::awaitable<void> HttpSession::reply_and_drain(Response& res) {
  // Closing a socket with unread input makes the kernel send a reset, and the client then loses
  // the response it has not read yet. So: send the answer, stop sending, and read (discarding)
  // until the client closes, for a bounded time and amount.
  stream_.expires_after(std::chrono::seconds(5));
  auto [wec, wn] = co_await http::async_write(stream_, res, kUseTuple);
  if (wec) co_return;
  boost::system::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  std::size_t drained = 0;
  const std::size_t cap = 4 * config_.limits.max_body_bytes + (1u << 20);
  static thread_local char sink[64 * 1024];
  while (drained < cap) {
    auto [rec, n] = co_await stream_.async_read_some(asio::buffer(sink), kUseTuple);
    if (rec) break;
    drained += n;
  }
}

asio::awaitable<void> HttpSession::upgrade(Request req) {
  if (!handler_.serves_websocket()) {
    auto res = handler_.error(http::status::not_found, "WebSocket is not served on this listener",
                              "HTTP_NOT_FOUND", req.version(), false);
    co_await http::async_write(stream_, res, kUseTuple);
    co_return;
  }
  auto sub = negotiate_subprotocol(req[http::field::sec_websocket_protocol]);
  if (!sub) {
    auto res = handler_.error(http::status::bad_request,
                              "Only these WebSocket subprotocols are supported: hrana3-protobuf, "
                              "hrana3, hrana2, hrana1",
                              "WEBSOCKET_SUBPROTOCOL", req.version(), false);
    co_await http::async_write(stream_, res, kUseTuple);
    co_return;
  }
  auto db = handler_.websocket_database(req);
  if (!db) {
    db.error().keep_alive(false);
    co_await http::async_write(stream_, db.error(), kUseTuple);
    co_return;
  }
  const bool has_database = db.value() != nullptr;
  ws_ = std::make_shared<WsSession>(std::move(stream_), config_, std::move(db.value()),
                                    handler_.websocket_authorizer(req, has_database),
                                    std::move(*sub), blocking_, handler_.websocket_replica(req));
  auto ws = ws_;
  co_await ws->run(std::move(req));
}

}  // namespace quire::server
