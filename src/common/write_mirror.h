// A byte-exact copy, in memory, of the latest run of writes to one file, so that a reader in the
// same process can read back what was just written without a system call.
//
// The replication log reads every commit's frames back out of the `-wal` right after SQLite
// wrote them (engine/log_capture.h). The pages are in the page cache, but the `pread` alone cost
// about 3 µs per commit on our VMs (bench/RESULTS.md). The VFS shim in sqlite/mirror_vfs.h copies
// each write to a `-wal` that has a mirror into it (a 4 KiB `memcpy`, about 0.15 µs), and
// log::WalReader reads from here first.
//
// The contract that makes this safe without interpreting SQLite's write pattern: the mirror holds
// one contiguous range [base, base + size) whose bytes are exactly the file's bytes there, or
// nothing. Every write and truncate of the file must be reported (wrote(), truncated()); a write
// that does not extend or overlap the range replaces it, a failed write clears it (clear()). A
// read answers only when the whole range asked for is held, and the caller falls back to the file
// otherwise. So a missed opportunity costs a `pread`, never a wrong byte, as long as no write to
// the file bypasses the shim (the server opens every connection to a database through it, and no
// other process writes the server's databases).
//
// Memory: at most `limit` bytes; the reader calls forget_before() once it took the frames, so
// between commits a mirror usually holds nothing, and a buffer grown by a large transaction is
// released.
//
// Registry: mirrors are found by the file's path as SQLite names it (see mirror_vfs.h). acquire()
// creates one; the VFS only find()s, so a file nobody acquired a mirror for is not copied.
//
// Thread model: every member is thread-safe (one mutex per mirror, one for the registry).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace quire {

class WriteMirror {
 public:
  static constexpr std::size_t kDefaultLimit = 8u << 20;

  explicit WriteMirror(std::size_t limit = kDefaultLimit) : limit_(limit) {}
  WriteMirror(const WriteMirror&) = delete;
  WriteMirror& operator=(const WriteMirror&) = delete;

  // The mirror registered for `path`, created if there is none. The registry holds it only as
  // long as some caller does.
  static std::shared_ptr<WriteMirror> acquire(const std::string& path);
  // The mirror registered for `path`, or null.
  static std::shared_ptr<WriteMirror> find(const std::string& path);

  // `n` bytes were written to the file at `offset`.
  void wrote(const void* data, std::size_t n, std::uint64_t offset);
  // The file was truncated (or extended with zeros) to `size` bytes.
  void truncated(std::uint64_t size);
  // Forget everything (the file's content is no longer known: a failed write, a deleted file).
  void clear();
  // Bytes before `offset` will not be asked for again.
  void forget_before(std::uint64_t offset);

  // Copies [offset, offset + n) into `out` and returns true when the mirror holds all of it;
  // false (and `out` untouched) otherwise.
  bool read(void* out, std::size_t n, std::uint64_t offset);

  // A guard the VFS runs before passing on a write that starts at offset 0. For a -wal that is
  // SQLite beginning a new generation over the frames of the old one (or creating the file):
  // the replication log sets a guard that makes every commit of the old generation durable in
  // the log first (engine/log_capture.h). false fails the write, and with it SQLite's
  // transaction. `owner` names who set it: clear_before_rewrite(owner) removes the guard only
  // if it is still that owner's, and waits for it to finish if it is running.
  void set_before_rewrite(const void* owner, std::function<bool()> guard);
  void clear_before_rewrite(const void* owner);
  bool before_rewrite();  // true when no guard is set

  struct Stats {
    std::uint64_t reads_served = 0;  // read() calls answered
    std::uint64_t reads_missed = 0;  // read() calls not answered
  };
  Stats stats();
  std::size_t held();  // bytes held now

 private:
  void clear_locked();

  const std::size_t limit_;
  std::mutex mu_;
  std::uint64_t base_ = 0;           // guarded by mu_: file offset of data_[0]
  std::vector<unsigned char> data_;  // guarded by mu_
  Stats stats_;                      // guarded by mu_
  std::mutex guard_mu_;              // held while the guard runs
  std::function<bool()> guard_;      // guarded by guard_mu_
  const void* guard_owner_ = nullptr;  // guarded by guard_mu_
};

}  // namespace quire
