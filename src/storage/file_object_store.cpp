// FileObjectStore: objects as files, atomic replacement by temp file + fsync + rename + dir fsync.
#include "storage/file_object_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

namespace quire::storage {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kTempPrefix = ".quire-tmp";

StorageError errno_error(const std::string& what, const fs::path& path, int err) {
  StorageErrc kind = StorageErrc::kPermanent;
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      kind = StorageErrc::kNotFound;
      break;
    case EACCES:
    case EPERM:
      kind = StorageErrc::kAuth;
      break;
    case ENOSPC:
    case EDQUOT:
    case EIO:
    case EINTR:
    case EAGAIN:
    case EMFILE:
    case ENFILE:
    case ENOMEM:
      kind = StorageErrc::kTransient;
      break;
    default:
      break;
  }
  return storage_error(kind, what + " " + path.string() + ": " + std::strerror(err));
}

// The same error, but a missing path is not "not found" (it is the store's own directory).
StorageError io_error(const std::string& what, const fs::path& path, int err) {
  StorageError e = errno_error(what, path, err);
  if (e.kind == StorageErrc::kNotFound) e.kind = StorageErrc::kPermanent;
  return e;
}

// fsync of a directory. With `missing_ok`, a directory that a concurrent remove() has already
// pruned is not an error (whatever it held is gone, so there is nothing left to make durable).
StorageResult<void> fsync_dir(const fs::path& dir, bool missing_ok = false) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 && missing_ok && errno == ENOENT) return {};
  if (fd < 0) return unexpected(io_error("open directory", dir, errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return unexpected(io_error("fsync directory", dir, err));
  return {};
}

StorageResult<void> write_all(int fd, std::string_view bytes, const fs::path& path) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return unexpected(io_error("write", path, errno));
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

// mkdir -p of `rel_dir` below `root` (which exists), fsyncing each parent that gained a
// directory. Sets `raced` (and fails) when a concurrent remove() pruned a directory on the way:
// the caller starts again.
StorageResult<void> make_dirs(const fs::path& root, const fs::path& rel_dir, bool& raced) {
  raced = false;
  fs::path at = root;
  for (const auto& part : rel_dir) {
    fs::path next = at / part;
    if (::mkdir(next.c_str(), 0755) == 0) {
      auto synced = fsync_dir(at, /*missing_ok=*/true);
      if (!synced) return synced;
    } else if (errno == ENOENT) {
      raced = true;
      return unexpected(io_error("create directory", next, errno));
    } else if (errno != EEXIST) {
      return unexpected(io_error("create directory", next, errno));
    }
    at = std::move(next);
  }
  return {};
}

std::string make_etag(const struct stat& st) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%llx-%llx", static_cast<unsigned long long>(st.st_size),
                static_cast<unsigned long long>(st.st_mtim.tv_sec) * 1000000000ull +
                    static_cast<unsigned long long>(st.st_mtim.tv_nsec));
  return buf;
}

// Appends every regular, non-temporary file under `dir` (key prefix `rel`) whose key starts with
// `prefix`. Directories that vanish mid-walk (a concurrent remove) count as empty.
StorageResult<void> walk(const fs::path& dir, const std::string& rel, std::string_view prefix,
                         std::vector<ObjectInfo>& out) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    if (errno == ENOENT || errno == ENOTDIR) return {};
    return unexpected(io_error("open directory", dir, errno));
  }
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* ent = ::readdir(d)) {
    std::string_view name = ent->d_name;
    if (name == "." || name == ".." || name.starts_with(kTempPrefix)) continue;
    names.emplace_back(name);
  }
  ::closedir(d);
  for (const auto& name : names) {
    std::string key = rel.empty() ? name : rel + "/" + name;
    // Prune subtrees that cannot hold a match: neither is one a prefix of the other.
    std::size_t n = std::min(key.size(), prefix.size());
    if (key.compare(0, n, prefix.substr(0, n)) != 0) continue;
    fs::path path = dir / name;
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
      if (errno == ENOENT) continue;
      return unexpected(io_error("stat", path, errno));
    }
    if (S_ISDIR(st.st_mode)) {
      auto r = walk(path, key, prefix, out);
      if (!r) return r;
    } else if (S_ISREG(st.st_mode) && key.starts_with(prefix)) {
      out.push_back(
          ObjectInfo{std::move(key), static_cast<std::uint64_t>(st.st_size), make_etag(st)});
    }
  }
  return {};
}

class FileWriter final : public MultipartWriter {
 public:
  FileWriter(FileObjectStore& store, std::string key, int fd, fs::path temp)
      : store_(store), key_(std::move(key)), fd_(fd), temp_(std::move(temp)) {}
  ~FileWriter() override { abort(); }

  StorageResult<void> write(std::string_view bytes) override {
    if (fd_ < 0) return unexpected(storage_error(StorageErrc::kPermanent, "writer is closed"));
    return write_all(fd_, bytes, temp_);
  }

  StorageResult<ObjectInfo> complete() override {
    if (fd_ < 0) return unexpected(storage_error(StorageErrc::kPermanent, "writer is closed"));
    int fd = fd_;
    fd_ = -1;
    auto published = store_.publish(fd, temp_, key_);
    if (!published) {
      ::unlink(temp_.c_str());
      return unexpected(published.error());
    }
    return store_.head(key_);
  }

  void abort() override {
    if (fd_ < 0) return;
    ::close(fd_);
    fd_ = -1;
    ::unlink(temp_.c_str());
  }

 private:
  FileObjectStore& store_;
  std::string key_;
  int fd_;
  fs::path temp_;
};

}  // namespace

StorageResult<std::unique_ptr<FileObjectStore>> FileObjectStore::open(const fs::path& root,
                                                                      std::size_t part_size) {
  std::error_code ec;
  fs::path abs = fs::absolute(root, ec);
  if (ec) {
    return unexpected(storage_error(
        StorageErrc::kPermanent, "object store directory " + root.string() + ": " + ec.message()));
  }
  abs = abs.lexically_normal();
  if (abs.has_filename() == false && abs != abs.root_path()) abs = abs.parent_path();
  fs::create_directories(abs, ec);
  if (ec || !fs::is_directory(abs, ec)) {
    return unexpected(storage_error(
        StorageErrc::kPermanent,
        "object store directory " + abs.string() + ": " + (ec ? ec.message() : "not a directory")));
  }
  return std::unique_ptr<FileObjectStore>(new FileObjectStore(abs, part_size));
}

StorageResult<int> FileObjectStore::create_temp(std::string_view key, fs::path& temp) {
  fs::path rel(key);
  fs::path dir = root_ / rel.parent_path();
  // A concurrent remove() may prune the directory between mkdir and open: try again.
  for (int attempt = 0;; ++attempt) {
    bool raced = false;
    auto made = make_dirs(root_, rel.parent_path(), raced);
    if (!made && raced && attempt < 100) continue;
    if (!made) return unexpected(made.error());
    temp = dir / (std::string(kTempPrefix) + "." + std::to_string(::getpid()) + "." +
                  std::to_string(temp_counter_.fetch_add(1)));
    int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) return fd;
    if (errno == ENOENT && attempt < 100) continue;
    return unexpected(io_error("create", temp, errno));
  }
}

StorageResult<void> FileObjectStore::publish(int fd, const fs::path& temp, std::string_view key) {
  fs::path path = root_ / fs::path(key);
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    return unexpected(io_error("fsync", temp, err));
  }
  if (::close(fd) != 0) return unexpected(io_error("close", temp, errno));
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    return unexpected(io_error("rename into place", path, errno));
  }
  return fsync_dir(path.parent_path());
}

StorageResult<void> FileObjectStore::put(std::string_view key, std::string_view bytes) {
  if (auto bad = validate_key(key)) return unexpected(*bad);
  fs::path temp;
  auto fd = create_temp(key, temp);
  if (!fd) return unexpected(fd.error());
  auto written = write_all(*fd, bytes, temp);
  if (!written) {
    ::close(*fd);
    ::unlink(temp.c_str());
    return written;
  }
  auto published = publish(*fd, temp, key);
  if (!published) ::unlink(temp.c_str());
  return published;
}

StorageResult<std::string> FileObjectStore::get(std::string_view key) {
  return get_range(key, 0, UINT64_MAX);
}

StorageResult<std::string> FileObjectStore::get_range(std::string_view key, std::uint64_t offset,
                                                      std::uint64_t length) {
  std::string out;
  if (auto r = get_range_into(key, offset, length, out); !r) return unexpected(std::move(r).error());
  return out;
}

StorageResult<void> FileObjectStore::get_range_into(std::string_view key, std::uint64_t offset,
                                                    std::uint64_t length, std::string& out) {
  if (auto bad = validate_key(key)) return unexpected(*bad);
  fs::path path = root_ / fs::path(key);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return unexpected(errno_error("open", path, errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return unexpected(storage_error(StorageErrc::kNotFound, "no object " + path.string()));
  }
  std::uint64_t size = static_cast<std::uint64_t>(st.st_size);
  std::uint64_t begin = std::min(offset, size);
  std::uint64_t want = std::min(length, size - begin);
  // A reused buffer large enough is read into as it is (resize() zero-fills only what it adds
  // to its size). One too small is replaced rather than grown (growing would copy its old bytes
  // over, to be overwritten), with some room, so that it takes the next, slightly larger
  // object of a restore as it is.
  if (want > out.capacity()) {
    std::string().swap(out);
    out.reserve(static_cast<std::size_t>(want + std::min<std::uint64_t>(want / 8, 4u << 20)));
  }
  out.resize(want);
  std::uint64_t got = 0;
  while (got < want) {
    ssize_t n = ::pread(fd, out.data() + got, want - got, static_cast<off_t>(begin + got));
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return unexpected(io_error("read", path, err));
    }
    if (n == 0) break;  // truncated under us: cannot happen with rename-only updates
    got += static_cast<std::uint64_t>(n);
  }
  ::close(fd);
  if (got != want) {
    return unexpected(storage_error(StorageErrc::kCorrupt,
                                    "object " + path.string() + " shrank while being read"));
  }
  return {};
}

StorageResult<ObjectInfo> FileObjectStore::head(std::string_view key) {
  if (auto bad = validate_key(key)) return unexpected(*bad);
  fs::path path = root_ / fs::path(key);
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return unexpected(errno_error("stat", path, errno));
  if (!S_ISREG(st.st_mode)) {
    return unexpected(storage_error(StorageErrc::kNotFound, "no object " + path.string()));
  }
  return ObjectInfo{std::string(key), static_cast<std::uint64_t>(st.st_size), make_etag(st)};
}

StorageResult<std::vector<ObjectInfo>> FileObjectStore::list(std::string_view prefix) {
  if (auto bad = validate_prefix(prefix)) return unexpected(*bad);
  std::vector<ObjectInfo> out;
  auto walked = walk(root_, "", prefix, out);
  if (!walked) return unexpected(walked.error());
  std::sort(out.begin(), out.end(),
            [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
  return out;
}

StorageResult<void> FileObjectStore::remove(std::string_view key) {
  if (auto bad = validate_key(key)) return unexpected(*bad);
  fs::path path = root_ / fs::path(key);
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return {};
    return unexpected(io_error("remove", path, errno));
  }
  auto synced = fsync_dir(path.parent_path(), /*missing_ok=*/true);
  if (!synced) return synced;
  // Prune directories left empty, up to (not including) the root. rmdir refuses non-empty ones,
  // so a concurrent put (whose temp file sits in the directory) is never disturbed.
  for (fs::path dir = path.parent_path();
       dir != root_ && dir.string().size() > root_.string().size(); dir = dir.parent_path()) {
    if (::rmdir(dir.c_str()) != 0) break;
  }
  return {};
}

StorageResult<void> FileObjectStore::remove_many(std::span<const std::string> keys) {
  for (const auto& key : keys) {
    if (auto bad = validate_key(key)) return unexpected(*bad);
  }
  for (const auto& key : keys) {
    auto removed = remove(key);
    if (!removed) return removed;
  }
  return {};
}

StorageResult<std::unique_ptr<MultipartWriter>> FileObjectStore::open_writer(std::string_view key) {
  if (auto bad = validate_key(key)) return unexpected(*bad);
  fs::path temp;
  auto fd = create_temp(key, temp);
  if (!fd) return unexpected(fd.error());
  return std::unique_ptr<MultipartWriter>(new FileWriter(*this, std::string(key), *fd, temp));
}

}  // namespace quire::storage
