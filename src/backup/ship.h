// Bringing a backup up to date with a replication log (docs/formats/backup.md, "Shipping"):
// ship() reads the manifest of the log's lineage under `prefix`, uploads a snapshot when the
// store has nothing for the lineage or the log no longer holds the frames after what the store
// has, then uploads every whole transaction after that in batches of about batch_bytes, then a
// periodic snapshot when the snapshot policy says the lineage needs one (so that retention can
// delete old batches and restore does not replay weeks of them).
// Idempotent: when the store already holds the log's last frame, nothing is uploaded.
//
// Thread model: one ship() per (store, prefix) at a time; the log may be appended to
// concurrently (ship() stops at the last frame it saw when it started).
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "backup/backup.h"
#include "log/log.h"

namespace quire::backup {

struct ShipOptions {
  // Page bytes per batch (a transaction is never split). Above what a busy database commits in
  // one shipping interval, so that an interval is one upload.
  std::size_t batch_bytes = 16u << 20;
  int zstd_level = 3;

  // Snapshot policy. After the batches, a new snapshot is uploaded when the stored bytes of the
  // lineage's batches after its newest snapshot exceed snapshot_after_bytes, or when the newest
  // commit in the store is snapshot_interval_us or more after the newest snapshot's commit (so
  // only if there were commits since). Without a snapshot in the lineage (it starts at frame 1),
  // all its batches count and the interval runs from its first commit.
  static constexpr std::uint64_t kSnapshotAfterBytesAuto = 0;  // max(256 MiB, the db's size)
  static constexpr std::uint64_t kNever = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t snapshot_after_bytes = kSnapshotAfterBytesAuto;  // kNever: no size trigger
  std::int64_t snapshot_interval_us = 24ll * 3600 * 1'000'000;   // <= 0: no time trigger

  // The (log, store, prefix) overload opens its writer with this key (copied); the writer
  // overload uses the writer's own options.
  const EncryptionKey* encryption_key = nullptr;
  // Progress of each snapshot upload (pages done, page count).
  ProgressFn snapshot_progress;
};

struct ShipResult {
  log::Frame store_frame_before = 0;  // the lineage's last frame before (0: nothing)
  log::Frame store_frame_after = 0;
  std::optional<SnapshotEntry> snapshot;  // uploaded by this call (the last one, if two)
  bool periodic_snapshot = false;         // `snapshot` was uploaded by the snapshot policy
  std::vector<BatchEntry> batches;        // uploaded by this call
  std::uint64_t txns = 0;
  std::uint64_t bytes = 0;  // stored bytes uploaded (snapshot + batches, not manifests)
  std::uint64_t objects_written = 0;  // including manifests and lineages.json
  bool uploaded_anything() const { return snapshot.has_value() || !batches.empty(); }
};

BackupResult<ShipResult> ship(log::ReplicationLog& log, storage::ObjectStore& store,
                              const std::string& prefix, const ShipOptions& options = {});
// The same through a writer the caller keeps open across calls (no manifest GET per call): the
// server's backup service holds one per database. The writer's log id must be the log's.
BackupResult<ShipResult> ship(log::ReplicationLog& log, BackupWriter& writer,
                              const ShipOptions& options = {});

}  // namespace quire::backup
