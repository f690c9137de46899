// The replication log of one database: every committed transaction as full page images,
// numbered with frame numbers that start at 1 and never reset (docs/formats/replication-log.md).
// Replicas pull from frame N, the backup shipper reads it, restore materialises from it.
//
// How the server uses it (the commit path, specs/wal-capture-notes.md mechanism A):
//   * create() once per database, with the db file as base image (right after journal_mode=WAL),
//     or open() at startup; then apply the recovery rule with last_wal_position() and a
//     WalReader before SQLite opens the database;
//   * in sqlite3_wal_hook, and before each checkpoint: WalReader::read_committed(cursor) and
//     append() each transaction (stamping commit_time_us), then sync() when the durability
//     policy says so, and only then acknowledge the commit;
//   * replicas: read_from(frame) and LogReader::next(); kNeedSnapshot sends them to
//     latest_snapshot(); wait_for() long-polls;
//   * periodically snapshot() then compact().
//
// Crash safety: after kill -9 at any instant, open() recovers to the last complete, valid
// transaction (a torn tail is cut off); damage that is not a torn tail is reported as kCorrupt,
// never skipped. Nothing is durable against power loss until sync() returns.
//
// Thread model: every method may be called from any thread. append() and compact() are
// serialised by an internal mutex (one writer at a time; the server calls append from the
// database's writer only); sync() does not wait for appends, nor they for it. Readers (LogReader, materialize) run concurrently with appends and
// only ever see whole transactions. snapshot() reads concurrently with appends (one snapshot at
// a time). A LogReader is used by one thread at a time and may outlive the
// log object.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "common/expected.h"
#include "log/file.h"
#include "log/format.h"
#include "log/log_error.h"
#include "log/snapshot.h"
#include "log/transaction.h"

namespace quire::log {

struct LogOptions {
  // A transaction that would grow the active segment past this starts a new segment.
  std::uint64_t segment_bytes = 64ull << 20;
  // Verify every record of sealed segments at open (reads the whole log); otherwise they are
  // verified as they are read.
  bool verify_sealed_segments = false;
  // open() cuts a torn tail (or a recycled segment's old records) off the active segment and
  // deletes unfinished files (*.tmp). false: open() truncates and deletes nothing and the log
  // refuses appends, for tools that read a log beside the server that writes it (which may be
  // appending past what open() saw, or about to reuse recycled-segment.tmp). snapshot() still
  // writes a snapshot file (quire backup, which is for a stopped server). Beside a running
  // server a read can fail verification (never return wrong bytes) when the server reuses a
  // compacted segment the tool still has open: run the tool again.
  bool recover = true;
};

// A transaction as stored: its pages carry frames first_frame .. first_frame+page_count()-1,
// the last one being the commit frame.
struct LoggedTransaction {
  Frame first_frame = 0;
  Transaction txn;
  Frame last_frame() const { return first_frame + txn.page_count() - 1; }
};

struct CompactResult {
  std::size_t segments_deleted = 0;
  std::size_t snapshots_deleted = 0;
  Frame first_available = 0;
};

namespace detail {
struct LogState;
struct Segment;
}  // namespace detail

class LogReader;

class ReplicationLog {
 public:
  // Creates a new log in `dir` (created if missing; kExists if it already holds a log) with a new
  // random log id. When `base` has pages, they become frames 1..n, one transaction with
  // db_size n and commit time `base_time_us` (the base image; written atomically with the first
  // segment).
  static Expected<std::unique_ptr<ReplicationLog>, LogError> create(
      const std::filesystem::path& dir, const LogOptions& options = {},
      const PageSource* base = nullptr, std::int64_t base_time_us = 0);
  // Opens an existing log and recovers its torn tail. kNotFound when `dir` holds no log.
  static Expected<std::unique_ptr<ReplicationLog>, LogError> open(const std::filesystem::path& dir,
                                                                  const LogOptions& options = {});
  ~ReplicationLog();
  ReplicationLog(const ReplicationLog&) = delete;
  ReplicationLog& operator=(const ReplicationLog&) = delete;

  const LogId& log_id() const { return log_id_; }
  const std::filesystem::path& dir() const { return dir_; }
  // The last committed frame; 0 for an empty log.
  Frame last_frame() const;
  // The first frame a reader can start from; earlier frames need a snapshot. last_frame()+1
  // when every frame was compacted.
  Frame first_available_frame() const;
  // The last transaction's WAL position (L of the recovery rule); nullopt when it came from no
  // WAL (base image) or the log is empty.
  std::optional<WalPosition> last_wal_position() const;
  std::int64_t last_commit_time_us() const;
  // The database size in pages after the last transaction (0 for an empty log).
  std::uint32_t db_size() const;

  // Appends one transaction with one pwritev and returns its commit frame. Preconditions
  // (kInvalidArgument otherwise): at least one page, pages.size() == page_count*4096, page
  // numbers >= 1 and distinct, db_size >= 1. The stored commit time is
  // max(txn.commit_time_us, last_commit_time_us()), so times never decrease. Not durable until
  // sync(). On a write error the segment is cut back and the log is unchanged; if that fails
  // too, every later append fails with kBroken.
  Expected<Frame, LogError> append(const Transaction& txn);
  // Makes every appended transaction durable (fdatasync of the active segment).
  Expected<void, LogError> sync();
  // The last frame a sync() made durable: every frame up to it is (0 before the first sync()
  // of this object; frames found at open() count only once a sync() covered them).
  Frame synced_frame() const { return synced_frame_.load(std::memory_order_acquire); }
  // Makes sure the active segment has disk blocks reserved (fallocate, FALLOC_FL_KEEP_SIZE) for
  // at least `bytes` more past its end, reserving about 1 MiB beyond that when it has to
  // reserve at all (near the segment's end, past its size: a rollover trims it). kIo with
  // sys_errno ENOSPC (or EDQUOT) when the disk cannot give them: an append of that size would
  // fail the same way; kBroken after an unrecoverable write error. Succeeds without reserving
  // when the file system has no fallocate.
  Expected<void, LogError> reserve(std::uint64_t bytes);

  // Waits until last_frame() >= frame or the deadline passes; returns last_frame() >= frame.
  bool wait_for(Frame frame, std::chrono::steady_clock::time_point deadline) const;

  // A reader of whole transactions starting at `frame`, which must begin a transaction (1, or
  // one past a commit frame; last_frame()+1 reads only what comes later). kNeedSnapshot when
  // frame < first_available_frame(); kInvalidArgument when frame is inside a transaction or
  // beyond last_frame()+1.
  Expected<LogReader, LogError> read_from(Frame frame) const;

  // Writes a snapshot as of the current last frame, built from the log itself (the newest
  // snapshot plus the frames after it). kInvalidArgument for an empty log. Returns the existing
  // snapshot when there is one at that frame.
  //
  // append() notes the newest frame of each page it writes, and a snapshot, when the newest
  // snapshot is still the one the notes start from, copies it and reads only the newest image
  // of each page changed since (an insert workload changes a few hundred pages in 16,384
  // frames), instead of rereading every frame. open() seeds the notes from the records it
  // verifies in the active segment; when that segment does not hold every frame since the
  // newest snapshot, the first snapshot after open() replays them instead.
  Expected<SnapshotInfo, LogError> snapshot();
  // Snapshots built from the pages changed since the previous one (see snapshot()).
  std::uint64_t incremental_snapshots() const;

  // Copies the page image that frame `frame` carries into `out` (4096 bytes), after checking
  // its record: its frame number, that it is page `pgno`, and its checksum chained from the
  // record before it. kNeedSnapshot when the frame was compacted, kCorrupt on a mismatch.
  Expected<void, LogError> read_page(Frame frame, std::uint32_t pgno, std::byte* out) const;
  // Writes a snapshot from the caller's image of the database as of commit frame `frame`
  // (for instance the db file right after a TRUNCATE checkpoint when last_frame() == frame).
  // The frame must be a retained commit frame and the page count its db size.
  Expected<SnapshotInfo, LogError> snapshot_from(const PageSource& pages, Frame frame);
  std::optional<SnapshotInfo> latest_snapshot() const;
  std::vector<SnapshotInfo> snapshots() const;  // oldest first

  // Deletes the sealed segments whose frames are all <= the newest snapshot's frame (oldest
  // first) and the snapshots older than it. The active segment is never deleted. The newest
  // segment deleted is kept instead (one file at most, and only when no reader holds it) for
  // the next rollover to reuse (docs/formats/replication-log.md, "Recycled segment files").
  Expected<CompactResult, LogError> compact();

 private:
  ReplicationLog(std::filesystem::path dir, LogOptions options, LogId id,
                 std::shared_ptr<detail::LogState> state);
  Expected<void, LogError> roll_over();
  // The file compact() kept for the next rollover (see compact()), named so that open()
  // deletes it; and turning it into the segment `h` starts, with `allocated` set to its size.
  // An error when there is none or it could not be reused (roll_over() then creates a new
  // file under the same name, and the recycled one is gone either way).
  std::filesystem::path recycled_path() const;
  Expected<File, LogError> reuse_recycled(const SegmentHeader& h, std::uint64_t& allocated);
  // Notes the pages of a transaction appended at frames start.. with database size db_size
  // (see changed_). Requires write_mu_ (or a log no other thread sees yet).
  void note_changes(std::span<const std::uint32_t> pgnos, Frame start, std::uint32_t db_size);

  const std::filesystem::path dir_;
  const LogOptions options_;
  const LogId log_id_;
  std::shared_ptr<detail::LogState> state_;
  std::mutex write_mu_;     // serialises append, sync, compact, and publishing snapshots
  std::mutex snapshot_mu_;  // one snapshot at a time
  bool broken_ = false;     // guarded by write_mu_
  bool recycled_ = false;   // guarded by write_mu_: recycled_path() holds a compacted segment
  std::atomic<Frame> synced_frame_{0};
  // What changed since the snapshot at frame changed_since_ (see snapshot()): the newest frame
  // of each page, and the smallest database size at any commit since (pages past it were cut
  // off, and read as zeros unless written again); changed_since_ 0 means since an empty
  // database. open() seeds them from the active segment's records when it holds every frame
  // after the newest snapshot. Guarded by write_mu_; meaningful only while changed_valid_
  // (false after an open() that could not seed them, after a failed snapshot, or when too many
  // pages changed).
  std::map<std::uint32_t, Frame> changed_;
  std::uint32_t changed_min_size_ = 0;
  Frame changed_since_ = 0;
  bool changed_valid_ = false;
  std::atomic<std::uint64_t> incremental_snapshots_{0};
  // append()'s buffers, reused so that a commit allocates nothing; guarded by write_mu_.
  std::vector<std::uint32_t> pgno_scratch_;
  std::vector<std::uint8_t> headers_;
  std::vector<std::span<const std::byte>> parts_;
};

// Reads whole transactions in frame order. Holds the segments it reads open, so compaction
// behind it does not disturb it; moving into a compacted range yields kNeedSnapshot.
class LogReader {
 public:
  LogReader(LogReader&&) noexcept;
  LogReader& operator=(LogReader&&) noexcept;
  ~LogReader();

  // The next whole transaction, or nullopt when the reader is at the log's current end.
  // kCorrupt when a record fails its checksum or numbering.
  Expected<std::optional<LoggedTransaction>, LogError> next();
  // The same into `out`, whose buffers are reused (a reader of many transactions allocates
  // nothing per transaction); it starts at next_frame() as it was before the call. True when
  // one was read, false at the log's current end (`out` is then unspecified).
  Expected<bool, LogError> next_into(Transaction& out);
  // The same without copying the pages: `out` points into the reader's read buffer (or, for a
  // transaction of more than kMaxViewRecords records, into a copy the reader keeps) and is valid
  // until the reader's next call or its destruction.
  Expected<bool, LogError> next_view(TransactionView& out);
  static constexpr std::size_t kMaxViewRecords = 4096;  // 16 MiB of page images
  // The frame the next transaction starts at.
  Frame next_frame() const { return next_frame_; }

 private:
  friend class ReplicationLog;
  LogReader(std::shared_ptr<detail::LogState> state, Frame next, std::uint32_t prev_checksum,
            std::shared_ptr<detail::Segment> segment);

  std::shared_ptr<detail::LogState> state_;
  Frame next_frame_;
  std::uint32_t prev_checksum_;  // checksum of record next_frame_-1 (chain seed)
  std::shared_ptr<detail::Segment> segment_;
  // The segment holding next_frame_ (switching to the next one at its end); the end of its
  // committed records, or nullopt at the log's end.
  Expected<std::optional<Frame>, LogError> enter_segment();
  // `h`, record `f`, is the commit record that ends the transaction being read (`prev` its
  // checksum): its commit fields go to `out` (a Transaction or a TransactionView) and the
  // reader moves past it.
  template <class Out>
  void end_transaction(const RecordHeader& h, Frame f, std::uint32_t prev, Out& out) {
    out.db_size = h.db_size;
    out.commit_time_us = h.commit_time_us;
    out.wal = h.wal;
    next_frame_ = f + 1;
    prev_checksum_ = prev;
  }

  std::vector<std::uint8_t> buf_;  // records [buf_first_, buf_first_ + buf_count_)
  std::vector<std::uint32_t> view_pgnos_;  // next_view()'s page numbers
  Transaction spill_;                      // next_view()'s copy of a transaction too large
  Frame buf_first_ = 0;
  std::size_t buf_count_ = 0;
};

}  // namespace quire::log
