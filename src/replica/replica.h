// Internals of ReplicaDatabase: the version chain, its persistence and the overlay VFS.
//
// Versions. chain_ holds, oldest first, the base version (its pages are in the base file; it is
// marked folded) followed by the overlay versions (their pages in memory and in the overlay
// file). Each overlay version links to the next older one. A read of page p as of version v
// walks from v towards the base: the first version holding p serves it; a version that does not
// hold p and has npages < p means the page did not exist (zeros); reaching a folded version
// means the base file serves it.
//
// Invariants (all under mu_):
//   * new pins always go to chain_.back(), the newest version;
//   * a version is folded only while chain_.front() (the current base) has no pins, so every
//     pinned reader is at or above the version being folded and finds its pages in memory until
//     it is marked folded; a base page is never read while it is being rewritten;
//   * applied_frame_ == chain_.back()->frame.
//
// Locking: apply_mu_ serialises the applier side (apply, checkpoint, reset). mu_ guards the
// chain, the links, pins and version contents; readers hold it only for lookups and memcpy.
// Base-file reads (pread) run outside mu_ while the reader holds a pin.
#pragma once

#include <sqlite3.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "common/expected.h"
#include "log/snapshot.h"
#include "log/transaction.h"
#include "replica/overlay_file.h"
#include "replica/replica_database.h"

namespace quire::replica::detail {

// A descriptor of one base file inode; versions of a chain share it, and readers pinned to a
// chain replaced by reset_from_snapshot() keep the old inode alive through it.
struct BaseFile {
  explicit BaseFile(int f) : fd(f) {}
  ~BaseFile();
  BaseFile(const BaseFile&) = delete;
  BaseFile& operator=(const BaseFile&) = delete;
  int fd;
};

struct Version {
  std::uint64_t id = 0;     // unique per Replica, increasing; drives page 1's change counter
  std::uint64_t frame = 0;  // commit frame this version is the state after
  std::uint32_t npages = 0;
  std::vector<std::uint32_t> pgnos;  // sorted; empty once folded
  std::vector<std::byte> pages;
  std::shared_ptr<Version> older;  // null for a folded (base) version
  bool folded = false;
  int pins = 0;
  std::shared_ptr<BaseFile> base;
};

// Per reader file handle (the main database of one reader connection).
struct ReaderState {
  class Replica* replica = nullptr;
  std::shared_ptr<Version> pin;  // set between SHARED lock and unlock to NONE
  int lock = SQLITE_LOCK_NONE;
};

class Replica {
 public:
  static Expected<std::unique_ptr<Replica>, std::string> open(const std::filesystem::path& db,
                                                              const ReplicaOptions& options);
  ~Replica();

  const std::filesystem::path& path() const { return path_; }
  const std::string& vfs_name() const { return vfs_name_; }
  Expected<void, std::string> apply(const log::Transaction& txn, std::uint64_t commit_frame);
  std::uint64_t applied_frame() const { return applied_frame_.load(); }
  Expected<void, std::string> reset_from_snapshot(const log::PageSource& pages,
                                                  std::uint64_t frame);
  Expected<std::size_t, std::string> checkpoint();
  ReplicaStats stats() const;

  // Reader side, called from the VFS.
  std::shared_ptr<Version> pin_newest();
  void unpin(std::shared_ptr<Version>& v);
  // Reads [offset, offset+amount) of the database as of `v` (page 1 header patched). Returns
  // SQLITE_IOERR_SHORT_READ when part of the range lies beyond the version's size (that part is
  // zero-filled), SQLITE_IOERR_READ on an I/O error.
  int read(const std::shared_ptr<Version>& v, void* out, std::size_t amount, std::uint64_t offset);
  std::uint32_t npages(const Version& v) const { return v.npages; }
  bool is_replica_path(const char* name) const { return name && path_str_ == name; }
  void file_opened() { ++open_files_; }
  void file_closed() { --open_files_; }

 private:
  friend struct VfsGlue;
  Replica() = default;
  Expected<void, std::string> register_vfs(const std::string& name);
  Expected<void, std::string> rewrite_overlay();  // under apply_mu_
  int read_page(const std::shared_ptr<Version>& v, std::uint32_t pgno, std::byte* out);

  std::filesystem::path path_;
  std::string path_str_;
  std::filesystem::path overlay_path_;
  ReplicaOptions options_;
  std::string vfs_name_;
  std::uint32_t salt_ = 0;

  std::mutex apply_mu_;
  int overlay_fd_ = -1;            // guarded by apply_mu_
  std::uint64_t overlay_end_ = 0;  // guarded by apply_mu_
  std::uint64_t next_id_ = 1;      // guarded by apply_mu_
  std::atomic<std::uint64_t> applied_frame_{0};

  mutable std::mutex mu_;
  std::deque<std::shared_ptr<Version>> chain_;  // guarded by mu_
  std::size_t pinned_ = 0;                      // guarded by mu_
  std::atomic<int> open_files_{0};

  sqlite3_vfs vfs_{};
  sqlite3_vfs* unix_ = nullptr;
  bool registered_ = false;
};

}  // namespace quire::replica::detail
