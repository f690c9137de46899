// Every database the server serves, by namespace: one SQLite database per tenant.
//
// On disk a namespace is a directory `ROOT/<name>/` holding the database file `data` (with its
// WAL) and `config.json`. A namespace costs disk, not memory, until it is used: databases open on
// first use and close again when idle, keeping at most `max_open` open (least recently used
// first; a database with a request, stream or transaction in flight is never closed under it).
// `default` always exists.
//
// Names: 1 to 64 characters of [A-Za-z0-9_-]. They become directory names, so nothing else
// is accepted (no dots, no slashes: no path traversal).
//
// Thread model: every member is thread-safe. Opening, closing and creating databases happen
// outside the store's lock where they touch the disk, so one slow namespace does not hold up
// requests to open ones.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/expected.h"
#include "engine/database.h"

namespace quire::engine {

// Per-namespace settings, kept in the namespace's config.json (sqld's names).
struct NamespaceConfig {
  bool block_reads = false;
  bool block_writes = false;
  std::optional<std::string> block_reason;
  std::optional<std::uint64_t> max_db_size;  // bytes; writes past it fail with SQLITE_FULL
  std::optional<double> txn_timeout_s;       // overrides --transaction-timeout
  std::optional<std::string> jwt_key;        // replaces the global key for this namespace
  bool allow_attach = false;
};

struct NamespaceInfo {
  std::string name;
  std::uint64_t size_bytes = 0;                                      // database file plus WAL
  std::optional<std::chrono::system_clock::time_point> last_access;  // since the server started
  bool open = false;
};

struct NamespaceError {
  enum class Kind { kInvalidName, kNotFound, kExists, kProtected, kIo, kSqlite };
  Kind kind;
  std::string message;
};

// Where a read replica's namespaces come from (`quire serve --primary-url`): the primary says
// which namespaces exist, and each opens as a replica database that follows the primary.
class ReplicaSource {
 public:
  virtual ~ReplicaSource() = default;
  // Whether the primary has namespace `name`; an error when the primary cannot say.
  virtual Expected<bool, std::string> primary_has(const std::string& name) = 0;
  // Opens (creating its files when missing) the replica database of `name` whose base file is
  // `path`, following the primary. `options` are the store's, to be completed by the source.
  virtual Expected<std::shared_ptr<Database>, std::string> open(const std::string& name,
                                                                const std::string& path,
                                                                DatabaseOptions options) = 0;
  // For error messages: "a read replica of http://..."
  virtual std::string describe() const = 0;
};

class NamespaceStore {
 public:
  struct Options {
    std::string root;  // holds one directory per namespace
    DatabaseOptions database;
    std::size_t max_open = 256;
    // Each database keeps a replication log in <namespace>/log (replicas, backups, point-in-time
    // restore read it). Off: none is written (benchmarks of its cost; data without replication).
    bool replication_log = true;
    // Set: the store is a read replica's. Namespaces are the primary's (one exists here once
    // the primary says it exists, and opens as a replica database); create, fork, remove and
    // set_config are refused (kProtected). The replica keeps no log of its own.
    std::shared_ptr<ReplicaSource> replica;
    // Set: each database's DatabaseOptions::on_commit is observe_commits(namespace) (the backup
    // service follows commits this way). Only with a replication log.
    std::function<std::function<bool(std::uint64_t)>(const std::string&)> observe_commits;
  };

  // Opens the store, creating the root and the `default` namespace if they are missing.
  static Expected<std::unique_ptr<NamespaceStore>, NamespaceError> open(Options options);
  ~NamespaceStore();

  static bool valid_name(std::string_view name);

  // The database of `name`, opened if it is not open. kNotFound for a namespace that does not
  // exist (never an implicit create).
  Expected<std::shared_ptr<Database>, NamespaceError> get(std::string_view name);

  // Creates an empty namespace, or one holding what `dump_sql` (an SQL script, as from `.dump`)
  // creates. Fails with kExists if it exists. Atomic: a failed create leaves nothing behind.
  Expected<void, NamespaceError> create(std::string_view name, const NamespaceConfig& config,
                                        const std::optional<std::string>& dump_sql = {});

  // Deletes a namespace's files. `default` is refused (kProtected). Requests still running on
  // it finish; new ones get kNotFound.
  Expected<void, NamespaceError> remove(std::string_view name);

  // Copies `from` (a consistent snapshot of it, taken without blocking its writers) and its
  // config into the new namespace `to`.
  Expected<void, NamespaceError> fork(std::string_view from, std::string_view to);

  // Creates namespace `name` whose database is the file `db_file` (a complete database with no
  // -wal, for instance restored from a backup), which is moved in (copied when it is on another
  // file system). The namespace starts a new replication log with it as the base image.
  Expected<void, NamespaceError> adopt(std::string_view name, const std::filesystem::path& db_file,
                                       const NamespaceConfig& config);

  // Replaces the database of the existing namespace `name` with `db_file` (as adopt()). Requests
  // to the namespace wait meanwhile; the old database is closed (its WAL checkpointed) and its
  // files and replication log are deleted, and the namespace starts a new log (a new log id:
  // a backup of it starts a new lineage, and the old one stays restorable).
  Expected<void, NamespaceError> replace(std::string_view name, const std::filesystem::path& db_file);

  // A scratch path under the store's root (same file system as the namespaces), for a file
  // that adopt() or replace() will move in. Nothing is created.
  std::filesystem::path scratch_path(std::string_view purpose, std::string_view name) const;

  // Every namespace, by name.
  std::vector<NamespaceInfo> list();

  Expected<NamespaceConfig, NamespaceError> config(std::string_view name);
  // The same, from memory while the namespace is open (per-request checks use this).
  Expected<std::shared_ptr<const NamespaceConfig>, NamespaceError> cached_config(
      std::string_view name);
  // Takes effect for limits checked per request at once; size and timeout limits when the
  // database next opens (it is closed now if idle).
  Expected<void, NamespaceError> set_config(std::string_view name, const NamespaceConfig& config);

  bool exists(std::string_view name);
  // The database file of a namespace (valid names only).
  std::string database_path(std::string_view name) const;
  std::size_t open_count();

  // Closes every open database (shutdown).
  void close_all();

 private:
  explicit NamespaceStore(Options options) : options_(std::move(options)) {}
  // Syncs a finished scratch directory and renames it to namespace `name` (kExists if taken).
  Expected<void, NamespaceError> publish(const std::filesystem::path& scratch,
                                         std::string_view name);
  // A replica's namespace directory with a default config.json (no database file yet: the
  // replica bootstraps it from the primary).
  Expected<void, NamespaceError> make_replica_dir(std::string_view name);
  // kProtected for a replica, which cannot change its namespaces.
  Expected<void, NamespaceError> refuse_on_replica(std::string_view what) const;
  // Builds empty_database_.
  Expected<void, NamespaceError> make_empty_database();
  std::string dir_of(std::string_view name) const;
  Expected<std::shared_ptr<Database>, NamespaceError> open_database(const std::string& name,
                                                                    const NamespaceConfig& config);
  // Closes least recently used databases nobody uses until at most max_open remain (or none
  // can be closed). Called without the lock held.
  void evict();
  // Closes and releases each database, then takes its name out of busy_. Without mu_.
  void close_busy(std::vector<std::pair<std::string, std::shared_ptr<Database>>> closing);

  struct Open {
    std::shared_ptr<Database> db;
    std::shared_ptr<const NamespaceConfig> config;
    std::list<std::string>::iterator lru;  // position in lru_
    std::chrono::system_clock::time_point last_access;
  };

  const Options options_;
  std::mutex mu_;
  std::unordered_map<std::string, Open> open_;  // guarded by mu_
  std::list<std::string> lru_;                  // guarded by mu_; most recent at the front
  std::unordered_map<std::string, std::chrono::system_clock::time_point> seen_;  // guarded by mu_
  // Names being opened, closed or deleted right now: a request for one waits (busy_cv_), so
  // there is never more than one Database per file.
  std::unordered_set<std::string> busy_;  // guarded by mu_
  std::condition_variable busy_cv_;
  std::mutex create_mu_;  // one remove or set_config at a time (creates and forks run in parallel)
  std::string empty_database_;  // the bytes of a new, empty database file (WAL mode)
};

// config.json <-> NamespaceConfig.
std::string to_json(const NamespaceConfig& config);
Expected<NamespaceConfig, std::string> namespace_config_from_json(std::string_view json);

}  // namespace quire::engine
