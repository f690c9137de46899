// Byte layouts of backup objects (docs/formats/backup.md, "Object encoding"), SHA-256 and zstd
// helpers. Internal to quire_backup.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "backup/backup.h"

namespace quire::backup::detail {

inline constexpr std::size_t kHeaderSize = 128;
inline constexpr std::size_t kTrailerSize = 64;
inline constexpr std::uint32_t kVersion = 1;
inline constexpr char kSnapshotMagic[9] = "QBKSNAP1";
inline constexpr char kBatchMagic[9] = "QBKBTCH1";
inline constexpr char kTrailerMagic[9] = "QBKTRLR1";
// Per-transaction header in a batch's content: first frame, page count, db size, commit time.
inline constexpr std::size_t kTxnHeaderSize = 24;
inline constexpr std::size_t kPageRecordSize = 4 + log::kPageSize;

enum class ObjectKind { kSnapshot, kBatch };

// Header flags (offset 72). Unknown bits make the object unreadable (a newer format).
inline constexpr std::uint32_t kFlagEncrypted = 1;  // body sealed with chunked AES-256-GCM
// The payload is one zstd frame that carries zstd's content checksum (XXH64 of the content), and
// the trailer's content SHA-256 is zero: that checksum is the content's integrity check. Every
// object written since 2026-12-02; older ones have a content SHA-256 instead.
inline constexpr std::uint32_t kFlagZstdChecksum = 2;
inline constexpr std::uint32_t kKnownFlags = kFlagEncrypted | kFlagZstdChecksum;

struct ObjectHeader {
  ObjectKind kind = ObjectKind::kSnapshot;
  log::LogId log_id{};
  log::Frame first_frame = 0;
  log::Frame last_frame = 0;
  std::uint32_t db_size = 0;
  std::uint32_t txns = 0;
  std::int64_t first_time_us = 0;
  std::int64_t last_time_us = 0;
  // Batch: the first transaction's commit frame (offset 100); 0 in batches written before it was
  // recorded there and in snapshots.
  log::Frame first_commit_frame = 0;
  // Encryption (flags & kFlagEncrypted): the chunk size, the key's id and the nonce base.
  std::uint32_t flags = 0;
  std::uint32_t chunk_bytes = 0;
  std::array<std::uint8_t, 8> key_id{};
  std::array<std::uint8_t, 12> nonce{};
  bool encrypted() const { return (flags & kFlagEncrypted) != 0; }
  bool zstd_checksum() const { return (flags & kFlagZstdChecksum) != 0; }
};

struct ObjectTrailer {
  std::uint64_t content_length = 0;
  std::array<std::uint8_t, 32> content_sha256{};
};

void encode_header(const ObjectHeader& h, std::uint8_t* out);  // kHeaderSize
std::optional<ObjectHeader> decode_header(const std::uint8_t* in, std::string& why);
void encode_trailer(const ObjectTrailer& t, std::uint8_t* out);  // kTrailerSize
std::optional<ObjectTrailer> decode_trailer(const std::uint8_t* in, std::string& why);

// For an object with kFlagZstdChecksum: `payload` (the whole zstd payload, or at least its first
// frame's header when `whole` is false) must be exactly one zstd frame whose header sets the
// content checksum flag. Returns an empty string when it is, else why not.
std::string check_checksummed_zstd(const void* payload, std::size_t len, bool whole);

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, std::size_t n);
  std::array<std::uint8_t, 32> finish();

 private:
  void* ctx_;
};

std::string to_hex(const std::uint8_t* data, std::size_t n);

void put_u32(std::uint8_t* p, std::uint32_t v);
void put_u64(std::uint8_t* p, std::uint64_t v);
std::uint32_t get_u32(const std::uint8_t* p);
std::uint64_t get_u64(const std::uint8_t* p);

BackupError error(BackupErrc kind, std::string message);
// A lineage's restorable range (docs/formats/backup.md, end of "Restore"); kOutOfRange when it
// has no restorable point.
BackupResult<RestorableRange> range_of(const Manifest& m);
// The entry of an index listing `run` (not empty, in frame order): level, frames, times, counts
// and db size; key, size and sha256 are left for the object. Batches make a level-1 index,
// index entries of level k one of level k+1.
IndexEntry summarise_index(std::span<const BatchEntry> run);
IndexEntry summarise_index(std::span<const IndexEntry> run);
BackupError storage_failure(const std::string& what, const storage::StorageError& e);

// Following a lineage's tail (docs/formats/backup.md, "Manifest cadence"): the batches stored
// after the manifest's last frame L under the predictable keys batch_key(L+1), then
// batch_key(last+1) of each one found, until a key is not found.
enum class TailRead {
  kHeader,  // a ranged GET of the header: the entry's size is 0 and its sha256 "" (unknown)
  kWhole,   // a GET of the whole object: size and SHA-256 of the stored object are filled in
};
struct Tail {
  std::size_t appended = 0;  // entries appended to the manifest
  // The object at the next key exists and fails validation (kCorrupt naming its key): the chain
  // cannot be followed past it, and nothing says it ends there.
  std::optional<BackupError> broken;
};
// Appends to `m.batches` every batch of the tail whose header is valid for it (batch magic, CRC,
// version, log id, first frame = the frame after the previous one, sane fields). `dir` is the
// lineage's directory (lineage_dir). Fails only when the store fails other than with kNotFound
// (that is not the end of the chain).
BackupResult<Tail> follow_tail(storage::ObjectStore& store, const std::string& dir, Manifest& m,
                               TailRead mode);

}  // namespace quire::backup::detail

namespace quire::backup::detail {

struct LineageEntry {
  log::LogId log_id{};
  std::int64_t created_at_us = 0;
};

std::string lineages_key(const std::string& prefix);  // prefix "" or ending in '/'
std::string manifest_key(const std::string& prefix, const log::LogId& id);
std::string lineage_dir(const std::string& prefix, const log::LogId& id);  // ends in '/'
// nullopt when lineages.json does not exist.
BackupResult<std::optional<std::vector<LineageEntry>>> read_lineages(storage::ObjectStore& store,
                                                                     const std::string& prefix);
std::string lineages_to_json(const std::vector<LineageEntry>& v);
// Validates and normalises a prefix to "" or "x/y/".
BackupResult<std::string> normalize_prefix(std::string prefix);

}  // namespace quire::backup::detail
