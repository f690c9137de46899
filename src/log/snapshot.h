// Page sources and snapshot files of the replication log (docs/formats/replication-log.md,
// "Snapshot file"): a snapshot is the full database image as of one commit frame.
//
// Thread model: a SnapshotFile or FilePageSource may be read from several threads at once
// (positioned reads only).
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>

#include "common/expected.h"
#include "log/file.h"
#include "log/format.h"
#include "log/log_error.h"

namespace quire::log {

// Something that yields database pages: a database file, a snapshot, a test's memory.
class PageSource {
 public:
  virtual ~PageSource() = default;
  virtual std::uint32_t page_count() const = 0;
  // Fills `out` (kPageSize bytes) with page `pgno`, 1 <= pgno <= page_count().
  virtual Expected<void, LogError> read_page(std::uint32_t pgno,
                                             std::span<std::byte> out) const = 0;
};

// The pages of a database file as it is on disk (for the base image of a new log: take it right
// after `PRAGMA journal_mode=WAL`, with no -wal content, or after a TRUNCATE checkpoint).
class FilePageSource final : public PageSource {
 public:
  // kIncompatible when the size is not a multiple of 4096.
  static Expected<FilePageSource, LogError> open(const std::filesystem::path& db_path);
  std::uint32_t page_count() const override { return pages_; }
  Expected<void, LogError> read_page(std::uint32_t pgno, std::span<std::byte> out) const override;

 private:
  File file_;
  std::uint32_t pages_ = 0;
};

struct SnapshotInfo {
  Frame frame = 0;  // the image is the database as of this commit frame
  std::uint32_t db_size = 0;
  std::int64_t commit_time_us = 0;
  std::filesystem::path path;
};

// An open snapshot file; its pages are the database as of info().frame.
class SnapshotFile final : public PageSource {
 public:
  // Checks the header (and log id when `expect` is given); kCorrupt/kIncompatible otherwise.
  static Expected<SnapshotFile, LogError> open(const std::filesystem::path& path,
                                               const LogId* expect = nullptr);
  const SnapshotInfo& info() const { return info_; }
  const LogId& log_id() const { return log_id_; }
  std::uint32_t page_count() const override { return info_.db_size; }
  Expected<void, LogError> read_page(std::uint32_t pgno, std::span<std::byte> out) const override;
  // Reads every page and checks the pages checksum: kCorrupt on mismatch.
  Expected<void, LogError> verify() const;
  const File& file() const { return file_; }

 private:
  File file_;
  SnapshotInfo info_;
  LogId log_id_{};
  std::uint32_t pages_checksum_ = 0;
};

// Writes `dir`/snapshot-<frame>.qsnap from `pages` crash-safely (tmp file, fdatasync, rename,
// directory fsync). The pages must be the database as of commit frame `frame`.
Expected<SnapshotInfo, LogError> write_snapshot_file(const std::filesystem::path& dir,
                                                     const LogId& log_id, Frame frame,
                                                     std::int64_t commit_time_us,
                                                     const PageSource& pages);

std::filesystem::path snapshot_path(const std::filesystem::path& dir, Frame frame);

}  // namespace quire::log
