// A file descriptor with the few positioned I/O calls the log needs, errors as values.
//
// Thread model: pread/pwrite on one File may run from several threads at once (they carry their
// own offsets); open/close/move are single-threaded.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <span>
#include <string>

#include "common/expected.h"
#include "log/log_error.h"

namespace quire::log {

class File {
 public:
  File() = default;
  ~File();
  File(File&& other) noexcept;
  File& operator=(File&& other) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  // open(2) with O_CLOEXEC added; kNotFound when the file does not exist and O_CREAT is not set.
  static Expected<File, LogError> open(const std::filesystem::path& path, int flags,
                                       mode_t mode = 0644);

  bool is_open() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  const std::filesystem::path& path() const { return path_; }
  void close();

  // Reads up to n bytes at `offset`; fewer only at end of file. Returns the count read.
  Expected<std::size_t, LogError> read_at(void* buf, std::size_t n, off_t offset) const;
  // Writes all n bytes at `offset` (loops over short writes).
  Expected<void, LogError> write_at(const void* buf, std::size_t n, off_t offset) const;
  // Writes the parts back to back starting at `offset` with as few pwritev calls as the kernel
  // allows (IOV_MAX parts per call; loops over short writes).
  Expected<void, LogError> write_gather_at(std::span<const std::span<const std::byte>> parts,
                                           off_t offset) const;
  // Reserves disk blocks for [offset, offset+length) without changing the file's size
  // (fallocate with FALLOC_FL_KEEP_SIZE), so later writes there allocate nothing. Returns 0, or
  // the errno of the failure (ENOSPC: the disk is full; EOPNOTSUPP: the file system cannot).
  int preallocate(off_t offset, off_t length) const;
  Expected<off_t, LogError> size() const;
  Expected<void, LogError> truncate(off_t length) const;
  Expected<void, LogError> datasync() const;

 private:
  int fd_ = -1;
  std::filesystem::path path_;
};

// fsync of a directory, so that file creations, renames and unlinks in it are durable.
Expected<void, LogError> sync_directory(const std::filesystem::path& dir);

// rename(2) with errors as values.
Expected<void, LogError> rename_file(const std::filesystem::path& from,
                                     const std::filesystem::path& to);

LogError io_error(const std::string& what, const std::filesystem::path& path, int err);

}  // namespace quire::log
