#include "log/materialize.h"

#include <fcntl.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <span>
#include <vector>

namespace quire::log {

namespace {

constexpr std::uint32_t kPagesPerCopy = 64;

Expected<void, LogError> copy_snapshot(const SnapshotFile& snap, const File& out,
                                       std::uint64_t base) {
  const std::uint32_t n = snap.page_count();
  std::vector<std::byte> buf(kPagesPerCopy * kPageSize);
  for (std::uint32_t p = 1; p <= n; p += kPagesPerCopy) {
    const std::uint32_t count = std::min(kPagesPerCopy, n - p + 1);
    auto got =
        snap.file().read_at(buf.data(), count * kPageSize, static_cast<off_t>(p * kPageSize));
    if (!got) return unexpected(std::move(got).error());
    if (*got != count * kPageSize) {
      return unexpected(
          log_error(LogErrc::kCorrupt, snap.info().path.string() + ": short snapshot"));
    }
    const auto offset = static_cast<off_t>(base + (p - 1) * std::uint64_t{kPageSize});
    if (auto ok = out.write_at(buf.data(), count * kPageSize, offset); !ok) return ok;
  }
  return {};
}

// The image being built, as the file on disk overlaid with the newest page images not yet
// written. Applying transactions one page write and one truncate at a time cost two syscalls
// per logged page (ext4 runs its truncate path even when the size does not change), and the
// log's own snapshot() replays every frame since the previous snapshot: on a write-heavy
// database that was a large share of the server's CPU. A page rewritten by many transactions
// (the usual case: the rightmost leaf of an insert workload) is now written once, runs of
// adjacent pages with one pwritev, and the file is truncated only when the database shrinks.
//
// Invariant: after each commit the file holds nothing past the database size (pages past the
// file's end read as zeros, as the transactions' truncate-then-grow requires), so a page the
// cache does not hold is read from the file correctly.
class PendingImage {
 public:
  PendingImage(const File& out, std::uint64_t base, std::uint32_t size)
      : out_(out), base_(base), file_pages_(size) {}

  Expected<void, LogError> put(std::uint32_t pgno, std::span<const std::byte> image) {
    auto [it, inserted] = slot_of_.try_emplace(pgno, slots_used_);
    if (inserted) {
      if (slots_used_ == kMaxSlots) {
        slot_of_.erase(it);
        if (auto ok = flush(); !ok) return ok;
        it = slot_of_.try_emplace(pgno, slots_used_).first;
      }
      if (slab_.size() < (slots_used_ + 1) * kPageSize) slab_.resize((slots_used_ + 1) * kPageSize);
      ++slots_used_;
    }
    std::memcpy(slab_.data() + it->second * kPageSize, image.data(), kPageSize);
    return {};
  }

  // A commit with database size `db_size`: pages past it are gone (and read as zeros if the
  // database grows again).
  Expected<void, LogError> commit(std::uint32_t db_size) {
    slot_of_.erase(slot_of_.upper_bound(db_size), slot_of_.end());
    if (file_pages_ > db_size) {
      if (auto ok = out_.truncate(offset_of(db_size + 1)); !ok) return ok;
      file_pages_ = db_size;
    }
    return {};
  }

  // Writes every pending page, then sizes the file to `db_size` pages.
  Expected<void, LogError> finish(std::uint32_t db_size) {
    if (auto ok = flush(); !ok) return ok;
    return out_.truncate(offset_of(db_size + 1));
  }

 private:
  static constexpr std::size_t kMaxSlots = 2048;  // 8 MiB of page images at most
  static constexpr std::size_t kMaxRun = 64;      // pages per pwritev

  off_t offset_of(std::uint32_t pgno) const {
    return static_cast<off_t>(base_ + (pgno - 1) * std::uint64_t{kPageSize});
  }

  Expected<void, LogError> flush() {
    std::vector<std::span<const std::byte>> run;
    std::uint32_t run_first = 0;
    auto write_run = [&]() -> Expected<void, LogError> {
      if (run.empty()) return {};
      auto ok = out_.write_gather_at(run, offset_of(run_first));
      file_pages_ = std::max<std::uint32_t>(file_pages_,
                                            run_first + static_cast<std::uint32_t>(run.size()) - 1);
      run.clear();
      return ok;
    };
    for (const auto& [pgno, slot] : slot_of_) {  // ascending page numbers
      if (!run.empty() && (pgno != run_first + run.size() || run.size() == kMaxRun)) {
        if (auto ok = write_run(); !ok) return ok;
      }
      if (run.empty()) run_first = pgno;
      run.emplace_back(slab_.data() + slot * kPageSize, kPageSize);
    }
    if (auto ok = write_run(); !ok) return ok;
    slot_of_.clear();
    slots_used_ = 0;
    return {};
  }

  const File& out_;
  const std::uint64_t base_;
  std::uint32_t file_pages_;                      // the file's length in pages
  std::map<std::uint32_t, std::size_t> slot_of_;  // page -> its newest image in slab_
  std::vector<std::byte> slab_;
  std::size_t slots_used_ = 0;
};

}  // namespace

Expected<MaterializeResult, LogError> materialize_into(const ReplicationLog& log, const File& out,
                                                       std::uint64_t base,
                                                       const MaterializeTarget& target) {
  const Frame first_available = log.first_available_frame();
  std::optional<SnapshotInfo> start;
  for (const SnapshotInfo& s : log.snapshots()) {
    if (s.frame <= target.frame && (!target.time_us || s.commit_time_us <= *target.time_us) &&
        s.frame + 1 >= first_available) {
      start = s;  // snapshots() is oldest first: keep the newest that fits
    }
  }
  MaterializeResult result;
  if (start) {
    auto snap = SnapshotFile::open(start->path, &log.log_id());
    if (!snap) return unexpected(std::move(snap).error());
    if (auto ok = snap->verify(); !ok) return unexpected(ok.error());
    if (auto ok = copy_snapshot(*snap, out, base); !ok) return unexpected(ok.error());
    result = MaterializeResult{start->frame, start->db_size, start->commit_time_us};
  } else if (first_available != 1) {
    return unexpected(log_error(LogErrc::kNeedSnapshot,
                                "NEED_SNAPSHOT: no snapshot at or before the target and the log "
                                "starts at frame " +
                                    std::to_string(first_available)));
  }
  if (auto ok = out.truncate(static_cast<off_t>(base + std::uint64_t{result.db_size} * kPageSize));
      !ok) {
    return unexpected(ok.error());
  }
  PendingImage image(out, base, result.db_size);
  auto reader = log.read_from(result.frame + 1);
  if (!reader) return unexpected(std::move(reader).error());
  TransactionView t;  // in the reader's buffer, not copied
  while (true) {
    const Frame first_frame = reader->next_frame();
    auto next = reader->next_view(t);
    if (!next) return unexpected(std::move(next).error());
    if (!*next) break;
    const Frame last_frame = first_frame + t.page_count() - 1;
    if (last_frame > target.frame) break;
    if (target.time_us && t.commit_time_us > *target.time_us) break;
    for (std::size_t i = 0; i < t.page_count(); ++i) {
      if (auto ok = image.put(t.pgnos[i], t.page(i)); !ok) return unexpected(ok.error());
    }
    if (auto ok = image.commit(t.db_size); !ok) return unexpected(ok.error());
    result = MaterializeResult{last_frame, t.db_size, t.commit_time_us};
  }
  if (auto ok = image.finish(result.db_size); !ok) return unexpected(ok.error());
  return result;
}

Expected<void, LogError> materialize_changes_into(const ReplicationLog& log, const File& out,
                                                  std::uint64_t base,
                                                  const SnapshotInfo* from,
                                                  std::uint32_t keep_pages,
                                                  const std::map<std::uint32_t, Frame>& changed,
                                                  std::uint32_t db_size) {
  std::uint32_t kept = 0;
  if (from) {
    auto snap = SnapshotFile::open(from->path, &log.log_id());
    if (!snap) return unexpected(std::move(snap).error());
    if (auto ok = snap->verify(); !ok) return unexpected(ok.error());
    if (auto ok = copy_snapshot(*snap, out, base); !ok) return unexpected(ok.error());
    kept = std::min(keep_pages, snap->page_count());
  }
  if (auto ok = out.truncate(static_cast<off_t>(base + std::uint64_t{kept} * kPageSize)); !ok) {
    return unexpected(ok.error());
  }
  PendingImage image(out, base, kept);
  std::vector<std::byte> page(kPageSize);
  for (const auto& [pgno, frame] : changed) {  // ascending page numbers
    if (pgno > db_size) break;
    if (auto ok = log.read_page(frame, pgno, page.data()); !ok) return ok;
    if (auto ok = image.put(pgno, page); !ok) return ok;
  }
  return image.finish(db_size);
}

Expected<MaterializeResult, LogError> materialize(const ReplicationLog& log,
                                                  const std::filesystem::path& out_db,
                                                  const MaterializeTarget& target) {
  auto out = File::open(out_db, O_RDWR | O_CREAT | O_TRUNC);
  if (!out) return unexpected(std::move(out).error());
  auto result = materialize_into(log, *out, 0, target);
  if (!result) return result;
  if (auto ok = out->datasync(); !ok) return unexpected(ok.error());
  return result;
}

}  // namespace quire::log
