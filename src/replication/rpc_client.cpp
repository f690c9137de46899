#include "replication/rpc_client.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http.hpp>
#include <cstring>

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
    case Kind::kHandler:
      return "aborted: " + message;
    case Kind::kTransport:
      break;
  }
  return "transport: " + message;
}

// One try of a call: what it sends, and what came of it.
struct RpcClient::Attempt {
  const http::request<http::string_body>* request = nullptr;
  const MessageHandler* on_message = nullptr;
  std::chrono::milliseconds server_wait{0};
  bool reused = false;        // sent on a connection kept from an earlier call
  bool got_response = false;  // some bytes of an answer arrived
  beast::error_code ec;
  const char* step = "";  // which step failed, for the message
  // The answer.
  http::status status = http::status::unknown;
  bool keep_alive = false;
  std::optional<GrpcTrailers> trailers;  // from the headers (trailers-only) or the trailer frame
  std::string error_text;                // the start of a body that is not gRPC-Web
  std::optional<RpcError> failure;       // a malformed body, or the handler refused a message
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

namespace {

// The body is read into a buffer of at least this much room, and messages are handed over from
// it; one larger message grows the buffer to fit it.
constexpr std::size_t kReadChunk = 1 << 20;

}  // namespace

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
    const auto timeout = options_.call_timeout + a.server_wait;
    stream_->expires_after(timeout);
    a.step = "write";
    co_await http::async_write(*stream_, *a.request, token);
    if (a.ec) co_return;
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(options_.max_response_bytes);
    a.step = "read";
    co_await http::async_read_header(*stream_, buffer_, parser, token);
    a.got_response = parser.got_some();
    if (a.ec) co_return;
    auto& res = parser.get();
    a.status = res.result();
    a.keep_alive = res.keep_alive();
    // A "trailers-only" answer carries the status as HTTP headers.
    if (auto it = res.find("grpc-status"); it != res.end()) {
      GrpcTrailers t;
      t.status = std::atoi(std::string(it->value()).c_str());
      if (auto m = res.find("grpc-message"); m != res.end()) {
        t.message = percent_decode_grpc_message(m->value());
      }
      a.trailers = std::move(t);
    }
    const bool grpc_body = a.status == http::status::ok;

    // The body, read into body_ and cut into gRPC-Web frames as it comes; a frame split across
    // reads waits at the front of body_ for the rest.
    if (body_.size() < kReadChunk) body_.resize(kReadChunk);
    std::size_t have = 0;
    auto fail = [&a](RpcError::Kind kind, std::string message) {
      a.failure = RpcError{kind, -1, std::move(message)};
    };
    // Hands over the complete frames at the front of body_ and keeps the rest; false on failure.
    auto consume = [&]() -> bool {
      std::size_t pos = 0;
      while (have - pos >= kFramePrefixSize) {
        const auto* prefix = reinterpret_cast<const std::uint8_t*>(body_.data() + pos);
        const std::uint8_t flag = prefix[0];
        const std::size_t len = (std::size_t{prefix[1]} << 24) | (std::size_t{prefix[2]} << 16) |
                                (std::size_t{prefix[3]} << 8) | prefix[4];
        if (flag & kCompressedFlagBit) {
          fail(RpcError::Kind::kProtocol, "compressed gRPC-Web frames are not supported");
          return false;
        }
        if ((flag & ~kTrailerFrameFlag) != 0) {
          fail(RpcError::Kind::kProtocol, "unknown gRPC-Web frame flag " + std::to_string(flag));
          return false;
        }
        if (len > options_.max_response_bytes) {
          fail(RpcError::Kind::kProtocol,
               "gRPC-Web frame of " + std::to_string(len) + " bytes exceeds the limit");
          return false;
        }
        if (have - pos - kFramePrefixSize < len) break;  // the rest is still to come
        const std::string_view payload(body_.data() + pos + kFramePrefixSize, len);
        pos += kFramePrefixSize + len;
        if (flag & kTrailerFrameFlag) {
          auto t = parse_grpc_web_trailers(payload);
          if (!t) {
            fail(RpcError::Kind::kProtocol, t.error().message);
            return false;
          }
          a.trailers = std::move(t.value());
        } else if (!(*a.on_message)(payload)) {
          fail(RpcError::Kind::kHandler, "the answer's handler refused a message");
          return false;
        }
      }
      if (pos > 0) {
        std::memmove(body_.data(), body_.data() + pos, have - pos);
        have -= pos;
      }
      return true;
    };
    // Room for at least a quarter chunk more, and for the whole of a frame already begun.
    auto make_room = [&] {
      std::size_t need = have + kReadChunk / 4;
      if (have >= kFramePrefixSize) {
        const auto* prefix = reinterpret_cast<const std::uint8_t*>(body_.data());
        const std::size_t len = (std::size_t{prefix[1]} << 24) | (std::size_t{prefix[2]} << 16) |
                                (std::size_t{prefix[3]} << 8) | prefix[4];
        need = std::max(need, kFramePrefixSize + len);
      }
      if (need > body_.size()) body_.resize(need + kReadChunk);
    };

    const auto length = parser.content_length();
    if (grpc_body && !parser.chunked() && length) {
      // A body of known length (quire's answers) is read straight into body_ in large reads:
      // through the parser it would come 64 KiB at a time and be copied once more.
      std::uint64_t left = *length;
      if (left > options_.max_response_bytes) {
        fail(RpcError::Kind::kProtocol,
             "an answer of " + std::to_string(left) + " bytes exceeds the limit");
        co_return;
      }
      const std::size_t early =
          static_cast<std::size_t>(std::min<std::uint64_t>(buffer_.size(), left));
      if (early > 0) {
        if (have + early > body_.size()) body_.resize(have + early + kReadChunk);
        asio::buffer_copy(asio::buffer(body_.data() + have, early), buffer_.data());
        buffer_.consume(early);
        have += early;
        left -= early;
        if (!consume()) co_return;
      }
      while (left > 0) {
        make_room();
        const std::size_t room =
            static_cast<std::size_t>(std::min<std::uint64_t>(body_.size() - have, left));
        const std::size_t n =
            co_await stream_->async_read_some(asio::buffer(body_.data() + have, room), token);
        if (a.ec) co_return;
        have += n;
        left -= n;
        stream_->expires_after(timeout);  // bounds the wait for the next bytes, not the body
        if (!consume()) co_return;
      }
    } else {
      while (!parser.is_done()) {
        make_room();
        res.body().data = body_.data() + have;
        res.body().size = body_.size() - have;
        co_await http::async_read(*stream_, buffer_, parser, token);
        if (a.ec == http::error::need_buffer) a.ec = {};
        if (a.ec) co_return;
        have = body_.size() - res.body().size;
        stream_->expires_after(timeout);
        if (!grpc_body) {
          const std::size_t keep = a.error_text.size() < 200 ? 200 - a.error_text.size() : 0;
          a.error_text.append(body_.data(), std::min(have, keep));
          have = 0;
          continue;
        }
        if (!consume()) co_return;
      }
    }
    if (grpc_body && have != 0) {
      fail(RpcError::Kind::kProtocol, "gRPC-Web frame truncated at the end of the body");
      co_return;
    }
    stream_->expires_never();
  };
  ioc_.restart();
  asio::co_spawn(ioc_, body(), asio::detached);
  ioc_.run();
  // A body of several megabytes (a large batch) is not kept for the calls that follow.
  if (body_.size() > 4 * kReadChunk) {
    body_.clear();
    body_.shrink_to_fit();
  }
}

Expected<std::vector<std::string>, RpcError> RpcClient::call(
    std::string_view method, std::string_view message, const RpcHeaders& headers,
    std::chrono::milliseconds server_wait) {
  std::vector<std::string> messages;
  auto done = call_streamed(
      method, message, headers,
      [&messages](std::string_view m) {
        messages.emplace_back(m);
        return true;
      },
      server_wait);
  if (!done) return unexpected(std::move(done.error()));
  return messages;
}

Expected<void, RpcError> RpcClient::call_streamed(std::string_view method, std::string_view message,
                                                  const RpcHeaders& headers,
                                                  const MessageHandler& on_message,
                                                  std::chrono::milliseconds server_wait) {
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
    a.on_message = &on_message;
    a.server_wait = server_wait;
    run_attempt(a);
    if (!a.ec) break;
    close();
    // A kept connection the primary closed while idle fails at once; try a fresh one. Nothing
    // was handed to on_message: that needs bytes of an answer.
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
  if (a.failure) {
    close();  // the rest of the body was not read
    return unexpected(std::move(*a.failure));
  }
  if (!a.keep_alive) close();

  if (a.status != http::status::ok && !a.trailers) {
    return unexpected(
        RpcError{RpcError::Kind::kHttp, static_cast<int>(a.status), std::move(a.error_text)});
  }
  if (!a.trailers || a.trailers->status < 0) {
    return unexpected(RpcError{RpcError::Kind::kProtocol, -1, "answer without a grpc-status"});
  }
  if (a.trailers->status != 0) {
    return unexpected(
        RpcError{RpcError::Kind::kStatus, a.trailers->status, std::move(a.trailers->message)});
  }
  return {};
}

}  // namespace quire::replication
