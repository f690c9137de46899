// Byte layouts of the replication log's files (docs/formats/replication-log.md): encoding and
// decoding of segment headers, record headers and snapshot headers. No I/O here.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "log/transaction.h"

namespace quire::log {

using Frame = std::uint64_t;
using LogId = std::array<std::uint8_t, 16>;

std::string format_log_id(const LogId& id);  // 8-4-4-4-12 hex, as a UUID
// 32 hex digits, with or without format_log_id's dashes (any case); nullopt otherwise.
std::optional<LogId> parse_log_id(std::string_view s);

inline constexpr std::uint32_t kFormatVersion = 1;
inline constexpr std::size_t kSegmentHeaderSize = 128;
inline constexpr std::size_t kRecordHeaderSize = 64;
inline constexpr std::size_t kRecordSize = kRecordHeaderSize + kPageSize;
inline constexpr std::size_t kSnapshotHeaderSize = kPageSize;

// The last transaction before a segment's first record (its commit), as carried by the header.
struct PrevCommit {
  std::uint32_t db_size = 0;  // 0: there was none
  std::int64_t commit_time_us = 0;
  std::optional<WalPosition> wal;
};

struct SegmentHeader {
  LogId log_id{};
  Frame first_frame = 1;
  std::uint32_t chain_seed = 0;
  PrevCommit prev;
};

struct RecordHeader {
  Frame frame_no = 0;
  Frame txn_first_frame = 0;
  std::uint32_t pgno = 0;
  std::uint32_t db_size = 0;  // non-zero on the commit record only
  std::int64_t commit_time_us = 0;
  std::optional<WalPosition> wal;
  std::uint32_t checksum = 0;
};

struct SnapshotHeader {
  LogId log_id{};
  Frame frame = 0;
  std::uint32_t db_size = 0;
  std::uint32_t pages_checksum = 0;
  std::int64_t commit_time_us = 0;
};

void encode_segment_header(const SegmentHeader& h, std::uint8_t* out);  // kSegmentHeaderSize
// Returns nullopt and sets `why` when the bytes are not a valid version-1 header.
std::optional<SegmentHeader> decode_segment_header(const std::uint8_t* in, std::string& why);

// Writes the 64-byte header of a record whose page is `page`, computing the chained checksum
// from `prev_checksum`; returns the record's checksum.
std::uint32_t encode_record(const RecordHeader& h, const std::byte* page,
                            std::uint32_t prev_checksum, std::uint8_t* out);
// Decodes a record header (does not verify it).
RecordHeader decode_record_header(const std::uint8_t* in);
// The checksum a record (64-byte header + page, contiguous) must carry after `prev_checksum`.
std::uint32_t record_checksum(const std::uint8_t* record, std::uint32_t prev_checksum);

void encode_snapshot_header(const SnapshotHeader& h, std::uint8_t* out);  // kSnapshotHeaderSize
std::optional<SnapshotHeader> decode_snapshot_header(const std::uint8_t* in, std::string& why);

inline std::uint64_t segment_record_offset(Frame first_frame, Frame frame) {
  return kSegmentHeaderSize + (frame - first_frame) * kRecordSize;
}

}  // namespace quire::log
