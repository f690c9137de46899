#include "log/file.h"

#include <fcntl.h>
#include <sys/stat.h>
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
