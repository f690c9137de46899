#include "backup/ship.h"

#include <algorithm>
#include <utility>

namespace quire::backup {

namespace {

BackupError from_log(const std::string& what, const log::LogError& e) {
  BackupError out;
  out.kind = e.code == log::LogErrc::kCorrupt ? BackupErrc::kCorrupt : BackupErrc::kIo;
  out.message = what + ": " + e.message;
  return out;
}

BackupError invalid(std::string m) {
  BackupError out;
  out.kind = BackupErrc::kInvalidArgument;
  out.message = std::move(m);
  return out;
}

// Uploads the log's snapshot `snap` (a file in the log's directory).
BackupResult<void> upload_log_snapshot(log::ReplicationLog& log, BackupWriter& writer,
                                       const log::SnapshotInfo& snap, const ShipOptions& options,
                                       ShipResult& res) {
  auto file = log::SnapshotFile::open(snap.path, &log.log_id());
  if (!file) return unexpected(from_log("opening " + snap.path.string(), file.error()));
  auto up = writer.upload_snapshot(*file, snap.frame, snap.commit_time_us, options.snapshot_progress);
  if (!up) return unexpected(std::move(up).error());
  res.bytes += up->size;
  res.snapshot = std::move(*up);
  return {};
}

// Uploads every whole transaction from writer.last_frame()+1 through frame `target`. Each
// transaction goes from the log reader's buffer into the batch being built (one copy of its
// pages), never into a Transaction of its own.
BackupResult<void> ship_batches(log::ReplicationLog& log, BackupWriter& writer, log::Frame target,
                                const ShipOptions& options, ShipResult& res) {
  const std::string id = log::format_log_id(log.log_id());
  const log::Frame from = writer.last_frame() + 1;
  if (from > target) return {};
  auto reader = log.read_from(from);
  if (!reader) {
    return unexpected(
        from_log("reading log " + id + " from frame " + std::to_string(from), reader.error()));
  }
  if (auto r = writer.start_batch(from); !r) return unexpected(std::move(r.error()));
  std::size_t batch_bytes = 0;  // page images in the batch being built
  auto flush = [&]() -> BackupResult<void> {
    const std::uint32_t txns = writer.batch_txns();
    if (txns == 0) return {};
    auto up = writer.finish_batch();
    if (!up) return unexpected(std::move(up).error());
    res.txns += txns;
    res.bytes += up->size;
    const log::Frame next = up->last_frame + 1;
    res.batches.push_back(std::move(*up));
    batch_bytes = 0;
    return writer.start_batch(next);
  };
  log::TransactionView txn;
  while (reader->next_frame() <= target) {
    auto got = reader->next_view(txn);
    if (!got) {
      return unexpected(from_log("reading log " + id + " at frame " +
                                     std::to_string(reader->next_frame()),
                                 got.error()));
    }
    if (!*got) break;  // the log ended early (cannot happen: frames never disappear)
    if (auto r = writer.add_to_batch(txn); !r) return unexpected(std::move(r.error()));
    batch_bytes += txn.page_count() * log::kPageSize;
    if (batch_bytes >= options.batch_bytes) {
      if (auto r = flush(); !r) return unexpected(std::move(r.error()));
    }
  }
  return flush();
}

// The snapshot policy (ShipOptions) applied to a lineage's manifest.
bool snapshot_due(const Manifest& m, const ShipOptions& o, std::uint32_t db_size) {
  const SnapshotEntry* newest = m.snapshots.empty() ? nullptr : &m.snapshots.back();
  const log::Frame since = newest != nullptr ? newest->frame : 0;
  const auto extent = m.batch_extent();
  if (!extent || extent->last_frame <= since) return false;  // no commits since
  std::uint64_t bytes = 0;
  // A level-1 index never straddles a snapshot; one of a higher level may, and then counts
  // whole (a snapshot a little early, never late).
  for (const auto& i : m.indexes)
    if (i.last_frame > since) bytes += i.batch_bytes;
  for (const auto& b : m.batches)
    if (b.last_frame > since) bytes += b.size;
  const std::uint64_t limit =
      o.snapshot_after_bytes == ShipOptions::kSnapshotAfterBytesAuto
          ? std::max<std::uint64_t>(256ull << 20, std::uint64_t{db_size} * log::kPageSize)
          : o.snapshot_after_bytes;
  if (limit != ShipOptions::kNever && bytes > limit) return true;
  if (o.snapshot_interval_us > 0) {
    const std::int64_t from =
        newest != nullptr ? newest->commit_time_us : extent->first_commit_time_us;
    if (extent->last_commit_time_us - from >= o.snapshot_interval_us) return true;
  }
  return false;
}

}  // namespace

BackupResult<ShipResult> ship(log::ReplicationLog& log, storage::ObjectStore& store,
                              const std::string& prefix, const ShipOptions& options) {
  BackupOptions backup_options;
  if (options.encryption_key != nullptr) backup_options.encryption_key = *options.encryption_key;
  auto opened = BackupWriter::open(store, prefix, log.log_id(), backup_options);
  if (!opened) return unexpected(std::move(opened).error());
  auto res = ship(log, **opened, options);
  if (!res) return res;
  // The writer ends here: leave no tail for readers to follow.
  const std::uint64_t before = (*opened)->objects_written();
  if (auto r = (*opened)->flush_manifest(); !r) return unexpected(std::move(r.error()));
  res->objects_written += (*opened)->objects_written() - before;
  return res;
}

BackupResult<ShipResult> ship(log::ReplicationLog& log, BackupWriter& writer,
                              const ShipOptions& options) {
  if (writer.manifest().log_id != log.log_id()) {
    return unexpected(invalid("the backup writer's lineage is not log " +
                              log::format_log_id(log.log_id())));
  }
  writer.zstd_level = options.zstd_level;
  const std::uint64_t objects_before = writer.objects_written();

  ShipResult res;
  res.store_frame_before = writer.last_frame();
  const log::Frame target = log.last_frame();
  const std::string id = log::format_log_id(log.log_id());
  if (writer.last_frame() > target) {
    return unexpected(invalid("the backup of log " + id + " holds frame " +
                              std::to_string(writer.last_frame()) + " but the log ends at frame " +
                              std::to_string(target)));
  }

  if (writer.last_frame() < target) {
    // A snapshot first when the lineage is empty (unless the log still starts at frame 1, whose
    // first transaction is the base image) or when the frames after the store's last one are
    // gone.
    const log::Frame next = writer.last_frame() + 1;
    const bool empty = writer.last_frame() == 0;
    const bool compacted = log.first_available_frame() > next;
    auto snap = log.latest_snapshot();
    if (compacted || (empty && snap)) {
      if (!snap || (compacted && snap->frame + 1 < log.first_available_frame())) {
        auto built = log.snapshot();
        if (!built) return unexpected(from_log("building a snapshot of log " + id, built.error()));
        snap = *built;
      }
      if (auto r = upload_log_snapshot(log, writer, *snap, options, res); !r)
        return unexpected(std::move(r.error()));
    }
    if (auto r = ship_batches(log, writer, target, options, res); !r)
      return unexpected(std::move(r.error()));
  }

  // The snapshot policy (checked even when nothing was new: a policy snapshot whose upload
  // failed last time is retried). The log's newest snapshot when it reaches what the store holds,
  // else a new one; frames the log gained meanwhile are shipped first so the lineage stays
  // contiguous.
  if (snapshot_due(writer.manifest(), options, log.db_size())) {
    auto snap = log.latest_snapshot();
    if (!snap || snap->frame < writer.last_frame()) {
      auto built = log.snapshot();
      if (!built) return unexpected(from_log("building a snapshot of log " + id, built.error()));
      snap = *built;
    }
    if (auto r = ship_batches(log, writer, snap->frame, options, res); !r)
      return unexpected(std::move(r.error()));
    if (auto r = upload_log_snapshot(log, writer, *snap, options, res); !r)
      return unexpected(std::move(r.error()));
    res.periodic_snapshot = true;
  }
  res.store_frame_after = writer.last_frame();
  res.objects_written = writer.objects_written() - objects_before;
  return res;
}

}  // namespace quire::backup
