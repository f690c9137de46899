// `quire serve --primary-url`: the namespaces of a read replica. Each namespace the replica
// serves is a ReplicaDatabase (src/replica: the overlay VFS that applies transactions under live
// readers) fed by a Puller (replication/puller.h) that follows the primary's log, and an
// engine::Database of read-only connections through the overlay VFS that serves the reads.
// Writes and transactions are not run here: the router forwards them to the primary with
// forwarder(), then waits with wait_for_frame() until the replica has applied what the primary
// reported, so a client reads its own writes (docs/replica-mode.md).
//
// Files of a namespace, in <data>/replica/<ns>/: `data` (the base file) and `data-overlay` (see
// docs/replica-apply.md), `primary-log-id` (the log the frames came from), config.json.
//
// Thread model: every public member is thread-safe. Each open namespace has the puller's thread
// (which applies) and a folding thread (which folds the overlay into the base file while
// applies are quiet); both stop when the namespace's Database closes.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "engine/namespace_store.h"
#include "replication/http_forwarder.h"
#include "replication/puller.h"

namespace quire::replication {

struct ReplicaServeOptions {
  std::string primary_url;  // http://host:port
  // The replica's own token for the primary's replication API (empty: none). Clients' tokens
  // are forwarded with their requests, never used for pulling.
  std::string auth_token;
  // A namespace opened with nothing applied yet waits this long for its first copy.
  std::chrono::milliseconds bootstrap_timeout{15000};
  // A namespace reopened with a copy waits at most this long to catch up before serving.
  std::chrono::milliseconds reopen_catch_up{2000};
  // fdatasync each applied transaction. Off by default: a replica's content can always be
  // fetched again from the primary, and a crash (even a power loss) leaves it at a consistent
  // earlier transaction, from which it resumes.
  bool sync = false;
  PullerOptions puller;  // primary_url, namespace_name and auth_token are set per namespace
  ForwarderOptions forwarder;
};

struct ReplicaNamespaceStatus {
  PullerStats puller;
  std::uint64_t overlay_versions = 0;
  std::uint64_t folds = 0;
};

class PrimaryReplicas final : public engine::ReplicaSource {
 public:
  // Checks the URL; does not contact the primary.
  static Expected<std::shared_ptr<PrimaryReplicas>, std::string> create(ReplicaServeOptions o);
  ~PrimaryReplicas() override;

  Expected<bool, std::string> primary_has(const std::string& name) override;
  Expected<std::shared_ptr<engine::Database>, std::string> open(
      const std::string& name, const std::string& path, engine::DatabaseOptions options) override;
  std::string describe() const override;

  // Read-your-writes: polls now and waits until namespace `name` has applied commit frame
  // `frame` (quire numbering). Immediate when the namespace is not open (it catches up when it
  // opens).
  Expected<void, std::string> wait_for_frame(const std::string& name, std::uint64_t frame,
                                             std::chrono::steady_clock::time_point deadline);
  std::optional<ReplicaNamespaceStatus> status(const std::string& name);

  HttpForwarder& forwarder() { return forwarder_; }
  const std::string& primary_url() const { return options_.primary_url; }

  struct Follower;

 private:
  PrimaryReplicas(ReplicaServeOptions options, RpcEndpoint endpoint);

  const ReplicaServeOptions options_;
  const RpcEndpoint endpoint_;
  HttpForwarder forwarder_;
  std::mutex mu_;
  std::unordered_map<std::string, std::weak_ptr<Follower>> followers_;  // guarded by mu_
};

}  // namespace quire::replication
