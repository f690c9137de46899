// A read replica's local database: applies replicated transactions (page images from the
// replication log) to a local file while plain SQLite readers keep running through an overlay VFS
// (docs/replica-apply.md; the facts this honours are in specs/overlay-vfs-notes.md).
//
// How it works, in short:
//   * the base file `<db>` holds the pages of one version (the "base version");
//   * every applied transaction becomes a newer version: its pages are appended to the overlay
//     file `<db>-overlay` as one record with a checksummed commit trailer, fdatasync'ed, and then
//     published in memory atomically (one pointer swap under a mutex);
//   * a reader connection pins the newest version when SQLite takes its SHARED lock and sees
//     exactly that version until it unlocks (the end of its read transaction);
//   * checkpoint() folds overlay versions into the base file, oldest first, while no reader
//     needs the base version, and then rewrites the overlay file without them.
//
// Readers: sqlite3_open_v2(path().c_str(), &db, SQLITE_OPEN_READONLY, vfs_name().c_str()).
// They must live in this process (pins are in memory; gotcha 9) and be closed before the
// ReplicaDatabase is destroyed. The base file must not be opened by anything else.
//
// Applied frame: the commit frame of the last transaction that apply() made durable (or the
// frame given to reset_from_snapshot()). It is persisted in the overlay file (its header holds
// the base version's frame, each record its commit frame), so after a crash or restart
// applied_frame() is the last fully applied transaction and pulling resumes at
// applied_frame() + 1.
//
// Thread model: apply(), checkpoint() and reset_from_snapshot() may be called from any thread;
// they are serialised by an internal mutex (one applier at a time). Reader connections run in
// any threads concurrently with them; a reader only ever waits for a short in-memory critical
// section (no I/O is done under the lock readers take). applied_frame() and stats() may be
// called from any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "common/expected.h"
#include "log/snapshot.h"
#include "log/transaction.h"

namespace quire::replica {

struct ReplicaOptions {
  // fdatasync the overlay on every apply (durable against power loss). Without it a transaction
  // still survives kill -9 (it is in the page cache) but not a power loss.
  bool sync = true;
  // Name of the VFS to register; empty picks a unique "quire-replica-<n>".
  std::string vfs_name;
};

struct ReplicaStats {
  std::uint64_t applied_frame = 0;
  std::uint64_t base_frame = 0;      // the frame whose content is in the base file
  std::size_t overlay_versions = 0;  // versions not yet folded into the base file
  std::size_t pinned_readers = 0;    // reader connections inside a read transaction
  std::uint32_t db_size = 0;         // pages of the newest version
};

namespace detail {
class Replica;
}

class ReplicaDatabase {
 public:
  // Opens (creating when missing: an empty base file and an empty overlay at frame 0) the
  // replica at `db`, recovers the overlay (a torn last record is cut off) and any interrupted
  // reset, and registers the VFS. Errors are I/O failures or a corrupt overlay header.
  static Expected<std::unique_ptr<ReplicaDatabase>, std::string> open(
      const std::filesystem::path& db, const ReplicaOptions& options = {});
  // Unregisters the VFS. Every reader connection must have been closed.
  ~ReplicaDatabase();
  ReplicaDatabase(const ReplicaDatabase&) = delete;
  ReplicaDatabase& operator=(const ReplicaDatabase&) = delete;

  // The canonical path readers must open (the path SQLite's xFullPathname yields).
  const std::filesystem::path& path() const;
  const std::string& vfs_name() const;

  // Applies one transaction whose commit frame is `commit_frame`: durable (overlay record +
  // fdatasync when options.sync) and then visible to read transactions that start afterwards.
  // Errors, leaving the replica unchanged: commit_frame <= applied_frame(), no pages, a page
  // number 0, repeated or beyond txn.db_size, pages.size() != page_count()*4096, I/O failure.
  Expected<void, std::string> apply(const log::Transaction& txn, std::uint64_t commit_frame);
  std::uint64_t applied_frame() const;

  // Replaces the whole database with `pages` (the database as of commit frame `frame`), for a
  // replica too far behind the log (kNeedSnapshot). Atomic and crash-safe: after a crash the
  // replica is either the old state or the snapshot. Readers pinned to old versions keep them
  // until their read transaction ends; later read transactions see the snapshot.
  Expected<void, std::string> reset_from_snapshot(const log::PageSource& pages,
                                                  std::uint64_t frame);

  // Folds overlay versions into the base file, oldest first, as long as no reader is pinned to
  // the base version, then persists the new base frame (base fdatasync, overlay rewritten via a
  // temporary file and rename). Returns how many versions were folded. A reader holding a long
  // read transaction on an old version stops folding (the overlay grows) until it ends.
  Expected<std::size_t, std::string> checkpoint();

  ReplicaStats stats() const;

 private:
  explicit ReplicaDatabase(std::unique_ptr<detail::Replica> impl);
  std::unique_ptr<detail::Replica> impl_;
};

}  // namespace quire::replica
