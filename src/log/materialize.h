// Building a database file from the replication log: the newest usable snapshot, then every
// transaction after it up to a target (each page at (pgno-1)*4096, truncate to db_size at each
// commit). Restore / point-in-time recovery and replica bootstrap use it; the log's snapshot()
// writes its images with it.
//
// Thread model: runs concurrently with appends to the log (it reads through a LogReader).
#pragma once

#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>

#include "common/expected.h"
#include "log/file.h"
#include "log/log.h"

namespace quire::log {

struct MaterializeTarget {
  // Apply transactions whose commit frame is <= frame.
  Frame frame = std::numeric_limits<Frame>::max();
  // And whose commit time is <= time_us, when set.
  std::optional<std::int64_t> time_us;
};

struct MaterializeResult {
  Frame frame = 0;  // commit frame of the last transaction applied (0: none, empty database)
  std::uint32_t db_size = 0;
  std::int64_t commit_time_us = 0;
};

// Writes the database as of `target` to `out_db` (created or truncated, fdatasync'ed before
// returning; the caller renames it into place). kNeedSnapshot when the log no longer holds the
// frames and no snapshot lies at or before the target.
Expected<MaterializeResult, LogError> materialize(const ReplicationLog& log,
                                                  const std::filesystem::path& out_db,
                                                  const MaterializeTarget& target = {});

// The same into an open file whose page p sits at byte base_offset + (p-1)*4096. Does not sync.
Expected<MaterializeResult, LogError> materialize_into(const ReplicationLog& log, const File& out,
                                                       std::uint64_t base_offset,
                                                       const MaterializeTarget& target);

// The log's incremental snapshot (ReplicationLog::snapshot()): the snapshot `from` cut to
// `keep_pages` pages (null: an empty database, for a log that still starts at frame 1), then for
// each page in `changed` its image at the frame given (read with ReplicationLog::read_page), the
// whole sized to `db_size` pages. Pages are written in ascending order, runs of adjacent pages
// with one pwritev. Does not sync.
Expected<void, LogError> materialize_changes_into(const ReplicationLog& log, const File& out,
                                                  std::uint64_t base_offset,
                                                  const SnapshotInfo* from,
                                                  std::uint32_t keep_pages,
                                                  const std::map<std::uint32_t, Frame>& changed,
                                                  std::uint32_t db_size);

}  // namespace quire::log
