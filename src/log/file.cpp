#include "log/file.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace quire::log {

LogError io_error(const std::string& what, const std::filesystem::path& path, int err) {
  return log_error(err == ENOENT ? LogErrc::kNotFound : LogErrc::kIo,
                   what + " " + path.string() + ": " + std::strerror(err), err);
}

File::~File() { close(); }

File::File(File&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}

File& File::operator=(File&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
  }
  return *this;
}

void File::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Expected<File, LogError> File::open(const std::filesystem::path& path, int flags, mode_t mode) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return unexpected(io_error("open", path, errno));
  File f;
  f.fd_ = fd;
  f.path_ = path;
  return f;
}

Expected<std::size_t, LogError> File::read_at(void* buf, std::size_t n, off_t offset) const {
  std::size_t done = 0;
  while (done < n) {
    ssize_t r =
        ::pread(fd_, static_cast<char*>(buf) + done, n - done, offset + static_cast<off_t>(done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return unexpected(io_error("read", path_, errno));
    }
    if (r == 0) break;
    done += static_cast<std::size_t>(r);
  }
  return done;
}

Expected<void, LogError> File::write_at(const void* buf, std::size_t n, off_t offset) const {
  std::size_t done = 0;
  while (done < n) {
    ssize_t r = ::pwrite(fd_, static_cast<const char*>(buf) + done, n - done,
                         offset + static_cast<off_t>(done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return unexpected(io_error("write", path_, errno));
    }
    done += static_cast<std::size_t>(r);
  }
  return {};
}

Expected<void, LogError> File::write_gather_at(std::span<const std::span<const std::byte>> parts,
                                               off_t offset) const {
  constexpr std::size_t kMaxParts = 512;  // well under IOV_MAX (1024 on Linux)
  iovec iov[kMaxParts];
  std::size_t next = 0;  // first part not yet fully written
  std::size_t skip = 0;  // bytes of parts[next] already written
  while (next < parts.size()) {
    std::size_t count = 0;
    for (std::size_t i = next; i < parts.size() && count < kMaxParts; ++i, ++count) {
      const std::size_t from = i == next ? skip : 0;
      iov[count].iov_base = const_cast<std::byte*>(parts[i].data() + from);
      iov[count].iov_len = parts[i].size() - from;
    }
    ssize_t r = ::pwritev(fd_, iov, static_cast<int>(count), offset);
    if (r < 0) {
      if (errno == EINTR) continue;
      return unexpected(io_error("write", path_, errno));
    }
    if (r == 0) return unexpected(io_error("write", path_, EIO));
    offset += static_cast<off_t>(r);
    auto left = static_cast<std::size_t>(r);
    while (next < parts.size() && left >= parts[next].size() - skip) {
      left -= parts[next].size() - skip;
      skip = 0;
      ++next;
    }
    skip += left;
  }
  return {};
}

int File::preallocate(off_t offset, off_t length) const {
  while (::fallocate(fd_, FALLOC_FL_KEEP_SIZE, offset, length) != 0) {
    if (errno != EINTR) return errno;
  }
  return 0;
}

Expected<off_t, LogError> File::size() const {
  struct stat st;
  if (::fstat(fd_, &st) != 0) return unexpected(io_error("fstat", path_, errno));
  return st.st_size;
}

Expected<void, LogError> File::truncate(off_t length) const {
  while (::ftruncate(fd_, length) != 0) {
    if (errno != EINTR) return unexpected(io_error("ftruncate", path_, errno));
  }
  return {};
}

Expected<void, LogError> File::datasync() const {
  while (::fdatasync(fd_) != 0) {
    if (errno != EINTR) return unexpected(io_error("fdatasync", path_, errno));
  }
  return {};
}

Expected<void, LogError> sync_directory(const std::filesystem::path& dir) {
  auto f = File::open(dir, O_RDONLY | O_DIRECTORY);
  if (!f) return unexpected(f.error());
  if (::fsync(f->fd()) != 0) return unexpected(io_error("fsync", dir, errno));
  return {};
}

Expected<void, LogError> rename_file(const std::filesystem::path& from,
                                     const std::filesystem::path& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) return unexpected(io_error("rename", from, errno));
  return {};
}

}  // namespace quire::log
