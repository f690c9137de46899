#include "log/materialize.h"

#include <fcntl.h>

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
  auto reader = log.read_from(result.frame + 1);
  if (!reader) return unexpected(std::move(reader).error());
  while (true) {
    auto next = reader->next();
    if (!next) return unexpected(std::move(next).error());
    if (!*next) break;
    const LoggedTransaction& t = **next;
    if (t.last_frame() > target.frame) break;
    if (target.time_us && t.txn.commit_time_us > *target.time_us) break;
    for (std::size_t i = 0; i < t.txn.page_count(); ++i) {
      const auto offset =
          static_cast<off_t>(base + (t.txn.pgnos[i] - 1) * std::uint64_t{kPageSize});
      if (auto ok = out.write_at(t.txn.page(i).data(), kPageSize, offset); !ok) {
        return unexpected(ok.error());
      }
    }
    const auto size = static_cast<off_t>(base + std::uint64_t{t.txn.db_size} * kPageSize);
    if (auto ok = out.truncate(size); !ok) return unexpected(ok.error());
    result = MaterializeResult{t.last_frame(), t.txn.db_size, t.txn.commit_time_us};
  }
  return result;
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
