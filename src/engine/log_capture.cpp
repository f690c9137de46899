#include "engine/log_capture.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "common/background_pool.h"
#include "log/snapshot.h"

namespace quire::engine {

namespace {

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string describe(const log::LogError& e) { return "replication log: " + e.message; }

// The same error, its message prefixed as describe() does.
log::LogError described(log::LogError e) {
  e.message = describe(e);
  return e;
}

}  // namespace

LogCapture::LogCapture(std::filesystem::path wal_path, std::unique_ptr<log::ReplicationLog> log,
                       const Options& options)
    : options_(options), reader_(std::move(wal_path)), log_(std::move(log)) {
  reader_.attach_mirror(options_.wal_mirror);
}

Expected<std::unique_ptr<LogCapture>, std::string> LogCapture::open(
    const std::string& db_path, const std::filesystem::path& log_dir, const Options& options) {
  const std::filesystem::path wal_path = db_path + "-wal";
  auto opened = log::ReplicationLog::open(log_dir, options.log);
  if (!opened && opened.error().code == log::LogErrc::kNotFound) {
    // A database without a log: fold its WAL into the file, then the file is the base image.
    {
      auto conn = sqlite::Connection::open(db_path, {});
      if (!conn) return unexpected("cannot open " + db_path + ": " + conn.error().message);
      // The C API: the authorizer refuses PRAGMA wal_checkpoint to every SQL statement.
      if (sqlite3_wal_checkpoint_v2((*conn)->handle(), nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr,
                                    nullptr) != SQLITE_OK) {
        return unexpected("cannot checkpoint " + db_path + ": " + (*conn)->last_error().message);
      }
    }
    auto base = log::FilePageSource::open(db_path);
    if (!base) return unexpected(describe(base.error()));
    opened = log::ReplicationLog::create(log_dir, options.log, &base.value(), now_us());
    if (opened) {
      if (auto s = (*opened)->sync(); !s) return unexpected(describe(s.error()));
    }
  }
  if (!opened) return unexpected(describe(opened.error()));
  std::unique_ptr<LogCapture> capture(new LogCapture(wal_path, std::move(opened.value()), options));

  // The recovery rule: the log must hold every transaction committed in the WAL.
  std::lock_guard lock(capture->mu_);
  const auto latest = capture->log_->latest_snapshot();
  capture->snapshot_base_ = latest ? latest->frame : capture->log_->first_available_frame();
  const auto last = capture->log_->last_wal_position();
  auto batch = capture->reader_.read_committed(last.value_or(log::WalPosition{}));
  if (!batch) return unexpected("recovering " + db_path + ": " + describe(batch.error()));
  if (batch->state == log::WalState::kBehindCursor) {
    return unexpected("recovering " + db_path + ": the replication log (WAL frame " +
                      std::to_string(last ? last->frame : 0) +
                      ") is ahead of the database's WAL (committed up to frame " +
                      std::to_string(batch->end.frame) +
                      "): the WAL lost synced-in-log transactions (power loss at "
                      "synchronous=NORMAL?); restore the database from its log or a backup");
  }
  if (auto r = capture->append_batch(*batch); !r) return unexpected(r.error().message);
  if (!batch->transactions.empty()) {
    if (auto s = capture->log_->sync(); !s) return unexpected(describe(s.error()));
  }
  if (options.wal_mirror) {
    LogCapture* self = capture.get();
    options.wal_mirror->set_before_rewrite(self, [self] { return self->before_wal_restart(); });
  }
  return capture;
}

bool LogCapture::before_wal_restart() {
  if (auto r = capture(); !r) {
    spdlog::error("{}: before the WAL starts over: {}", log_->dir().string(), r.error().message);
    return false;
  }
  // Usually a checkpoint just made the log durable up to its end (the writer's own inline
  // checkpoint, in the previous commit's WAL hook, always does); an fdatasync then only waits
  // for the disk.
  if (log_->synced_frame() >= log_->last_frame()) {
    restart_syncs_skipped_.fetch_add(1, std::memory_order_relaxed);
  } else if (auto s = log_->sync(); !s) {
    spdlog::error("{}: before the WAL starts over: {}", log_->dir().string(),
                  describe(s.error()));
    return false;
  }
  restarts_guarded_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

Expected<void, log::LogError> LogCapture::append_batch(log::WalBatch& batch) {
  for (auto& txn : batch.transactions) {
    txn.commit_time_us = now_us();
    auto appended = log_->append(txn);
    if (!appended) return unexpected(described(std::move(appended).error()));
    cursor_ = *txn.wal;
    db_pages_ = txn.db_size;
  }
  if (batch.transactions.empty()) cursor_ = batch.end;
  return {};
}

Expected<void, log::LogError> LogCapture::capture(std::uint32_t max_frame) {
  std::lock_guard lock(mu_);
  auto batch = reader_.read_committed(cursor_, max_frame);
  if (!batch) return unexpected(described(std::move(batch).error()));
  if (batch->transactions.empty()) {
    if (batch->state != log::WalState::kBehindCursor) cursor_ = batch->end;
    return {};
  }
  auto appended = append_batch(*batch);
  reader_.recycle(std::move(batch->transactions));
  if (!appended) return appended;
  if (options_.sync_each_commit) {
    if (auto s = log_->sync(); !s) return unexpected(described(std::move(s).error()));
  }
  maybe_snapshot();
  return {};
}

Expected<void, log::LogError> LogCapture::capture_and_sync() {
  if (auto r = capture(); !r) return r;
  // Not under mu_: commits keep being captured while the log is synced (ReplicationLog::sync
  // covers every append that returned before it was called, so everything a checkpoint after
  // this may copy is durable in the log).
  if (auto s = log_->sync(); !s) return unexpected(described(std::move(s).error()));
  return {};
}

Expected<void, log::LogError> LogCapture::reserve_for_commit() {
  if (auto r = log_->reserve(kCommitRoom); !r) return unexpected(described(std::move(r).error()));
  return {};
}

void LogCapture::maybe_snapshot() {
  if (snapshotting_ || options_.snapshot_every_frames == 0) return;
  const log::Frame last = log_->last_frame();
  // A snapshot writes the whole database: wait for at least a database's worth of new frames,
  // or a large database would be rewritten every snapshot_every_frames (16× the log's bytes
  // for a 1 GiB database).
  const std::uint64_t interval =
      std::max<std::uint64_t>(options_.snapshot_every_frames, db_pages_);
  if (last < snapshot_base_ + interval) return;
  snapshotting_ = true;
  BackgroundPool::shared().post([this, last] {
    // Built from the log itself (newest snapshot + later frames): no SQLite lock is taken.
    auto snap = log_->snapshot();
    if (snap) {
      if (auto compacted = log_->compact(); !compacted) {
        spdlog::warn("{}: compacting the replication log: {}", log_->dir().string(),
                     compacted.error().message);
      }
    } else {
      spdlog::warn("{}: snapshot of the replication log: {}", log_->dir().string(),
                   snap.error().message);
    }
    std::lock_guard lock(mu_);
    snapshot_base_ = snap ? snap->frame : last;  // after a failure, retry one interval later
    snapshotting_ = false;
    snapshot_done_.notify_all();
  });
}

LogCapture::~LogCapture() {
  if (options_.wal_mirror) options_.wal_mirror->clear_before_rewrite(this);
  std::unique_lock lock(mu_);
  snapshot_done_.wait(lock, [&] { return !snapshotting_; });
}

}  // namespace quire::engine
