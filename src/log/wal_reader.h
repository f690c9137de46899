// Reads the committed transactions out of an SQLite `-wal` file, accepting exactly what SQLite's
// own WAL recovery accepts (specs/wal-capture-notes.md, mechanism A and "WAL format facts"):
//
// * the 32-byte header needs magic 0x377f0682/0x377f0683, version 3007000, page size 4096 and a
//   valid header checksum (the magic's low bit set = checksums over big-endian words);
// * frames are valid while their salts equal the header's and their checksum chains from the
//   previous frame (frame 1 from the header checksum);
// * the committed content ends at the last valid frame with a non-zero db size (a commit frame);
//   frames after it (a rolled-back or still-running transaction, an older generation) are ignored.
//
// The caller keeps a cursor, the WalPosition of the last commit it took. Each read continues
// from the cursor; when the header's salts differ from the cursor's, the WAL was restarted by a
// checkpoint and reading starts again at frame 1. This is what the server calls from
// sqlite3_wal_hook (with the hook's nFrame as max_frame), before every checkpoint it runs, and
// at startup for the recovery rule (§3) with the log's last WalPosition as the cursor.
//
// One exception to recomputing checksums: on the commit path (this reader's own cursor, frames
// up to the wal hook's nFrame) the frames are committed ones SQLite has just published, and only
// their salts are checked (ScanMode::kTrustFrames; read_committed() says why that is sound).
// Every other read, the recovery rule at startup included, verifies the checksum chain.
//
// The reader keeps its own descriptor on the -wal and reopens it when the file was unlinked
// (st_nlink == 0) or did not exist. The unix VFS takes no locks on the -wal, so this descriptor
// does not interfere with SQLite.
//
// With a WriteMirror attached (common/write_mirror.h; the server's databases have one, filled by
// the sqlite/mirror_vfs.h shim), frames are read from the mirror when it holds them and from the
// file otherwise: the same bytes either way, and the same checks.
//
// Thread model: one thread at a time per WalReader (the database's writer, or startup).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include "common/expected.h"
#include "common/write_mirror.h"
#include "log/file.h"
#include "log/log_error.h"
#include "log/transaction.h"

namespace quire::log {

// How the WAL on disk relates to the cursor a read started from.
enum class WalState {
  kNoWal,         // no -wal file, or no valid header (everything checkpointed, or truncated)
  kContinues,     // same generation: transactions after the cursor (possibly none)
  kRestarted,     // other salts: the WAL started over; transactions from frame 1
  kBehindCursor,  // same generation but its committed end W is before the cursor's frame
};

struct WalBatch {
  WalState state = WalState::kNoWal;
  // Committed transactions after the cursor, oldest first. Pages are deduplicated within a
  // transaction (the later image of a page wins) and pages beyond the commit's db size are
  // dropped (the commit truncates them away). Each has `wal` set; commit_time_us is 0 (the WAL
  // holds no time: the caller stamps it).
  std::vector<Transaction> transactions;
  // The cursor for the next read: the last transaction's commit, or the cursor passed in when
  // there was none. For kBehindCursor, W itself (frame 0 of the generation when W is empty).
  WalPosition end;
};

class WalReader {
 public:
  explicit WalReader(std::filesystem::path wal_path);

  // Reads every committed transaction after `cursor`, reading no frame past `max_frame` when it
  // is non-zero (the wal hook's nFrame). A default WalPosition{} reads from frame 1 of whatever
  // generation is on disk. A cursor this reader did not return itself (at startup, the log's
  // last_wal_position()) is checked by verifying the generation from frame 1, as SQLite's
  // recovery does; the reader's own last cursor costs only the new frames. Errors: kIncompatible
  // (page size other than 4096), kCorrupt (the cursor's frame is valid in this generation but its
  // checksum differs from the cursor's: the WAL is not the one the cursor came from), kIo.
  Expected<WalBatch, LogError> read_committed(const WalPosition& cursor,
                                              std::uint32_t max_frame = 0);

  // Hands back transactions a read returned and the caller is done with: their buffers are
  // reused by later reads, so that the commit path allocates nothing for a commit of a few
  // pages. Optional.
  void recycle(std::vector<Transaction>&& done);

  // Reads frames from `mirror` when it holds them (null: always from the file).
  void attach_mirror(std::shared_ptr<WriteMirror> mirror) { mirror_ = std::move(mirror); }

  const std::filesystem::path& path() const { return path_; }

 private:
  struct Header {
    bool big_endian_checksum = false;
    std::uint32_t salt1 = 0, salt2 = 0;
    std::uint32_t checksum1 = 0, checksum2 = 0;
  };

  // How scan() decides that a frame is valid.
  enum class ScanMode {
    // As SQLite's recovery: salts equal the header's and the checksum chains from the previous
    // frame (recomputed over the frame header and the page).
    kVerify,
    // Salts equal the header's; the checksum the frame carries is taken as it is. Only for
    // frames known to be committed in the current generation (up to the wal hook's nFrame,
    // after a cursor this reader verified): see read_committed().
    kTrustFrames,
  };

  Expected<bool, LogError> ensure_open();  // false: no -wal file
  Expected<WalBatch, LogError> read_committed_frames(const WalPosition& cursor,
                                                     std::uint32_t max_frame);
  // Scans the valid frames after `from` (whose running checksum seeds the chain), collecting
  // committed transactions into `out` (when non-null) except those ending at or before
  // skip->frame, and returns the position of the last valid commit. Sets *matched when the
  // commit at skip->frame carries skip's checksum.
  Expected<WalPosition, LogError> scan(const Header& h, WalPosition from, std::uint32_t max_frame,
                                       std::vector<Transaction>* out, const WalPosition* skip,
                                       bool* matched, ScanMode mode = ScanMode::kVerify);

  // Reads [offset, offset + n) from the mirror when it holds all of it, else from the file.
  Expected<std::size_t, LogError> read_frames(unsigned char* out, std::size_t n, off_t offset);

  std::filesystem::path path_;
  File file_;
  std::shared_ptr<WriteMirror> mirror_;
  // The end this reader last returned, verified from frame 1 of its generation; reset when the
  // file is reopened. A cursor equal to it skips re-verifying the prefix.
  std::optional<WalPosition> trusted_;
  // The header as last read (the commit path's fast read relies on its salts and byte order).
  std::optional<Header> header_;
  std::vector<unsigned char> scratch_;  // frame buffer of scan(), reused
  std::vector<Transaction> spares_;     // see recycle(); at most a few, with small buffers
};

}  // namespace quire::log
