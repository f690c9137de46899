#include "server/ws_session.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <cctype>

#include "common/text.h"
#include "protocol/hrana/codec.h"

namespace quire::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace ws = hrana::ws;

namespace {

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::optional<Subprotocol> negotiate_subprotocol(std::string_view offered) {
  if (trim(offered).empty()) return Subprotocol{"", 1, false};
  static const Subprotocol kPreference[] = {{"hrana3-protobuf", 3, true},
                                            {"hrana3", 3, false},
                                            {"hrana2", 2, false},
                                            {"hrana1", 1, false}};
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
                     std::shared_ptr<engine::Database> db, WsAuthorizer authorize,
                     Subprotocol subprotocol, BlockingExecutor blocking, WsReplica replica)
    : ws_(DrainingStream(std::move(stream))),
      config_(config),
      db_(std::move(db)),
      authorize_(std::move(authorize)),
      subprotocol_(std::move(subprotocol)),
      blocking_(blocking),
      replica_(std::move(replica)),
      sqls_(config.limits),
      no_sqls_(config.limits),
      wake_(ws_.get_executor()) {}

std::size_t WsSession::backlog() const { return inflight_ + queued_ + outbox_.size(); }

void WsSession::shutdown() {
  if (stop_reading_) return;
  stop_reading_ = true;
  if (!close_)
    close_ = websocket::close_reason(websocket::close_code::going_away, "Server shutdown");
  // Idle: close now, and the pending read then ends. Busy: close once the work in progress is
  // answered (wake() checks after every response and every finished request).
  close_when_idle_ = true;
  wake();
}

void WsSession::wake() {
  wake_.cancel();
  if (close_when_idle_ && reading_ && !writing_ && inflight_ == 0 && outbox_.empty() && close_) {
    close_when_idle_ = false;
    auto self = shared_from_this();
    ws_.async_close(*close_, [self](beast::error_code) {});
    close_.reset();
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
  // The message limit is enforced in read_loop: when Beast finds a message too big it tears the
  // socket down at once, and a client still sending the rest of a fragmented message gets a
  // reset instead of our close frame. Beast's own limit stays, a little above ours, so that a
  // frame announcing more than allowed is refused from its header alone (DrainingStream then
  // lets the client read the close frame).
  ws_.read_message_max(config_.limits.max_body_bytes + 256 * 1024);
  const std::string chosen = subprotocol_.name;
  ws_.set_option(websocket::stream_base::decorator([chosen](websocket::response_type& res) {
    res.set(beast::http::field::server, "quire/" QUIRE_VERSION);
    if (!chosen.empty()) res.set(beast::http::field::sec_websocket_protocol, chosen);
  }));
  auto [aec] = co_await ws_.async_accept(req, kUseTuple);
  if (aec) co_return;
  ws_.binary(subprotocol_.protobuf);

  co_await read_loop();

  // Reading is over: let the work in progress finish and its responses go out, then close.
  stop_reading_ = true;
  while (inflight_ > 0 || writing_) {
    wake_.expires_at(asio::steady_timer::time_point::max());
    co_await wake_.async_wait(kUseTuple);
  }
  if (close_ && ws_.is_open()) co_await ws_.async_close(*close_, kUseTuple);
  // Dropping the streams rolls back whatever transactions they left open; the primary's are
  // closed there.
  cursors_.clear();
  for (auto& [id, state] : streams_) {
    if (state.primary) close_at_primary(std::move(state.primary));
  }
  streams_.clear();
}

asio::awaitable<void> WsSession::read_loop() {
  beast::flat_buffer buffer;
  while (!stop_reading_) {
    while (backlog() >= kMaxBacklog && !stop_reading_) {
      // The client is not reading its responses fast enough (or keeps the pool busy): stop
      // reading until the backlog drains.
      wake_.expires_at(asio::steady_timer::time_point::max());
      co_await wake_.async_wait(kUseTuple);
    }
    if (stop_reading_) break;
    buffer.clear();
    reading_ = true;
    boost::system::error_code rec;
    bool too_big = false;
    do {
      std::size_t n = 0;
      std::tie(rec, n) = co_await ws_.async_read_some(buffer, 64 * 1024, kUseTuple);
      if (!rec && buffer.size() > config_.limits.max_body_bytes) too_big = true;
    } while (!rec && !too_big && !ws_.is_message_done());
    reading_ = false;
    if (too_big) {
      // async_close (at teardown) sends 1009 and reads, discarding, until the client's close
      // frame: the client gets our answer instead of a reset.
      close_ = websocket::close_reason(websocket::close_code::too_big,
                                       "Message larger than the server's limit (--max-body-size)");
      break;
    }
    if (rec) break;  // closed by the peer, timed out, or torn down
    const auto data = buffer.cdata();
    try {
      on_message(std::string_view(static_cast<const char*>(data.data()), data.size()),
                 ws_.got_binary());
    } catch (const std::exception& e) {
      spdlog::error("internal error on a WebSocket connection: {}", e.what());
      fail_protocol("Internal server error", websocket::close_code::internal_error);
    }
  }
}

asio::awaitable<void> WsSession::write_loop() {
  auto self = shared_from_this();
  writing_ = true;
  while (!outbox_.empty()) {
    auto [wec, wn] = co_await ws_.async_write(asio::buffer(outbox_.front()), kUseTuple);
    if (wec) {
      outbox_.clear();
      stop_reading_ = true;
      break;
    }
    outbox_.pop_front();
    wake();  // the backlog shrank
  }
  writing_ = false;
  wake();
}

void WsSession::send(ws::ServerMsg msg) {
  outbox_.push_back(subprotocol_.protobuf ? ws::protobuf::encode_server_msg(msg)
                                          : ws::json::encode_server_msg(msg));
  if (!writing_) asio::co_spawn(ws_.get_executor(), write_loop(), asio::detached);
}

void WsSession::fail_protocol(std::string message, websocket::close_code code) {
  // Close reasons are limited to 123 bytes by RFC 6455.
  if (message.size() > 120) message.resize(120);
  if (!close_) close_ = websocket::close_reason(code, message);
  stop_reading_ = true;
  wake();
}

void WsSession::apply(Outcome outcome) {
  if (outcome.new_cursor) cursors_.insert(std::move(*outcome.new_cursor));
  if (outcome.reply) send(std::move(*outcome.reply));
  if (outcome.close) {
    close_ = std::move(outcome.close);
    stop_reading_ = true;
    close_when_idle_ = true;  // a deferred outcome arrives while the next read is pending
    wake();
  }
}

void WsSession::on_message(std::string_view payload, bool binary) {
  if (binary != subprotocol_.protobuf) {
    // 1003 (unknown_data): the frame type does not match the subprotocol.
    return fail_protocol(subprotocol_.protobuf ? "Expected a binary message (protobuf)"
                                               : "Expected a text message (JSON)",
                         websocket::close_code::unknown_data);
  }
  const std::size_t items = config_.limits.max_decoded_items();
  auto msg = subprotocol_.protobuf ? ws::protobuf::decode_client_msg(payload, items)
                                   : ws::json::decode_client_msg(payload, items);
  if (!msg) return fail_protocol(msg.error().message, websocket::close_code::bad_payload);

  if (std::holds_alternative<ws::HelloMsg>(*msg)) {
    if (hello_done_ && subprotocol_.version < 2) {
      return fail_protocol("Hello may be sent only once in protocol version 1");
    }
    // The token decides what this connection may do from now on (a re-hello may change it,
    // e.g. a refreshed token). A refused hello leaves the connection unauthenticated.
    auto access = authorize_(std::get<ws::HelloMsg>(*msg).jwt);
    if (!access) {
      hello_done_ = false;
      return send(ws::HelloErrorMsg{std::move(access.error())});
    }
    access_ = *access;
    jwt_.reset();
    if (auto jwt = std::get<ws::HelloMsg>(*msg).jwt) jwt_ = std::move(*jwt);
    // For the requests after this hello. A busy stream's running request reads its access on
    // another thread, and the requests queued behind it were sent before this hello: it takes
    // the new access once they ran (finish()).
    for (auto& [id, open] : streams_) {
      if (open.stream && !open.busy) open.stream->set_access(access_);
    }
    hello_done_ = true;
    return send(ws::HelloOkMsg{});
  }
  if (!hello_done_) return fail_protocol("The first message must be hello");
  dispatch(std::move(std::get<ws::RequestMsg>(*msg)));
}

namespace {

// A WebSocket request that acts on a stream (not a cursor one), as the HTTP pipeline's model.
hrana::StreamRequest to_stream_request(ws::Request& request) {
  return std::visit(
      [](auto& r) -> hrana::StreamRequest {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, ws::ExecuteReq>) {
          return hrana::ExecuteReq{std::move(r.stmt)};
        } else if constexpr (std::is_same_v<T, ws::BatchReq>) {
          return hrana::BatchReq{std::move(r.batch)};
        } else if constexpr (std::is_same_v<T, ws::SequenceReq>) {
          return hrana::SequenceReq{std::move(r.sql), r.sql_id};
        } else if constexpr (std::is_same_v<T, ws::DescribeReq>) {
          return hrana::DescribeReq{std::move(r.sql), r.sql_id};
        } else {
          return hrana::GetAutocommitReq{};
        }
      },
      request);
}

// The stream a request acts on, if any.
std::optional<std::int32_t> stream_of(const ws::Request& r) {
  return std::visit(
      [](const auto& v) -> std::optional<std::int32_t> {
        if constexpr (requires { v.stream_id; }) {
          return v.stream_id;
        } else {
          return std::nullopt;
        }
      },
      r);
}

}  // namespace

void WsSession::dispatch(ws::RequestMsg msg) {
  const std::int32_t id = msg.request_id;
  ws::Request& request = msg.request;
  if (ws::min_version(request) > subprotocol_.version) {
    return fail_protocol(std::string("The ") + ws::kRequestNames[request.index()] +
                         " request needs protocol version " +
                         std::to_string(ws::min_version(request)) + " or higher");
  }
  auto ok = [&](ws::Response r) { send(ws::ResponseOkMsg{id, std::move(r)}); };
  auto error = [&](hrana::Error e) { send(ws::ResponseErrorMsg{id, std::move(e)}); };

  // The same bound as an HTTP pipeline's batches (400 there; an error answer here, or for a
  // cursor the error as its only entry, below).
  const auto too_many_steps = [&](const hrana::Batch& batch) -> std::optional<hrana::Error> {
    if (batch.steps.size() <= config_.limits.max_batch_steps) return std::nullopt;
    return hrana::Error{"Too many steps in one batch (the limit is " +
                            std::to_string(config_.limits.max_batch_steps) + ")",
                        "BATCH_TOO_LARGE",
                        {}};
  };
  if (auto* b = std::get_if<ws::BatchReq>(&request)) {
    if (auto e = too_many_steps(b->batch)) return error(std::move(*e));
  }

  if (auto* open = std::get_if<ws::OpenStreamReq>(&request)) {
    if (streams_.count(open->stream_id)) {
      return fail_protocol("Stream " + std::to_string(open->stream_id) + " is already open");
    }
    if (streams_.size() >= kMaxStreams) {
      return error(hrana::Error{
          "Too many streams on this connection (the limit is " + std::to_string(kMaxStreams) + ")",
          "STREAMS_EXHAUSTED",
          {}});
    }
    streams_[open->stream_id].stream = std::make_unique<hrana::Stream>(db_);
    streams_[open->stream_id].stream->set_access(access_);
    return ok(ws::OpenStreamResp{});
  }
  if (auto* store = std::get_if<ws::StoreSqlReq>(&request)) {
    auto stored = sqls_.store(store->sql_id, std::move(store->sql));
    if (!stored) return fail_protocol(stored.error().message);
    if (*stored) return error(std::move(**stored));
    return ok(ws::StoreSqlResp{});
  }
  if (auto* close = std::get_if<ws::CloseSqlReq>(&request)) {
    sqls_.close(close->sql_id);
    return ok(ws::CloseSqlResp{});
  }
  // Cursor requests belong to the stream their cursor was opened on.
  std::optional<std::int32_t> stream_id = stream_of(request);
  if (!stream_id) {
    const std::int32_t cursor_id = std::visit(
        [](const auto& v) -> std::int32_t {
          if constexpr (requires { v.cursor_id; }) {
            return v.cursor_id;
          } else {
            return 0;
          }
        },
        request);
    auto it = cursor_streams_.find(cursor_id);
    if (it == cursor_streams_.end()) {
      return fail_protocol("Cursor " + std::to_string(cursor_id) + " is not open");
    }
    stream_id = it->second;
  }
  auto it = streams_.find(*stream_id);
  if (it == streams_.end()) {
    return fail_protocol("Stream " + std::to_string(*stream_id) + " is not open");
  }
  if (auto* oc = std::get_if<ws::OpenCursorReq>(&request)) {
    if (cursor_streams_.count(oc->cursor_id)) {
      return fail_protocol("Cursor " + std::to_string(oc->cursor_id) + " is already open");
    }
    cursor_streams_[oc->cursor_id] = oc->stream_id;
    if (auto e = too_many_steps(oc->batch)) {
      // Clients fetch from a cursor right behind opening it, without waiting for the answer: a
      // refused open would make those fetches protocol errors that close the connection. It
      // still takes one of the connection's kMaxCursors.
      if (cursors_.size() >= kMaxCursors) {
        cursor_streams_.erase(oc->cursor_id);
        return error(hrana::Error{"Too many cursors on this connection", "CURSORS_EXHAUSTED", {}});
      }
      cursors_[oc->cursor_id] = Cursor{oc->stream_id, {hrana::ErrorEntry{std::move(*e)}}};
      return ok(ws::OpenCursorResp{});
    }
  }
  if (!inline_sql_ids(request)) {
    return fail_protocol("SQL text with that id has not been stored (store_sql) or was closed");
  }
  StreamState& state = it->second;
  if (state.busy) {
    state.queued.push_back(Queued{std::move(msg), access_, jwt_});
    ++queued_;
    return;
  }
  start_on_stream(*stream_id, std::move(msg), jwt_);
}

void WsSession::start_on_stream(std::int32_t stream_id, ws::RequestMsg msg,
                                const std::optional<std::string>& jwt) {
  StreamState& state = streams_.at(stream_id);
  const std::int32_t id = msg.request_id;
  if (std::holds_alternative<ws::CloseStreamReq>(msg.request)) {
    std::erase_if(cursors_, [&](const auto& kv) { return kv.second.stream_id == stream_id; });
    std::erase_if(cursor_streams_, [&](const auto& kv) { return kv.second == stream_id; });
    queued_ -= state.queued.size();
    if (state.primary) close_at_primary(std::move(state.primary));
    streams_.erase(stream_id);  // rolls back an open transaction
    return send(ws::ResponseOkMsg{id, ws::CloseStreamResp{}});
  }
  if (auto* fetch = std::get_if<ws::FetchCursorReq>(&msg.request)) {
    auto it = cursors_.find(fetch->cursor_id);
    if (it == cursors_.end()) {
      return fail_protocol("Cursor " + std::to_string(fetch->cursor_id) + " is not open");
    }
    ws::FetchCursorResp resp;
    auto& entries = it->second.entries;
    const std::size_t n = std::min<std::size_t>(fetch->max_count, entries.size());
    resp.entries.assign(std::make_move_iterator(entries.begin()),
                        std::make_move_iterator(entries.begin() + static_cast<long>(n)));
    entries.erase(entries.begin(), entries.begin() + static_cast<long>(n));
    resp.done = entries.empty();
    return send(ws::ResponseOkMsg{id, std::move(resp)});
  }
  if (auto* close = std::get_if<ws::CloseCursorReq>(&msg.request)) {
    cursors_.erase(close->cursor_id);
    cursor_streams_.erase(close->cursor_id);
    return send(ws::ResponseOkMsg{id, ws::CloseCursorResp{}});
  }
  if (std::holds_alternative<ws::OpenCursorReq>(msg.request) && cursors_.size() >= kMaxCursors) {
    cursor_streams_.erase(std::get<ws::OpenCursorReq>(msg.request).cursor_id);
    return send(ws::ResponseErrorMsg{
        id, hrana::Error{"Too many cursors on this connection", "CURSORS_EXHAUSTED", {}}});
  }

  if (!state.primary && replica_.replicas && needs_primary(msg.request)) {
    // From its first write (or transaction, or script) on, the stream lives at the primary: a
    // transaction begun there must see every later request of the stream. The local stream
    // holds no transaction (BEGIN is never run here), so dropping it loses nothing.
    state.primary = std::make_unique<PrimaryStream>(*replica_.replicas, replica_.ns);
    state.stream.reset();
  }
  hrana::Stream* stream = state.stream.get();
  PrimaryStream* primary = state.primary.get();
  if (!primary && !may_block(*stream, msg.request)) {
    return finish(stream_id, execute_on(*stream, id, msg.request, sqls_), false);
  }
  if (!primary && lane_write(*stream, stream_id, msg)) return;
  // May wait for the write lock, or for the primary: run it on the blocking pool. The stream is
  // busy meanwhile, so nothing else touches it; the session goes on with its other streams.
  state.busy = true;
  ++inflight_;
  auto self = shared_from_this();
  auto shared = std::make_shared<ws::RequestMsg>(std::move(msg));
  asio::post(blocking_, [self, shared, stream, primary, jwt, stream_id] {
    Outcome out;
    try {
      out = primary ? self->execute_at_primary(*primary, shared->request_id, shared->request, jwt)
                    : self->execute_on(*stream, shared->request_id, shared->request,
                                       self->no_sqls_);
    } catch (const std::exception& e) {
      spdlog::error("internal error on a WebSocket connection: {}", e.what());
      out.close =
          websocket::close_reason(websocket::close_code::internal_error, "Internal server error");
    }
    asio::post(self->ws_.get_executor(), [self, stream_id, out = std::move(out)]() mutable {
      self->finish(stream_id, std::move(out), true);
    });
  });
}

WsSession::Outcome WsSession::protocol_error_outcome(std::string message) {
  if (message.size() > 120) message.resize(120);
  return Outcome{std::nullopt,
                 websocket::close_reason(websocket::close_code::policy_error, message),
                 std::nullopt};
}

bool WsSession::lane_write(hrana::Stream& stream, std::int32_t stream_id, ws::RequestMsg& msg) {
  auto* exec = std::get_if<ws::ExecuteReq>(&msg.request);
  if (!exec || !stream.groupable(exec->stmt, sqls_)) return false;
  const std::int32_t id = msg.request_id;
  auto request = std::make_shared<hrana::StreamRequest>(to_stream_request(msg.request));
  if (auto v = hrana::validate(*request, static_cast<hrana::Version>(subprotocol_.version)); !v) {
    finish(stream_id, protocol_error_outcome(v.error().message), false);
    return true;
  }
  // Like a request on the pool: the stream is busy until the lane reports, and nothing else
  // touches it meanwhile. No thread waits: the lane posts the outcome back to this session's
  // executor, which counts it as outstanding work until then.
  streams_.at(stream_id).busy = true;
  ++inflight_;
  using Result = Expected<hrana::StreamResult, hrana::ProtocolError>;
  auto result = std::make_shared<Result>(
      unexpected(hrana::ProtocolError{"the write lane did not run the request"}));
  auto self = shared_from_this();
  auto executor =
      asio::prefer(ws_.get_executor(), asio::execution::outstanding_work.tracked);
  // The task holds no reference to the session (`done` keeps it alive until the outcome is
  // posted), and `done` moves its references into the posted handler, so the session is never
  // destroyed on the lane's thread.
  stream.database().write_lane().submit(
      [session = this, stream = &stream, carried = stream.carried(), request,
       result](sqlite::Connection& conn) {
        // May run twice (see WriteLane): from the stream's state before the first run each time.
        stream->restore(carried);
        engine::ResponseBudget budget{session->config_.limits.max_response_bytes};
        // SqlStore::store is never reached from a stream request (see execute_on).
        *result = stream->run_on(conn, *request, const_cast<hrana::SqlStore&>(session->no_sqls_),
                                 budget);
      },
      [self, executor, result, stream_id,
       id](Expected<void, engine::WriteLane::Failure> done) mutable {
        asio::post(executor, [self = std::move(self), result = std::move(result), stream_id, id,
                              done = std::move(done)]() mutable {
          Outcome out;
          if (!done) {
            out.reply = ws::ServerMsg(ws::ResponseErrorMsg{
                id, hrana::Error{done.error().message, done.error().code, {}}});
          } else if (!*result) {
            out = protocol_error_outcome(result->error().message);
          } else {
            out = self->outcome_of(id, std::move(**result));
          }
          self->finish(stream_id, std::move(out), true);
        });
      });
  return true;
}

void WsSession::finish(std::int32_t stream_id, Outcome outcome, bool deferred) {
  if (deferred) --inflight_;
  apply(std::move(outcome));
  if (!deferred) return;
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return;
  it->second.busy = false;
  // Run what queued up behind it, in order, each with the access it was sent under, until one
  // of them goes to the pool again.
  while (!it->second.busy && !it->second.queued.empty() && !close_) {
    Queued next = std::move(it->second.queued.front());
    it->second.queued.pop_front();
    --queued_;
    if (it->second.stream) it->second.stream->set_access(next.access);
    const bool closing_stream = std::holds_alternative<ws::CloseStreamReq>(next.msg.request);
    start_on_stream(stream_id, std::move(next.msg), next.jwt);
    if (closing_stream) return;  // `it` is gone
  }
  // Free again: what comes next was sent under the latest hello.
  if (!it->second.busy && it->second.stream) it->second.stream->set_access(access_);
  wake();
}

bool WsSession::inline_sql_ids(ws::Request& request) {
  auto fix_stmt = [&](hrana::Stmt& stmt) {
    if (stmt.sql || !stmt.sql_id) return true;
    const std::string* text = sqls_.find(*stmt.sql_id);
    if (!text) return false;
    stmt.sql = *text;
    stmt.sql_id.reset();
    return true;
  };
  auto fix_batch = [&](hrana::Batch& batch) {
    for (auto& step : batch.steps) {
      if (!fix_stmt(step.stmt)) return false;
    }
    return true;
  };
  auto fix_pair = [&](std::optional<std::string>& sql, std::optional<std::int32_t>& sql_id) {
    if (sql || !sql_id) return true;
    const std::string* text = sqls_.find(*sql_id);
    if (!text) return false;
    sql = *text;
    sql_id.reset();
    return true;
  };
  return std::visit(
      [&](auto& r) -> bool {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, ws::ExecuteReq>) {
          return fix_stmt(r.stmt);
        } else if constexpr (std::is_same_v<T, ws::BatchReq> ||
                             std::is_same_v<T, ws::OpenCursorReq>) {
          return fix_batch(r.batch);
        } else if constexpr (std::is_same_v<T, ws::SequenceReq> ||
                             std::is_same_v<T, ws::DescribeReq>) {
          return fix_pair(r.sql, r.sql_id);
        } else {
          return true;
        }
      },
      request);
}

bool WsSession::may_block(hrana::Stream& stream, const ws::Request& request) {
  return std::visit(
      [&](const auto& r) -> bool {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, ws::ExecuteReq>) {
          return stream.may_block(r.stmt, sqls_);
        } else if constexpr (std::is_same_v<T, ws::BatchReq> ||
                             std::is_same_v<T, ws::OpenCursorReq>) {
          return stream.may_block(r.batch, sqls_);
        } else if constexpr (std::is_same_v<T, ws::SequenceReq>) {
          return stream.may_block(hrana::StreamRequest(hrana::SequenceReq{}), sqls_);
        } else {
          return false;
        }
      },
      request);
}

WsSession::Outcome WsSession::execute_on(hrana::Stream& stream, std::int32_t id,
                                         ws::Request& request, const hrana::SqlStore& sqls) {
  const auto version = static_cast<hrana::Version>(subprotocol_.version);
  auto ok = [&](ws::Response r) {
    return Outcome{ws::ServerMsg(ws::ResponseOkMsg{id, std::move(r)}), std::nullopt, std::nullopt};
  };
  // SqlStore::store is never reached from here (store_sql is not a stream request), so a const
  // store is all the stream needs; Stream::run takes it mutable for that case only.
  auto& store = const_cast<hrana::SqlStore&>(sqls);

  if (auto* oc = std::get_if<ws::OpenCursorReq>(&request)) {
    if (auto v = hrana::validate(oc->batch, version); !v) {
      return protocol_error_outcome(v.error().message);
    }
    // The batch runs now; its entries wait for fetch_cursor, bounded by the response limit.
    Cursor cursor{oc->stream_id, {}};
    engine::ResponseBudget budget{config_.limits.max_response_bytes};
    auto ran = stream.run_cursor(oc->batch, sqls, budget, [&](hrana::CursorEntry&& e) {
      cursor.entries.push_back(std::move(e));
    });
    if (!ran) return protocol_error_outcome(ran.error().message);
    Outcome out = ok(ws::OpenCursorResp{});
    out.new_cursor.emplace(oc->cursor_id, std::move(cursor));
    return out;
  }

  hrana::StreamRequest sreq = to_stream_request(request);
  if (auto v = hrana::validate(sreq, version); !v) return protocol_error_outcome(v.error().message);

  // (An autocommit write never gets here: lane_write took it.)
  engine::ResponseBudget budget{config_.limits.max_response_bytes};
  auto result = stream.run(sreq, store, budget);
  if (!result) return protocol_error_outcome(result.error().message);
  return outcome_of(id, std::move(*result));
}

WsSession::Outcome WsSession::outcome_of(std::int32_t id, hrana::StreamResult result) {
  auto ok = [&](ws::Response r) {
    return Outcome{ws::ServerMsg(ws::ResponseOkMsg{id, std::move(r)}), std::nullopt, std::nullopt};
  };
  if (auto* e = std::get_if<hrana::Error>(&result)) {
    return Outcome{ws::ServerMsg(ws::ResponseErrorMsg{id, std::move(*e)}), std::nullopt,
                   std::nullopt};
  }
  auto& resp = std::get<hrana::StreamResponse>(result);
  if (auto* r = std::get_if<hrana::ExecuteResp>(&resp))
    return ok(ws::ExecuteResp{std::move(r->result)});
  if (auto* r = std::get_if<hrana::BatchResp>(&resp))
    return ok(ws::BatchResp{std::move(r->result)});
  if (auto* r = std::get_if<hrana::DescribeResp>(&resp))
    return ok(ws::DescribeResp{std::move(r->result)});
  if (auto* r = std::get_if<hrana::GetAutocommitResp>(&resp)) {
    return ok(ws::GetAutocommitResp{r->is_autocommit});
  }
  return ok(ws::SequenceResp{});
}

bool WsSession::needs_primary(const ws::Request& request) {
  if (!db_) return false;  // no database: answered here, with the same error as on a primary
  return std::visit(
      [&](const auto& r) -> bool {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, ws::ExecuteReq>) {
          return !runs_on_replica(r.stmt, *db_);
        } else if constexpr (std::is_same_v<T, ws::BatchReq> ||
                             std::is_same_v<T, ws::OpenCursorReq>) {
          return !runs_on_replica(r.batch, *db_);
        } else if constexpr (std::is_same_v<T, ws::SequenceReq>) {
          return true;  // a script may do anything
        } else {
          return false;  // describe, get_autocommit: a stream served here is in autocommit
        }
      },
      request);
}

WsSession::Outcome WsSession::execute_at_primary(PrimaryStream& primary, std::int32_t id,
                                                 ws::Request& request,
                                                 const std::optional<std::string>& jwt) {
  const auto version = static_cast<hrana::Version>(subprotocol_.version);
  if (auto* oc = std::get_if<ws::OpenCursorReq>(&request)) {
    if (auto v = hrana::validate(oc->batch, version); !v) {
      return protocol_error_outcome(v.error().message);
    }
    // The primary runs the cursor's batch as a pipeline batch; its result becomes the entries
    // the client then fetches, as a local cursor's would be. A failure is the cursor's error
    // entry: the client has likely sent fetch_cursor already, so the cursor must exist.
    Cursor cursor{oc->stream_id, {}};
    auto result = primary.run(hrana::BatchReq{std::move(oc->batch)}, jwt);
    if (auto* e = std::get_if<hrana::Error>(&result)) {
      cursor.entries.push_back(hrana::ErrorEntry{std::move(*e)});
    } else if (auto* b = std::get_if<hrana::BatchResp>(&std::get<hrana::StreamResponse>(result))) {
      auto& r = b->result;
      for (std::uint32_t i = 0; i < r.step_results.size(); ++i) {
        if (i < r.step_errors.size() && r.step_errors[i]) {
          cursor.entries.push_back(hrana::StepErrorEntry{i, std::move(*r.step_errors[i])});
        } else if (auto& sr = r.step_results[i]) {
          cursor.entries.push_back(hrana::StepBeginEntry{i, std::move(sr->cols)});
          for (auto& row : sr->rows) cursor.entries.push_back(hrana::RowEntry{std::move(row)});
          cursor.entries.push_back(
              hrana::StepEndEntry{sr->affected_row_count, sr->last_insert_rowid});
        }  // neither: the step was skipped (its condition was false)
      }
    } else {
      cursor.entries.push_back(hrana::ErrorEntry{
          hrana::Error{"The primary answered a batch with another response", "PRIMARY_ERROR", {}}});
    }
    Outcome out{ws::ServerMsg(ws::ResponseOkMsg{id, ws::OpenCursorResp{}}), std::nullopt,
                std::nullopt};
    out.new_cursor.emplace(oc->cursor_id, std::move(cursor));
    return out;
  }
  hrana::StreamRequest sreq = to_stream_request(request);
  if (auto v = hrana::validate(sreq, version); !v) return protocol_error_outcome(v.error().message);
  return outcome_of(id, primary.run(sreq, jwt));
}

void WsSession::close_at_primary(std::unique_ptr<PrimaryStream> primary) {
  if (!primary->holds_stream()) return;
  // Nothing of the session is touched: the close may outlive it. The server joins the pool
  // before it drops the replica state the stream refers to.
  std::shared_ptr<PrimaryStream> owned(std::move(primary));
  asio::post(blocking_, [owned, jwt = jwt_] {
    try {
      owned->close(jwt);
    } catch (const std::exception& e) {
      spdlog::warn("closing a stream at the primary: {}", e.what());
    }
  });
}

}  // namespace quire::server
