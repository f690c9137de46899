// The admin API (docs/admin-api.md): namespaces created, deleted, forked, listed, configured,
// measured and checkpointed over HTTP, on a listener of its own (--admin-listen), with sqld's
// routes and field names.
//
// When an admin key is configured every request must carry it (`Authorization: Basic KEY` or
// `Bearer KEY`; the key itself, not base64-decoded, compared in constant time). Answers are JSON:
// `{}` or the requested document on success, `{"error": message}` otherwise (400 bad input,
// 401, 404 unknown namespace or route, 405, 409 exists, 413, 500).
//
// Thread model: as Router. handle() is called concurrently from every I/O thread and answers
// probes and errors at once; everything that touches the disk is deferred to the blocking pool.
// Members are immutable after construction apart from config_mu_, and the store is thread-safe.
#pragma once

#include <boost/json.hpp>

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <string_view>

#include "common/expected.h"
#include "backup/backup.h"
#include "engine/namespace_store.h"
#include "server/config.h"
#include "server/http_session.h"
#include "server/router.h"

namespace quire::replication {
class PrimaryReplicas;
}

namespace quire::server {

class BackupService;

class AdminRouter final : public HttpHandler {
 public:
  // `replicas` is set on a read replica: stats then report how it follows its primary.
  // `backup` is set with --backup-url: then a namespace can be restored in place, forked at a
  // past moment, and its restorable range listed.
  AdminRouter(const Config& config, engine::NamespaceStore& namespaces,
              replication::PrimaryReplicas* replicas = nullptr, BackupService* backup = nullptr);

  Router::Routed handle(const Request& req, const std::string& client) override;
  bool serves_websocket() const override { return false; }
  Expected<std::shared_ptr<engine::Database>, Response> websocket_database(
      const Request& req) override;
  Response error(http::status status, std::string message, std::string code, unsigned version,
                 bool keep_alive) override;

 private:
  Response list(const Request& req);
  Response create(const Request& req, const std::string& name);
  Response remove(const Request& req, const std::string& name);
  Response fork(const Request& req, const std::string& from, const std::string& to);
  Response get_config(const Request& req, const std::string& name);
  Response set_config(const Request& req, const std::string& name);
  Response stats(const Request& req, const std::string& name);
  Response checkpoint(const Request& req, const std::string& name);
  Response backup_status(const Request& req, const std::string& name);
  Response restore(const Request& req, const std::string& name);
  // The 400 for a restore or point-in-time fork on a server without --backup-url.
  Response backups_off(const Request& req);
  // Restores `name`'s backup as of the body's "timestamp" or "frame" into `out` (a scratch
  // file); the error is the response to send.
  Expected<backup::RestoreResult, Response> restore_to(const Request& req, const std::string& name,
                                                       const boost::json::object& body,
                                                       const std::filesystem::path& out);

  const Config& config_;
  engine::NamespaceStore& namespaces_;
  replication::PrimaryReplicas* replicas_;  // null on a primary
  BackupService* backup_;                   // null without --backup-url
  // Config updates read, change and write config.json: one at a time.
  std::mutex config_mu_;
};

// The parts below are exposed for unit tests.

// Whether an Authorization header value carries `key`: scheme Basic or Bearer (any case), then
// the key literally. Takes the same time whatever the header holds.
bool admin_key_matches(std::string_view authorization, std::string_view key);

// A byte count as sqld's max_db_size takes it: "4096", "10MB" (decimal: 10'000'000), "512KiB"
// (binary), "1.5 GB"; units B, KB/K, MB/M, GB/G, TB/T and KiB, MiB, GiB, TiB, in any case.
Expected<std::uint64_t, std::string> parse_byte_size(std::string_view text);

// The path of a dump_url: an absolute `file:` URL (file:///p, file:/p, file://localhost/p),
// percent-decoded. An error message for anything else.
Expected<std::string, std::string> dump_url_path(std::string_view url);

}  // namespace quire::server
