#include "sqlite/mirror_vfs.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

#include "common/write_mirror.h"

namespace quire::sqlite {

namespace {

sqlite3_vfs* g_unix = nullptr;  // set once, before the VFS is registered

// SQLite writes each WAL frame as two calls: its 24-byte header, then the page right after it.
// The shim holds such a header back and writes it together with the page in one pwritev (one
// system call per frame instead of two; see the header file).
constexpr int kFrameHeaderSize = 24;
constexpr sqlite3_int64 kWalHeaderSize = 32;

// A copied `-wal`: our methods, the mirror, a frame header held back, then the unix VFS's own
// file object.
struct MirrorFile {
  sqlite3_file base;
  std::shared_ptr<WriteMirror> mirror;
  // Our own descriptor of the same file, for the combined writes (the unix VFS does not share
  // its own), opened by the first frame written: connections that only read need none. -1: none
  // (a read-only open, no descriptors left); frames are then written as SQLite asks.
  const char* name = nullptr;  // valid until xClose (SQLite's promise for xOpen's name)
  bool writable = false;
  bool fd_tried = false;
  int fd = -1;
  // Where the last write through this handle ended (-1: unknown). Only a header that continues
  // it is held back: SQLite appends frames back to back, header then page, while the header
  // writes with no page after them (walRewriteChecksums, after a large transaction rewrote
  // frames it had spilled) land elsewhere and go to the file at once.
  sqlite3_int64 last_end = -1;
  int pending_n = 0;  // a frame header not written yet: pending[0, pending_n) at pending_off
  sqlite3_int64 pending_off = 0;
  unsigned char pending[kFrameHeaderSize];
};
constexpr std::size_t kRealOffset = (sizeof(MirrorFile) + 15) & ~std::size_t{15};

MirrorFile* mirror_file(sqlite3_file* f) { return reinterpret_cast<MirrorFile*>(f); }
sqlite3_file* real(sqlite3_file* f) {
  return reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(f) + kRealOffset);
}
const sqlite3_io_methods& real_methods(sqlite3_file* f) { return *real(f)->pMethods; }

// A descriptor of the -wal at `path` for writing, as the unix VFS opens its own: never 0, 1 or 2
// (a stray write to stdout or stderr must not land in a database file), no symbolic link. -1 on
// failure (frames are then written as SQLite asks).
int open_descriptor(const char* path) {
  int fd = ::open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd >= 0 && fd <= 2) {
    const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
    ::close(fd);
    fd = moved;
  }
  return fd;
}

// Writes the held-back frame header on its own, as SQLite asked (before any other use of the
// file, so that nobody sees the file without it).
int flush_pending(sqlite3_file* f) {
  MirrorFile& mf = *mirror_file(f);
  if (mf.pending_n == 0) return SQLITE_OK;
  const int n = mf.pending_n;
  mf.pending_n = 0;
  const int rc = real_methods(f).xWrite(real(f), mf.pending, n, mf.pending_off);
  if (rc == SQLITE_OK) {
    mf.mirror->wrote(mf.pending, static_cast<std::size_t>(n),
                     static_cast<std::uint64_t>(mf.pending_off));
    mf.last_end = mf.pending_off + n;
  } else {
    mf.mirror->clear();
    mf.last_end = -1;
  }
  return rc;
}

// The held-back header and `data` (which follows it in the file) in one pwritev, finishing a
// short write the way the unix VFS does, with its error codes (SQLITE_FULL for ENOSPC or a write
// that wrote nothing, SQLITE_IOERR_WRITE otherwise).
int write_with_pending(MirrorFile& mf, const void* data, int n) {
  const std::size_t total = static_cast<std::size_t>(mf.pending_n) + static_cast<std::size_t>(n);
  std::size_t done = 0;
  while (done < total) {
    iovec iov[2];
    int count = 0;
    if (done < static_cast<std::size_t>(mf.pending_n)) {
      iov[count++] = {mf.pending + done, static_cast<std::size_t>(mf.pending_n) - done};
      iov[count++] = {const_cast<void*>(data), static_cast<std::size_t>(n)};
    } else {
      const std::size_t into = done - static_cast<std::size_t>(mf.pending_n);
      iov[count++] = {static_cast<char*>(const_cast<void*>(data)) + into,
                      static_cast<std::size_t>(n) - into};
    }
    const ssize_t w = ::pwritev(mf.fd, iov, count, static_cast<off_t>(mf.pending_off) +
                                                       static_cast<off_t>(done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return (w < 0 && errno != ENOSPC) ? SQLITE_IOERR_WRITE : SQLITE_FULL;
    done += static_cast<std::size_t>(w);
  }
  return SQLITE_OK;
}

int m_close(sqlite3_file* f) {
  MirrorFile& mf = *mirror_file(f);
  const int flushed = flush_pending(f);
  const int rc = real_methods(f).xClose(real(f));
  if (mf.fd >= 0) ::close(mf.fd);
  mf.~MirrorFile();
  f->pMethods = nullptr;
  return flushed != SQLITE_OK ? flushed : rc;
}
int m_read(sqlite3_file* f, void* out, int n, sqlite3_int64 off) {
  if (const int rc = flush_pending(f); rc != SQLITE_OK) return rc;
  return real_methods(f).xRead(real(f), out, n, off);
}
int m_write(sqlite3_file* f, const void* data, int n, sqlite3_int64 off) {
  MirrorFile& mf = *mirror_file(f);
  WriteMirror& m = *mf.mirror;
  if (mf.pending_n > 0 && n > 0 && off == mf.pending_off + mf.pending_n) {
    // The page after the header held back: both in one system call.
    const sqlite3_int64 at = mf.pending_off;
    const int rc = write_with_pending(mf, data, n);
    if (rc == SQLITE_OK) {
      m.wrote(mf.pending, static_cast<std::size_t>(mf.pending_n), static_cast<std::uint64_t>(at));
      m.wrote(data, static_cast<std::size_t>(n), static_cast<std::uint64_t>(off));
      mf.last_end = off + n;
    } else {
      m.clear();  // what the file holds there is no longer known
      mf.last_end = -1;
    }
    mf.pending_n = 0;
    return rc;
  }
  if (const int rc = flush_pending(f); rc != SQLITE_OK) return rc;
  if (off == 0 && !m.before_rewrite()) return SQLITE_IOERR_WRITE;
  const bool appends_a_frame = n == kFrameHeaderSize && off >= kWalHeaderSize && off == mf.last_end;
  if (appends_a_frame && mf.writable && !mf.fd_tried) {
    mf.fd_tried = true;
    mf.fd = open_descriptor(mf.name);
  }
  if (appends_a_frame && mf.fd >= 0) {
    // A frame header: held back until its page comes (or anything else happens to the file).
    std::memcpy(mf.pending, data, kFrameHeaderSize);
    mf.pending_n = kFrameHeaderSize;
    mf.pending_off = off;
    return SQLITE_OK;
  }
  const int rc = real_methods(f).xWrite(real(f), data, n, off);
  if (rc == SQLITE_OK && n >= 0 && off >= 0) {
    m.wrote(data, static_cast<std::size_t>(n), static_cast<std::uint64_t>(off));
    mf.last_end = off + n;
  } else {
    m.clear();  // what the file holds there is no longer known
    mf.last_end = -1;
  }
  return rc;
}
int m_truncate(sqlite3_file* f, sqlite3_int64 size) {
  if (const int rc = flush_pending(f); rc != SQLITE_OK) return rc;
  mirror_file(f)->last_end = -1;
  const int rc = real_methods(f).xTruncate(real(f), size);
  WriteMirror& m = *mirror_file(f)->mirror;
  if (rc == SQLITE_OK && size >= 0) {
    m.truncated(static_cast<std::uint64_t>(size));
  } else {
    m.clear();
  }
  return rc;
}
// Everything else forwards, after writing a frame header held back.
int m_sync(sqlite3_file* f, int flags) {
  if (const int rc = flush_pending(f); rc != SQLITE_OK) return rc;
  return real_methods(f).xSync(real(f), flags);
}
int m_file_size(sqlite3_file* f, sqlite3_int64* size) {
  if (const int rc = flush_pending(f); rc != SQLITE_OK) return rc;
  return real_methods(f).xFileSize(real(f), size);
}
int m_lock(sqlite3_file* f, int level) {
  if (const int rc = flush_pending(f); rc != SQLITE_OK) return rc;
  return real_methods(f).xLock(real(f), level);
}
int m_unlock(sqlite3_file* f, int level) {
  if (const int rc = flush_pending(f); rc != SQLITE_OK) return rc;
  return real_methods(f).xUnlock(real(f), level);
}
int m_check_reserved(sqlite3_file* f, int* out) {
  if (const int rc = flush_pending(f); rc != SQLITE_OK) return rc;
  return real_methods(f).xCheckReservedLock(real(f), out);
}
int m_file_control(sqlite3_file* f, int op, void* arg) {
  if (const int rc = flush_pending(f); rc != SQLITE_OK) return rc;
  return real_methods(f).xFileControl(real(f), op, arg);
}
int m_sector_size(sqlite3_file* f) { return real_methods(f).xSectorSize(real(f)); }
int m_device_characteristics(sqlite3_file* f) {
  return real_methods(f).xDeviceCharacteristics(real(f));
}
// Version 1: SQLite maps shared memory and memory-maps pages only through the database file,
// never through its -wal.
const sqlite3_io_methods kMirrorMethods = {
    1,
    m_close,
    m_read,
    m_write,
    m_truncate,
    m_sync,
    m_file_size,
    m_lock,
    m_unlock,
    m_check_reserved,
    m_file_control,
    m_sector_size,
    m_device_characteristics,
    nullptr,  // xShmMap
    nullptr,  // xShmLock
    nullptr,  // xShmBarrier
    nullptr,  // xShmUnmap
    nullptr,  // xFetch
    nullptr,  // xUnfetch
};

int v_open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* f, int flags, int* out_flags) {
  std::shared_ptr<WriteMirror> mirror;
  if (name != nullptr && (flags & SQLITE_OPEN_WAL) != 0) mirror = WriteMirror::find(name);
  if (!mirror) return g_unix->xOpen(g_unix, name, f, flags, out_flags);  // its own methods
  auto* mf = new (f) MirrorFile{};
  mf->base.pMethods = nullptr;
  const int rc = g_unix->xOpen(g_unix, name, real(f), flags, out_flags);
  if (rc != SQLITE_OK) {
    if (real(f)->pMethods != nullptr) real(f)->pMethods->xClose(real(f));
    mf->~MirrorFile();
    f->pMethods = nullptr;
    return rc;
  }
  mirror->clear();  // a -wal opened anew: nothing mirrored of it is known to be its content
  mf->mirror = std::move(mirror);
  mf->name = name;
  mf->writable = (flags & SQLITE_OPEN_READWRITE) != 0;
  mf->base.pMethods = &kMirrorMethods;
  return SQLITE_OK;
}
int v_delete(sqlite3_vfs*, const char* name, int sync_dir) {
  const int rc = g_unix->xDelete(g_unix, name, sync_dir);
  if (name != nullptr) {
    if (auto mirror = WriteMirror::find(name)) mirror->clear();
  }
  return rc;
}
int v_access(sqlite3_vfs*, const char* name, int flags, int* out) {
  return g_unix->xAccess(g_unix, name, flags, out);
}
int v_full_pathname(sqlite3_vfs*, const char* name, int n, char* out) {
  return g_unix->xFullPathname(g_unix, name, n, out);
}
void* v_dl_open(sqlite3_vfs*, const char* name) { return g_unix->xDlOpen(g_unix, name); }
void v_dl_error(sqlite3_vfs*, int n, char* msg) { g_unix->xDlError(g_unix, n, msg); }
void (*v_dl_sym(sqlite3_vfs*, void* h, const char* sym))(void) {
  return g_unix->xDlSym(g_unix, h, sym);
}
void v_dl_close(sqlite3_vfs*, void* h) { g_unix->xDlClose(g_unix, h); }
int v_randomness(sqlite3_vfs*, int n, char* out) { return g_unix->xRandomness(g_unix, n, out); }
int v_sleep(sqlite3_vfs*, int us) { return g_unix->xSleep(g_unix, us); }
int v_current_time(sqlite3_vfs*, double* t) { return g_unix->xCurrentTime(g_unix, t); }
int v_last_error(sqlite3_vfs*, int n, char* msg) { return g_unix->xGetLastError(g_unix, n, msg); }
int v_current_time64(sqlite3_vfs*, sqlite3_int64* t) {
  return g_unix->xCurrentTimeInt64(g_unix, t);
}

constexpr const char* kName = "quire-mirror";

sqlite3_vfs make_vfs() {
  sqlite3_vfs v{};
  v.iVersion = 2;
  v.szOsFile = static_cast<int>(kRealOffset) + g_unix->szOsFile;
  v.mxPathname = g_unix->mxPathname;
  v.zName = kName;
  v.xOpen = v_open;
  v.xDelete = v_delete;
  v.xAccess = v_access;
  v.xFullPathname = v_full_pathname;
  v.xDlOpen = v_dl_open;
  v.xDlError = v_dl_error;
  v.xDlSym = v_dl_sym;
  v.xDlClose = v_dl_close;
  v.xRandomness = v_randomness;
  v.xSleep = v_sleep;
  v.xCurrentTime = v_current_time;
  v.xGetLastError = v_last_error;
  v.xCurrentTimeInt64 = v_current_time64;
  return v;
}

}  // namespace

const char* mirror_vfs_name() {
  static std::once_flag once;
  static sqlite3_vfs vfs;
  std::call_once(once, [] {
    g_unix = sqlite3_vfs_find("unix");
    vfs = make_vfs();
    sqlite3_vfs_register(&vfs, 0);
  });
  return kName;
}

Expected<std::string, std::string> wal_mirror_path(const std::string& db_path) {
  sqlite3_vfs* unix_vfs = sqlite3_vfs_find("unix");
  if (unix_vfs == nullptr) return unexpected(std::string("SQLite has no unix VFS"));
  std::vector<char> full(static_cast<std::size_t>(unix_vfs->mxPathname) + 1);
  const int rc = unix_vfs->xFullPathname(unix_vfs, db_path.c_str(),
                                         static_cast<int>(full.size()), full.data());
  if (rc != SQLITE_OK && rc != SQLITE_OK_SYMLINK) {
    return unexpected("cannot resolve " + db_path + ": " + sqlite3_errstr(rc));
  }
  return std::string(full.data()) + "-wal";
}

}  // namespace quire::sqlite
