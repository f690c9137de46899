// Internal steps of writing a snapshot file, shared by write_snapshot_file and the log's own
// snapshot() (which materialises the image straight into the file). Not part of the public API.
#pragma once

#include "log/snapshot.h"

namespace quire::log {

// Creates snapshot-<frame>.qsnap.tmp (truncated). Page p goes at offset p*4096.
Expected<File, LogError> begin_snapshot_file(const std::filesystem::path& dir, Frame frame);

// Sizes the file to db_size pages, checksums them, writes the header, syncs and renames it.
Expected<SnapshotInfo, LogError> finish_snapshot_file(File tmp, const std::filesystem::path& dir,
                                                      const LogId& log_id, Frame frame,
                                                      std::int64_t commit_time_us,
                                                      std::uint32_t db_size);

// CRC-32C of pages 1..db_size of a snapshot-layout file (page p at p*4096).
Expected<std::uint32_t, LogError> pages_checksum(const File& file, std::uint32_t db_size);

}  // namespace quire::log
