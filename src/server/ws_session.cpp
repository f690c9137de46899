#include "server/ws_session.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <cctype>

#include "protocol/hrana/codec.h"

namespace quire::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace ws = hrana::ws;

namespace {

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
// Streams one connection may hold open at once.
constexpr std::size_t kMaxStreamsPerConnection = 128;
constexpr std::size_t kMaxCursorsPerConnection = 32;

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace

std::optional<Subprotocol> negotiate_subprotocol(std::string_view offered) {
  if (trim(offered).empty()) return Subprotocol{"", 1, false};
  static const Subprotocol kPreference[] = {
      {"hrana3-protobuf", 3, true}, {"hrana3", 3, false}, {"hrana2", 2, false}, {"hrana1", 1, false}};
  std::vector<std::string> names;
  while (!offered.empty()) {
    auto comma = offered.find(',');
    names.push_back(lower(trim(offered.substr(0, comma))));
    offered = comma == std::string_view::npos ? std::string_view() : offered.substr(comma + 1);
  }
  for (const auto& p : kPreference) {
    for (const auto& n : names) {
      if (n == p.name) return p;
    }
  }
  return std::nullopt;
}

WsSession::WsSession(beast::tcp_stream stream, const Config& config,
                     std::shared_ptr<engine::Database> db, Subprotocol subprotocol,
                     BlockingExecutor blocking)
    : ws_(std::move(stream)),
      config_(config),
      db_(std::move(db)),
      subprotocol_(std::move(subprotocol)),
      blocking_(blocking),
      sqls_(config.limits) {}

void WsSession::shutdown() {
  closing_ = true;
  if (reading_) {
    // Waiting for the next request: say goodbye now (the pending read then ends).
    auto self = shared_from_this();
    ws_.async_close(websocket::close_code::going_away, [self](beast::error_code) {});
  }
}

asio::awaitable<void> WsSession::run(beast::http::request<beast::http::string_body> req) {
  auto self = shared_from_this();
  beast::get_lowest_layer(ws_).expires_never();
  websocket::stream_base::timeout timeout;
  timeout.handshake_timeout = config_.request_read_timeout;
  timeout.idle_timeout = config_.idle_connection_timeout;
  timeout.keep_alive_pings = true;  // a ping at half the idle time keeps live clients connected
  ws_.set_option(timeout);
  ws_.read_message_max(config_.limits.max_body_bytes);
  const std::string chosen = subprotocol_.name;
  ws_.set_option(websocket::stream_base::decorator([chosen](websocket::response_type& res) {
    res.set(beast::http::field::server, "quire/" QUIRE_VERSION);
    if (!chosen.empty()) res.set(beast::http::field::sec_websocket_protocol, chosen);
  }));
  auto [aec] = co_await ws_.async_accept(req, kUseTuple);
  if (aec) co_return;
  ws_.binary(subprotocol_.protobuf);

  beast::flat_buffer buffer;
  while (!closing_) {
    buffer.clear();
    reading_ = true;
    auto [rec, n] = co_await ws_.async_read(buffer, kUseTuple);
    reading_ = false;
    if (rec) {
      if (rec == websocket::error::message_too_big) {
        websocket::close_reason reason(websocket::close_code::too_big,
                                       "Message larger than the server's limit");
        co_await ws_.async_close(reason, kUseTuple);
      }
      break;  // closed by the peer, timed out, or torn down: streams are released below
    }
    const auto data = buffer.cdata();
    std::string_view payload(static_cast<const char*>(data.data()), data.size());
    Outcome out;
    try {
      auto handled = handle(payload, ws_.got_binary());
      if (auto* deferred = std::get_if<Deferred>(&handled)) {
        // The session reads nothing else meanwhile, so its state is touched by one thread at a
        // time even though this part runs on the blocking pool.
        out = co_await asio::co_spawn(
            blocking_, [deferred]() -> asio::awaitable<Outcome> { co_return (*deferred)(); },
            asio::use_awaitable);
      } else {
        out = std::move(std::get<Outcome>(handled));
      }
    } catch (const std::exception& e) {
      spdlog::error("internal error on a WebSocket connection: {}", e.what());
      out.close = websocket::close_reason(websocket::close_code::internal_error,
                                          "Internal server error");
    }
    if (out.reply) {
      std::string bytes = subprotocol_.protobuf ? ws::protobuf::encode_server_msg(*out.reply)
                                                : ws::json::encode_server_msg(*out.reply);
      auto [wec, wn] = co_await ws_.async_write(asio::buffer(bytes), kUseTuple);
      if (wec) break;
    }
    if (out.close) {
      co_await ws_.async_close(*out.close, kUseTuple);
      break;
    }
  }
  if (closing_ && ws_.is_open()) {
    co_await ws_.async_close(websocket::close_code::going_away, kUseTuple);
  }
  // Dropping the streams rolls back whatever transactions they left open.
  cursors_.clear();
  streams_.clear();
}

WsSession::Outcome WsSession::protocol_error(std::string message, websocket::close_code code) {
  // Close reasons are limited to 123 bytes by RFC 6455.
  if (message.size() > 120) message.resize(120);
  Outcome out;
  out.close = websocket::close_reason(code, message);
  return out;
}

hrana::Stream* WsSession::find_stream(std::int32_t id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}

bool WsSession::may_block(const ws::Request& request) {
  auto stream_of = [&](std::int32_t id) { return find_stream(id); };
  return std::visit(
      [&](const auto& r) -> bool {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, ws::ExecuteReq>) {
          auto* s = stream_of(r.stream_id);
          return s && s->may_block(r.stmt, sqls_);
        } else if constexpr (std::is_same_v<T, ws::BatchReq> || std::is_same_v<T, ws::OpenCursorReq>) {
          auto* s = stream_of(r.stream_id);
          return s && s->may_block(r.batch, sqls_);
        } else if constexpr (std::is_same_v<T, ws::SequenceReq>) {
          auto* s = stream_of(r.stream_id);
          return s && s->may_block(hrana::StreamRequest(hrana::SequenceReq{}), sqls_);
        } else {
          return false;
        }
      },
      request);
}

WsSession::Handled WsSession::handle(std::string_view payload, bool binary) {
  if (binary != subprotocol_.protobuf) {
    return protocol_error(subprotocol_.protobuf ? "Expected a binary message (protobuf)"
                                                : "Expected a text message (JSON)",
                          websocket::close_code::bad_payload);
  }
  auto msg = subprotocol_.protobuf ? ws::protobuf::decode_client_msg(payload)
                                   : ws::json::decode_client_msg(payload);
  if (!msg) return protocol_error(msg.error().message, websocket::close_code::bad_payload);

  if (std::holds_alternative<ws::HelloMsg>(*msg)) {
    if (hello_done_ && subprotocol_.version < 2) {
      return protocol_error("Hello may be sent only once in protocol version 1");
    }
    // Authentication arrives with the auth issue; every hello is accepted until then.
    hello_done_ = true;
    return Outcome{ws::ServerMsg(ws::HelloOkMsg{}), std::nullopt};
  }
  if (!hello_done_) return protocol_error("The first message must be hello");
  auto& request = std::get<ws::RequestMsg>(*msg);
  if (may_block(request.request)) {
    auto shared = std::make_shared<ws::RequestMsg>(std::move(request));
    return Deferred([this, shared] { return handle_request(*shared); });
  }
  return handle_request(request);
}

WsSession::Outcome WsSession::handle_request(ws::RequestMsg& msg) {
  const std::int32_t id = msg.request_id;
  ws::Request& request = msg.request;
  if (ws::min_version(request) > subprotocol_.version) {
    return protocol_error(std::string("The ") + ws::kRequestNames[request.index()] +
                          " request needs protocol version " +
                          std::to_string(ws::min_version(request)) + " or higher");
  }
  const auto version = static_cast<hrana::Version>(subprotocol_.version);
  auto ok = [&](ws::Response r) {
    return Outcome{ws::ServerMsg(ws::ResponseOkMsg{id, std::move(r)}), std::nullopt};
  };
  auto fail = [&](hrana::Error e) {
    return Outcome{ws::ServerMsg(ws::ResponseErrorMsg{id, std::move(e)}), std::nullopt};
  };

  // Requests that run on a stream go through the same code as HTTP pipelines.
  auto on_stream = [&](std::int32_t stream_id, hrana::StreamRequest sreq) -> Outcome {
    hrana::Stream* stream = find_stream(stream_id);
    if (!stream) return protocol_error("Stream " + std::to_string(stream_id) + " is not open");
    if (auto v = hrana::validate(sreq, version); !v) return protocol_error(v.error().message);
    engine::ResponseBudget budget{config_.limits.max_response_bytes};
    auto result = stream->run(sreq, sqls_, budget);
    if (!result) return protocol_error(result.error().message);
    if (auto* e = std::get_if<hrana::Error>(&*result)) return fail(std::move(*e));
    auto& resp = std::get<hrana::StreamResponse>(*result);
    if (auto* r = std::get_if<hrana::ExecuteResp>(&resp)) return ok(ws::ExecuteResp{std::move(r->result)});
    if (auto* r = std::get_if<hrana::BatchResp>(&resp)) return ok(ws::BatchResp{std::move(r->result)});
    if (auto* r = std::get_if<hrana::DescribeResp>(&resp)) return ok(ws::DescribeResp{std::move(r->result)});
    if (auto* r = std::get_if<hrana::GetAutocommitResp>(&resp)) return ok(ws::GetAutocommitResp{r->is_autocommit});
    return ok(ws::SequenceResp{});
  };

  return std::visit(
      [&](auto& r) -> Outcome {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, ws::OpenStreamReq>) {
          if (streams_.count(r.stream_id)) {
            return protocol_error("Stream " + std::to_string(r.stream_id) + " is already open");
          }
          if (streams_.size() >= kMaxStreamsPerConnection) {
            return fail(hrana::Error{"Too many streams on this connection (the limit is " +
                                         std::to_string(kMaxStreamsPerConnection) + ")",
                                     "STREAMS_EXHAUSTED", {}});
          }
          streams_.emplace(r.stream_id, std::make_unique<hrana::Stream>(db_));
          return ok(ws::OpenStreamResp{});
        } else if constexpr (std::is_same_v<T, ws::CloseStreamReq>) {
          std::erase_if(cursors_, [&](const auto& kv) { return kv.second.stream_id == r.stream_id; });
          streams_.erase(r.stream_id);  // rolls back an open transaction
          return ok(ws::CloseStreamResp{});
        } else if constexpr (std::is_same_v<T, ws::ExecuteReq>) {
          return on_stream(r.stream_id, hrana::ExecuteReq{std::move(r.stmt)});
        } else if constexpr (std::is_same_v<T, ws::BatchReq>) {
          return on_stream(r.stream_id, hrana::BatchReq{std::move(r.batch)});
        } else if constexpr (std::is_same_v<T, ws::SequenceReq>) {
          return on_stream(r.stream_id, hrana::SequenceReq{std::move(r.sql), r.sql_id});
        } else if constexpr (std::is_same_v<T, ws::DescribeReq>) {
          return on_stream(r.stream_id, hrana::DescribeReq{std::move(r.sql), r.sql_id});
        } else if constexpr (std::is_same_v<T, ws::GetAutocommitReq>) {
          return on_stream(r.stream_id, hrana::GetAutocommitReq{});
        } else if constexpr (std::is_same_v<T, ws::StoreSqlReq>) {
          auto stored = sqls_.store(r.sql_id, std::move(r.sql));
          if (!stored) return protocol_error(stored.error().message);
          if (*stored) return fail(std::move(**stored));
          return ok(ws::StoreSqlResp{});
        } else if constexpr (std::is_same_v<T, ws::CloseSqlReq>) {
          sqls_.close(r.sql_id);
          return ok(ws::CloseSqlResp{});
        } else if constexpr (std::is_same_v<T, ws::OpenCursorReq>) {
          hrana::Stream* stream = find_stream(r.stream_id);
          if (!stream) return protocol_error("Stream " + std::to_string(r.stream_id) + " is not open");
          if (cursors_.count(r.cursor_id)) {
            return protocol_error("Cursor " + std::to_string(r.cursor_id) + " is already open");
          }
          if (cursors_.size() >= kMaxCursorsPerConnection) {
            return fail(hrana::Error{"Too many cursors on this connection", "CURSORS_EXHAUSTED", {}});
          }
          if (auto v = hrana::validate(r.batch, version); !v) return protocol_error(v.error().message);
          // The batch runs now; its entries wait here for fetch_cursor, bounded by the
          // response limit.
          Cursor cursor{r.stream_id, {}};
          engine::ResponseBudget budget{config_.limits.max_response_bytes};
          auto ran = stream->run_cursor(r.batch, sqls_, budget, [&](hrana::CursorEntry&& e) {
            cursor.entries.push_back(std::move(e));
          });
          if (!ran) return protocol_error(ran.error().message);
          cursors_.emplace(r.cursor_id, std::move(cursor));
          return ok(ws::OpenCursorResp{});
        } else if constexpr (std::is_same_v<T, ws::FetchCursorReq>) {
          auto it = cursors_.find(r.cursor_id);
          if (it == cursors_.end()) {
            return protocol_error("Cursor " + std::to_string(r.cursor_id) + " is not open");
          }
          ws::FetchCursorResp resp;
          auto& entries = it->second.entries;
          const std::size_t n = std::min<std::size_t>(r.max_count, entries.size());
          resp.entries.assign(std::make_move_iterator(entries.begin()),
                              std::make_move_iterator(entries.begin() + static_cast<long>(n)));
          entries.erase(entries.begin(), entries.begin() + static_cast<long>(n));
          resp.done = entries.empty();
          return ok(std::move(resp));
        } else {
          static_assert(std::is_same_v<T, ws::CloseCursorReq>);
          cursors_.erase(r.cursor_id);
          return ok(ws::CloseCursorResp{});
        }
      },
      request);
}

}  // namespace quire::server
