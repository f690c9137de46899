// One SQLite database as the server runs it: a pool of connections (readers run concurrently
// with the single writer through WAL snapshots) and the checkpointer that owns the WAL.
//
// Thread model: every public member is thread-safe. A Lease is owned by one thread at a time.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/expected.h"
#include "engine/write_gate.h"
#include "engine/write_lane.h"
#include "sqlite/connection.h"

namespace quire::log {
class ReplicationLog;
}

namespace quire::engine {

class Checkpointer;
class LogCapture;

struct DatabaseOptions {
  sqlite::OpenOptions open;
  // Idle connections kept for reuse; more may be open while leased.
  std::size_t max_idle_connections = 32;
  // A passive checkpoint runs once the WAL holds this many frames.
  int checkpoint_threshold_frames = 1000;
  WriteLaneOptions write_lane;
  // A transaction holding the write lock between requests is rolled back once another writer
  // has waited this long (see WriteGate).
  std::chrono::milliseconds transaction_timeout{5000};
  // Where the database's replication log lives (created if missing); empty: no log.
  std::filesystem::path log_dir;
  std::uint64_t log_segment_bytes = 64ull << 20;
  std::uint64_t log_snapshot_every_frames = 16384;  // see LogCapture::Options
  // Called on the committing thread after each commit was captured in the log, with the log's
  // last frame, before the commit is acknowledged (the backup service's notice, and its wait
  // under --backup-sync). Must be cheap unless it means to hold the acknowledgement back.
  // false: the commit must not be reported as a success (it happened, but what the hook waits
  // for did not: the client gets SQLITE_IOERR, an unknown outcome).
  std::function<bool(std::uint64_t frame)> on_commit;

  // A read replica's database (src/replica): connections open read-only through this VFS, and
  // the database has no log and no checkpointer (the replica applies and folds frames itself).
  // Empty: an ordinary, writable database.
  std::string replica_vfs;
  // What feeds a replica (its puller and overlay): stop_replica runs first thing in close(),
  // and replica_keepalive is released only after the last connection closed (the overlay VFS
  // must outlive every connection opened through it).
  std::function<void()> stop_replica;
  std::shared_ptr<void> replica_keepalive;
};

class Database;

// Exclusive use of one pooled connection. Returned to the pool on destruction; a connection
// left inside a transaction is rolled back first (and closed if even that fails), so the pool
// only ever holds connections in autocommit mode.
class Lease {
 public:
  Lease() = default;
  Lease(std::shared_ptr<Database> db, std::unique_ptr<sqlite::Connection> conn)
      : db_(std::move(db)), conn_(std::move(conn)) {}
  Lease(Lease&&) noexcept = default;
  Lease& operator=(Lease&& o) noexcept {
    release();
    db_ = std::move(o.db_);
    conn_ = std::move(o.conn_);
    return *this;
  }
  ~Lease() { release(); }

  sqlite::Connection* operator->() const { return conn_.get(); }
  sqlite::Connection& operator*() const { return *conn_; }
  explicit operator bool() const { return conn_ != nullptr; }
  Database& database() const { return *db_; }

  // Between requests of a stream that keeps this lease: its write transaction may be rolled
  // back by a writer that waited too long (WriteGate). unpark() before using it again.
  void park();
  void unpark();

 private:
  void release();
  std::shared_ptr<Database> db_;
  std::unique_ptr<sqlite::Connection> conn_;
};

// Usage counters of one database since it was opened (the admin API's stats).
struct DatabaseStats {
  std::atomic<std::uint64_t> queries{0};
  std::atomic<std::uint64_t> rows_read{0};
  std::atomic<std::uint64_t> rows_written{0};
  void count(std::uint64_t read, std::uint64_t written) {
    queries.fetch_add(1, std::memory_order_relaxed);
    rows_read.fetch_add(read, std::memory_order_relaxed);
    rows_written.fetch_add(written, std::memory_order_relaxed);
  }
};

class Database : public std::enable_shared_from_this<Database> {
 public:
  // Opens (creating if needed) the database file at `path` and starts its checkpointer.
  static Expected<std::shared_ptr<Database>, sqlite::Error> open(std::string path,
                                                                 DatabaseOptions options);
  ~Database();

  const std::string& path() const { return path_; }

  // A connection for exclusive use: an idle one from the pool, or a newly opened one.
  Expected<Lease, sqlite::Error> acquire();

  // The lane that runs and group-commits autocommit writes.
  WriteLane& write_lane() { return *write_lane_; }

  // Who may write now (see WriteGate).
  WriteGate& write_gate() { return write_gate_; }

  DatabaseStats& stats() { return stats_; }

  // The replication log every commit is appended to before it is acknowledged; null when the
  // database runs without one (DatabaseOptions::log_dir empty).
  log::ReplicationLog* replication_log();
  // What keeps that log in step with the WAL; null without a log.
  LogCapture* log_capture() { return capture_.get(); }

  // True for a read replica's database (DatabaseOptions::replica_vfs).
  bool is_replica() const { return !options_.replica_vfs.empty(); }

  // Runs a checkpoint now. mode is a SQLITE_CHECKPOINT_* constant.
  Expected<void, sqlite::Error> checkpoint(int mode);

  // SQLite keeps the -wal and -shm of a database closed without its checkpoint-on-close. Once
  // no Database and no connection has `path` open, an empty WAL holds nothing: removes both,
  // so an idle tenant costs its database file and log, not 32 KiB of shared-memory index too.
  static void remove_empty_wal(const std::string& path);

  // Stops the checkpointer, closes idle connections and truncates the WAL. Leases still out
  // keep working; call when no new work will arrive.
  void close();

 private:
  friend class Lease;
  Database(std::string path, DatabaseOptions options);
  void give_back(std::unique_ptr<sqlite::Connection> conn);
  Expected<std::unique_ptr<sqlite::Connection>, sqlite::Error> open_connection();
  // A connection for the pool: its writes go through the write gate.
  Expected<std::unique_ptr<sqlite::Connection>, sqlite::Error> open_pooled_connection();
  static int on_wal_commit(void* self, sqlite3* db, const char* name, int frames);
  // The commit hook (databases with a log): refuses a commit, which then rolls back, when the
  // disk is too full for the log to record it (LogCapture::reserve_for_commit).
  static int on_commit_check(void* self);
  // steady_clock ticks of the last "refusing commits" warning (0: none yet).
  std::atomic<std::int64_t> full_warned_at_{0};

  std::string path_;
  // Declared first, so destroyed last: after every connection (see replica_keepalive).
  std::shared_ptr<void> replica_keepalive_;
  DatabaseOptions options_;
  WriteGate write_gate_;  // before every connection: their claims refer to it
  DatabaseStats stats_;
  std::mutex mu_;
  std::vector<std::unique_ptr<sqlite::Connection>> idle_;  // guarded by mu_
  std::unique_ptr<LogCapture> capture_;  // before the connections: their WAL hook uses it
  std::unique_ptr<Checkpointer> checkpointer_;
  std::unique_ptr<WriteLane> write_lane_;
  std::atomic<bool> closed_{false};
};

}  // namespace quire::engine
