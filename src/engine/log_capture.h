// Keeps one database's replication log in step with its WAL: every committed transaction is
// read back out of the -wal file (specs/wal-capture-notes.md, mechanism A) and appended to the
// log, numbered, before the commit is acknowledged.
//
// Where it is called:
//   * open(), before the server opens any connection to the database: creates the log (its first
//     transaction is the database file as it is then, the base image) or opens it and runs the
//     recovery rule: committed WAL transactions the log lacks (a crash between a commit and its
//     capture) are appended; a log ahead of the WAL (impossible after a process crash; only
//     after losing an unsynced WAL to power loss) is refused with an error naming both.
//   * capture(n) from the WAL hook of every commit, on the committing thread, before the
//     statement returns (so before the client hears of it). The write gate guarantees that no
//     other writer can restart the WAL between a commit and its capture.
//   * capture() before every checkpoint the server runs (insurance: the WAL frames a checkpoint
//     backfills are then always in the log already).
//
// Durability: the log is written (not synced) before a commit is acknowledged, and synced before
// any checkpoint may remove frames from the WAL (sync_before_checkpoint(), which every server
// checkpoint calls after capture()). So the WAL always holds whatever the log might have lost:
// after a process crash nothing is lost (the page cache survives); after a power loss at
// synchronous=FULL every acknowledged commit is in the synced WAL, and the recovery rule at open
// appends it to the log again, in the same order, under the same frame numbers. (Syncing the
// log at every commit instead cost a second fsync per commit: measured in bench/RESULTS.md.)
//
// Thread model: every member is thread-safe (one mutex).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>

#include "common/expected.h"
#include "common/write_mirror.h"
#include "log/log.h"
#include "log/wal_reader.h"
#include "sqlite/connection.h"

namespace quire::engine {

class LogCapture {
 public:
  struct Options {
    bool sync_each_commit = false;  // sync the log at every commit (not needed: see above)
    log::LogOptions log;
    // Once this many frames were appended since the newest snapshot — and at least as many as
    // the database has pages — a background job writes a new snapshot and deletes the segments
    // it covers, so the log stays under about twice the size of the database plus a segment or
    // two (and one compacted segment kept for reuse: log/log.h, compact()), and snapshotting
    // writes each byte of a large database at most once per database's worth of commits
    // (0: never).
    std::uint64_t snapshot_every_frames = 16384;  // 64 MiB of pages
    // Filled with the -wal's writes by the connections' VFS (sqlite/mirror_vfs.h): commits are
    // then read from memory, not from the file. Null: always from the file.
    std::shared_ptr<WriteMirror> wal_mirror;
  };
  ~LogCapture();  // waits for a snapshot in progress

  // `db_path` must exist as a database file in WAL mode, with no connection of the server open.
  static Expected<std::unique_ptr<LogCapture>, std::string> open(
      const std::string& db_path, const std::filesystem::path& log_dir, const Options& options);

  // Appends the committed transactions not yet in the log, reading no WAL frame past
  // `max_frame` when it is non-zero (the WAL hook's frame count). Errors carry the failing
  // system call's errno (ENOSPC: the disk is full).
  Expected<void, log::LogError> capture(std::uint32_t max_frame = 0);

  // capture(), then makes the log durable: before a checkpoint.
  Expected<void, log::LogError> capture_and_sync();

  // Room the log keeps reserved on disk for the next commit (see reserve_for_commit()).
  static constexpr std::uint64_t kCommitRoom = 256u << 10;
  // From the commit hook, before a transaction commits: makes sure the log's active segment has
  // disk blocks reserved for at least kCommitRoom more bytes (ReplicationLog::reserve). An
  // error (ENOSPC) means the disk is too full for the log to take the commit: the caller
  // refuses it, so that it rolls back instead of committing to a database whose log cannot
  // record it. A transaction larger than the room (or one captured together with an earlier
  // commit whose capture failed) can still meet a full disk in capture().
  Expected<void, log::LogError> reserve_for_commit();

  log::ReplicationLog& log() { return *log_; }

  // Times the guard below ran (tests).
  std::uint64_t wal_restarts_guarded() const {
    return restarts_guarded_.load(std::memory_order_relaxed);
  }
  // Of those, the ones that found the log already durable up to its end, and did not sync it.
  std::uint64_t wal_restart_syncs_skipped() const {
    return restart_syncs_skipped_.load(std::memory_order_relaxed);
  }

 private:
  // The -wal mirror's guard (Options::wal_mirror), run by the writer just before SQLite writes
  // a new WAL header over the old generation: capture() whatever that generation committed and
  // the log lacks, then sync the log unless a sync already covered its last frame
  // (ReplicationLog::synced_frame()). A background PASSIVE checkpoint syncs the log before it
  // starts but not against commits made while it runs, and it may copy those into the database
  // file; once the WAL starts over, a power loss could otherwise leave the database with a
  // commit whose log record was lost, and a commit whose capture had failed would be lost to
  // the log outright. false (the capture or the sync failed): the write, and so the writer's
  // transaction, fails and the old generation stays.
  bool before_wal_restart();

  LogCapture(std::filesystem::path wal_path, std::unique_ptr<log::ReplicationLog> log,
             const Options& options);
  // Requires mu_.
  Expected<void, log::LogError> append_batch(log::WalBatch& batch);
  // Requires mu_. Starts a snapshot-and-compact job when one is due.
  void maybe_snapshot();

  const Options options_;
  std::mutex mu_;
  log::WalReader reader_;    // guarded by mu_
  log::WalPosition cursor_;  // guarded by mu_
  std::unique_ptr<log::ReplicationLog> log_;
  log::Frame snapshot_base_ = 0;  // guarded by mu_: frame of the newest snapshot (or start)
  std::uint32_t db_pages_ = 0;    // guarded by mu_: the database's size after the last commit
  bool snapshotting_ = false;     // guarded by mu_
  std::atomic<std::uint64_t> restarts_guarded_{0};
  std::atomic<std::uint64_t> restart_syncs_skipped_{0};
  std::condition_variable snapshot_done_;
};

}  // namespace quire::engine
