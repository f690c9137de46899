// The object-store seam: one small interface over "a flat namespace of immutable-ish blobs", with
// a local-directory implementation (the embedded default) and an S3-compatible one. Backup,
// restore and branching talk only to this interface, so tests can swap in failing stores.
//
// Keys are relative, '/'-separated names ("db1/ltx/0/000001.ltx"): non-empty segments, no "." or
// "..", no leading or trailing '/', no NUL, at most 1024 bytes. Every call validates its keys and
// refuses others with kPermanent before touching the store.
//
// Thread model: every ObjectStore is safe for concurrent calls from any number of threads. A
// MultipartWriter belongs to one thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/expected.h"

namespace quire::storage {

enum class StorageErrc {
  kNotFound,   // no object under that key
  kAuth,       // credentials refused (unknown key id, bad signature, access denied, expired)
  kTransient,  // network failure, 5xx, throttling: retried already, worth retrying later
  kPermanent,  // the request itself is wrong (bad key, bad URL, missing bucket, other 4xx)
  kCorrupt,    // the store answered with bytes that contradict what was asked or promised
};

struct StorageError {
  StorageErrc kind = StorageErrc::kPermanent;
  std::string message;
};

const char* to_string(StorageErrc kind);

inline StorageError storage_error(StorageErrc kind, std::string message) {
  return StorageError{kind, std::move(message)};
}

template <class T>
using StorageResult = Expected<T, StorageError>;

struct ObjectInfo {
  std::string key;  // relative to the store's root / prefix
  std::uint64_t size = 0;
  std::string etag;  // opaque; changes when the object changes (may be empty from list())
};

// Uploads one large object in parts. write() buffers and ships a part whenever part_size bytes
// are waiting; complete() ships the rest and makes the object visible atomically (before that,
// readers see the previous object or none). Destroying a writer that was not completed aborts it.
class MultipartWriter {
 public:
  virtual ~MultipartWriter() = default;
  virtual StorageResult<void> write(std::string_view bytes) = 0;
  virtual StorageResult<ObjectInfo> complete() = 0;
  // Discards everything written; the key keeps its previous object. Idempotent, never fails
  // (a failed abort on S3 leaves parts for the bucket's lifecycle rules to collect).
  virtual void abort() = 0;
};

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  // Stores the whole object, replacing any previous one atomically.
  virtual StorageResult<void> put(std::string_view key, std::string_view bytes) = 0;
  // The whole object; kNotFound when there is none.
  virtual StorageResult<std::string> get(std::string_view key) = 0;
  // Bytes [offset, offset+length) clipped to the object's end (empty past the end).
  virtual StorageResult<std::string> get_range(std::string_view key, std::uint64_t offset,
                                               std::uint64_t length) = 0;
  // get() into `out`, as get_range_into() below does for a range.
  virtual StorageResult<void> get_into(std::string_view key, std::string& out);
  // get_range() into `out`, which ends up holding exactly the bytes read, for a caller that
  // reads many ranges through one reused buffer (a restore): the file store reads straight into
  // it and allocates nothing once it is large enough. The default moves get_range()'s answer in.
  // On failure `out`'s contents are unspecified.
  virtual StorageResult<void> get_range_into(std::string_view key, std::uint64_t offset,
                                             std::uint64_t length, std::string& out);
  // Size and etag without the body; kNotFound when there is none.
  virtual StorageResult<ObjectInfo> head(std::string_view key) = 0;
  // Every object whose key starts with `prefix` (a plain string prefix, "" for all), sorted by
  // key (bytewise). Pages through the store internally.
  virtual StorageResult<std::vector<ObjectInfo>> list(std::string_view prefix) = 0;
  // Removes the object; removing a missing key succeeds (as on S3).
  virtual StorageResult<void> remove(std::string_view key) = 0;
  // Removes all the keys (batched where the store allows); missing keys succeed.
  virtual StorageResult<void> remove_many(std::span<const std::string> keys) = 0;
  // A writer for one large object (see MultipartWriter).
  virtual StorageResult<std::unique_ptr<MultipartWriter>> open_writer(std::string_view key) = 0;
  // The store's location for messages and logs, never with credentials.
  virtual std::string describe() const = 0;

  // put() for objects of any size: through open_writer() when larger than one part.
  StorageResult<void> put_large(std::string_view key, std::string_view bytes);
  // The part size put_large() and writers use (>= 5 MiB on S3).
  virtual std::size_t part_size() const = 0;
};

// Returns an error when `key` is not a valid key (see the top of this file).
std::optional<StorageError> validate_key(std::string_view key);
// A list() prefix: like a key, but may be empty or end with '/'.
std::optional<StorageError> validate_prefix(std::string_view prefix);

struct RetryPolicy {
  int max_attempts = 5;  // total tries per request, including the first
  std::chrono::milliseconds base_delay{100};
  std::chrono::milliseconds max_delay{5000};
};

struct ObjectStoreOptions {
  // S3 only; each falls back to the AWS environment variables (see docs/object-stores.md).
  std::string endpoint;  // "http://127.0.0.1:9000"; empty: AWS (https://s3.REGION.amazonaws.com)
  std::string region;    // default us-east-1
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;
  std::optional<bool> path_style;  // default: true with an endpoint, false for AWS
  RetryPolicy retry;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds request_timeout{120000};
  std::size_t part_size = 8u << 20;  // clamped to >= 5 MiB for S3
  int list_page_size = 1000;         // max-keys per ListObjectsV2 page (1..1000)
};

// Picks the implementation from the URL: "file:///abs/dir" or a plain path -> FileObjectStore,
// "s3://bucket[/prefix]" -> S3ObjectStore. Anything else is a kPermanent error naming the forms.
StorageResult<std::unique_ptr<ObjectStore>> open_object_store(
    std::string_view url, const ObjectStoreOptions& options = {});

}  // namespace quire::storage
