// Continuous backup of one database's replication log to an object store, and restore from it
// (docs/formats/backup.md): snapshots and batches of whole transactions, zstd-compressed and
// checksummed, described by a per-lineage manifest so that restore never LISTs the store.
//
// Not yet wired into the server: the caller feeds BackupWriter from the replication log
// (LogReader::next() for batches, a PageSource for snapshots).
//
// Thread model: a BackupWriter belongs to one thread at a time, and one writer per prefix is
// assumed. restore(), restorable_range() and BackupReader only read and may run concurrently with
// a writer (they see the manifest before or after an upload).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/expected.h"
#include "log/format.h"
#include "log/snapshot.h"
#include "log/transaction.h"
#include "storage/object_store.h"

namespace quire::backup {

enum class BackupErrc {
  kNoBackup,         // nothing under the prefix (no lineages.json / manifest)
  kMissingObject,    // the manifest names an object the store does not have
  kCorrupt,          // an object or manifest contradicts its checksum or the format
  kGap,              // frames needed for the target are in no batch
  kOutOfRange,       // the target is outside the restorable range
  kInvalidArgument,  // the caller broke a precondition
  kStorage,          // the object store failed (storage_kind says how)
  kIo,               // the local file system failed
};

struct BackupError {
  BackupErrc kind = BackupErrc::kIo;
  std::string message;
  std::optional<storage::StorageErrc> storage_kind;
};

const char* to_string(BackupErrc kind);

template <class T>
using BackupResult = Expected<T, BackupError>;

struct SnapshotEntry {
  std::string key;  // relative to <prefix>/<log-id>/
  log::Frame frame = 0;
  std::uint32_t db_size = 0;
  std::int64_t commit_time_us = 0;
  std::uint64_t size = 0;  // of the stored object
  std::string sha256;      // of the stored object, lower-case hex
};

struct BatchEntry {
  std::string key;
  log::Frame first_frame = 0;
  log::Frame last_frame = 0;
  log::Frame first_commit_frame = 0;
  std::int64_t first_commit_time_us = 0;
  std::int64_t last_commit_time_us = 0;
  std::uint32_t txns = 0;
  std::uint32_t db_size = 0;  // after the last transaction
  std::uint64_t size = 0;
  std::string sha256;
};

// One lineage's manifest: everything backed up from one replication log.
struct Manifest {
  log::LogId log_id{};
  std::vector<SnapshotEntry> snapshots;  // by frame
  std::vector<BatchEntry> batches;       // by first frame
  // The last frame the lineage holds (a snapshot's frame or a batch's last frame); 0 if none.
  log::Frame last_frame() const;
};

struct RestorableRange {
  log::LogId log_id{};
  log::Frame first_frame = 0;  // the earliest restorable commit frame (0: empty database)
  std::int64_t first_time_us = 0;
  log::Frame last_frame = 0;  // the latest restorable commit frame
  std::int64_t last_time_us = 0;
};

class BackupWriter {
 public:
  // Resumes the lineage of `log_id` under `prefix` ("" for the store's root), or starts it (and
  // registers it in lineages.json on its first upload).
  static BackupResult<std::unique_ptr<BackupWriter>> open(storage::ObjectStore& store,
                                                          std::string prefix,
                                                          const log::LogId& log_id);

  // Uploads the database image as of commit frame `frame` (pages 1..pages.page_count()) and
  // records it in the manifest. Streams through a multipart writer; memory stays bounded.
  BackupResult<SnapshotEntry> upload_snapshot(const log::PageSource& pages, log::Frame frame,
                                              std::int64_t commit_time_us);
  // Uploads whole transactions whose frames start at `first_frame`, which must be
  // manifest().last_frame() + 1 (1 for a lineage with nothing yet: otherwise start with a
  // snapshot). Commit times must not decrease.
  BackupResult<BatchEntry> upload_batch(std::span<const log::Transaction> txns,
                                        log::Frame first_frame);

  const Manifest& manifest() const { return manifest_; }
  log::Frame last_frame() const { return manifest_.last_frame(); }
  // Objects written by this writer (data objects and manifests), for "objects per hour".
  std::uint64_t objects_written() const { return objects_written_; }

  int zstd_level = 3;

 private:
  BackupWriter(storage::ObjectStore& store, std::string prefix, Manifest manifest,
               bool registered);
  BackupResult<void> write_manifest();
  BackupResult<void> register_lineage();
  std::string lineage_key(const std::string& rel) const;

  storage::ObjectStore& store_;
  std::string prefix_;  // "" or ending in '/'
  Manifest manifest_;
  bool registered_ = false;
  std::uint64_t objects_written_ = 0;
};

struct RestoreTarget {
  enum class Kind { kLatest, kFrame, kTime };
  Kind kind = Kind::kLatest;
  log::Frame frame = 0;
  std::int64_t time_us = 0;
  std::optional<log::LogId> log_id;  // the lineage; default: current (latest, frame) or by time

  static RestoreTarget latest() { return {}; }
  static RestoreTarget at_frame(log::Frame f) { return {Kind::kFrame, f, 0, std::nullopt}; }
  static RestoreTarget at_time(std::int64_t t) { return {Kind::kTime, 0, t, std::nullopt}; }
};

struct RestoreResult {
  log::LogId log_id{};
  log::Frame frame = 0;  // commit frame restored (0: empty database)
  std::uint32_t db_size = 0;
  std::int64_t commit_time_us = 0;
  std::string snapshot_key;  // "" when started from an empty database
  std::size_t batches_read = 0;
  std::size_t txns_applied = 0;
};

// Reads a prefix's lineages and manifests (two or more GETs, never a LIST).
class BackupReader {
 public:
  static BackupResult<BackupReader> open(storage::ObjectStore& store, std::string prefix);

  const std::vector<Manifest>& lineages() const { return lineages_; }  // oldest first
  BackupResult<RestorableRange> restorable_range(
      const std::optional<log::LogId>& log_id = std::nullopt) const;
  // Writes the database as of `target` to `out_path` (via a temporary file, fsync, rename).
  BackupResult<RestoreResult> restore(const RestoreTarget& target,
                                      const std::filesystem::path& out_path) const;

  // Snapshots are fetched and decompressed in ranged GETs of this size (at least 4096).
  std::uint64_t read_chunk_bytes = 8u << 20;

 private:
  BackupReader(storage::ObjectStore& store, std::string prefix) : store_(&store), prefix_(std::move(prefix)) {}
  storage::ObjectStore* store_;
  std::string prefix_;
  std::vector<Manifest> lineages_;
};

BackupResult<RestoreResult> restore(storage::ObjectStore& store, const std::string& prefix,
                                    const RestoreTarget& target,
                                    const std::filesystem::path& out_path);
BackupResult<RestorableRange> restorable_range(storage::ObjectStore& store,
                                               const std::string& prefix);

// Manifest <-> JSON (exposed for tests and tools).
std::string manifest_to_json(const Manifest& m);
BackupResult<Manifest> manifest_from_json(std::string_view json, const std::string& what);

// Object keys relative to <prefix>/<log-id>/.
std::string snapshot_key(log::Frame frame);
std::string batch_key(log::Frame first, log::Frame last);

}  // namespace quire::backup
