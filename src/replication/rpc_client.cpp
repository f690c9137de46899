#include "replication/rpc_client.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http.hpp>

#include "protocol/replication/grpc_web.h"

namespace quire::replication {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

Expected<RpcEndpoint, std::string> parse_primary_url(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    return unexpected(std::string("primary URL must start with http:// (got '") + std::string(url) +
                      "')");
  }
  std::string_view rest = url.substr(kScheme.size());
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.empty() || rest.find('/') != std::string_view::npos ||
      rest.find('@') != std::string_view::npos) {
    return unexpected(std::string("primary URL must be http://host[:port] (got '") +
                      std::string(url) + "')");
  }
  RpcEndpoint e;
  e.host_header = std::string(rest);
  std::string_view host = rest;
  std::string_view port = "80";
  if (rest.front() == '[') {  // [v6]:port
    const auto close = rest.find(']');
    if (close == std::string_view::npos) return unexpected(std::string("bad IPv6 host in URL"));
    host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return unexpected(std::string("bad port in URL"));
      port = rest.substr(close + 2);
    }
  } else if (const auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.empty() || port.empty() ||
      port.find_first_not_of("0123456789") != std::string_view::npos || port.size() > 5) {
    return unexpected(std::string("bad host or port in URL '") + std::string(url) + "'");
  }
  e.host = std::string(host);
  e.port = std::string(port);
  return e;
}

std::string RpcError::describe() const {
  switch (kind) {
    case Kind::kStatus:
      return std::string(grpc_status_name(static_cast<GrpcStatus>(grpc_status))) + " (" +
             std::to_string(grpc_status) + ")" + (message.empty() ? "" : ": " + message);
    case Kind::kHttp:
      return "HTTP " + std::to_string(grpc_status) + ": " + message;
    case Kind::kProtocol:
      return "protocol: " + message;
    case Kind::kCancelled:
      return "cancelled";
    case Kind::kTransport:
      break;
  }
  return "transport: " + message;
}

// One try of a call: what it sends, and what came of it.
struct RpcClient::Attempt {
  const http::request<http::string_body>* request = nullptr;
  bool reused = false;        // sent on a connection kept from an earlier call
  bool got_response = false;  // some bytes of an answer arrived
  beast::error_code ec;
  const char* step = "";  // which step failed, for the message
  http::response<http::string_body> response;
};

RpcClient::RpcClient(RpcEndpoint endpoint, RpcOptions options)
    : endpoint_(std::move(endpoint)), options_(options) {}

RpcClient::~RpcClient() { close(); }

void RpcClient::cancel() {
  cancelled_ = true;
  // Runs on the call's thread, inside ioc_.run(): the stream is only ever touched there.
  asio::post(ioc_, [this] {
    if (stream_) stream_->socket().close();
  });
}

void RpcClient::close() {
  if (!stream_) return;
  beast::error_code ignored;
  stream_->socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream_->socket().close(ignored);
  stream_.reset();
  buffer_.clear();
}

void RpcClient::run_attempt(Attempt& a) {
  auto body = [this, &a]() -> asio::awaitable<void> {
    auto token = asio::redirect_error(asio::use_awaitable, a.ec);
    if (!stream_) {
      stream_.emplace(ioc_);
      buffer_.clear();
      tcp::resolver resolver(ioc_);
      stream_->expires_after(options_.connect_timeout);
      a.step = "resolve";
      auto results = co_await resolver.async_resolve(endpoint_.host, endpoint_.port, token);
      if (a.ec) co_return;
      a.step = "connect";
      co_await stream_->async_connect(results, token);
      if (a.ec) co_return;
    } else {
      a.reused = true;
    }
    stream_->expires_after(options_.call_timeout);
    a.step = "write";
    co_await http::async_write(*stream_, *a.request, token);
    if (a.ec) co_return;
    http::response_parser<http::string_body> parser;
    parser.body_limit(options_.max_response_bytes);
    a.step = "read";
    co_await http::async_read(*stream_, buffer_, parser, token);
    a.got_response = parser.got_some();
    if (a.ec) co_return;
    a.response = parser.release();
    stream_->expires_never();
  };
  ioc_.restart();
  asio::co_spawn(ioc_, body(), asio::detached);
  ioc_.run();
}

Expected<std::vector<std::string>, RpcError> RpcClient::call(std::string_view method,
                                                             std::string_view message,
                                                             const RpcHeaders& headers) {
  http::request<http::string_body> req{http::verb::post, "/" + std::string(method), 11};
  req.set(http::field::host, endpoint_.host_header);
  req.set(http::field::content_type, "application/grpc-web");
  req.set(http::field::te, "trailers");
  req.set(kClientVersionHeader, "quire-replica-1");
  for (const auto& [name, value] : headers) req.set(name, value);
  append_grpc_web_data_frame(req.body(), message);
  req.keep_alive(true);
  req.prepare_payload();

  Attempt a;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (cancelled_) {
      close();
      return unexpected(RpcError{RpcError::Kind::kCancelled, -1, "cancelled"});
    }
    a = Attempt{};
    a.request = &req;
    run_attempt(a);
    if (!a.ec) break;
    close();
    // A kept connection the primary closed while idle fails at once; try a fresh one.
    const bool stale = a.reused && !a.got_response &&
                       (a.ec == http::error::end_of_stream || a.ec == asio::error::eof ||
                        a.ec == asio::error::connection_reset || a.ec == asio::error::broken_pipe);
    if (!stale) break;
  }
  if (cancelled_) {
    close();
    return unexpected(RpcError{RpcError::Kind::kCancelled, -1, "cancelled"});
  }
  if (a.ec) {
    const std::string what = a.ec == beast::error::timeout ? "timed out" : a.ec.message();
    return unexpected(RpcError{RpcError::Kind::kTransport, -1,
                               std::string(a.step) + " " + endpoint_.host_header + ": " + what});
  }
  auto& res = a.response;
  if (!res.keep_alive()) close();

  // A "trailers-only" answer carries the status as HTTP headers.
  std::optional<GrpcTrailers> trailers;
  if (auto it = res.find("grpc-status"); it != res.end()) {
    GrpcTrailers t;
    t.status = std::atoi(std::string(it->value()).c_str());
    if (auto m = res.find("grpc-message"); m != res.end()) {
      t.message = percent_decode_grpc_message(m->value());
    }
    trailers = std::move(t);
  }
  if (res.result() != http::status::ok && !trailers) {
    std::string text = res.body().substr(0, 200);
    return unexpected(
        RpcError{RpcError::Kind::kHttp, static_cast<int>(res.result_int()), std::move(text)});
  }
  auto frames = split_grpc_web_frames(res.body(), options_.max_response_bytes);
  if (!frames) return unexpected(RpcError{RpcError::Kind::kProtocol, -1, frames.error().message});
  std::vector<std::string> messages;
  for (const auto& f : *frames) {
    if (!f.trailers) {
      messages.emplace_back(f.payload);
      continue;
    }
    auto t = parse_grpc_web_trailers(f.payload);
    if (!t) return unexpected(RpcError{RpcError::Kind::kProtocol, -1, t.error().message});
    trailers = std::move(t.value());
  }
  if (!trailers || trailers->status < 0) {
    return unexpected(RpcError{RpcError::Kind::kProtocol, -1, "answer without a grpc-status"});
  }
  if (trailers->status != 0) {
    return unexpected(
        RpcError{RpcError::Kind::kStatus, trailers->status, std::move(trailers->message)});
  }
  return messages;
}

}  // namespace quire::replication
