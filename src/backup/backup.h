// Continuous backup of one database's replication log to an object store, and restore from it
// (docs/formats/backup.md): snapshots and batches of whole transactions, zstd-compressed and
// checksummed, described by a per-lineage manifest so that restore never LISTs the store.
//
// The caller feeds BackupWriter from the replication log (LogReader::next() for batches, a
// PageSource for snapshots; ship() in ship.h does both), optionally encrypting with an
// EncryptionKey (encryption.h), and bounds the backup with apply_retention().
//
// Thread model: a BackupWriter belongs to one thread at a time, and one writer per prefix is
// assumed. restore(), restorable_range() and BackupReader only read and may run concurrently with
// a writer (they see the manifest, and each batch of the tail, before or after its upload).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "backup/backup_error.h"
#include "backup/encryption.h"
#include "common/expected.h"
#include "log/format.h"
#include "log/snapshot.h"
#include "log/transaction.h"
#include "storage/object_store.h"

namespace quire::backup {

namespace detail {
class ChunkSealer;
struct ObjectHeader;
}  // namespace detail

// Progress of a long operation: `done` of `total` units (pages for upload_snapshot, stored bytes
// for restore). Called on the calling thread; `done` never decreases and ends at `total` on
// success.
using ProgressFn = std::function<void(std::uint64_t done, std::uint64_t total)>;

// How a BackupWriter writes objects.
struct BackupOptions {
  // When set, snapshots and batches are sealed with chunked AES-256-GCM under this key
  // (docs/formats/backup.md, "Encryption"); manifests, index objects and lineages.json stay in
  // clear.
  std::optional<EncryptionKey> encryption_key;
  // Plaintext bytes per sealed chunk (4 KiB .. 16 MiB).
  std::uint32_t encryption_chunk_bytes = 64u << 10;
  // Manifest cadence (docs/formats/backup.md, "Manifest cadence"): upload_batch() rewrites
  // manifest.json only once this many batches are not in the stored manifest, or when
  // manifest_every_us has passed since the writer last wrote it; readers find the batches in
  // between (the tail) under their predictable keys. 1: after every batch (two PUTs a batch).
  // upload_snapshot(), flush_manifest() and apply_retention() always write it.
  std::uint32_t manifest_every_batches = 30;
  std::int64_t manifest_every_us = 60'000'000;
  // Sealing (docs/formats/backup.md, "Index objects"): whenever the manifest is written with at
  // least index_batches batches in it, the oldest of them (up to that many, ending at a
  // snapshot's frame or a gap) move into an immutable level-1 index object that the manifest
  // names instead; and while it names index_fanout entries of level k < index_levels, the
  // oldest of those (ending at a gap) move into one of level k+1. So the manifest keeps under
  // index_batches batch entries and index_fanout index entries per level, plus the top level's.
  std::uint32_t index_batches = 250;
  std::uint32_t index_fanout = 100;  // >= 2
  std::uint32_t index_levels = 2;    // 1..8
};

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

// A sealed run of batches: an immutable index object listing their entries (level 1), or the
// entries of a run of level-(k-1) index objects (level k). The frames, times and counts
// summarise every batch under it; key, size and sha256 are the index object's own.
struct IndexEntry {
  std::string key;
  std::uint32_t level = 1;
  log::Frame first_frame = 0;  // of its first batch
  log::Frame last_frame = 0;   // of its last batch
  log::Frame first_commit_frame = 0;
  std::int64_t first_commit_time_us = 0;
  std::int64_t last_commit_time_us = 0;
  std::uint64_t batches = 0;  // under it, at any depth
  std::uint64_t txns = 0;
  std::uint32_t db_size = 0;      // after its last transaction
  std::uint64_t batch_bytes = 0;  // stored bytes of its batches
  std::uint64_t size = 0;
  std::string sha256;
};

// Where a lineage's batches, sealed or not, begin and end.
struct BatchExtent {
  log::Frame first_frame = 0;
  log::Frame first_commit_frame = 0;
  std::int64_t first_commit_time_us = 0;
  log::Frame last_frame = 0;
  std::int64_t last_commit_time_us = 0;
};

// One lineage's manifest: everything backed up from one replication log. The batches are the
// sealed ones (`indexes`, each standing for the batches its index object lists) followed by the
// unsealed ones (`batches`).
struct Manifest {
  log::LogId log_id{};
  std::vector<SnapshotEntry> snapshots;  // by frame
  std::vector<IndexEntry> indexes;       // by first frame, all before the first of `batches`
  std::vector<BatchEntry> batches;       // by first frame
  // The last frame the lineage holds (a snapshot's frame or a batch's last frame); 0 if none.
  log::Frame last_frame() const;
  // nullopt when it has no batch.
  std::optional<BatchExtent> batch_extent() const;
  // Sealed and unsealed.
  std::size_t batch_count() const;
};

struct RestorableRange {
  log::LogId log_id{};
  log::Frame first_frame = 0;  // the earliest restorable commit frame (0: empty database)
  std::int64_t first_time_us = 0;
  log::Frame last_frame = 0;  // the latest restorable commit frame
  std::int64_t last_time_us = 0;
};

// What apply_retention() removed. Keys are full store keys.
struct RetentionResult {
  std::uint64_t objects_deleted = 0;  // data objects, manifests and unreferenced objects
  std::uint64_t bytes_deleted = 0;
  std::size_t snapshots_deleted = 0;  // manifest entries dropped (all lineages)
  std::size_t batches_deleted = 0;
  std::size_t lineages_deleted = 0;  // whole older lineages dropped from lineages.json
  std::vector<std::string> deleted_keys;
};

struct RetentionOptions {
  // Also delete objects under the current lineage's snapshots/ and batches/ that its manifest
  // does not name (uploads whose manifest write failed, an earlier retention cut short). One
  // LIST of the lineage.
  bool sweep_unreferenced = true;
};

class BackupWriter;

// Deletes what is no longer needed to restore every point in time >= keep_after_us (unix µs),
// docs/formats/backup.md "Retention": in each kept lineage, the snapshots older than its newest
// snapshot committed at or before the cutoff and the batches that end at or before that
// snapshot; whole older lineages whose every commit is before the cutoff, except the one that
// still provides the state at the cutoff. Manifests and lineages.json are rewritten before any
// object is deleted, so a crash leaves unreferenced objects, never a manifest naming a missing
// one. Goes through `current` (the writer of the current lineage), whose in-memory manifest is
// pruned too. Same thread rules as the writer.
BackupResult<RetentionResult> apply_retention(BackupWriter& current, std::int64_t keep_after_us,
                                              const RetentionOptions& options = {});

class BackupWriter {
 public:
  // Resumes the lineage of `log_id` under `prefix` ("" for the store's root), or starts it (and
  // registers it in lineages.json on its first upload).
  static BackupResult<std::unique_ptr<BackupWriter>> open(storage::ObjectStore& store,
                                                          std::string prefix,
                                                          const log::LogId& log_id,
                                                          const BackupOptions& options = {});

  // Uploads the database image as of commit frame `frame` (pages 1..pages.page_count()) and
  // records it in the manifest. Streams through a multipart writer; memory stays bounded.
  // `progress` gets (pages read, page count).
  BackupResult<SnapshotEntry> upload_snapshot(const log::PageSource& pages, log::Frame frame,
                                              std::int64_t commit_time_us,
                                              const ProgressFn& progress = {});
  // Uploads whole transactions whose frames start at `first_frame`, which must be
  // manifest().last_frame() + 1 (1 for a lineage with nothing yet: otherwise start with a
  // snapshot). Commit times must not decrease. The object goes to batch_key(first_frame); the
  // manifest is rewritten only when due (BackupOptions::manifest_every_*). An error after the
  // object was stored (the manifest or lineages.json write failed) keeps the batch in manifest():
  // it is in the store and readers reach it through the tail.
  BackupResult<BatchEntry> upload_batch(std::span<const log::Transaction> txns,
                                        log::Frame first_frame);
  // The same, a transaction at a time, so that the pages are copied once, straight from where
  // they are (a LogReader's buffer): start_batch(), add_to_batch() for each transaction, then
  // finish_batch() uploads. Same rules as upload_batch(); an add_to_batch() that fails abandons
  // the batch. All three on one thread: the batch is built in that thread's scratch memory, so
  // a start_batch() on the same thread, by this writer or another, abandons a batch not
  // finished (its add_to_batch() and finish_batch() then fail).
  BackupResult<void> start_batch(log::Frame first_frame);
  BackupResult<void> add_to_batch(const log::TransactionView& txn);
  BackupResult<BatchEntry> finish_batch();
  // Transactions in the batch being built.
  std::uint32_t batch_txns() const { return building_ ? building_->txns : 0; }
  // Writes manifest.json now if batches are missing from the stored one (at shutdown, so that
  // the next reader needs no tail GETs). No request when it is up to date.
  BackupResult<void> flush_manifest();

  // Everything the lineage holds, including the tail: the stored manifest may lag by up to
  // unflushed_batches() batches.
  const Manifest& manifest() const { return manifest_; }
  std::size_t unflushed_batches() const { return unflushed_; }
  log::Frame last_frame() const { return manifest_.last_frame(); }
  storage::ObjectStore& store() const { return store_; }
  const std::string& prefix() const { return prefix_; }  // normalised: "" or ending in '/'
  const BackupOptions& options() const { return options_; }
  // Objects written by this writer (data objects and manifests), for "objects per hour".
  std::uint64_t objects_written() const { return objects_written_; }

  int zstd_level = 3;

 private:
  friend BackupResult<RetentionResult> apply_retention(BackupWriter&, std::int64_t,
                                                      const RetentionOptions&);
  BackupWriter(storage::ObjectStore& store, std::string prefix, Manifest manifest,
               bool registered, BackupOptions options);
  // Seals (BackupOptions::index_*), then writes the manifest.
  BackupResult<void> write_manifest();
  BackupResult<void> seal_batches();
  BackupResult<void> seal_indexes(std::uint32_t level);
  // PUTs an index object listing `body` and returns its entry (key, size, sha256 filled in).
  BackupResult<IndexEntry> put_index(IndexEntry entry, const std::string& body);
  bool manifest_due() const;
  // The object header's encryption fields and a sealer when encrypting; nullptr otherwise.
  std::unique_ptr<detail::ChunkSealer> start_sealing(detail::ObjectHeader& header,
                                                     std::uint8_t* encoded_header) const;
  BackupResult<void> register_lineage();
  std::string lineage_key(const std::string& rel) const;

  // The batch start_batch() began: its content is in the thread's BatchScratch (writer.cpp).
  struct Building {
    std::uint64_t generation = 0;  // BatchScratch::generation when it started
    log::Frame first_frame = 0;
    log::Frame next_frame = 0;
    std::size_t content_len = 0;
    std::uint32_t txns = 0;
    std::uint32_t first_page_count = 0;
    std::uint32_t db_size = 0;
    std::int64_t first_commit_time_us = 0;
    std::int64_t last_commit_time_us = 0;
  };
  std::optional<Building> building_;

  storage::ObjectStore& store_;
  std::string prefix_;  // "" or ending in '/'
  Manifest manifest_;
  bool registered_ = false;
  bool manifest_stored_ = false;  // the store has a manifest.json for the lineage
  std::size_t unflushed_ = 0;     // batches at the end of manifest_ not in the stored manifest
  std::int64_t manifest_written_us_ = 0;  // steady clock, µs; 0: not by this writer
  std::uint64_t objects_written_ = 0;
  BackupOptions options_;
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

// Reads a prefix's lineages and manifests (two or more GETs, never a LIST), and each lineage's
// tail: the batches stored after its manifest's last frame, one ranged GET of the header each
// plus one GET answered "not found" per lineage. restore() also GETs the index objects between
// its start point and its target.
class BackupReader {
 public:
  // `key` (copied) opens encrypted objects; without it they are a kEncryption error. Manifests
  // are in clear, so lineages() and restorable_range() never need the key.
  static BackupResult<BackupReader> open(storage::ObjectStore& store, std::string prefix,
                                         const EncryptionKey* key = nullptr);

  // Oldest first, each with its tail appended (tail entries have size 0 and sha256 "": the
  // object's own checks still apply when it is read).
  const std::vector<Manifest>& lineages() const { return lineages_; }
  // A lineage whose tail is broken (an object at the next key fails its header checks) reports
  // that, naming the key, for anything that may need frames past the last good one.
  BackupResult<RestorableRange> restorable_range(
      const std::optional<log::LogId>& log_id = std::nullopt) const;
  // Writes the database as of `target` to `out_path` (via a temporary file, fsync, rename).
  // `progress` gets (stored bytes of the snapshot and batches read so far, their planned total).
  BackupResult<RestoreResult> restore(const RestoreTarget& target,
                                      const std::filesystem::path& out_path,
                                      const ProgressFn& progress = {}) const;

  // Snapshots are fetched and decompressed in ranged GETs of this size (at least 4096).
  std::uint64_t read_chunk_bytes = 8u << 20;
  // With a key, an object that is not encrypted is refused (kEncryption): anyone with write
  // access to the bucket could have put it there. Set to accept them (a prefix that was backed
  // up in clear before encryption was turned on).
  bool allow_unencrypted = false;

 private:
  BackupReader(storage::ObjectStore& store, std::string prefix)
      : store_(&store), prefix_(std::move(prefix)) {}
  // The error that ends `m`'s tail (an element of lineages_), or nullptr.
  const BackupError* broken_tail(const Manifest& m) const;
  storage::ObjectStore* store_;
  std::string prefix_;
  std::vector<Manifest> lineages_;
  std::vector<std::optional<BackupError>> broken_tails_;  // by lineage
  std::optional<EncryptionKey> key_;
};

BackupResult<RestoreResult> restore(storage::ObjectStore& store, const std::string& prefix,
                                    const RestoreTarget& target,
                                    const std::filesystem::path& out_path,
                                    const EncryptionKey* key = nullptr,
                                    const ProgressFn& progress = {});
BackupResult<RestorableRange> restorable_range(storage::ObjectStore& store,
                                               const std::string& prefix);

// Manifest <-> JSON (exposed for tests and tools).
std::string manifest_to_json(const Manifest& m);
BackupResult<Manifest> manifest_from_json(std::string_view json, const std::string& what);
// Index object <-> JSON, level 1 (batches) and level k > 1 (index entries of level k-1). The
// parsers check the listed entries against `entry` (level, count, frames, times, contiguity)
// and that the object belongs to `log_id`.
std::string index_to_json(const log::LogId& log_id, std::span<const BatchEntry> batches);
std::string index_to_json(const log::LogId& log_id, std::uint32_t level,
                          std::span<const IndexEntry> entries);
BackupResult<std::vector<BatchEntry>> index_from_json(std::string_view json, const log::LogId& log_id,
                                                      const IndexEntry& entry,
                                                      const std::string& what);
BackupResult<std::vector<IndexEntry>> index_entries_from_json(std::string_view json,
                                                              const log::LogId& log_id,
                                                              const IndexEntry& entry,
                                                              const std::string& what);
// Fetches the index object `entry` (level 1) of the lineage in `dir` (lineage directory), checks
// its size and SHA-256 against the entry, and returns the batches it lists.
BackupResult<std::vector<BatchEntry>> read_index(storage::ObjectStore& store,
                                                 const std::string& dir, const log::LogId& log_id,
                                                 const IndexEntry& entry);
// The same for an index of level > 1: the entries it lists.
BackupResult<std::vector<IndexEntry>> read_index_entries(storage::ObjectStore& store,
                                                         const std::string& dir,
                                                         const log::LogId& log_id,
                                                         const IndexEntry& entry);
// Every batch under `entry` (any level), in order: one GET per index object below it.
BackupResult<std::vector<BatchEntry>> read_index_batches(storage::ObjectStore& store,
                                                         const std::string& dir,
                                                         const log::LogId& log_id,
                                                         const IndexEntry& entry);

// Object keys relative to <prefix>/<log-id>/. Batches are written under batch_key(first), a key
// readers can predict from the frame after the previous batch; batch_key(first, last) is the
// form of earlier versions (still read: manifest entries carry their key).
std::string snapshot_key(log::Frame frame);
std::string batch_key(log::Frame first);
std::string batch_key(log::Frame first, log::Frame last);
std::string index_key(log::Frame first, log::Frame last, std::uint32_t level = 1);
// The first frame in a batch or index key (batches/<first>…, indexes/<first>…); nullopt for
// anything else.
std::optional<log::Frame> key_first_frame(std::string_view rel);

}  // namespace quire::backup
