// Sidecar mode (`quire replicate`, docs/sidecar.md): continuous backup of a database that another
// program writes with ordinary SQLite in WAL mode. The sidecar keeps a replication log of its
// own in a state directory beside the database, fills it from the application's WAL, and ships
// it to an object store in the backup format (docs/formats/backup.md), so that `quire restore`
// brings the database back, as of the latest capture or a point in time.
//
// How a transaction travels:
//   1. capture() (every capture_interval): WalReader reads the committed transactions after the
//      cursor (the WAL position of the last one taken) and appends them to the log, stamped with
//      the capture time, and syncs it; then the WalPin's read transaction moves forward.
//   2. ship() (every ship_interval): the log's new frames go to the store (backup::ship through
//      a BackupWriter kept open across calls), retired logs first (see lineages).
//   3. checkpoint_if_due(): once the WAL holds checkpoint_frames frames, the sidecar checkpoints
//      under the write lock so that the application's next writer can start the WAL over.
//
// Lineages: frame numbers mean something only within one log. Whenever the sidecar cannot prove
// that the WAL still continues from its cursor — at first start, after the WAL was restarted or
// truncated while the sidecar was not running, after the database file was replaced, or when the
// cursor's frame no longer matches — it does not guess: it starts a new log (a new log id, so a
// new lineage in the store) whose base image is the database as it is now, and says so in a
// warning. The previous log moves to <state>/retired/ until everything in it is shipped, so no
// captured transaction is dropped from the backup's history.
//
// State directory (default <db>-quire/): log/ the current log; retired/<time>-<log-id>/ logs
// still to ship; log.new/ a log being created (removed at start); lock (flock: one sidecar per
// database).
//
// Thread model: one thread runs run() (or calls capture/ship/checkpoint_if_due); stop() may be
// called from any thread (a signal-waiting thread).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "backup/backup.h"
#include "backup/ship.h"
#include "common/expected.h"
#include "log/log.h"
#include "log/wal_reader.h"
#include "sidecar/wal_pin.h"
#include "storage/object_store.h"

namespace quire::sidecar {

struct SidecarOptions {
  std::filesystem::path db_path;
  std::filesystem::path state_dir;  // empty: db_path + "-quire"
  std::string prefix;               // the backup's prefix in the store (restore -n PREFIX)
  // How often the WAL is read into the local log. Commit times are capture times, so this is
  // also the precision of point-in-time restore.
  std::chrono::milliseconds capture_interval{100};
  // How often the log is shipped to the store: the recovery point objective.
  std::chrono::milliseconds ship_interval{1000};
  // The sidecar checkpoints once the WAL holds this many frames (0: never; the WAL then grows
  // until the sidecar stops, because its read transaction stops the application's own).
  std::uint32_t checkpoint_frames = 1000;
  // After a failed shipment the next try waits ship_interval, doubling up to this.
  std::chrono::milliseconds max_backoff{30000};
  // At stop, shipping is retried for this long before giving up.
  std::chrono::milliseconds shutdown_timeout{30000};
  // The local log gets a snapshot and is compacted after max(this, database pages) frames, once
  // the store holds them (0: never).
  std::uint64_t snapshot_every_frames = 16384;
  // Point-in-time history kept in the store: every retention_check_interval, once the store is
  // up to date, what only serves restores before now - retention is deleted (0: keep all).
  std::chrono::seconds retention{0};
  std::chrono::seconds retention_check_interval{3600};
  // Seals new snapshots and batches with AES-256-GCM (docs/formats/backup.md, "Encryption").
  std::optional<backup::EncryptionKey> encryption_key;
  WalPin::Options pin;
  backup::ShipOptions ship;  // its encryption_key is set from the one above
  log::LogOptions log;
  std::function<std::int64_t()> clock;  // unix microseconds; default: the system clock
};

struct CaptureStats {
  std::size_t txns = 0;       // transactions appended by this call
  log::Frame last_frame = 0;  // the log's last frame after it
  bool new_lineage = false;   // this call started a new log
};

struct ShipStats {
  log::Frame first_frame = 0;  // frames uploaded from the current log (0: none)
  log::Frame last_frame = 0;
  std::uint64_t txns = 0;
  std::uint64_t objects = 0;  // objects written, manifests included, retired logs included
  std::uint64_t bytes = 0;
  std::size_t retired_shipped = 0;  // retired logs completed (and deleted locally)
  bool up_to_date = false;          // the store holds everything captured so far
};

class Sidecar {
 public:
  // Checks the database (WAL mode, 4096-byte pages), locks the state directory, pins the WAL,
  // and resumes the log in the state directory (or starts a new lineage, see the top). The store
  // must outlive the sidecar.
  static Expected<std::unique_ptr<Sidecar>, std::string> open(const SidecarOptions& options,
                                                              storage::ObjectStore& store);
  ~Sidecar();
  Sidecar(const Sidecar&) = delete;
  Sidecar& operator=(const Sidecar&) = delete;

  // Takes the committed transactions the log lacks (see the top). Errors leave the cursor where
  // it was (the next call retries).
  Expected<CaptureStats, std::string> capture();
  // Checkpoints when the WAL holds checkpoint_frames frames; returns whether it ran.
  Expected<bool, std::string> checkpoint_if_due();
  // Ships the retired logs, oldest first, then the current one; after success, snapshots and
  // compacts the local log when due. On error the writer is dropped (reopened next time).
  backup::BackupResult<ShipStats> ship();

  // The loop: capture, checkpoint and ship on their intervals until stop(), with backoff on
  // store errors; then a last capture and shipping until everything is stored (or
  // shutdown_timeout). Succeeds when the store holds every captured transaction at the end.
  Expected<void, std::string> run();
  void stop();

  log::ReplicationLog& log() { return *log_; }
  const std::filesystem::path& state_dir() const { return state_dir_; }
  const log::WalPosition& cursor() const { return cursor_; }
  // Logs started by this process (a new lineage each).
  std::size_t lineages_started() const { return lineages_started_; }
  std::size_t retired_logs() const;

 private:
  Sidecar(const SidecarOptions& options, storage::ObjectStore& store);
  std::int64_t now_us() const;
  // Retires the current log and starts a new one from the database as it is now.
  Expected<void, std::string> start_lineage(const std::string& reason);
  Expected<void, std::string> retire_current();
  // Appends the batch's transactions; updates the cursor.
  Expected<std::size_t, std::string> append(log::WalBatch& batch);
  // capture() without moving the read transaction (under checkpoint()'s write lock too).
  Expected<CaptureStats, std::string> capture_locked();
  backup::BackupResult<void> ship_retired(ShipStats& stats);
  void maybe_snapshot(log::Frame shipped);
  void maybe_apply_retention();

  SidecarOptions options_;
  storage::ObjectStore& store_;
  std::filesystem::path state_dir_;
  int lock_fd_ = -1;
  std::unique_ptr<WalPin> pin_;
  std::unique_ptr<log::WalReader> reader_;
  std::unique_ptr<log::ReplicationLog> log_;
  std::unique_ptr<backup::BackupWriter> writer_;  // for log_'s lineage; null after an error
  log::WalPosition cursor_;
  // The WAL pin has been held continuously since the last successful capture: a WAL that
  // restarted or vanished since then did so with everything captured (wal_pin.h).
  bool continuous_ = false;
  log::WalPosition last_checkpoint_;
  std::chrono::steady_clock::time_point last_checkpoint_at_{};
  log::Frame snapshot_base_ = 0;
  std::optional<std::chrono::steady_clock::time_point> last_retention_at_;
  std::size_t lineages_started_ = 0;

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stop_requested_ = false;  // guarded by stop_mu_
};

}  // namespace quire::sidecar
