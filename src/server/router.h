// Maps an HTTP request to its handler: Hrana pipelines and cursors, the legacy API, probes.
//
// Thread model: handle() is called concurrently from every I/O thread; Router's own state is
// immutable after construction, and what it shares (the stream registry, the database) is
// thread-safe.
#pragma once

#include <boost/beast/http.hpp>

#include <functional>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <memory>
#include <string>
#include <variant>

#include "auth/authorization.h"
#include "engine/database.h"
#include "engine/namespace_store.h"
#include "protocol/hrana/stream_registry.h"
#include "server/config.h"

namespace quire::server {

namespace http = boost::beast::http;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

class ReplicationRouter;
}  // namespace quire::server

namespace quire::replication {
class PrimaryReplicas;
}

namespace quire::server {

class Router {
 public:
  // `replicas` is set on a read replica (quire serve --primary-url): reads run here, writes and
  // transactions are forwarded to the primary.
  Router(const Config& config, engine::NamespaceStore& namespaces, hrana::StreamRegistry& streams,
         replication::PrimaryReplicas* replicas = nullptr);
  ~Router();

  // Work that may wait for a database's write lock. It must run on the blocking pool, never on
  // an I/O thread; `req` must outlive it.
  using Deferred = std::function<Response()>;
  // An autocommit write for a database's write lane: the session submits `task` to `lane`
  // without waiting (WriteLane::submit with a Done) and, once the lane reports how it ended,
  // builds the response with `finish` on its own I/O thread. No thread waits for the group
  // commit, so many clients' writes reach the lane together. `req` must outlive it.
  struct LaneWrite {
    engine::WriteLane* lane = nullptr;
    engine::WriteLane::Task task;
    std::function<Response(Expected<void, engine::WriteLane::Failure>)> finish;
  };
  using Routed = std::variant<Response, Deferred, LaneWrite>;

  // Answers `req` now, or returns the work to run on the blocking pool or the write lane.
  // `client` is the peer's address, for per-client limits.
  Routed handle(const Request& req, const std::string& client);

  // The namespace a request addresses: the `x-namespace-bin` header (base64 of the name), else
  // `x-namespace`, else the first label of the Host when the host is under --namespace-domain,
  // else `default`. An error message for a header that cannot be a namespace.
  Expected<std::string, std::string> namespace_of(const Request& req) const;
  // The same without `x-namespace-bin`: `x-namespace`, else the Host under --namespace-domain,
  // else `default`. (libSQL's replication client fills x-namespace-bin from the URL by itself;
  // see ReplicationRouter.)
  std::string namespace_of_host(const Request& req) const;

  // The database a request addresses, or the response for a bad or unknown namespace (400/404;
  // never an implicit create).
  Expected<std::shared_ptr<engine::Database>, Response> database_for(const Request& req);

  // What a request addresses and may do there.
  struct Target {
    std::string ns;
    std::shared_ptr<engine::Database> db;
    sqlite::Connection::Access access;
  };
  // The request's namespace and database, and what its token allows there: the response
  // refusing it otherwise (400/404 as database_for; 401 for a missing, malformed, expired or
  // badly signed token; 403 for a token without rights on the namespace).
  Expected<Target, Response> target_for(const Request& req);

  // What a token (`jwt`, from an Authorization header or a WebSocket hello) allows on `ns`,
  // or the Hrana error refusing it. Without keys (global or the namespace's own): everything.
  Expected<sqlite::Connection::Access, hrana::Error> authorize(const std::string& ns,
                                                              std::optional<std::string_view> jwt);

  // True when tokens are checked (a global key is configured).
  bool authenticates() const { return config_.auth_keys != nullptr; }
  bool namespace_exists(const std::string& ns) { return namespaces_.exists(ns); }
  // Set on a read replica: where writes go (WebSocket sessions forward through it too).
  replication::PrimaryReplicas* replicas() const { return replicas_; }

  // A response for a request that could not be read (too large, malformed).
  static Response error(http::status status, std::string message, std::string code,
                        unsigned version, bool keep_alive);

 private:
  // Resolves `ATTACH 'ns' AS alias` for a client holding `authz` (nullopt: no authentication).
  std::shared_ptr<const sqlite::Connection::Access::AttachResolver> attach_resolver(
      std::optional<auth::Authorization> authz);
  enum class Encoding { kJson, kProtobuf };
  using Entry = std::shared_ptr<hrana::StreamRegistry::Entry>;
  Routed pipeline(const Request& req, hrana::Version version, Encoding enc,
                  const std::string& client);
  Response run_pipeline(const Request& req, hrana::PipelineRequest& body, const Entry& entry,
                        Encoding enc);
  // The same for a pipeline that is one autocommit write: it runs in the database's write lane
  // and is acknowledged when its group commits.
  LaneWrite pipeline_grouped(const Request& req, std::shared_ptr<hrana::PipelineRequest> body,
                             const Entry& entry, Encoding enc);
  bool grouped_write(const hrana::PipelineRequest& body, hrana::StreamRegistry::Entry& entry);
  Response finish_pipeline(const Request& req, hrana::PipelineResponse& out, const Entry& entry,
                           Encoding enc);
  Routed cursor(const Request& req, Encoding enc, const std::string& client);
  Response run_cursor(const Request& req, const hrana::CursorRequest& body, const Entry& entry,
                      Encoding enc);
  Response legacy(const Request& req);
  // Sends `req` to the primary for namespace `ns` and answers what the primary answered, once
  // this replica has applied the frame the primary reported (read-your-writes). With
  // `drop_baton`, the JSON body's baton (one of this replica's streams, which held no
  // transaction) is removed, so the primary starts a stream of its own.
  Response forward(const Request& req, const std::string& ns, bool drop_baton);
  // The primary's side of read-your-writes: the database's last committed frame.
  static void stamp_frame(Response& res, engine::Database& db);
  Response hrana_error(const Request& req, Encoding enc, http::status status,
                       const hrana::Error& e);
  Response text(const Request& req, http::status status, std::string body);

  // The keys that verify tokens for `ns`: its own jwt_key, else the global keys (null: none).
  std::shared_ptr<const auth::KeySet> keys_for(const engine::NamespaceConfig& config);

  const Config& config_;
  engine::NamespaceStore& namespaces_;
  std::mutex keys_mu_;
  std::unordered_map<std::string, std::shared_ptr<const auth::KeySet>> namespace_keys_;  // by jwt_key text
  hrana::StreamRegistry& streams_;
  // libSQL's replication protocol (embedded replicas): /info, wal_log.*, proxy.*.
  std::unique_ptr<ReplicationRouter> replication_;
  replication::PrimaryReplicas* replicas_;  // null on a primary
};

}  // namespace quire::server
