#include "log/log.h"

#include <fcntl.h>
#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "log/file.h"
#include "log/materialize.h"
#include "log/snapshot_writer.h"

namespace quire::log {

namespace detail {

// One segment file. `file` is opened read-write; positioned I/O makes it shareable.
struct Segment {
  SegmentHeader header;
  File file;
  // Guarded by LogState::mu. Committed records are [header.first_frame, end_frame).
  Frame end_frame = 0;
  std::uint32_t last_checksum = 0;  // checksum of record end_frame-1 (chain_seed if none)
  // Guarded by the log's write mutex: the file's blocks are reserved up to here (appends below
  // it allocate nothing). 0 until the first append after open or creation.
  std::uint64_t reserved_end = 0;
};

struct LogState {
  mutable std::mutex mu;
  mutable std::condition_variable cv;
  // Everything below is guarded by mu.
  std::vector<std::shared_ptr<Segment>> segments;  // oldest first; back() is the active one
  Frame last_frame = 0;
  PrevCommit last_commit;               // the last transaction's commit
  std::vector<SnapshotInfo> snapshots;  // oldest first

  Frame first_available() const { return segments.front()->header.first_frame; }
  // The segment holding `frame` (first <= frame < end), or nullptr.
  std::shared_ptr<Segment> find(Frame frame) const {
    for (const auto& s : segments) {
      if (s->header.first_frame <= frame && frame < s->end_frame) return s;
    }
    return nullptr;
  }
};

}  // namespace detail

using detail::LogState;
using detail::Segment;

namespace {

constexpr std::size_t kRecordsPerRead = 64;
// Pages whose changes append() notes for the next snapshot (about 50 bytes each); past this the
// next snapshot replays the frames instead.
constexpr std::size_t kMaxChangedPages = 1u << 18;

std::filesystem::path segment_path(const std::filesystem::path& dir, Frame first) {
  char name[64];
  std::snprintf(name, sizeof name, "segment-%020llu.qlog", static_cast<unsigned long long>(first));
  return dir / name;
}

// Parses "<prefix><20 digits><suffix>"; nullopt for any other name.
std::optional<Frame> parse_name(const std::string& name, std::string_view prefix,
                                std::string_view suffix) {
  if (name.size() != prefix.size() + 20 + suffix.size()) return std::nullopt;
  if (name.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  if (name.compare(prefix.size() + 20, suffix.size(), suffix) != 0) return std::nullopt;
  Frame v = 0;
  for (std::size_t i = prefix.size(); i < prefix.size() + 20; ++i) {
    if (name[i] < '0' || name[i] > '9') return std::nullopt;
    v = v * 10 + static_cast<Frame>(name[i] - '0');
  }
  return v;
}

LogError corrupt(const std::filesystem::path& path, const std::string& what) {
  return log_error(LogErrc::kCorrupt, path.string() + ": " + what);
}

Expected<LogId, LogError> new_log_id() {
  LogId id;
  std::size_t done = 0;
  while (done < id.size()) {
    ssize_t n = ::getrandom(id.data() + done, id.size() - done, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return unexpected(log_error(LogErrc::kIo, "getrandom failed", errno));
    }
    done += static_cast<std::size_t>(n);
  }
  id[6] = static_cast<std::uint8_t>((id[6] & 0x0f) | 0x40);  // UUID version 4
  id[8] = static_cast<std::uint8_t>((id[8] & 0x3f) | 0x80);  // RFC 4122 variant
  return id;
}

Expected<RecordHeader, LogError> read_record_header(const Segment& s, Frame frame) {
  std::uint8_t raw[kRecordHeaderSize];
  auto got = s.file.read_at(raw, sizeof raw,
                            static_cast<off_t>(segment_record_offset(s.header.first_frame, frame)));
  if (!got) return unexpected(std::move(got).error());
  if (*got != sizeof raw) return unexpected(corrupt(s.file.path(), "short record"));
  return decode_record_header(raw);
}

// Writes a complete segment file crash-safely: <name>.tmp with the header (and, for a new log,
// the base image), fdatasync, rename, directory fsync. Returns it opened read-write.
Expected<File, LogError> create_segment(const std::filesystem::path& dir, const SegmentHeader& h,
                                        const PageSource* base, std::int64_t base_time_us) {
  const std::filesystem::path final_path = segment_path(dir, h.first_frame);
  std::filesystem::path tmp_path = final_path;
  tmp_path += ".tmp";
  auto tmp = File::open(tmp_path, O_RDWR | O_CREAT | O_TRUNC);
  if (!tmp) return unexpected(std::move(tmp).error());
  std::vector<std::uint8_t> buf(kSegmentHeaderSize);
  encode_segment_header(h, buf.data());
  if (auto ok = tmp->write_at(buf.data(), buf.size(), 0); !ok) return unexpected(ok.error());
  if (base != nullptr && base->page_count() > 0) {
    assert(h.first_frame == 1);
    const std::uint32_t n = base->page_count();
    std::vector<std::byte> page(kPageSize);
    buf.assign(kRecordsPerRead * kRecordSize, 0);
    std::uint32_t prev = h.chain_seed;
    std::size_t in_buf = 0;
    off_t offset = kSegmentHeaderSize;
    for (std::uint32_t p = 1; p <= n; ++p) {
      if (auto ok = base->read_page(p, page); !ok) return unexpected(ok.error());
      RecordHeader r;
      r.frame_no = p;
      r.txn_first_frame = 1;
      r.pgno = p;
      if (p == n) {
        r.db_size = n;
        r.commit_time_us = base_time_us;
      }
      std::uint8_t* out = buf.data() + in_buf * kRecordSize;
      std::memcpy(out + kRecordHeaderSize, page.data(), kPageSize);
      prev = encode_record(r, page.data(), prev, out);
      if (++in_buf == kRecordsPerRead || p == n) {
        if (auto ok = tmp->write_at(buf.data(), in_buf * kRecordSize, offset); !ok) {
          return unexpected(ok.error());
        }
        offset += static_cast<off_t>(in_buf * kRecordSize);
        in_buf = 0;
      }
    }
  }
  if (auto ok = tmp->datasync(); !ok) return unexpected(ok.error());
  if (auto ok = rename_file(tmp_path, final_path); !ok) return unexpected(ok.error());
  if (auto ok = sync_directory(dir); !ok) return unexpected(ok.error());
  return File::open(final_path, O_RDWR);
}

// What a scan of a segment's records found.
struct ScanResult {
  Frame end_frame = 0;              // one past the last record of the last valid commit
  std::uint32_t last_checksum = 0;  // that record's checksum
  std::optional<RecordHeader> last_commit;
  std::uint64_t valid_bytes = 0;  // file length up to end_frame
  bool clean = true;              // nothing (complete or partial) follows the last commit
};

// Scans every record of `s` from its start. The valid prefix ends at the last commit record
// whose chain verifies. Damage after it is a torn tail unless a later record still verifies
// against its predecessor and belongs to a later transaction: then it is kCorrupt. `seen`, when
// given, receives the header of every record that verifies, in order, including those of a torn
// tail after the valid prefix (the caller stops at ScanResult::end_frame).
Expected<ScanResult, LogError> scan_segment(const Segment& s,
                                            std::vector<RecordHeader>* seen = nullptr) {
  auto size = s.file.size();
  if (!size) return unexpected(std::move(size).error());
  const std::uint64_t file_size = static_cast<std::uint64_t>(*size);
  if (file_size < kSegmentHeaderSize) return unexpected(corrupt(s.file.path(), "short header"));
  const std::uint64_t complete = (file_size - kSegmentHeaderSize) / kRecordSize;
  const Frame first = s.header.first_frame;

  ScanResult r;
  r.end_frame = first;
  r.last_checksum = s.header.chain_seed;
  r.valid_bytes = kSegmentHeaderSize;
  std::uint32_t prev = s.header.chain_seed;
  Frame txn_start = first;
  std::optional<std::uint64_t> bad;  // index of the first record that fails
  std::vector<std::uint8_t> buf(kRecordsPerRead * kRecordSize);
  for (std::uint64_t i = 0; i < complete && !bad; i += kRecordsPerRead) {
    const std::uint64_t n = std::min<std::uint64_t>(kRecordsPerRead, complete - i);
    auto got = s.file.read_at(buf.data(), n * kRecordSize,
                              static_cast<off_t>(kSegmentHeaderSize + i * kRecordSize));
    if (!got) return unexpected(std::move(got).error());
    if (*got != n * kRecordSize) return unexpected(corrupt(s.file.path(), "file shrank"));
    for (std::uint64_t k = 0; k < n; ++k) {
      const std::uint8_t* rec = buf.data() + k * kRecordSize;
      const RecordHeader h = decode_record_header(rec);
      const Frame frame = first + i + k;
      if (h.frame_no != frame || h.txn_first_frame != txn_start || h.pgno == 0 ||
          record_checksum(rec, prev) != h.checksum) {
        bad = i + k;
        break;
      }
      prev = h.checksum;
      if (seen) seen->push_back(h);
      if (h.db_size != 0) {
        r.end_frame = frame + 1;
        r.last_checksum = prev;
        r.last_commit = h;
        r.valid_bytes = kSegmentHeaderSize + (i + k + 1) * kRecordSize;
        txn_start = frame + 1;
      }
    }
  }
  r.clean = r.valid_bytes == file_size;
  if (!bad) return r;

  // Is the damage confined to the last transaction? Look for a later record that verifies
  // against its predecessor's stored checksum and starts a later transaction. (Past the end of
  // a recycled segment every record is numbered below `first`: its header alone rules it out.)
  std::vector<std::uint8_t> a(kRecordSize), b(kRecordSize);
  for (std::uint64_t j = *bad + 1; j < complete; ++j) {
    auto got_h = s.file.read_at(b.data(), kRecordHeaderSize,
                                static_cast<off_t>(kSegmentHeaderSize + j * kRecordSize));
    if (!got_h) return unexpected(std::move(got_h).error());
    const RecordHeader hj = decode_record_header(b.data());
    if (hj.frame_no != first + j || hj.txn_first_frame <= txn_start) continue;
    auto got_a = s.file.read_at(a.data(), kRecordSize,
                                static_cast<off_t>(kSegmentHeaderSize + (j - 1) * kRecordSize));
    auto got_b = s.file.read_at(b.data(), kRecordSize,
                                static_cast<off_t>(kSegmentHeaderSize + j * kRecordSize));
    if (!got_a) return unexpected(std::move(got_a).error());
    if (!got_b) return unexpected(std::move(got_b).error());
    const RecordHeader ha = decode_record_header(a.data());
    const RecordHeader hb = decode_record_header(b.data());
    if (hb.frame_no == first + j && hb.txn_first_frame > txn_start &&
        record_checksum(b.data(), ha.checksum) == hb.checksum) {
      return unexpected(corrupt(s.file.path(), "record of frame " + std::to_string(first + *bad) +
                                                   " is damaged and later transactions follow"));
    }
  }
  return r;
}

Expected<void, LogError> check_appendable(const Transaction& txn,
                                          std::vector<std::uint32_t>& scratch) {
  auto bad = [](const std::string& what) {
    return unexpected(log_error(LogErrc::kInvalidArgument, "append: " + what));
  };
  if (txn.pgnos.empty()) return bad("a transaction needs at least one page");
  if (txn.pages.size() != txn.pgnos.size() * kPageSize) return bad("page data size mismatch");
  if (txn.db_size == 0) return bad("db_size must be >= 1");
  // Sorting a reused copy: no allocation per commit (most commits have one to three pages).
  scratch.assign(txn.pgnos.begin(), txn.pgnos.end());
  std::sort(scratch.begin(), scratch.end());
  if (scratch.front() == 0) return bad("page number 0");
  if (auto dup = std::adjacent_find(scratch.begin(), scratch.end()); dup != scratch.end()) {
    return bad("page " + std::to_string(*dup) + " appears twice");
  }
  return {};
}

// Appends reserve disk blocks this far ahead of the segment's end, so that a commit's write
// fills blocks already allocated instead of allocating (ext4 delayed allocation) as it extends
// the file: measurably cheaper per commit, and 1 MiB of slack per log at most.
constexpr std::uint64_t kReserveAhead = 1ull << 20;

bool out_of_space(int err) { return err == ENOSPC || err == EDQUOT; }

// Deletes the recycled segment (ReplicationLog::compact()) to free its blocks; false when there
// was none. `recycled` is the log's flag, guarded by its write mutex.
bool drop_recycled(bool& recycled, const std::filesystem::path& path) {
  if (!recycled) return false;
  recycled = false;
  ::unlink(path.c_str());
  return true;
}

}  // namespace

// ---- ReplicationLog ---------------------------------------------------------------------------

ReplicationLog::ReplicationLog(std::filesystem::path dir, LogOptions options, LogId id,
                               std::shared_ptr<LogState> state)
    : dir_(std::move(dir)), options_(options), log_id_(id), state_(std::move(state)) {}

ReplicationLog::~ReplicationLog() = default;

Expected<std::unique_ptr<ReplicationLog>, LogError> ReplicationLog::create(
    const std::filesystem::path& dir, const LogOptions& options, const PageSource* base,
    std::int64_t base_time_us) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return unexpected(log_error(LogErrc::kIo, "create " + dir.string() + ": " + ec.message()));
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (parse_name(entry.path().filename().string(), "segment-", ".qlog")) {
      return unexpected(log_error(LogErrc::kExists, dir.string() + " already holds a log"));
    }
  }
  if (ec) return unexpected(log_error(LogErrc::kIo, "list " + dir.string() + ": " + ec.message()));
  auto id = new_log_id();
  if (!id) return unexpected(std::move(id).error());
  SegmentHeader h;
  h.log_id = *id;
  h.first_frame = 1;
  auto seg = create_segment(dir, h, base, base_time_us);
  if (!seg) return unexpected(std::move(seg).error());
  return open(dir, options);
}

Expected<std::unique_ptr<ReplicationLog>, LogError> ReplicationLog::open(
    const std::filesystem::path& dir, const LogOptions& options) {
  std::error_code ec;
  std::vector<std::pair<Frame, std::filesystem::path>> seg_files, snap_files;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.ends_with(".tmp")) {
      if (options.recover) {
        std::filesystem::remove(entry.path(), ec);  // an unfinished segment or snapshot
        ec.clear();
      }
    } else if (auto f = parse_name(name, "segment-", ".qlog")) {
      seg_files.emplace_back(*f, entry.path());
    } else if (auto f = parse_name(name, "snapshot-", ".qsnap")) {
      snap_files.emplace_back(*f, entry.path());
    }
  }
  if (ec) {
    return unexpected(
        log_error(ec == std::errc::no_such_file_or_directory ? LogErrc::kNotFound : LogErrc::kIo,
                  "list " + dir.string() + ": " + ec.message()));
  }
  if (seg_files.empty()) {
    return unexpected(log_error(LogErrc::kNotFound, dir.string() + " holds no replication log"));
  }
  std::sort(seg_files.begin(), seg_files.end());
  std::sort(snap_files.begin(), snap_files.end());

  auto state = std::make_shared<LogState>();
  LogId id{};
  std::vector<RecordHeader> seen;  // the active segment's verified records, when noted
  for (std::size_t i = 0; i < seg_files.size(); ++i) {
    const auto& path = seg_files[i].second;
    auto f = File::open(path, O_RDWR);
    if (!f) return unexpected(std::move(f).error());
    std::uint8_t raw[kSegmentHeaderSize];
    auto got = f->read_at(raw, sizeof raw, 0);
    if (!got) return unexpected(std::move(got).error());
    std::string why = "short header";
    std::optional<SegmentHeader> h;
    if (*got == sizeof raw) h = decode_segment_header(raw, why);
    if (!h) return unexpected(corrupt(path, "bad segment header: " + why));
    if (h->first_frame != seg_files[i].first) {
      return unexpected(corrupt(path, "header says first frame " + std::to_string(h->first_frame)));
    }
    if (i == 0) {
      id = h->log_id;
    } else if (h->log_id != id) {
      return unexpected(
          log_error(LogErrc::kIncompatible,
                    path.string() + ": segment of another log " + format_log_id(h->log_id)));
    }
    auto seg = std::make_shared<Segment>();
    seg->header = *h;
    seg->file = std::move(f.value());
    seg->end_frame = h->first_frame;
    seg->last_checksum = h->chain_seed;
    if (i > 0) {
      const Segment& prev = *state->segments.back();
      if (h->first_frame != prev.end_frame || h->chain_seed != prev.last_checksum) {
        return unexpected(corrupt(path, "does not continue " + prev.file.path().string() +
                                            " (a segment is missing or damaged)"));
      }
    }
    const bool sealed = i + 1 < seg_files.size();
    if (sealed && !options.verify_sealed_segments) {
      // Trust the sealed body (verified when read); check its shape and its last record.
      auto size = seg->file.size();
      if (!size) return unexpected(std::move(size).error());
      const std::uint64_t body = static_cast<std::uint64_t>(*size) - kSegmentHeaderSize;
      if (static_cast<std::uint64_t>(*size) < kSegmentHeaderSize + kRecordSize ||
          body % kRecordSize != 0) {
        return unexpected(corrupt(path, "sealed segment is not a whole number of records"));
      }
      const Frame last = h->first_frame + body / kRecordSize - 1;
      std::vector<std::uint8_t> rec(kRecordSize);
      auto r = seg->file.read_at(rec.data(), kRecordSize,
                                 static_cast<off_t>(segment_record_offset(h->first_frame, last)));
      if (!r) return unexpected(std::move(r).error());
      std::uint32_t seed = h->chain_seed;
      if (last > h->first_frame) {
        auto before = read_record_header(*seg, last - 1);
        if (!before) return unexpected(std::move(before).error());
        seed = before->checksum;
      }
      const RecordHeader lh = decode_record_header(rec.data());
      if (lh.frame_no != last || lh.db_size == 0 ||
          record_checksum(rec.data(), seed) != lh.checksum) {
        return unexpected(corrupt(path, "sealed segment does not end with a valid commit"));
      }
      seg->end_frame = last + 1;
      seg->last_checksum = lh.checksum;
      state->last_commit = PrevCommit{lh.db_size, lh.commit_time_us, lh.wal};
    } else {
      // The active segment's records after the newest snapshot seed the notes of changed pages
      // (see the end of open()), when that segment holds all of them.
      const Frame newest_snapshot = snap_files.empty() ? 0 : snap_files.back().first;
      const bool note = !sealed && h->first_frame <= newest_snapshot + 1;
      auto scan = scan_segment(*seg, note ? &seen : nullptr);
      if (!scan) return unexpected(std::move(scan).error());
      if (sealed && !scan->clean) {
        return unexpected(corrupt(path, "sealed segment has damaged records after frame " +
                                            std::to_string(scan->end_frame - 1)));
      }
      if (!scan->clean && options.recover) {
        // A torn tail: the last append did not complete. Cut it off.
        if (auto ok = seg->file.truncate(static_cast<off_t>(scan->valid_bytes)); !ok) {
          return unexpected(ok.error());
        }
        if (auto ok = seg->file.datasync(); !ok) return unexpected(ok.error());
      }
      seg->end_frame = scan->end_frame;
      seg->last_checksum = scan->last_checksum;
      if (scan->last_commit) {
        const RecordHeader& lc = *scan->last_commit;
        state->last_commit = PrevCommit{lc.db_size, lc.commit_time_us, lc.wal};
      } else if (sealed) {
        return unexpected(corrupt(path, "sealed segment holds no transaction"));
      } else {
        state->last_commit = h->prev;
      }
    }
    state->segments.push_back(std::move(seg));
  }
  state->last_frame = state->segments.back()->end_frame - 1;

  for (const auto& [frame, path] : snap_files) {
    auto snap = SnapshotFile::open(path, &id);
    if (!snap) return unexpected(std::move(snap).error());
    if (snap->info().frame != frame) return unexpected(corrupt(path, "name and header disagree"));
    state->snapshots.push_back(snap->info());
  }
  const Frame first = state->first_available();
  if (first > 1) {
    const bool covered =
        std::any_of(state->snapshots.begin(), state->snapshots.end(), [&](const SnapshotInfo& s) {
          return s.frame + 1 >= first && s.frame <= state->last_frame;
        });
    if (!covered) {
      return unexpected(corrupt(dir, "log starts at frame " + std::to_string(first) +
                                         " and no snapshot covers the frames before it"));
    }
  }
  std::unique_ptr<ReplicationLog> log(new ReplicationLog(dir, options, id, state));

  // Seed the notes of pages changed since the newest snapshot (or since an empty database, for a
  // log still starting at frame 1) from the records the scan just verified, so that the first
  // snapshot after open is incremental too. Possible when the active segment holds every frame
  // after that snapshot, which is the usual case (a snapshot compacts the segments it covers).
  const Segment& active = *state->segments.back();
  const SnapshotInfo* newest = state->snapshots.empty() ? nullptr : &state->snapshots.back();
  const Frame since = newest ? newest->frame : 0;
  if (active.header.first_frame <= since + 1 && since <= state->last_frame &&
      (newest || active.header.first_frame == 1)) {
    log->changed_valid_ = true;
    log->changed_since_ = since;
    log->changed_min_size_ = newest ? newest->db_size : 0;
    std::vector<std::uint32_t> pgnos;
    for (std::size_t i = 0; i < seen.size();) {
      // One transaction: its records up to the commit record.
      std::size_t end = i;
      while (end < seen.size() && seen[end].db_size == 0) ++end;
      if (end == seen.size() || seen[end].frame_no >= active.end_frame) break;  // torn tail
      if (seen[i].frame_no > since) {
        pgnos.clear();
        for (std::size_t k = i; k <= end; ++k) pgnos.push_back(seen[k].pgno);
        log->note_changes(pgnos, seen[i].frame_no, seen[end].db_size);
      }
      i = end + 1;
    }
  }
  return log;
}

Frame ReplicationLog::last_frame() const {
  std::lock_guard lock(state_->mu);
  return state_->last_frame;
}

Frame ReplicationLog::first_available_frame() const {
  std::lock_guard lock(state_->mu);
  return state_->first_available();
}

std::optional<WalPosition> ReplicationLog::last_wal_position() const {
  std::lock_guard lock(state_->mu);
  return state_->last_commit.wal;
}

std::int64_t ReplicationLog::last_commit_time_us() const {
  std::lock_guard lock(state_->mu);
  return state_->last_commit.commit_time_us;
}

std::uint32_t ReplicationLog::db_size() const {
  std::lock_guard lock(state_->mu);
  return state_->last_commit.db_size;
}

std::filesystem::path ReplicationLog::recycled_path() const {
  return dir_ / "recycled-segment.tmp";
}

Expected<File, LogError> ReplicationLog::reuse_recycled(const SegmentHeader& h,
                                                        std::uint64_t& allocated) {
  if (!recycled_) return unexpected(log_error(LogErrc::kNotFound, "no recycled segment"));
  recycled_ = false;
  // The same steps as create_segment() (header written under the .tmp name, synced, renamed,
  // directory synced), except that the file is not truncated: the records of the segment it
  // was are left behind the new header and are overwritten as appends reach them. Their frame
  // numbers are all below h.first_frame, so neither a reader nor open()'s scan can take one for
  // a record of this segment (docs/formats/replication-log.md, "Recycled segment files").
  const std::filesystem::path final_path = segment_path(dir_, h.first_frame);
  std::filesystem::path tmp_path = final_path;
  tmp_path += ".tmp";
  auto fail = [&](LogError e) -> Expected<File, LogError> {
    std::error_code ec;
    std::filesystem::remove(tmp_path, ec);
    std::filesystem::remove(recycled_path(), ec);
    return unexpected(std::move(e));
  };
  if (auto ok = rename_file(recycled_path(), tmp_path); !ok) return fail(ok.error());
  auto tmp = File::open(tmp_path, O_RDWR);
  if (!tmp) return fail(std::move(tmp).error());
  auto size = tmp->size();
  if (!size) return fail(std::move(size).error());
  std::uint8_t raw[kSegmentHeaderSize];
  encode_segment_header(h, raw);
  if (auto ok = tmp->write_at(raw, sizeof raw, 0); !ok) return fail(ok.error());
  if (auto ok = tmp->datasync(); !ok) return fail(ok.error());
  if (auto ok = rename_file(tmp_path, final_path); !ok) return fail(ok.error());
  if (auto ok = sync_directory(dir_); !ok) return unexpected(ok.error());
  auto f = File::open(final_path, O_RDWR);
  if (f) allocated = static_cast<std::uint64_t>(*size);
  return f;
}

Expected<void, LogError> ReplicationLog::roll_over() {
  std::shared_ptr<Segment> old;
  SegmentHeader h;
  {
    std::lock_guard lock(state_->mu);
    old = state_->segments.back();
    h.log_id = log_id_;
    h.first_frame = state_->last_frame + 1;
    h.chain_seed = old->last_checksum;
    h.prev = state_->last_commit;
  }
  // Give back the blocks reserved past the sealed segment's end (a truncate to its own size).
  if (old->reserved_end != 0) {
    const off_t size =
        static_cast<off_t>(segment_record_offset(old->header.first_frame, h.first_frame));
    if (auto ok = old->file.truncate(size); !ok) return ok;
    old->reserved_end = 0;
  }
  // The sealed segment must be durable before a later one exists, or a power loss could leave
  // a hole that open() would rightly call corruption.
  if (auto ok = old->file.datasync(); !ok) return ok;
  std::uint64_t allocated = 0;
  auto f = reuse_recycled(h, allocated);
  if (!f) f = create_segment(dir_, h, nullptr, 0);
  if (!f) {
    // Leave no segment file the state does not know of: a later, smaller transaction may still
    // go to the old segment, and open() would then find a segment that does not continue it.
    std::error_code ec;
    std::filesystem::remove(segment_path(dir_, h.first_frame), ec);
    if (ec || !sync_directory(dir_)) broken_ = true;
    return unexpected(std::move(f).error());
  }
  auto seg = std::make_shared<Segment>();
  seg->header = h;
  seg->file = std::move(f.value());
  seg->end_frame = h.first_frame;
  seg->last_checksum = h.chain_seed;
  seg->reserved_end = allocated;  // a recycled file's blocks are allocated up to its size
  std::lock_guard lock(state_->mu);
  state_->segments.push_back(std::move(seg));
  return {};
}

Expected<Frame, LogError> ReplicationLog::append(const Transaction& txn) {
  std::lock_guard write_lock(write_mu_);
  if (auto ok = check_appendable(txn, pgno_scratch_); !ok) return unexpected(ok.error());
  if (broken_) {
    return unexpected(log_error(LogErrc::kBroken, dir_.string() + ": an earlier write failed"));
  }
  if (!options_.recover) {
    return unexpected(log_error(LogErrc::kInvalidArgument,
                                dir_.string() + ": opened to read only (LogOptions::recover)"));
  }
  const std::size_t n = txn.page_count();
  {
    std::shared_ptr<Segment> active;
    {
      std::lock_guard lock(state_->mu);
      active = state_->segments.back();
    }
    const std::uint64_t records = active->end_frame - active->header.first_frame;
    if (records > 0 && kSegmentHeaderSize + (records + n) * kRecordSize > options_.segment_bytes) {
      if (auto ok = roll_over(); !ok) return unexpected(ok.error());
    }
  }
  std::shared_ptr<Segment> active;
  Frame start;
  std::uint32_t prev;
  std::int64_t time;
  {
    std::lock_guard lock(state_->mu);
    active = state_->segments.back();
    start = state_->last_frame + 1;
    prev = active->last_checksum;
    time = std::max(txn.commit_time_us, state_->last_commit.commit_time_us);
  }
  // The records go out with one pwritev straight from the transaction's page images: each
  // header is encoded (and the chained checksum computed over header and page in place) into a
  // reused buffer, with no copy of the pages and no allocation on the commit path.
  headers_.resize(n * kRecordHeaderSize);
  parts_.clear();
  for (std::size_t i = 0; i < n; ++i) {
    RecordHeader r;
    r.frame_no = start + i;
    r.txn_first_frame = start;
    r.pgno = txn.pgnos[i];
    if (i + 1 == n) {
      r.db_size = txn.db_size;
      r.commit_time_us = time;
      r.wal = txn.wal;
    }
    std::uint8_t* header = headers_.data() + i * kRecordHeaderSize;
    prev = encode_record(r, txn.page(i).data(), prev, header);
    parts_.emplace_back(reinterpret_cast<const std::byte*>(header), kRecordHeaderSize);
    parts_.push_back(txn.page(i));
  }
  const auto offset = static_cast<off_t>(segment_record_offset(active->header.first_frame, start));
  const std::uint64_t end = static_cast<std::uint64_t>(offset) + n * kRecordSize;
  if (end > active->reserved_end) {
    // Best effort: without it (no fallocate, a full disk) the write below still works, or
    // fails on its own.
    const std::uint64_t from = std::max<std::uint64_t>(active->reserved_end, offset);
    if (active->file.preallocate(static_cast<off_t>(from),
                                 static_cast<off_t>(end + kReserveAhead - from)) == 0) {
      active->reserved_end = end + kReserveAhead;
    }
  }
  if (auto ok = active->file.write_gather_at(parts_, offset); !ok) {
    if (!active->file.truncate(offset)) broken_ = true;
    active->reserved_end = 0;  // a truncate releases the blocks past the end
    // Room for the next attempt.
    if (out_of_space(ok.error().sys_errno)) drop_recycled(recycled_, recycled_path());
    return unexpected(ok.error());
  }
  const Frame last = start + n - 1;
  note_changes(txn.pgnos, start, txn.db_size);
  {
    std::lock_guard lock(state_->mu);
    active->end_frame = last + 1;
    active->last_checksum = prev;
    state_->last_frame = last;
    state_->last_commit = PrevCommit{txn.db_size, time, txn.wal};
  }
  state_->cv.notify_all();
  return last;
}

Expected<void, LogError> ReplicationLog::reserve(std::uint64_t bytes) {
  std::lock_guard write_lock(write_mu_);
  if (broken_) {
    return unexpected(log_error(LogErrc::kBroken, dir_.string() + ": an earlier write failed"));
  }
  std::shared_ptr<Segment> active;
  Frame next;
  {
    std::lock_guard lock(state_->mu);
    active = state_->segments.back();
    next = state_->last_frame + 1;
  }
  const std::uint64_t end = segment_record_offset(active->header.first_frame, next);
  if (end + bytes <= active->reserved_end) return {};
  // Near the segment's end the reservation may reach past segment_bytes: a rollover trims the
  // sealed segment to its size, which hands those blocks back for the next one.
  const std::uint64_t from = std::max<std::uint64_t>(active->reserved_end, end);
  auto reserve_to = [&](std::uint64_t upto) {
    const int e =
        active->file.preallocate(static_cast<off_t>(from), static_cast<off_t>(upto - from));
    if (e == 0) active->reserved_end = upto;
    return e;
  };
  int err = reserve_to(end + bytes + kReserveAhead);
  // Out of space: give back the recycled segment's blocks and try again, then without the slack.
  if (out_of_space(err) && drop_recycled(recycled_, recycled_path())) {
    err = reserve_to(end + bytes + kReserveAhead);
  }
  if (out_of_space(err)) err = reserve_to(end + bytes);
  if (err == 0) return {};
  if (!out_of_space(err)) return {};  // no fallocate here: appends find out
  LogError e = io_error("fallocate", active->file.path(), err);
  e.message += " (reserving room for the next commit)";
  return unexpected(std::move(e));
}

void ReplicationLog::note_changes(std::span<const std::uint32_t> pgnos, Frame start,
                                  std::uint32_t db_size) {
  if (!changed_valid_) return;
  for (std::size_t i = 0; i < pgnos.size(); ++i) changed_[pgnos[i]] = start + i;
  changed_.erase(changed_.upper_bound(db_size), changed_.end());
  changed_min_size_ = std::min(changed_min_size_, db_size);
  if (changed_.size() > kMaxChangedPages) {  // the next snapshot replays instead
    changed_valid_ = false;
    changed_.clear();
  }
}

Expected<void, LogError> ReplicationLog::sync() {
  // Without the write mutex: an fdatasync of a few MiB takes milliseconds, and append() (the
  // commit path, which holds the database's write gate) must not wait for it. It still covers
  // every append that returned before the call: those records are in the segment that is
  // active now, or in an older one, which roll_over() made durable before it published its
  // successor. Appends racing with it are made durable by a later sync().
  std::shared_ptr<Segment> active;
  Frame covered;
  {
    std::lock_guard lock(state_->mu);
    active = state_->segments.back();
    covered = state_->last_frame;
  }
  if (auto ok = active->file.datasync(); !ok) return ok;
  Frame seen = synced_frame_.load(std::memory_order_relaxed);
  while (seen < covered &&
         !synced_frame_.compare_exchange_weak(seen, covered, std::memory_order_release)) {
  }
  return {};
}

bool ReplicationLog::wait_for(Frame frame, std::chrono::steady_clock::time_point deadline) const {
  std::unique_lock lock(state_->mu);
  return state_->cv.wait_until(lock, deadline, [&] { return state_->last_frame >= frame; });
}

Expected<LogReader, LogError> ReplicationLog::read_from(Frame frame) const {
  std::shared_ptr<Segment> seg;
  {
    std::lock_guard lock(state_->mu);
    if (frame < state_->first_available()) {
      std::string msg = "NEED_SNAPSHOT: frame " + std::to_string(frame) +
                        " was compacted; the log starts at frame " +
                        std::to_string(state_->first_available());
      return unexpected(log_error(LogErrc::kNeedSnapshot, std::move(msg)));
    }
    if (frame > state_->last_frame + 1) {
      return unexpected(log_error(LogErrc::kInvalidArgument,
                                  "frame " + std::to_string(frame) + " is beyond the log's end " +
                                      std::to_string(state_->last_frame)));
    }
    seg = state_->find(frame);
    if (!seg) seg = state_->segments.back();  // frame == last_frame + 1
    if (frame == seg->header.first_frame) {
      return LogReader(state_, frame, seg->header.chain_seed, seg);
    }
  }
  auto before = read_record_header(*seg, frame - 1);
  if (!before) return unexpected(std::move(before).error());
  if (before->db_size == 0) {
    return unexpected(log_error(LogErrc::kInvalidArgument, "frame " + std::to_string(frame) +
                                                               " does not start a transaction"));
  }
  return LogReader(state_, frame, before->checksum, seg);
}

std::optional<SnapshotInfo> ReplicationLog::latest_snapshot() const {
  std::lock_guard lock(state_->mu);
  if (state_->snapshots.empty()) return std::nullopt;
  return state_->snapshots.back();
}

std::vector<SnapshotInfo> ReplicationLog::snapshots() const {
  std::lock_guard lock(state_->mu);
  return state_->snapshots;
}

namespace {
void publish_snapshot(LogState& state, const SnapshotInfo& info) {
  std::lock_guard lock(state.mu);
  auto& v = state.snapshots;
  v.erase(std::remove_if(v.begin(), v.end(), [&](const auto& s) { return s.frame == info.frame; }),
          v.end());
  v.insert(std::upper_bound(v.begin(), v.end(), info,
                            [](const auto& a, const auto& b) { return a.frame < b.frame; }),
           info);
}
}  // namespace

Expected<SnapshotInfo, LogError> ReplicationLog::snapshot() {
  std::lock_guard snapshot_lock(snapshot_mu_);
  // The frame, and the pages changed up to it, are taken together under the write mutex; from
  // then on append() notes changes relative to the snapshot being written.
  Frame frame = 0;
  PrevCommit at;
  std::map<std::uint32_t, Frame> changed;
  std::uint32_t min_size = 0;
  Frame since = 0;
  bool valid = false;
  {
    std::lock_guard write_lock(write_mu_);
    {
      std::lock_guard lock(state_->mu);
      frame = state_->last_frame;
      at = state_->last_commit;
    }
    if (frame == 0)
      return unexpected(log_error(LogErrc::kInvalidArgument, "snapshot of an empty log"));
    if (auto latest = latest_snapshot(); latest && latest->frame == frame) return *latest;
    changed.swap(changed_);
    min_size = changed_min_size_;
    since = changed_since_;
    valid = changed_valid_;
    changed_valid_ = true;
    changed_since_ = frame;
    changed_min_size_ = at.db_size;
  }
  auto failed = [&](LogError e) -> Expected<SnapshotInfo, LogError> {
    std::lock_guard write_lock(write_mu_);
    if (changed_since_ == frame) changed_valid_ = false;  // no snapshot at `frame` to start from
    return unexpected(std::move(e));
  };
  auto tmp = begin_snapshot_file(dir_, frame);
  if (!tmp) return failed(std::move(tmp).error());
  const auto latest = latest_snapshot();
  // Since frame 0 means since an empty database: the log still starts at frame 1.
  if (valid && (latest ? latest->frame == since : since == 0)) {
    auto built = materialize_changes_into(*this, *tmp, kSnapshotHeaderSize,
                                          latest ? &*latest : nullptr, min_size, changed,
                                          at.db_size);
    if (!built) return failed(std::move(built).error());
    ++incremental_snapshots_;
  } else {
    MaterializeTarget target;
    target.frame = frame;
    auto image = materialize_into(*this, *tmp, kSnapshotHeaderSize, target);
    if (!image) return failed(std::move(image).error());
    assert(image->frame == frame && image->db_size == at.db_size);
  }
  auto info = finish_snapshot_file(std::move(tmp.value()), dir_, log_id_, frame,
                                   at.commit_time_us, at.db_size);
  if (!info) return failed(std::move(info).error());
  publish_snapshot(*state_, *info);
  return info;
}

std::uint64_t ReplicationLog::incremental_snapshots() const {
  return incremental_snapshots_.load(std::memory_order_relaxed);
}

Expected<void, LogError> ReplicationLog::read_page(Frame frame, std::uint32_t pgno,
                                                   std::byte* out) const {
  std::shared_ptr<Segment> seg;
  {
    std::lock_guard lock(state_->mu);
    seg = state_->find(frame);
    if (!seg) {
      return unexpected(log_error(frame < state_->first_available() ? LogErrc::kNeedSnapshot
                                                                    : LogErrc::kInvalidArgument,
                                  "frame " + std::to_string(frame) + " is not in the log"));
    }
  }
  // The record and the one before it (whose checksum seeds this one's), in one read.
  const Frame first = seg->header.first_frame;
  const bool has_prev = frame > first;
  std::uint8_t buf[2 * kRecordSize];
  const std::size_t want = has_prev ? 2 * kRecordSize : kRecordSize;
  auto got = seg->file.read_at(
      buf, want, static_cast<off_t>(segment_record_offset(first, has_prev ? frame - 1 : frame)));
  if (!got) return unexpected(std::move(got).error());
  if (*got != want) return unexpected(corrupt(seg->file.path(), "short record"));
  const std::uint32_t prev = has_prev ? decode_record_header(buf).checksum : seg->header.chain_seed;
  const std::uint8_t* rec = buf + (has_prev ? kRecordSize : 0);
  const RecordHeader h = decode_record_header(rec);
  if (h.frame_no != frame || h.pgno != pgno || record_checksum(rec, prev) != h.checksum) {
    return unexpected(corrupt(seg->file.path(), "record of frame " + std::to_string(frame) +
                                                    " fails verification"));
  }
  std::memcpy(out, rec + kRecordHeaderSize, kPageSize);
  return {};
}

Expected<SnapshotInfo, LogError> ReplicationLog::snapshot_from(const PageSource& pages,
                                                               Frame frame) {
  std::lock_guard snapshot_lock(snapshot_mu_);
  std::shared_ptr<Segment> seg;
  {
    std::lock_guard lock(state_->mu);
    seg = state_->find(frame);
  }
  if (!seg) {
    return unexpected(log_error(LogErrc::kInvalidArgument,
                                "frame " + std::to_string(frame) + " is not a retained frame"));
  }
  auto h = read_record_header(*seg, frame);
  if (!h) return unexpected(std::move(h).error());
  if (h->db_size == 0 || h->db_size != pages.page_count()) {
    return unexpected(
        log_error(LogErrc::kInvalidArgument, "frame " + std::to_string(frame) +
                                                 " is not a commit of a database of " +
                                                 std::to_string(pages.page_count()) + " pages"));
  }
  auto info = write_snapshot_file(dir_, log_id_, frame, h->commit_time_us, pages);
  if (!info) return unexpected(std::move(info).error());
  publish_snapshot(*state_, *info);
  return info;
}

Expected<CompactResult, LogError> ReplicationLog::compact() {
  std::lock_guard write_lock(write_mu_);
  CompactResult result;
  std::vector<std::filesystem::path> doomed;  // oldest first, segments before snapshots
  std::shared_ptr<Segment> newest_doomed;
  {
    std::lock_guard lock(state_->mu);
    if (!state_->snapshots.empty()) {
      const Frame s = state_->snapshots.back().frame;
      auto& segs = state_->segments;
      while (segs.size() > 1 && segs.front()->end_frame - 1 <= s) {
        doomed.push_back(segs.front()->file.path());
        newest_doomed = segs.front();
        segs.erase(segs.begin());
        ++result.segments_deleted;
      }
      auto& snaps = state_->snapshots;
      while (snaps.size() > 1) {
        doomed.push_back(snaps.front().path);
        snaps.erase(snaps.begin());
        ++result.snapshots_deleted;
      }
    }
    result.first_available = state_->first_available();
  }
  if (doomed.empty()) return result;
  // The newest segment deleted becomes the next active one instead (roll_over()), when nothing
  // reads it any more: out of the state, it can gain no new reader, so a use count of one (this
  // reference) is final. Appends then overwrite its blocks, allocated and most likely still in
  // the page cache, instead of extending a new file (bench/RESULTS.md, "Recycled segments").
  // One file at most, and none that a transaction larger than a segment made larger.
  std::filesystem::path keep;
  if (newest_doomed && newest_doomed.use_count() == 1 && !recycled_) {
    auto size = newest_doomed->file.size();
    if (size && static_cast<std::uint64_t>(*size) <= options_.segment_bytes + kReserveAhead) {
      keep = newest_doomed->file.path();
    }
  }
  newest_doomed.reset();
  for (const auto& path : doomed) {
    if (path == keep) {
      if (rename_file(path, recycled_path())) {
        recycled_ = true;
        continue;
      }
    }
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return unexpected(io_error("unlink", path, errno));
    }
  }
  if (auto ok = sync_directory(dir_); !ok) return unexpected(ok.error());
  return result;
}

// ---- LogReader --------------------------------------------------------------------------------

namespace {

// Records [from, from + n) of `seg` into `buf`, all of them or an error.
Expected<void, LogError> read_records(const Segment& seg, Frame from, std::size_t n,
                                      std::vector<std::uint8_t>& buf) {
  buf.resize(n * kRecordSize);
  auto got = seg.file.read_at(buf.data(), buf.size(),
                              static_cast<off_t>(segment_record_offset(seg.header.first_frame, from)));
  if (!got) return unexpected(std::move(got).error());
  if (*got != buf.size()) return unexpected(corrupt(seg.file.path(), "short read"));
  return {};
}

// The header of `rec`, record `f` of the transaction starting at `txn_first`, after checking its
// numbering and its checksum chained from `prev`.
Expected<RecordHeader, LogError> checked_record(const Segment& seg, const std::uint8_t* rec,
                                                Frame f, Frame txn_first, std::uint32_t prev) {
  const RecordHeader h = decode_record_header(rec);
  if (h.frame_no != f || h.txn_first_frame != txn_first || h.pgno == 0 ||
      record_checksum(rec, prev) != h.checksum) {
    return unexpected(corrupt(seg.file.path(),
                              "record of frame " + std::to_string(f) + " fails verification"));
  }
  return h;
}

}  // namespace

LogReader::LogReader(std::shared_ptr<LogState> state, Frame next, std::uint32_t prev_checksum,
                     std::shared_ptr<Segment> segment)
    : state_(std::move(state)),
      next_frame_(next),
      prev_checksum_(prev_checksum),
      segment_(std::move(segment)) {}
LogReader::LogReader(LogReader&&) noexcept = default;
LogReader& LogReader::operator=(LogReader&&) noexcept = default;
LogReader::~LogReader() = default;

Expected<std::optional<LoggedTransaction>, LogError> LogReader::next() {
  LoggedTransaction out;
  out.first_frame = next_frame_;
  auto got = next_into(out.txn);
  if (!got) return unexpected(std::move(got).error());
  if (!*got) return std::optional<LoggedTransaction>();
  return std::optional<LoggedTransaction>(std::move(out));
}

Expected<std::optional<Frame>, LogError> LogReader::enter_segment() {
  std::lock_guard lock(state_->mu);
  if (next_frame_ >= segment_->end_frame) {
    if (next_frame_ > state_->last_frame) return std::optional<Frame>();
    auto seg = state_->find(next_frame_);
    if (!seg) {
      return unexpected(log_error(LogErrc::kNeedSnapshot,
                                  "NEED_SNAPSHOT: frame " + std::to_string(next_frame_) +
                                      " was compacted while the reader was behind"));
    }
    // Segments begin at transaction boundaries, and the reader is at one.
    if (seg->header.first_frame != next_frame_ || seg->header.chain_seed != prev_checksum_) {
      return unexpected(corrupt(seg->file.path(), "does not continue the previous segment"));
    }
    segment_ = std::move(seg);
    buf_count_ = 0;
  }
  return std::optional<Frame>(segment_->end_frame);
}

Expected<bool, LogError> LogReader::next_view(TransactionView& out) {
  auto entered = enter_segment();
  if (!entered) return unexpected(std::move(entered).error());
  if (!*entered) return false;
  const Frame end = **entered;
  const Frame txn_first = next_frame_;
  view_pgnos_.clear();
  std::uint32_t prev = prev_checksum_;
  for (Frame f = txn_first; f < end; ++f) {
    if (f - txn_first >= kMaxViewRecords) {
      // Too large to hold in the read buffer: a copy of its own (next_into starts again at
      // txn_first, which next_frame_ still is).
      auto got = next_into(spill_);
      if (!got) return unexpected(std::move(got).error());
      if (!*got) return unexpected(corrupt(segment_->file.path(), "the log shrank under a reader"));
      out = TransactionView::of(spill_);
      return true;
    }
    if (f < buf_first_ || f >= buf_first_ + buf_count_) {
      // The whole transaction must end up in the buffer: past its first record, read again
      // from that record with room for twice as many, and verify again from there (the view
      // hands out exactly the bytes that were verified).
      const Frame want = f == txn_first ? kRecordsPerRead
                                        : std::max<Frame>(kRecordsPerRead, 2 * (f - txn_first));
      const std::size_t n = static_cast<std::size_t>(std::min<Frame>(want, end - txn_first));
      if (auto r = read_records(*segment_, txn_first, n, buf_); !r) return unexpected(r.error());
      buf_first_ = txn_first;
      buf_count_ = n;
      if (f != txn_first) {
        f = txn_first;
        prev = prev_checksum_;
        view_pgnos_.clear();
      }
    }
    auto checked = checked_record(*segment_, buf_.data() + (f - buf_first_) * kRecordSize, f,
                                  txn_first, prev);
    if (!checked) return unexpected(std::move(checked).error());
    const RecordHeader& h = *checked;
    prev = h.checksum;
    view_pgnos_.push_back(h.pgno);
    if (h.db_size != 0) {
      out.pgnos = view_pgnos_;
      out.first_page = reinterpret_cast<const std::byte*>(
          buf_.data() + (txn_first - buf_first_) * kRecordSize + kRecordHeaderSize);
      out.stride = kRecordSize;
      end_transaction(h, f, prev, out);
      return true;
    }
  }
  return unexpected(corrupt(segment_->file.path(), "committed range ends inside a transaction"));
}

Expected<bool, LogError> LogReader::next_into(Transaction& out) {
  auto entered = enter_segment();
  if (!entered) return unexpected(std::move(entered).error());
  if (!*entered) return false;
  const Frame end = **entered;
  const Frame txn_first = next_frame_;
  out.pgnos.clear();
  out.pages.clear();
  std::uint32_t prev = prev_checksum_;
  for (Frame f = next_frame_; f < end; ++f) {
    if (f < buf_first_ || f >= buf_first_ + buf_count_) {
      const std::size_t n = static_cast<std::size_t>(std::min<Frame>(kRecordsPerRead, end - f));
      if (auto r = read_records(*segment_, f, n, buf_); !r) return unexpected(r.error());
      buf_first_ = f;
      buf_count_ = n;
    }
    const std::uint8_t* rec = buf_.data() + (f - buf_first_) * kRecordSize;
    auto checked = checked_record(*segment_, rec, f, txn_first, prev);
    if (!checked) return unexpected(std::move(checked).error());
    const RecordHeader& h = *checked;
    prev = h.checksum;
    out.add_page(h.pgno, {reinterpret_cast<const std::byte*>(rec + kRecordHeaderSize), kPageSize});
    if (h.db_size != 0) {
      end_transaction(h, f, prev, out);
      return true;
    }
  }
  return unexpected(corrupt(segment_->file.path(), "committed range ends inside a transaction"));
}

}  // namespace quire::log
