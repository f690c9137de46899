#include "log/wal_reader.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>
#include <utility>

namespace quire::log {

namespace {

constexpr std::size_t kWalHeaderSize = 32;
constexpr std::size_t kFrameHeaderSize = 24;
constexpr std::size_t kFrameSize = kFrameHeaderSize + kPageSize;
constexpr std::uint32_t kWalMagic = 0x377f0682;  // | 1: checksums over big-endian words
constexpr std::uint32_t kWalVersion = 3007000;
constexpr std::uint32_t kFramesPerRead = 64;

std::uint32_t be32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}
std::uint32_t le32(const unsigned char* p) {
  return (std::uint32_t{p[3]} << 24) | (std::uint32_t{p[2]} << 16) | (std::uint32_t{p[1]} << 8) |
         std::uint32_t{p[0]};
}

// SQLite's WAL checksum over n bytes (a multiple of 8), continuing from s1/s2.
void wal_checksum(bool big_endian, const unsigned char* p, std::size_t n, std::uint32_t& s1,
                  std::uint32_t& s2) {
  assert(n % 8 == 0);
  for (std::size_t i = 0; i < n; i += 8) {
    const std::uint32_t w0 = big_endian ? be32(p + i) : le32(p + i);
    const std::uint32_t w1 = big_endian ? be32(p + i + 4) : le32(p + i + 4);
    s1 += w0 + s2;
    s2 += w1 + s1;
  }
}

off_t frame_offset(std::uint32_t frame) {
  assert(frame >= 1);
  return static_cast<off_t>(kWalHeaderSize + (static_cast<std::uint64_t>(frame) - 1) * kFrameSize);
}

// WalReader::recycle() keeps at most this many transactions, each with buffers of at most this
// size (a commit's few pages; a bulk load's buffers are freed).
constexpr std::size_t kMaxSpares = 4;
constexpr std::size_t kMaxSpareBytes = 64 * kPageSize;

// Empties `t` and keeps it (its buffers' capacity) in `spares`, within the limits above.
void keep_spare(std::vector<Transaction>& spares, Transaction&& t) {
  if (spares.size() >= kMaxSpares || t.pages.capacity() > kMaxSpareBytes) return;
  t.pgnos.clear();
  t.pages.clear();
  t.db_size = 0;
  t.commit_time_us = 0;
  t.wal.reset();
  spares.push_back(std::move(t));
}

// Collects the frames of the transaction in progress; a page seen again replaces its image.
// On the commit path a transaction is a few pages: they are copied once, from the read buffer
// into the transaction handed out, and looked up with a scan of the page numbers (a hash index
// is built only for a transaction that grows large, such as a cache spill or a bulk load).
class PendingTransaction {
 public:
  // `spares`: transactions handed back through WalReader::recycle(), whose buffers are reused.
  explicit PendingTransaction(std::vector<Transaction>* spares) : spares_(spares) {
    txn_ = take_spare();
  }
  ~PendingTransaction() { keep_spare(*spares_, std::move(txn_)); }
  PendingTransaction(const PendingTransaction&) = delete;
  PendingTransaction& operator=(const PendingTransaction&) = delete;

  void add(std::uint32_t pgno, const unsigned char* image) {
    const std::size_t at = find(pgno);
    if (at == kNone) {
      if (!index_.empty() || txn_.pgnos.size() == kScanLimit) {
        if (index_.empty()) {
          for (std::size_t i = 0; i < txn_.pgnos.size(); ++i) index_.emplace(txn_.pgnos[i], i);
        }
        index_.emplace(pgno, txn_.pgnos.size());
      }
      txn_.add_page(pgno, {reinterpret_cast<const std::byte*>(image), kPageSize});
    } else {
      std::memcpy(txn_.pages.data() + at * kPageSize, image, kPageSize);
    }
  }
  Transaction finish(std::uint32_t db_size, const WalPosition& at) {
    Transaction out;
    if (std::all_of(txn_.pgnos.begin(), txn_.pgnos.end(),
                    [&](std::uint32_t p) { return p <= db_size; })) {
      out = std::move(txn_);
    } else {
      for (std::size_t i = 0; i < txn_.page_count(); ++i) {
        if (txn_.pgnos[i] <= db_size) out.add_page(txn_.pgnos[i], txn_.page(i));
      }
    }
    out.db_size = db_size;
    out.wal = at;
    txn_ = take_spare();
    index_.clear();
    return out;
  }

 private:
  Transaction take_spare() {
    if (spares_->empty()) return Transaction{};
    Transaction t = std::move(spares_->back());
    spares_->pop_back();
    return t;
  }

  static constexpr std::size_t kNone = ~std::size_t{0};
  static constexpr std::size_t kScanLimit = 32;

  std::size_t find(std::uint32_t pgno) const {
    if (!index_.empty()) {
      auto it = index_.find(pgno);
      return it == index_.end() ? kNone : it->second;
    }
    for (std::size_t i = 0; i < txn_.pgnos.size(); ++i) {
      if (txn_.pgnos[i] == pgno) return i;
    }
    return kNone;
  }

  std::vector<Transaction>* spares_;
  Transaction txn_;
  std::unordered_map<std::uint32_t, std::size_t> index_;  // empty below kScanLimit pages
};

}  // namespace

WalReader::WalReader(std::filesystem::path wal_path) : path_(std::move(wal_path)) {}

Expected<bool, LogError> WalReader::ensure_open() {
  if (file_.is_open()) {
    struct stat st;
    if (::fstat(file_.fd(), &st) != 0) return unexpected(io_error("fstat", path_, errno));
    if (st.st_nlink > 0) return true;
    file_.close();
    trusted_.reset();  // deleted (the last connection closed): a new -wal may exist by now
    header_.reset();
  }
  auto f = File::open(path_, O_RDONLY);
  if (!f) {
    if (f.error().code == LogErrc::kNotFound) return false;
    return unexpected(std::move(f).error());
  }
  file_ = std::move(f.value());
  return true;
}

void WalReader::recycle(std::vector<Transaction>&& done) {
  for (Transaction& t : done) keep_spare(spares_, std::move(t));
  done.clear();
}

Expected<std::size_t, LogError> WalReader::read_frames(unsigned char* out, std::size_t n,
                                                       off_t offset) {
  if (mirror_ && mirror_->read(out, n, static_cast<std::uint64_t>(offset))) return n;
  return file_.read_at(out, n, offset);
}

Expected<WalBatch, LogError> WalReader::read_committed(const WalPosition& cursor,
                                                       std::uint32_t max_frame) {
  auto batch = read_committed_frames(cursor, max_frame);
  // The frames up to the end returned are never asked for again (a later read starts after
  // them, or after a restart at frame 1, which SQLite writes anew first).
  if (batch && mirror_) {
    mirror_->forget_before(static_cast<std::uint64_t>(frame_offset(batch->end.frame + 1)));
  }
  return batch;
}

Expected<WalBatch, LogError> WalReader::read_committed_frames(const WalPosition& cursor,
                                                              std::uint32_t max_frame) {
  WalBatch batch;
  batch.end = cursor;
  // The commit path (the WAL hook): this reader's own cursor, frames up to the hook's count.
  // One read of the new frames suffices: they must carry the header's salts (cached when it was
  // last read), which a restarted WAL's frames cannot, and they must reach max_frame, the commit
  // just made. Anything else takes the full path below.
  //
  // On this path the frames' checksums are not recomputed (kTrustFrames): every frame up to
  // max_frame is committed, so it was written whole before SQLite published it (a writer writes
  // its frames, then moves the wal-index's mxFrame, then runs the hook), and a WAL restart gives
  // every frame of the new generation new salts (salt-1 is incremented), so a frame with the
  // cached header's salts at or below max_frame is this generation's committed frame after the
  // cursor. The bytes are then exactly what SQLite itself reads for those pages (it never
  // re-verifies a committed frame either), and the running checksum each frame header carries
  // becomes the cursor. Torn frames exist only after a crash, and nothing read after a crash
  // takes this path: a fresh reader (startup, the recovery rule) or any cursor it did not hand
  // out itself is verified from frame 1: a log whose last commit is not a valid commit of the
  // WAL there is reported (kBehindCursor, or kCorrupt when the checksums differ).
  if (max_frame > cursor.frame && header_ && trusted_ && *trusted_ == cursor &&
      cursor.salt1 == header_->salt1 && cursor.salt2 == header_->salt2) {
    std::vector<Transaction> txns;
    auto end = scan(*header_, cursor, max_frame, &txns, nullptr, nullptr, ScanMode::kTrustFrames);
    if (end && end->frame == max_frame) {
      batch.state = WalState::kContinues;
      batch.transactions = std::move(txns);
      batch.end = *end;
      trusted_ = batch.end;
      return batch;
    }
  }
  auto open = ensure_open();
  if (!open) return unexpected(std::move(open).error());
  if (!*open) return batch;

  unsigned char raw[kWalHeaderSize];
  auto got = file_.read_at(raw, sizeof raw, 0);
  if (!got) return unexpected(std::move(got).error());
  if (*got < kWalHeaderSize) return batch;
  const std::uint32_t magic = be32(raw);
  if ((magic & ~1u) != kWalMagic || be32(raw + 4) != kWalVersion) return batch;
  Header h;
  h.big_endian_checksum = (magic & 1) != 0;
  std::uint32_t s1 = 0, s2 = 0;
  wal_checksum(h.big_endian_checksum, raw, 24, s1, s2);
  if (s1 != be32(raw + 24) || s2 != be32(raw + 28)) return batch;
  const std::uint32_t page_size = be32(raw + 8);
  if (page_size != kPageSize) {
    return unexpected(log_error(LogErrc::kIncompatible, path_.string() + ": WAL page size " +
                                                            std::to_string(page_size) +
                                                            ", the log supports 4096 only"));
  }
  h.salt1 = be32(raw + 16);
  h.salt2 = be32(raw + 20);
  h.checksum1 = s1;
  h.checksum2 = s2;
  const WalPosition generation_start{h.salt1, h.salt2, 0, h.checksum1, h.checksum2};
  header_ = h;

  const bool same_generation = cursor.salt1 == h.salt1 && cursor.salt2 == h.salt2;
  if (!same_generation || cursor.frame == 0) {
    batch.state =
        (same_generation || cursor == WalPosition{}) ? WalState::kContinues : WalState::kRestarted;
    auto end = scan(h, generation_start, max_frame, &batch.transactions, nullptr, nullptr);
    if (!end) return unexpected(std::move(end).error());
    batch.end = *end;
    trusted_ = batch.end;
    return batch;
  }

  // Same generation. When this reader handed out the cursor itself, every frame up to it was
  // verified then: checking that the cursor's frame header is still there (salts, commit flag
  // and the running checksum, which covers every earlier frame) suffices, and the per-commit
  // cost stays proportional to the new frames.
  if (trusted_ && *trusted_ == cursor) {
    unsigned char fh[kFrameHeaderSize];
    auto n = file_.read_at(fh, sizeof fh, frame_offset(cursor.frame));
    if (!n) return unexpected(std::move(n).error());
    if (*n == kFrameHeaderSize && be32(fh + 4) != 0 && be32(fh + 8) == h.salt1 &&
        be32(fh + 12) == h.salt2 && be32(fh + 16) == cursor.checksum1 &&
        be32(fh + 20) == cursor.checksum2) {
      batch.state = WalState::kContinues;
      auto end = scan(h, cursor, max_frame, &batch.transactions, nullptr, nullptr);
      if (!end) return unexpected(std::move(end).error());
      batch.end = *end;
      trusted_ = batch.end;
      return batch;
    }
  }
  // Otherwise (startup, another reader's cursor) verify the generation from frame 1 exactly as
  // SQLite's recovery does, and require the cursor to be one of its commits.
  bool matched = false;
  std::vector<Transaction> after;
  auto end = scan(h, generation_start, max_frame, &after, &cursor, &matched);
  if (!end) return unexpected(std::move(end).error());
  if (end->frame < cursor.frame) {
    batch.state = WalState::kBehindCursor;
    batch.end = *end;
    return batch;
  }
  if (!matched) {
    return unexpected(log_error(LogErrc::kCorrupt,
                                path_.string() + ": WAL frame " + std::to_string(cursor.frame) +
                                    " is not the commit the cursor names (checksum differs)"));
  }
  batch.state = WalState::kContinues;
  batch.transactions = std::move(after);
  batch.end = *end;
  trusted_ = batch.end;
  return batch;
}

Expected<WalPosition, LogError> WalReader::scan(const Header& h, WalPosition from,
                                                std::uint32_t max_frame,
                                                std::vector<Transaction>* out,
                                                const WalPosition* skip, bool* matched,
                                                ScanMode mode) {
  const std::uint32_t skip_through = skip != nullptr ? skip->frame : 0;
  WalPosition last_commit = from;
  std::uint32_t s1 = from.checksum1, s2 = from.checksum2;
  std::uint32_t frame = from.frame;
  PendingTransaction pending(&spares_);
  // Reused across calls: a commit of a few pages must not pay for zeroing a 64-frame buffer.
  const std::uint32_t first_want =
      max_frame != 0 ? std::min<std::uint32_t>(kFramesPerRead, max_frame - frame) : kFramesPerRead;
  if (scratch_.size() < std::size_t{first_want} * kFrameSize)
    scratch_.resize(std::size_t{first_want} * kFrameSize);
  std::vector<unsigned char>& buf = scratch_;
  while (max_frame == 0 || frame < max_frame) {
    std::uint32_t want = kFramesPerRead;
    if (max_frame != 0) want = std::min(want, max_frame - frame);
    if (buf.size() < std::size_t{want} * kFrameSize) buf.resize(std::size_t{want} * kFrameSize);
    auto got = read_frames(buf.data(), want * kFrameSize, frame_offset(frame + 1));
    if (!got) return unexpected(std::move(got).error());
    const auto complete = static_cast<std::uint32_t>(*got / kFrameSize);
    for (std::uint32_t i = 0; i < complete; ++i) {
      const unsigned char* p = buf.data() + i * kFrameSize;
      const std::uint32_t pgno = be32(p);
      const std::uint32_t commit = be32(p + 4);
      if (pgno == 0 || be32(p + 8) != h.salt1 || be32(p + 12) != h.salt2) return last_commit;
      std::uint32_t c1 = be32(p + 16), c2 = be32(p + 20);
      if (mode == ScanMode::kVerify) {
        std::uint32_t v1 = s1, v2 = s2;
        wal_checksum(h.big_endian_checksum, p, 8, v1, v2);
        wal_checksum(h.big_endian_checksum, p + kFrameHeaderSize, kPageSize, v1, v2);
        if (v1 != c1 || v2 != c2) return last_commit;
      }
      s1 = c1;
      s2 = c2;
      ++frame;
      if (out != nullptr) pending.add(pgno, p + kFrameHeaderSize);
      if (commit != 0) {
        last_commit = WalPosition{h.salt1, h.salt2, frame, s1, s2};
        Transaction t = pending.finish(commit, last_commit);
        if (skip != nullptr && frame == skip->frame && matched != nullptr) {
          *matched = s1 == skip->checksum1 && s2 == skip->checksum2;
        }
        if (out != nullptr && frame > skip_through) out->push_back(std::move(t));
      }
    }
    if (complete < want) break;
  }
  return last_commit;
}

}  // namespace quire::log
