#include "log/snapshot.h"

#include <fcntl.h>

#include <cstdio>
#include <vector>

#include "log/crc32c.h"
#include "log/snapshot_writer.h"

namespace quire::log {

namespace {

constexpr std::uint32_t kPagesPerIo = 64;

Expected<void, LogError> check_pgno(std::uint32_t pgno, std::uint32_t count,
                                    const std::filesystem::path& path) {
  if (pgno == 0 || pgno > count) {
    return unexpected(
        log_error(LogErrc::kInvalidArgument, path.string() + ": no page " + std::to_string(pgno)));
  }
  return {};
}

}  // namespace

std::filesystem::path snapshot_path(const std::filesystem::path& dir, Frame frame) {
  char name[64];
  std::snprintf(name, sizeof name, "snapshot-%020llu.qsnap",
                static_cast<unsigned long long>(frame));
  return dir / name;
}

Expected<FilePageSource, LogError> FilePageSource::open(const std::filesystem::path& db_path) {
  auto f = File::open(db_path, O_RDONLY);
  if (!f) return unexpected(std::move(f).error());
  auto size = f->size();
  if (!size) return unexpected(std::move(size).error());
  if (*size % static_cast<off_t>(kPageSize) != 0) {
    return unexpected(
        log_error(LogErrc::kIncompatible, db_path.string() + ": size is not a multiple of 4096"));
  }
  FilePageSource s;
  s.file_ = std::move(f.value());
  s.pages_ = static_cast<std::uint32_t>(*size / static_cast<off_t>(kPageSize));
  return s;
}

Expected<void, LogError> FilePageSource::read_page(std::uint32_t pgno,
                                                   std::span<std::byte> out) const {
  assert(out.size() == kPageSize);
  if (auto ok = check_pgno(pgno, pages_, file_.path()); !ok) return ok;
  auto got = file_.read_at(out.data(), kPageSize, static_cast<off_t>((pgno - 1) * kPageSize));
  if (!got) return unexpected(std::move(got).error());
  if (*got != kPageSize) {
    return unexpected(log_error(LogErrc::kIo, file_.path().string() + ": short read"));
  }
  return {};
}

Expected<SnapshotFile, LogError> SnapshotFile::open(const std::filesystem::path& path,
                                                    const LogId* expect) {
  auto f = File::open(path, O_RDONLY);
  if (!f) return unexpected(std::move(f).error());
  std::vector<std::uint8_t> raw(kSnapshotHeaderSize);
  auto got = f->read_at(raw.data(), raw.size(), 0);
  if (!got) return unexpected(std::move(got).error());
  std::string why = "truncated header";
  std::optional<SnapshotHeader> h;
  if (*got == raw.size()) h = decode_snapshot_header(raw.data(), why);
  if (!h) {
    return unexpected(log_error(LogErrc::kCorrupt, path.string() + ": bad snapshot: " + why));
  }
  if (expect != nullptr && h->log_id != *expect) {
    return unexpected(
        log_error(LogErrc::kIncompatible,
                  path.string() + ": snapshot of another log " + format_log_id(h->log_id)));
  }
  auto size = f->size();
  if (!size) return unexpected(std::move(size).error());
  if (static_cast<std::uint64_t>(*size) != (1 + std::uint64_t{h->db_size}) * kPageSize) {
    return unexpected(log_error(LogErrc::kCorrupt, path.string() + ": snapshot size " +
                                                       std::to_string(*size) + " does not match " +
                                                       std::to_string(h->db_size) + " pages"));
  }
  SnapshotFile s;
  s.file_ = std::move(f.value());
  s.info_ = SnapshotInfo{h->frame, h->db_size, h->commit_time_us, path};
  s.log_id_ = h->log_id;
  s.pages_checksum_ = h->pages_checksum;
  return s;
}

Expected<void, LogError> SnapshotFile::read_page(std::uint32_t pgno,
                                                 std::span<std::byte> out) const {
  assert(out.size() == kPageSize);
  if (auto ok = check_pgno(pgno, info_.db_size, info_.path); !ok) return ok;
  auto got = file_.read_at(out.data(), kPageSize, static_cast<off_t>(pgno * kPageSize));
  if (!got) return unexpected(std::move(got).error());
  if (*got != kPageSize) {
    return unexpected(log_error(LogErrc::kCorrupt, info_.path.string() + ": short snapshot"));
  }
  return {};
}

Expected<void, LogError> SnapshotFile::verify() const {
  auto sum = pages_checksum(file_, info_.db_size);
  if (!sum) return unexpected(std::move(sum).error());
  if (*sum != pages_checksum_) {
    return unexpected(
        log_error(LogErrc::kCorrupt, info_.path.string() + ": snapshot pages checksum mismatch"));
  }
  return {};
}

Expected<std::uint32_t, LogError> pages_checksum(const File& file, std::uint32_t db_size) {
  std::vector<std::byte> buf(kPagesPerIo * kPageSize);
  std::uint32_t crc = 0;
  for (std::uint32_t p = 1; p <= db_size; p += kPagesPerIo) {
    const std::uint32_t n = std::min(kPagesPerIo, db_size - p + 1);
    auto got = file.read_at(buf.data(), n * kPageSize, static_cast<off_t>(p * kPageSize));
    if (!got) return unexpected(std::move(got).error());
    if (*got != n * kPageSize) {
      return unexpected(log_error(LogErrc::kCorrupt, file.path().string() + ": short snapshot"));
    }
    crc = crc32c(crc, buf.data(), n * kPageSize);
  }
  return crc;
}

Expected<File, LogError> begin_snapshot_file(const std::filesystem::path& dir, Frame frame) {
  std::filesystem::path tmp = snapshot_path(dir, frame);
  tmp += ".tmp";
  return File::open(tmp, O_RDWR | O_CREAT | O_TRUNC);
}

Expected<SnapshotInfo, LogError> finish_snapshot_file(File tmp, const std::filesystem::path& dir,
                                                      const LogId& log_id, Frame frame,
                                                      std::int64_t commit_time_us,
                                                      std::uint32_t db_size) {
  if (auto ok = tmp.truncate(static_cast<off_t>((1 + std::uint64_t{db_size}) * kPageSize)); !ok) {
    return unexpected(ok.error());
  }
  auto sum = pages_checksum(tmp, db_size);
  if (!sum) return unexpected(std::move(sum).error());
  SnapshotHeader h{log_id, frame, db_size, *sum, commit_time_us};
  std::vector<std::uint8_t> raw(kSnapshotHeaderSize);
  encode_snapshot_header(h, raw.data());
  if (auto ok = tmp.write_at(raw.data(), raw.size(), 0); !ok) return unexpected(ok.error());
  if (auto ok = tmp.datasync(); !ok) return unexpected(ok.error());
  const std::filesystem::path final_path = snapshot_path(dir, frame);
  if (auto ok = rename_file(tmp.path(), final_path); !ok) return unexpected(ok.error());
  if (auto ok = sync_directory(dir); !ok) return unexpected(ok.error());
  return SnapshotInfo{frame, db_size, commit_time_us, final_path};
}

Expected<SnapshotInfo, LogError> write_snapshot_file(const std::filesystem::path& dir,
                                                     const LogId& log_id, Frame frame,
                                                     std::int64_t commit_time_us,
                                                     const PageSource& pages) {
  auto tmp = begin_snapshot_file(dir, frame);
  if (!tmp) return unexpected(std::move(tmp).error());
  const std::uint32_t n = pages.page_count();
  std::vector<std::byte> page(kPageSize);
  for (std::uint32_t p = 1; p <= n; ++p) {
    if (auto ok = pages.read_page(p, page); !ok) return unexpected(ok.error());
    if (auto ok = tmp->write_at(page.data(), kPageSize, static_cast<off_t>(p * kPageSize)); !ok) {
      return unexpected(ok.error());
    }
  }
  return finish_snapshot_file(std::move(tmp.value()), dir, log_id, frame, commit_time_us, n);
}

}  // namespace quire::log
