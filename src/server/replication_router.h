// libSQL's replication protocol on the main port, so that embedded replicas (npm `libsql`
// `new Database(file, {syncUrl})`, `@libsql/client` `createClient({url: 'file:…', syncUrl})`)
// sync from quire and forward their writes to it:
//   GET  /info                                          404, so the client stays on this protocol
//   POST /wal_log.ReplicationLog/{Hello,BatchLogEntries,LogEntries,Snapshot}   the pull
//   POST /proxy.Proxy/{Execute,Describe,Disconnect}      write forwarding
// gRPC-Web over HTTP/1.1; the wire contract (captured from the real clients) and what quire
// serves are in docs/replication-protocol.md. Frame numbers: libSQL's frame_no is our log's
// frame minus 1.
//
// Namespaces and tokens follow exactly the Hrana rules (Router::authorize). The client derives
// `x-namespace-bin` from the URL's host on its own (127.0.0.1 gives "127"), so a header equal to
// what the client derives from the request's Host is not taken as a choice: the request is routed
// as Hrana routes that URL (see resolve_namespace in the .cpp and the doc).
//
// Proxy clients: each `client_id` (one per client connection) has a Client holding a Hrana
// Stream, so transactions, the write gate, group commit, read-only tokens and the transaction
// timeout behave as on Hrana. A Client exists only while its connection is inside a transaction
// (it is dropped after any request that leaves it outside one); the client never sends
// Disconnect, so a Client idle for longer than Limits::stream_idle_timeout is dropped by the
// sweeper (its transaction rolled back) and its next request is told so.
//
// Thread model: handle() is called from the I/O threads; the work it defers runs on the blocking
// pool. Everything here is thread-safe: the client registry has one mutex (mu_), and each Client
// serialises its own requests with its own mutex. Lock order: a Client's mutex, then mu_. The
// sweeper is a thread of ours, stopped in the destructor.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "engine/namespace_store.h"
#include "protocol/replication/grpc_web.h"
#include "server/config.h"
#include "server/router.h"

namespace quire::server {

// A 200 response with the gRPC-Web headers and `body` (data and trailer frames), for the
// handlers in replication_router*.cpp.
Response reply_grpc_web(const Request& req, std::string body);

class ReplicationRouter {
 public:
  using Clock = std::chrono::steady_clock;

  // Batches of BatchLogEntries stop after the transaction that reaches one of these (a batch
  // always holds whole transactions, so one large transaction may exceed them). The bytes are
  // below tonic's default 4 MiB message limit on the client.
  static constexpr std::size_t kMaxBatchBytes = 3u << 20;
  static constexpr std::size_t kMaxBatchFrames = 700;
  // BatchLogEntries calls of caught-up replicas that wait for the next commit (x-quire-wait-ms)
  // hold a thread of the blocking pool each; past this many at once, a call answers at once as
  // for a client that did not ask to wait (the replica then sleeps and polls).
  static constexpr int kMaxLongPolls = 8;

  ReplicationRouter(const Config& config, engine::NamespaceStore& namespaces, Router& router);
  ~ReplicationRouter();
  ReplicationRouter(const ReplicationRouter&) = delete;
  ReplicationRouter& operator=(const ReplicationRouter&) = delete;

  // True for the paths served here (GET /info and the two gRPC services).
  static bool serves(std::string_view path);

  // Answers `req` now or returns the work to run on the blocking pool (`req` must outlive it).
  // `client`: the caller's address, as the Hrana streams count it (max_streams_per_client).
  Router::Routed handle(const Request& req, std::string_view path, const std::string& client);

  // Drops proxy clients idle for longer than the limit, rolling back their transactions. The
  // sweeper calls it every second; returns how many were dropped.
  std::size_t expire_idle(Clock::time_point now = Clock::now());

  // Proxy clients currently kept (each inside a transaction).
  std::size_t clients() const;

  // The error a request gets, as a gRPC status and its message.
  struct Status {
    replication::GrpcStatus code;
    std::string message;
  };

 private:
  struct Client;
  struct Target {
    std::string ns;
    std::shared_ptr<engine::Database> db;
    sqlite::Connection::Access access;
  };
  enum class Service { kLog, kProxy };

  // The namespace a replication request addresses (see the header comment).
  Expected<std::string, Status> resolve_namespace(const Request& req) const;
  // Namespace, token and database of a request, or the status refusing it.
  Expected<Target, Status> target_for(const Request& req, Service service);
  Response info(const Request& req);

  // wal_log.ReplicationLog
  Response hello(const Request& req);
  Response batch_log_entries(const Request& req, bool stream);
  Response snapshot(const Request& req);
  // Checks x-session-token and the offset message; the log of the target database.
  Expected<std::pair<Target, std::uint64_t>, Status> begin_log_call(const Request& req);

  // proxy.Proxy
  Response execute(const Request& req, const std::string& address);
  Response describe(const Request& req);
  Response disconnect(const Request& req);

  // The Client of (ns, client_id), created when missing, for exclusive use until release().
  // nullptr with `lost` set when the client's transaction was dropped by the sweeper and this is
  // its first request since (a tombstone, consumed here). A new one counts against `address`
  // (at most max_streams_per_client per address, as Hrana streams).
  Expected<std::shared_ptr<Client>, Status> acquire(const Target& target,
                                                    const std::string& client_id,
                                                    const std::string& address, bool& lost);
  // Removes a client from clients_ and from its address's count; requires mu_.
  std::shared_ptr<Client> forget_locked(
      std::unordered_map<std::string, std::shared_ptr<Client>>::iterator it);
  // Ends a use begun by acquire(); call with the Client's mutex held. Forgets the client when it
  // is outside a transaction and nobody else uses it.
  void release(const std::shared_ptr<Client>& client);

  void sweep_loop();

  const Config& config_;
  engine::NamespaceStore& namespaces_;
  Router& router_;
  const std::string session_token_;  // a UUID per server start: NO_HELLO after a restart
  const std::string generation_id_;

  mutable std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<Client>> clients_;  // guarded by mu_
  std::unordered_map<std::string, std::size_t> clients_per_address_;  // guarded by mu_
  std::map<std::string, Clock::time_point> tombstones_;  // guarded by mu_; key -> forget at
  bool stopping_ = false;                                // guarded by mu_
  std::condition_variable stop_cv_;
  std::thread sweeper_;
  std::atomic<int> long_polls_{0};  // BatchLogEntries calls waiting for a commit now
};

}  // namespace quire::server
