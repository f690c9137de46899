// The overlay VFS: wraps the unix VFS and takes over only the replica's main database file,
// serving each read transaction the version it pinned at its SHARED lock. What SQLite 3.40 needs
// faked is recorded in specs/overlay-vfs-notes.md ("Minimal VFS surface"); this follows it:
// io_methods version 1 (no xShm*, no xFetch), no real file locks, no -journal/-wal/-shm.
#include <algorithm>
#include <atomic>
#include <cstring>

#include "replica/replica.h"

namespace quire::replica::detail {

struct ReplicaFile {
  sqlite3_file base;
  ReaderState* st;
};

struct VfsGlue {
  static Replica* of(sqlite3_vfs* vfs) { return static_cast<Replica*>(vfs->pAppData); }
  static ReaderState* st(sqlite3_file* f) { return reinterpret_cast<ReplicaFile*>(f)->st; }

  // ---- io methods of the replica's main database file ----
  static int close(sqlite3_file* f) {
    ReaderState* s = st(f);
    s->replica->unpin(s->pin);
    s->replica->file_closed();
    delete s;
    f->pMethods = nullptr;
    return SQLITE_OK;
  }
  static int read(sqlite3_file* f, void* out, int amount, sqlite3_int64 offset) {
    ReaderState* s = st(f);
    if (s->pin) {
      return s->replica->read(s->pin, out, static_cast<std::size_t>(amount),
                              static_cast<std::uint64_t>(offset));
    }
    // Outside a read transaction (the header read at open): the newest version, pinned briefly.
    auto pin = s->replica->pin_newest();
    const int rc = s->replica->read(pin, out, static_cast<std::size_t>(amount),
                                    static_cast<std::uint64_t>(offset));
    s->replica->unpin(pin);
    return rc;
  }
  static int write(sqlite3_file*, const void*, int, sqlite3_int64) { return SQLITE_READONLY; }
  static int truncate(sqlite3_file*, sqlite3_int64) { return SQLITE_READONLY; }
  static int sync(sqlite3_file*, int) { return SQLITE_OK; }
  static int file_size(sqlite3_file* f, sqlite3_int64* size) {
    ReaderState* s = st(f);
    std::uint32_t n = 0;
    if (s->pin) {
      n = s->pin->npages;
    } else {
      auto pin = s->replica->pin_newest();
      n = pin->npages;
      s->replica->unpin(pin);
    }
    *size = static_cast<sqlite3_int64>(n) * static_cast<sqlite3_int64>(log::kPageSize);
    return SQLITE_OK;
  }
  static int lock(sqlite3_file* f, int level) {
    ReaderState* s = st(f);
    if (level > SQLITE_LOCK_SHARED) return SQLITE_READONLY;
    if (level == SQLITE_LOCK_SHARED && s->lock == SQLITE_LOCK_NONE) {
      s->pin = s->replica->pin_newest();  // the read transaction's version
      s->lock = SQLITE_LOCK_SHARED;
    }
    return SQLITE_OK;
  }
  static int unlock(sqlite3_file* f, int level) {
    ReaderState* s = st(f);
    if (level == SQLITE_LOCK_NONE) s->replica->unpin(s->pin);
    s->lock = std::min(s->lock, level);
    return SQLITE_OK;
  }
  static int check_reserved(sqlite3_file*, int* out) {
    *out = 0;
    return SQLITE_OK;
  }
  static int file_control(sqlite3_file*, int, void*) { return SQLITE_NOTFOUND; }
  static int sector_size(sqlite3_file*) { return static_cast<int>(log::kPageSize); }
  // Never IMMUTABLE: that would switch off change detection (gotcha 7).
  static int device_characteristics(sqlite3_file*) { return SQLITE_IOCAP_POWERSAFE_OVERWRITE; }

  static constexpr sqlite3_io_methods kMethods = {
      1,  // iVersion 1: no xShm* (page 1 says rollback mode) and no xFetch (no mmap)
      &close,  &read,   &write,          &truncate,     &sync,        &file_size,
      &lock,   &unlock, &check_reserved, &file_control, &sector_size, &device_characteristics,
      nullptr, nullptr, nullptr,         nullptr,       nullptr,      nullptr};

  // ---- VFS methods ----
  static int open(sqlite3_vfs* vfs, const char* name, sqlite3_file* f, int flags, int* out) {
    Replica* r = of(vfs);
    if ((flags & SQLITE_OPEN_MAIN_DB) && r->is_replica_path(name)) {
      auto* rf = reinterpret_cast<ReplicaFile*>(f);
      rf->st = new ReaderState{r, nullptr, SQLITE_LOCK_NONE};
      rf->base.pMethods = &kMethods;
      r->file_opened();
      if (out)
        *out = (flags & ~(SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)) | SQLITE_OPEN_READONLY;
      return SQLITE_OK;
    }
    return r->unix_->xOpen(r->unix_, name, f, flags, out);
  }
  static int del(sqlite3_vfs* vfs, const char* name, int sync_dir) {
    return of(vfs)->unix_->xDelete(of(vfs)->unix_, name, sync_dir);
  }
  static int access(sqlite3_vfs* vfs, const char* name, int flags, int* out) {
    Replica* r = of(vfs);
    const std::size_t n = r->path_str_.size();
    if (name && std::strncmp(name, r->path_str_.c_str(), n) == 0 &&
        (std::strcmp(name + n, "-journal") == 0 || std::strcmp(name + n, "-wal") == 0 ||
         std::strcmp(name + n, "-shm") == 0)) {
      *out = 0;  // a hot journal or a WAL must never be seen (gotcha: xAccess probes)
      return SQLITE_OK;
    }
    return r->unix_->xAccess(r->unix_, name, flags, out);
  }
  static int full_pathname(sqlite3_vfs* vfs, const char* name, int n, char* out) {
    return of(vfs)->unix_->xFullPathname(of(vfs)->unix_, name, n, out);
  }
  static void* dl_open(sqlite3_vfs* vfs, const char* name) {
    return of(vfs)->unix_->xDlOpen(of(vfs)->unix_, name);
  }
  static void dl_error(sqlite3_vfs* vfs, int n, char* msg) {
    of(vfs)->unix_->xDlError(of(vfs)->unix_, n, msg);
  }
  static void (*dl_sym(sqlite3_vfs* vfs, void* h, const char* sym))(void) {
    return of(vfs)->unix_->xDlSym(of(vfs)->unix_, h, sym);
  }
  static void dl_close(sqlite3_vfs* vfs, void* h) { of(vfs)->unix_->xDlClose(of(vfs)->unix_, h); }
  static int randomness(sqlite3_vfs* vfs, int n, char* out) {
    return of(vfs)->unix_->xRandomness(of(vfs)->unix_, n, out);
  }
  static int sleep(sqlite3_vfs* vfs, int us) { return of(vfs)->unix_->xSleep(of(vfs)->unix_, us); }
  static int current_time(sqlite3_vfs* vfs, double* t) {
    return of(vfs)->unix_->xCurrentTime(of(vfs)->unix_, t);
  }
  static int last_error(sqlite3_vfs* vfs, int n, char* msg) {
    return of(vfs)->unix_->xGetLastError(of(vfs)->unix_, n, msg);
  }
  static int current_time64(sqlite3_vfs* vfs, sqlite3_int64* t) {
    return of(vfs)->unix_->xCurrentTimeInt64(of(vfs)->unix_, t);
  }
};

Expected<void, std::string> Replica::register_vfs(const std::string& name) {
  static std::atomic<unsigned> counter{0};
  vfs_name_ = name.empty() ? "quire-replica-" + std::to_string(++counter) : name;
  unix_ = sqlite3_vfs_find("unix");
  if (!unix_) return unexpected(std::string("no unix VFS"));
  if (sqlite3_vfs_find(vfs_name_.c_str())) {
    return unexpected("VFS " + vfs_name_ + " is already registered");
  }
  vfs_.iVersion = 2;
  vfs_.szOsFile = std::max(static_cast<int>(sizeof(ReplicaFile)), unix_->szOsFile);
  vfs_.mxPathname = unix_->mxPathname;
  vfs_.zName = vfs_name_.c_str();
  vfs_.pAppData = this;
  vfs_.xOpen = &VfsGlue::open;
  vfs_.xDelete = &VfsGlue::del;
  vfs_.xAccess = &VfsGlue::access;
  vfs_.xFullPathname = &VfsGlue::full_pathname;
  vfs_.xDlOpen = &VfsGlue::dl_open;
  vfs_.xDlError = &VfsGlue::dl_error;
  vfs_.xDlSym = &VfsGlue::dl_sym;
  vfs_.xDlClose = &VfsGlue::dl_close;
  vfs_.xRandomness = &VfsGlue::randomness;
  vfs_.xSleep = &VfsGlue::sleep;
  vfs_.xCurrentTime = &VfsGlue::current_time;
  vfs_.xGetLastError = &VfsGlue::last_error;
  vfs_.xCurrentTimeInt64 = &VfsGlue::current_time64;
  if (sqlite3_vfs_register(&vfs_, 0) != SQLITE_OK) {
    return unexpected("cannot register VFS " + vfs_name_);
  }
  registered_ = true;
  return {};
}

}  // namespace quire::replica::detail
