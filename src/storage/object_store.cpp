// Key validation, put_large() and the URL factory shared by every object store.
#include "storage/object_store.h"

#include "storage/file_object_store.h"
#include "storage/s3_object_store.h"

namespace quire::storage {

const char* to_string(StorageErrc kind) {
  switch (kind) {
    case StorageErrc::kNotFound:
      return "not found";
    case StorageErrc::kAuth:
      return "authentication";
    case StorageErrc::kTransient:
      return "transient";
    case StorageErrc::kPermanent:
      return "permanent";
    case StorageErrc::kCorrupt:
      return "corrupt";
  }
  return "unknown";
}

namespace {

constexpr std::size_t kMaxKeyBytes = 1024;

// Checks the '/'-separated segments of `name`; an empty final segment is allowed when
// `allow_trailing_slash` (prefixes such as "db1/").
std::optional<StorageError> validate_segments(std::string_view what, std::string_view name,
                                              bool allow_trailing_slash) {
  auto bad = [&](const std::string& why) {
    return storage_error(StorageErrc::kPermanent, std::string("invalid object ") +
                                                      std::string(what) + " '" + std::string(name) +
                                                      "': " + why);
  };
  if (name.size() > kMaxKeyBytes) return bad("longer than 1024 bytes");
  if (name.find('\0') != std::string_view::npos) return bad("contains NUL");
  if (name.front() == '/') return bad("absolute (starts with '/')");
  std::size_t start = 0;
  while (true) {
    std::size_t slash = name.find('/', start);
    std::string_view seg = name.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    bool last = slash == std::string_view::npos;
    if (seg.empty()) {
      if (!(last && allow_trailing_slash)) return bad("empty path segment");
    } else if (seg == "." || seg == "..") {
      return bad("'.' and '..' segments are refused");
    } else if (seg.starts_with(".quire-tmp")) {
      return bad("segments starting with '.quire-tmp' are reserved for temporary files");
    }
    if (last) break;
    start = slash + 1;
  }
  return std::nullopt;
}

}  // namespace

std::optional<StorageError> validate_key(std::string_view key) {
  if (key.empty()) return storage_error(StorageErrc::kPermanent, "invalid object key: empty");
  return validate_segments("key", key, /*allow_trailing_slash=*/false);
}

std::optional<StorageError> validate_prefix(std::string_view prefix) {
  if (prefix.empty()) return std::nullopt;
  // A partial last segment ("db1/000") is fine; only whole "."/".." segments are refused, and a
  // partial ".quire-tmp" match cannot name a temp file because keys never contain one.
  return validate_segments("prefix", prefix, /*allow_trailing_slash=*/true);
}

StorageResult<void> ObjectStore::get_into(std::string_view key, std::string& out) {
  auto got = get(key);
  if (!got) return unexpected(std::move(got).error());
  out = std::move(got.value());
  return {};
}

StorageResult<void> ObjectStore::get_range_into(std::string_view key, std::uint64_t offset,
                                                std::uint64_t length, std::string& out) {
  auto got = get_range(key, offset, length);
  if (!got) return unexpected(std::move(got).error());
  out = std::move(got.value());
  return {};
}

StorageResult<void> ObjectStore::put_large(std::string_view key, std::string_view bytes) {
  if (bytes.size() <= part_size()) return put(key, bytes);
  auto writer = open_writer(key);
  if (!writer) return unexpected(std::move(writer).error());
  for (std::size_t at = 0; at < bytes.size(); at += part_size()) {
    auto w = (*writer)->write(bytes.substr(at, part_size()));
    if (!w) {
      (*writer)->abort();
      return unexpected(w.error());
    }
  }
  auto done = (*writer)->complete();
  if (!done) return unexpected(std::move(done).error());
  return {};
}

StorageResult<std::unique_ptr<ObjectStore>> open_object_store(std::string_view url,
                                                              const ObjectStoreOptions& options) {
  auto fail = [&](const std::string& why) {
    return unexpected(storage_error(
        StorageErrc::kPermanent,
        "object store URL '" + std::string(url) + "': " + why +
            " (expected file:///abs/dir, a directory path, or s3://bucket[/prefix])"));
  };
  if (url.empty()) return fail("empty");
  if (url.starts_with("file://")) {
    std::string_view path = url.substr(7);
    // file://localhost/abs is the only host form RFC 8089 allows besides the empty one.
    if (path.starts_with("localhost/")) path.remove_prefix(9);
    if (!path.starts_with("/")) return fail("a file URL needs an absolute path (file:///dir)");
    auto store = FileObjectStore::open(std::string(path));
    if (!store) return unexpected(std::move(store).error());
    return std::unique_ptr<ObjectStore>(std::move(*store));
  }
  if (url.starts_with("s3://")) {
    auto store = S3ObjectStore::open(url, options);
    if (!store) return unexpected(std::move(store).error());
    return std::unique_ptr<ObjectStore>(std::move(*store));
  }
  if (url.find("://") != std::string_view::npos) {
    return fail("unsupported scheme '" + std::string(url.substr(0, url.find("://"))) + "'");
  }
  auto store = FileObjectStore::open(std::string(url));
  if (!store) return unexpected(std::move(store).error());
  return std::unique_ptr<ObjectStore>(std::move(*store));
}

}  // namespace quire::storage
