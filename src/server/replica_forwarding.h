// A read replica's side of Hrana (quire serve --primary-url), shared by HTTP (Router) and
// WebSocket (WsSession): which requests the replica answers itself, read-your-writes after a
// forwarded answer, and PrimaryStream, a WebSocket stream continued at the primary as an HTTP
// Hrana v3 pipeline stream.
//
// Thread model: the free functions are thread-safe. A PrimaryStream is used by one thread at a
// time (the WebSocket session hands it to the blocking pool while its stream is busy); its calls
// block on network I/O and must never run on a session's I/O thread.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/database.h"
#include "protocol/hrana/model.h"
#include "replication/http_forwarder.h"

namespace quire::replication {
class PrimaryReplicas;
}

namespace quire::server {

// Whether every statement of `requests` only reads, so a replica runs them itself; false sends
// the request to the primary: a write, transaction control (a transaction runs at the primary
// as a whole), a script (sequence), ATTACH/DETACH, VACUUM & co., or a statement that does not
// prepare here. sql_ids are resolved against store_sql requests earlier in `requests`.
bool runs_on_replica(const std::vector<hrana::StreamRequest>& requests, engine::Database& db);
bool runs_on_replica(const hrana::Batch& batch, engine::Database& db);
bool runs_on_replica(const hrana::Stmt& stmt, engine::Database& db);

// Read-your-writes: waits (bounded) until this replica has applied the frame the primary
// reported in `answer`'s x-quire-frame header for namespace `ns`. Never fails: past the bound
// the answer goes out anyway, with a warning in the log.
void await_primary_frame(replication::PrimaryReplicas& replicas, const std::string& ns,
                         const replication::HttpForwarder::Response& answer);

// One Hrana stream of a client, run at the primary: each request is sent as a POST /v3/pipeline
// carrying the baton of the previous answer, so the primary keeps the stream's connection (and
// transaction) between requests. Every failure is a hrana::Error: the client learns of it on
// the request, and the server goes on.
class PrimaryStream {
 public:
  PrimaryStream(replication::PrimaryReplicas& replicas, std::string ns);
  ~PrimaryStream() = default;
  PrimaryStream(const PrimaryStream&) = delete;
  PrimaryStream& operator=(const PrimaryStream&) = delete;

  // Runs one stream request (execute, batch, sequence, describe, get_autocommit; sql_ids
  // already replaced by their text) at the primary, then waits for read-your-writes. `jwt`
  // (the client's token, from its latest hello) is passed on as the Authorization.
  hrana::StreamResult run(const hrana::StreamRequest& request,
                          const std::optional<std::string>& jwt);

  // Whether the primary holds a stream for this one (close() has something to free).
  bool holds_stream() const { return baton_.has_value() && !broken_; }

  // Best effort: frees the primary's stream (rolling back an open transaction). The primary
  // also expires streams left idle, so a close that does not arrive costs little.
  void close(const std::optional<std::string>& jwt);

 private:
  // Sends a one-request pipeline (the request's JSON) with the current baton.
  hrana::StreamResult send(const std::string& request_json, const std::optional<std::string>& jwt);

  replication::PrimaryReplicas& replicas_;
  const std::string ns_;
  std::optional<std::string> baton_;  // the primary's, for the next request
  // Set when the primary's stream was lost halfway (the primary unreachable or refusing the
  // baton while the stream had state there): every later request fails with it, since running
  // them on a fresh stream would silently leave the transaction the client believes it is in.
  std::optional<hrana::Error> broken_;
};

}  // namespace quire::server
