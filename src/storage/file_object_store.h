// An object store in a local directory: each object is a file under the root, at its key's path.
// The embedded default (`make serve` backs up to ./data/backups).
//
// Durability: put() and MultipartWriter::complete() write a temporary file in the target
// directory (named ".quire-tmp.*", never listed, and refused as a key segment), fsync it, rename
// it over the key and fsync the directory; newly created directories are fsynced into their
// parents. A reader therefore sees the old object or the new one, never a torn one, and a
// completed put survives a crash. remove() prunes directories it leaves empty.
//
// Limitation versus S3: a key cannot be both an object and a "directory" of other keys ("a" and
// "a/b" at once); the second put fails with kPermanent.
//
// Thread model: stateless apart from an atomic counter; every call may run concurrently.
#pragma once

#include <atomic>
#include <filesystem>
#include <memory>

#include "storage/object_store.h"

namespace quire::storage {

class FileObjectStore final : public ObjectStore {
 public:
  // Creates the root directory when missing. A relative path is made absolute.
  static StorageResult<std::unique_ptr<FileObjectStore>> open(const std::filesystem::path& root,
                                                              std::size_t part_size = 8u << 20);

  StorageResult<void> put(std::string_view key, std::string_view bytes) override;
  StorageResult<std::string> get(std::string_view key) override;
  StorageResult<std::string> get_range(std::string_view key, std::uint64_t offset,
                                       std::uint64_t length) override;
  StorageResult<void> get_into(std::string_view key, std::string& out) override {
    return get_range_into(key, 0, UINT64_MAX, out);
  }
  StorageResult<void> get_range_into(std::string_view key, std::uint64_t offset,
                                     std::uint64_t length, std::string& out) override;
  StorageResult<ObjectInfo> head(std::string_view key) override;
  StorageResult<std::vector<ObjectInfo>> list(std::string_view prefix) override;
  StorageResult<void> remove(std::string_view key) override;
  StorageResult<void> remove_many(std::span<const std::string> keys) override;
  StorageResult<std::unique_ptr<MultipartWriter>> open_writer(std::string_view key) override;
  std::string describe() const override { return "file://" + root_.string(); }
  std::size_t part_size() const override { return part_size_; }

  const std::filesystem::path& root() const { return root_; }

  // Internal to the implementation (used by its writer): an open, empty temporary file in the
  // key's directory, creating directories as needed. Returns the fd and fills `temp`.
  StorageResult<int> create_temp(std::string_view key, std::filesystem::path& temp);
  // fsync + close `fd`, rename `temp` over the key's path, fsync the directory.
  StorageResult<void> publish(int fd, const std::filesystem::path& temp, std::string_view key);

 private:
  FileObjectStore(std::filesystem::path root, std::size_t part_size)
      : root_(std::move(root)), part_size_(part_size) {}

  std::filesystem::path root_;
  std::size_t part_size_;
  std::atomic<std::uint64_t> temp_counter_{0};
};

}  // namespace quire::storage
