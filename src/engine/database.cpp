#include "engine/database.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <chrono>
#include <filesystem>

#include "engine/checkpointer.h"
#include "engine/log_capture.h"
#include "sqlite/mirror_vfs.h"

namespace quire::engine {

namespace {

WriteClaim* claim_of(sqlite::Connection& conn) {
  return static_cast<WriteClaim*>(conn.write_access());
}

// A write failed for lack of space (a full disk, or the user's quota).
bool out_of_space(int err) { return err == ENOSPC || err == EDQUOT; }

}  // namespace

void Lease::park() {
  if (conn_) claim_of(*conn_)->park();
}

void Lease::unpark() {
  if (conn_) claim_of(*conn_)->unpark();
}

void Lease::release() {
  if (!conn_) return;
  WriteClaim* claim = claim_of(*conn_);
  claim->unpark();  // waits for a steal in progress
  claim->clear_aborted();
  conn_->set_access({});  // the next user states its own
  if (conn_->in_transaction() && !conn_->exec("ROLLBACK")) {
    conn_.reset();  // cannot prove it is clean: close it rather than pool it
  } else if (conn_->has_session_state()) {
    conn_.reset();  // TEMP objects or PRAGMAs of its last user: the next one gets a fresh one
  }
  if (conn_) {
    claim->release_if_idle();
    db_->give_back(std::move(conn_));
  }  // (a closed connection's claim gives the gate up as it goes)
  db_.reset();
}

Database::Database(std::string path, DatabaseOptions options)
    : path_(std::move(path)),
      replica_keepalive_(std::move(options.replica_keepalive)),
      options_(std::move(options)),
      write_gate_(options_.transaction_timeout) {
  if (is_replica()) {
    options_.open.read_only = true;
    options_.open.vfs = options_.replica_vfs;
    options_.log_dir.clear();
  } else if (!options_.log_dir.empty() && options_.open.vfs.empty()) {
    // The log takes each commit's frames from the copies this VFS makes of the -wal's writes.
    options_.open.vfs = sqlite::mirror_vfs_name();
  }
}

Database::~Database() {
  close();
  write_lane_.reset();  // its connection goes before the checkpointer's final word
}

void Database::remove_empty_wal(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path + "-wal", ec);
  if (ec || size != 0) return;
  std::filesystem::remove(path + "-wal", ec);
  std::filesystem::remove(path + "-shm", ec);
}

Expected<std::shared_ptr<Database>, sqlite::Error> Database::open(std::string path,
                                                                  DatabaseOptions options) {
  std::shared_ptr<Database> db(new Database(std::move(path), std::move(options)));
  if (!db->options_.log_dir.empty()) {
    // Before any connection: the log must first catch up with what the WAL committed.
    LogCapture::Options capture_options;
    capture_options.log.segment_bytes = db->options_.log_segment_bytes;
    capture_options.snapshot_every_frames = db->options_.log_snapshot_every_frames;
    if (db->options_.open.vfs == sqlite::mirror_vfs_name()) {
      if (auto key = sqlite::wal_mirror_path(db->path_)) {
        capture_options.wal_mirror = WriteMirror::acquire(*key);
      } else {
        spdlog::warn("{}: {} (commits are read back from the -wal file)", db->path_, key.error());
      }
    }
    auto capture = LogCapture::open(db->path_, db->options_.log_dir, capture_options);
    if (!capture) return unexpected(sqlite::Error{SQLITE_IOERR, capture.error()});
    db->capture_ = std::move(capture.value());
  }
  // One connection now: it creates the file and switches it to WAL, and serves the first
  // request. The checkpointer's and the write lane's open when they are first needed, so a
  // database that is only read costs one connection and no thread.
  auto first = db->open_pooled_connection();
  if (!first) return unexpected(first.error());
  db->idle_.push_back(std::move(first.value()));
  Database* self = db.get();
  // A replica's write lane only ever sees the read-only connection refuse a write (writes are
  // forwarded to the primary before they get here); it has nothing to checkpoint.
  db->write_lane_ = std::make_unique<WriteLane>([self] { return self->open_connection(); },
                                                db->write_gate_, db->options_.write_lane);
  if (db->is_replica()) return db;
  // Before each checkpoint: nothing it copies may be missing from the log, or be only in the
  // log's page cache (see LogCapture). On failure the checkpoint does not run.
  auto before_checkpoint = [self]() -> bool {
    if (!self->capture_) return true;
    auto r = self->capture_->capture_and_sync();
    if (!r) spdlog::error("{}: {} (checkpoint skipped)", self->path_, r.error().message);
    return r.has_value();
  };
  db->checkpointer_ =
      std::make_unique<Checkpointer>([self] { return self->open_connection(); },
                                     db->options_.checkpoint_threshold_frames, before_checkpoint);
  return db;
}

Expected<std::unique_ptr<sqlite::Connection>, sqlite::Error> Database::open_connection() {
  auto conn = sqlite::Connection::open(path_, options_.open);
  if (!conn) return unexpected(conn.error());
  sqlite3_wal_hook((*conn)->handle(), &Database::on_wal_commit, this);
  if (capture_) sqlite3_commit_hook((*conn)->handle(), &Database::on_commit_check, this);
  // Closing the last connection must not checkpoint: every checkpoint goes through the
  // server, after the log took the frames.
  sqlite3_db_config((*conn)->handle(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
  return conn;
}

int Database::on_commit_check(void* self) {
  auto* db = static_cast<Database*>(self);
  auto room = db->capture_->reserve_for_commit();
  if (room) return 0;
  // Refused before anything was written: SQLite rolls the transaction back, and the client
  // hears that the disk is full rather than SQLite's "constraint failed".
  // Once a minute at most: on a full disk every writer meets this on every commit.
  const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  auto last = db->full_warned_at_.load(std::memory_order_relaxed);
  if ((last == 0 || now - last >= std::chrono::steady_clock::duration(std::chrono::minutes(1)).count()) &&
      db->full_warned_at_.compare_exchange_strong(last, now, std::memory_order_relaxed)) {
    spdlog::warn("{}: refusing commits: {}", db->path_, room.error().message);
  }
  const bool full = out_of_space(room.error().sys_errno);
  sqlite::set_hook_error(nullptr, SQLITE_CONSTRAINT_COMMITHOOK,
                         {full ? SQLITE_FULL : SQLITE_IOERR,
                          std::string(full ? "database or disk is full: the replication log "
                                             "has no room for"
                                           : "the replication log cannot take") +
                              " this transaction (" + room.error().message + "); it was rolled back",
                          -1});
  return 1;
}

int Database::on_wal_commit(void* self, sqlite3* conn, const char* name, int frames) {
  auto* db = static_cast<Database*>(self);
  if (db->capture_) {
    if (auto captured = db->capture_->capture(static_cast<std::uint32_t>(frames)); !captured) {
      // The commit happened but is not in the log, so it is not acknowledged. It stays in the
      // WAL (no checkpoint runs, and the WAL does not start over, before the log has it), and
      // the next capture (the next commit, a checkpoint, a restart) appends it. The commit hook
      // makes this rare on a full disk: a transaction larger than the room it reserves, or one
      // captured together with an earlier commit whose capture had failed.
      spdlog::error("{}: {}", db->path_, captured.error().message);
      const int rc = out_of_space(captured.error().sys_errno) ? SQLITE_FULL : SQLITE_IOERR;
      sqlite::set_hook_error(conn, rc,
                             {rc,
                              "the transaction committed, but the replication log could not "
                              "record it (" + captured.error().message + "): it is not "
                              "acknowledged; it stays in the WAL and reaches the log, replicas "
                              "and backups once the log can take it",
                              -1});
      return rc;
    }
    if (db->options_.on_commit && !db->options_.on_commit(db->capture_->log().last_frame())) {
      sqlite::set_hook_error(conn, SQLITE_IOERR,
                             {SQLITE_IOERR,
                              "the transaction committed here, but was not confirmed by what "
                              "it waits for (--backup-sync: the object store); its outcome is "
                              "unknown to the client",
                              -1});
      return SQLITE_IOERR;
    }
  }
  if (frames >= 4 * db->options_.checkpoint_threshold_frames && db->checkpointer_) {
    // The background checkpointer is not keeping up: the writer checkpoints now, between its
    // transactions (after any background checkpoint in progress).
    if (auto r = db->capture_ ? db->capture_->capture_and_sync() : Expected<void, log::LogError>{};
        r) {
      db->checkpointer_->run_inline(conn, name);
    } else {
      spdlog::error("{}: {} (checkpoint skipped)", db->path_, r.error().message);
    }
  } else if (db->checkpointer_) {
    db->checkpointer_->notify(frames);
  }
  return SQLITE_OK;
}

Expected<std::unique_ptr<sqlite::Connection>, sqlite::Error> Database::open_pooled_connection() {
  auto conn = open_connection();
  if (!conn) return unexpected(conn.error());
  (*conn)->set_write_access(std::make_unique<WriteClaim>(write_gate_, **conn));
  return conn;
}

Expected<Lease, sqlite::Error> Database::acquire() {
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      auto conn = std::move(idle_.back());
      idle_.pop_back();
      return Lease(shared_from_this(), std::move(conn));
    }
  }
  auto conn = open_pooled_connection();
  if (!conn) return unexpected(conn.error());
  return Lease(shared_from_this(), std::move(conn.value()));
}

void Database::give_back(std::unique_ptr<sqlite::Connection> conn) {
  std::lock_guard lock(mu_);
  if (!closed_ && idle_.size() < options_.max_idle_connections) idle_.push_back(std::move(conn));
}

Expected<void, sqlite::Error> Database::checkpoint(int mode) {
  if (!checkpointer_) {
    return unexpected(sqlite::Error{SQLITE_MISUSE, "a read replica's database is checkpointed by "
                                                   "the replica itself, not through the server"});
  }
  return checkpointer_->run(mode, &write_gate_);
}

log::ReplicationLog* Database::replication_log() { return capture_ ? &capture_->log() : nullptr; }

void Database::close() {
  if (closed_.exchange(true)) return;
  if (options_.stop_replica) options_.stop_replica();
  if (write_lane_) write_lane_->stop();
  write_gate_.close();
  if (checkpointer_) checkpointer_->stop();
  {
    std::lock_guard lock(mu_);
    idle_.clear();
  }
  // With every idle connection closed, a TRUNCATE checkpoint folds the whole WAL into the
  // database file and empties it, so the files on disk are a plain, complete database. (Nothing
  // to do for a WAL that is empty already: a database that was only read.)
  std::error_code ec;
  const auto wal_size = std::filesystem::file_size(path_ + "-wal", ec);
  if (checkpointer_ && !ec && wal_size > 0) {
    (void)checkpointer_->run(SQLITE_CHECKPOINT_TRUNCATE, &write_gate_);
  }
}

}  // namespace quire::engine
