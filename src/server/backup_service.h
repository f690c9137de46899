// Continuous backup of every namespace to an object store (`quire serve --backup-url`): one more
// reader of each database's replication log (docs/backup.md, format in docs/formats/backup.md).
//
// How it follows the databases: each commit, once captured in the log, tells the service its
// frame (NamespaceStore's observe_commits hook; a mutex and a few stores, nothing else on the
// commit path). A namespace with commits not yet in the store is shipped `interval` after its
// first such commit: every transaction of that interval goes up as one batch object plus the
// manifest, so a busy database costs two PUTs per interval, and an idle one nothing. At start
// every namespace is checked once (a server killed with -9 resumes where its backup stopped,
// with no gap and no duplicate: shipping starts at the frame after the store's last).
//
// When the store fails, the namespace is retried with exponential backoff (1 s up to 30 s);
// the log keeps the frames meanwhile, and the backup catches up in one pass when the store is
// back. With `sync` (--backup-sync), a commit is acknowledged only once it is in the store:
// the commit hook waits, and the service ships as soon as someone waits.
//
// Thread model: one shipping thread. observer() hooks run on committing threads; flush(),
// status() and totals() may be called from any thread. A namespace is shipped by one thread at
// a time (its own mutex).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "backup/backup.h"
#include "backup/encryption.h"
#include "backup/ship.h"
#include "common/expected.h"
#include "storage/object_store.h"

namespace quire::engine {
class NamespaceStore;
struct NamespaceConfig;
}  // namespace quire::engine

namespace quire::server {

struct BackupServiceOptions {
  std::string url;  // file:///dir, a path, or s3://bucket[/prefix]
  // A commit reaches the store at most this long (plus the upload) after it was acknowledged.
  std::chrono::milliseconds interval{1000};
  // Acknowledge a commit only once it is in the store (--backup-sync).
  bool sync = false;
  // Point-in-time history kept in the store; older objects are deleted (0: keep everything).
  std::chrono::seconds retention{std::chrono::hours(24 * 30)};
  // zstd level 1: compressing every committed page is most of the backup's CPU per write, and
  // level 3 costs about twice as much for a few per cent smaller objects on database pages.
  backup::ShipOptions ship = [] {
    backup::ShipOptions o;
    o.zstd_level = 1;
    return o;
  }();
  // Client-side encryption (AES-256-GCM) of every object uploaded, and the key restores use.
  std::optional<backup::EncryptionKey> encryption_key;
};

struct NamespaceBackupStatus {
  std::string log_id;               // of the lineage being written; "" before the first ship
  std::uint64_t committed_frame = 0;  // the last commit the service was told of
  std::uint64_t shipped_frame = 0;    // the last frame in the store
  std::uint64_t ships = 0;            // successful shipping rounds
  std::uint64_t objects_written = 0;
  std::uint64_t bytes_uploaded = 0;
  std::uint64_t failures = 0;  // failed rounds since the server started
  std::string last_error;      // "" after a success
  std::int64_t last_ship_unix_us = 0;
  // The store holds the namespace's current settings (<ns>/config.json).
  bool config_current = false;
};

struct BackupTotals {
  std::uint64_t objects_written = 0;
  std::uint64_t bytes_uploaded = 0;
  std::uint64_t ships = 0;
  std::uint64_t failures = 0;
  std::chrono::steady_clock::duration uptime{};
};

class BackupService {
 public:
  static Expected<std::unique_ptr<BackupService>, std::string> create(BackupServiceOptions options);
  ~BackupService();

  // The commit hook for NamespaceStore::Options::observe_commits. Under `sync` it returns false
  // when released (shutdown) before the commit reached the store.
  std::function<bool(std::uint64_t)> observer(const std::string& ns);

  // Starts the shipping thread over `store`'s namespaces (each is checked once at start).
  void start(engine::NamespaceStore& store);
  // Ships what is pending (for at most `grace`), then stops the thread. Commit hooks waiting
  // under `sync` are released. Idempotent.
  void stop(std::chrono::milliseconds grace = std::chrono::seconds(10));
  // Releases the commit hooks waiting under `sync` `after` from now (server shutdown: the store
  // gets that long to take them), without stopping. Thread-safe, returns at once.
  void release_waiters(std::chrono::milliseconds after = std::chrono::milliseconds(0));

  // A new machine: restores every namespace the store has a backup of (latest point) into
  // `store`, replacing the empty `default` a new data directory starts with. Call before
  // start(), on a data directory that did not exist. Returns the names restored; an error when
  // the store cannot be read or a restore fails (the caller should not serve then: backing up
  // the empty databases would start new, empty lineages ahead of the real ones).
  Expected<std::vector<std::string>, std::string> restore_all(engine::NamespaceStore& store);

  // The namespace's settings changed: they go up with its next shipping round (within the
  // interval). Thread-safe.
  void config_changed(const std::string& ns);
  // The settings stored with `ns`'s backup (<ns>/config.json); nullopt when there are none
  // (backups of earlier versions). An error when the store fails or the object is not valid.
  Expected<std::optional<engine::NamespaceConfig>, std::string> stored_config(
      const std::string& ns);

  // Ships namespace `ns` now and waits for it: afterwards the store holds every commit made
  // before the call. The error is a message for the operator.
  Expected<backup::ShipResult, std::string> flush(const std::string& ns);

  std::optional<NamespaceBackupStatus> status(const std::string& ns);
  BackupTotals totals();

  storage::ObjectStore& object_store() { return *store_; }
  const BackupServiceOptions& options() const { return options_; }
  const backup::EncryptionKey* encryption_key() const {
    return options_.encryption_key ? &*options_.encryption_key : nullptr;
  }
  // Where namespace `ns` lives in the store.
  static std::string prefix(const std::string& ns) { return ns; }

 private:
  struct Namespace;
  explicit BackupService(BackupServiceOptions options, std::unique_ptr<storage::ObjectStore> store)
      : options_(std::move(options)), store_(std::move(store)) {}
  std::shared_ptr<Namespace> state(const std::string& ns);  // requires mu_
  void run();
  // Ships one namespace (its ship_mu held by the caller). Updates its status.
  Expected<backup::ShipResult, std::string> ship(const std::string& ns, Namespace& st);
  void apply_retention(const std::string& ns, Namespace& st);
  // Uploads `ns`'s settings when the store may not have them (its ship_mu held). Returns the
  // number of objects written (0 or 1).
  Expected<std::uint64_t, std::string> ship_config(const std::string& ns, Namespace& st);
  static std::string config_key(const std::string& ns) { return prefix(ns) + "/config.json"; }

  const BackupServiceOptions options_;
  std::unique_ptr<storage::ObjectStore> store_;
  engine::NamespaceStore* namespaces_ = nullptr;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();

  std::mutex mu_;
  std::condition_variable wake_;     // the shipping thread
  std::condition_variable shipped_;  // commit hooks waiting under sync
  std::unordered_map<std::string, std::shared_ptr<Namespace>> namespaces_state_;  // guarded by mu_
  bool stopping_ = false;          // guarded by mu_
  bool waiters_released_ = false;  // guarded by mu_
  std::optional<std::chrono::steady_clock::time_point> release_at_;  // guarded by mu_
  BackupTotals totals_;            // guarded by mu_ (uptime computed on read)
  BackupTotals hour_start_;        // guarded by mu_: totals_ when the current hour began
  std::chrono::steady_clock::time_point hour_began_ = started_;  // guarded by mu_
  std::thread thread_;
};

}  // namespace quire::server
