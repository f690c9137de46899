// One Hrana-over-WebSocket connection (subprotocols hrana1, hrana2, hrana3, hrana3-protobuf):
// hello, then requests on numbered streams, each stream a database connection of its own.
//
// Streams are independent: requests on one stream run in the order they arrived, requests on
// different streams do not wait for each other. A request that may wait for the write lock runs
// in the database's write lane (an autocommit write) or on the blocking pool (anything else)
// while the connection goes on reading and serving its other streams; later requests for the
// same stream queue behind it. Responses are written in completion order
// (each carries its request_id). The number of requests in progress, queued behind a stream and
// responses not yet written is bounded: past kMaxBacklog the connection stops reading, so a
// client that never reads its responses costs the server a bounded amount of memory.
//
// On a read replica (WsReplica set), a stream answers its reads itself until its first request
// that needs the primary (a write, a transaction, a script: see runs_on_replica); from then on
// every request of that stream runs at the primary as an HTTP Hrana pipeline stream
// (PrimaryStream), on the blocking pool like any request that may wait. Closing the stream or
// the connection closes the primary's stream.
//
// Thread model: lives on one io_context (one thread); every member runs there, except the
// deferred work on the blocking pool, which touches only the one Stream (or PrimaryStream) it
// was given (marked busy meanwhile) and the database.
#pragma once

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <unordered_map>

#include "engine/database.h"
#include "protocol/hrana/stream.h"
#include "protocol/hrana/ws_model.h"
#include "server/config.h"
#include "server/draining_stream.h"
#include "server/replica_forwarding.h"

namespace quire::server {

struct Subprotocol {
  std::string name;  // as echoed to the client; empty when the client offered none
  int version = 1;
  bool protobuf = false;
};

// Picks the best subprotocol the client offers (hrana3-protobuf > hrana3 > hrana2 > hrana1).
// No header at all means hrana1. Returns nullopt when the client offers only unknown ones.
std::optional<Subprotocol> negotiate_subprotocol(std::string_view offered);

// On a read replica: where a connection's writes and transactions go.
struct WsReplica {
  replication::PrimaryReplicas* replicas = nullptr;  // null on a primary
  std::string ns;  // the namespace the upgrade addressed
};

// Judges a hello's token: what it allows on the connection's namespace, or why not.
using WsAuthorizer = std::function<Expected<sqlite::Connection::Access, hrana::Error>(
    std::optional<std::string_view> jwt)>;

class WsSession : public std::enable_shared_from_this<WsSession> {
 public:
  using BlockingExecutor = boost::asio::thread_pool::executor_type;

  // `authorize` judges the token of each hello (see Router::authorize).
  WsSession(boost::beast::tcp_stream stream, const Config& config,
            std::shared_ptr<engine::Database> db, WsAuthorizer authorize, Subprotocol subprotocol,
            BlockingExecutor blocking, WsReplica replica = {});

  // Completes the upgrade for `req`, then serves the connection until it closes.
  boost::asio::awaitable<void> run(boost::beast::http::request<boost::beast::http::string_body> req);

  // Shutdown: stops reading, finishes what is in progress, closes with 1001 (going away).
  void shutdown();

 private:
  static constexpr std::size_t kMaxBacklog = 256;
  static constexpr std::size_t kMaxStreams = 128;
  static constexpr std::size_t kMaxCursors = 32;

  struct Cursor {
    std::int32_t stream_id = 0;
    std::deque<hrana::CursorEntry> entries;
  };
  // A request that waits for its stream, with the token it was sent under: a hello that
  // arrives meanwhile applies to the requests after it, not to this one.
  struct Queued {
    hrana::ws::RequestMsg msg;
    sqlite::Connection::Access access;
    std::optional<std::string> jwt;
  };
  struct StreamState {
    std::unique_ptr<hrana::Stream> stream;
    // Set (and `stream` dropped) once the stream went to the primary: it stays there.
    std::unique_ptr<PrimaryStream> primary;
    bool busy = false;  // a request of this stream runs on the pool or in the write lane
    std::deque<Queued> queued;  // arrived while busy, in order
  };
  // What one request leads to.
  struct Outcome {
    std::optional<hrana::ws::ServerMsg> reply;
    std::optional<boost::beast::websocket::close_reason> close;
    std::optional<std::pair<std::int32_t, Cursor>> new_cursor;
  };

  boost::asio::awaitable<void> read_loop();
  boost::asio::awaitable<void> write_loop();
  void on_message(std::string_view payload, bool binary);
  void dispatch(hrana::ws::RequestMsg msg);
  // Runs `msg` on its stream (not busy), which already has the access of the token it was sent
  // under; `jwt` is that token, for a stream at the primary.
  void start_on_stream(std::int32_t stream_id, hrana::ws::RequestMsg msg,
                       const std::optional<std::string>& jwt);
  void finish(std::int32_t stream_id, Outcome outcome, bool deferred);
  void apply(Outcome outcome);
  void send(hrana::ws::ServerMsg msg);
  void fail_protocol(std::string message,
                     boost::beast::websocket::close_code code =
                         boost::beast::websocket::close_code::policy_error);
  // Wakes the session's waiting loops; closes a session that shutdown() found busy once it is
  // idle (see close_when_idle_).
  void wake();
  std::size_t backlog() const;

  bool may_block(hrana::Stream& stream, const hrana::ws::Request& request);
  // Replaces sql_id references by their texts, so deferred work never reads the SQL store.
  bool inline_sql_ids(hrana::ws::Request& request);
  // A protocol error ends the connection, with the message (cut to fit a close frame).
  static Outcome protocol_error_outcome(std::string message);
  // An autocommit write (a groupable execute): submits it to the database's write lane and
  // returns true; the outcome arrives through finish() on this session's executor. False: not
  // such a request, nothing done.
  bool lane_write(hrana::Stream& stream, std::int32_t stream_id, hrana::ws::RequestMsg& msg);
  // Runs a request that acts on `stream`; touches nothing else of the session.
  Outcome execute_on(hrana::Stream& stream, std::int32_t request_id, hrana::ws::Request& request,
                     const hrana::SqlStore& sqls);
  // On a replica: whether `request`, on a stream still served here, must go to the primary.
  bool needs_primary(const hrana::ws::Request& request);
  // Runs a request at the primary (blocking network I/O: on the pool only).
  Outcome execute_at_primary(PrimaryStream& primary, std::int32_t request_id,
                             hrana::ws::Request& request, const std::optional<std::string>& jwt);
  // Best effort, on the pool: the primary frees the stream (and rolls back its transaction).
  void close_at_primary(std::unique_ptr<PrimaryStream> primary);
  // The reply to a stream request that ran (here or at the primary).
  static Outcome outcome_of(std::int32_t request_id, hrana::StreamResult result);

  boost::beast::websocket::stream<DrainingStream> ws_;
  const Config& config_;
  std::shared_ptr<engine::Database> db_;
  WsAuthorizer authorize_;
  sqlite::Connection::Access access_;  // from the last accepted hello
  std::optional<std::string> jwt_;     // the last accepted hello's, passed on to the primary
  Subprotocol subprotocol_;
  BlockingExecutor blocking_;
  const WsReplica replica_;
  hrana::SqlStore sqls_;
  const hrana::SqlStore no_sqls_;
  std::unordered_map<std::int32_t, StreamState> streams_;
  std::unordered_map<std::int32_t, Cursor> cursors_;
  std::unordered_map<std::int32_t, std::int32_t> cursor_streams_;  // cursor id -> stream id
  std::deque<std::string> outbox_;
  boost::asio::steady_timer wake_;
  std::optional<boost::beast::websocket::close_reason> close_;  // set: close after the outbox
  std::size_t inflight_ = 0;
  std::size_t queued_ = 0;
  bool hello_done_ = false;
  bool reading_ = false;
  bool writing_ = false;
  bool stop_reading_ = false;
  // shutdown() found work in progress: close as soon as the last response is out. The read
  // pending meanwhile ends only with the close (an idle client sends nothing more).
  bool close_when_idle_ = false;
};

}  // namespace quire::server
