#include "log/format.h"

#include <cstdio>
#include <cstring>

#include "log/crc32c.h"

namespace quire::log {

namespace {

constexpr char kSegmentMagic[8] = {'Q', 'R', 'L', 'O', 'G', 'S', 'E', 'G'};
constexpr char kSnapshotMagic[8] = {'Q', 'R', 'L', 'O', 'G', 'S', 'N', 'P'};

void put32(std::uint8_t* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
void put64(std::uint8_t* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
std::uint32_t get32(const std::uint8_t* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
std::uint64_t get64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

void put_wal(std::uint8_t* p, const std::optional<WalPosition>& w) {
  const WalPosition v = w.value_or(WalPosition{});
  put32(p, v.salt1);
  put32(p + 4, v.salt2);
  put32(p + 8, v.frame);
  put32(p + 12, v.checksum1);
  put32(p + 16, v.checksum2);
}
// A position with frame 0 is "none": a transaction always has a commit frame >= 1.
std::optional<WalPosition> get_wal(const std::uint8_t* p) {
  WalPosition v{get32(p), get32(p + 4), get32(p + 8), get32(p + 12), get32(p + 16)};
  if (v.frame == 0) return std::nullopt;
  return v;
}

// Common prefix of segment and snapshot headers: magic, version, page size, log id.
bool check_prefix(const std::uint8_t* in, const char* magic, std::string& why) {
  if (std::memcmp(in, magic, 8) != 0) {
    why = "bad magic";
    return false;
  }
  if (get32(in + 8) != kFormatVersion) {
    why = "format version " + std::to_string(get32(in + 8)) + " (this build reads 1)";
    return false;
  }
  if (get32(in + 12) != kPageSize) {
    why = "page size " + std::to_string(get32(in + 12));
    return false;
  }
  return true;
}

}  // namespace

std::string format_log_id(const LogId& id) {
  std::string s;
  char hex[3];
  for (std::size_t i = 0; i < id.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
    std::snprintf(hex, sizeof hex, "%02x", id[i]);
    s += hex;
  }
  return s;
}

std::optional<LogId> parse_log_id(std::string_view s) {
  LogId id{};
  std::size_t n = 0;
  int hi = -1;
  for (char c : s) {
    if (c == '-') continue;
    int v;
    if (c >= '0' && c <= '9') v = c - '0';
    else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
    else return std::nullopt;
    if (hi < 0) {
      hi = v;
    } else {
      if (n >= 16) return std::nullopt;
      id[n++] = static_cast<std::uint8_t>(hi << 4 | v);
      hi = -1;
    }
  }
  if (n != 16 || hi >= 0) return std::nullopt;
  return id;
}

void encode_segment_header(const SegmentHeader& h, std::uint8_t* out) {
  std::memset(out, 0, kSegmentHeaderSize);
  std::memcpy(out, kSegmentMagic, 8);
  put32(out + 8, kFormatVersion);
  put32(out + 12, kPageSize);
  std::memcpy(out + 16, h.log_id.data(), 16);
  put64(out + 32, h.first_frame);
  put32(out + 40, h.chain_seed);
  put32(out + 44, h.prev.db_size);
  put64(out + 48, static_cast<std::uint64_t>(h.prev.commit_time_us));
  put_wal(out + 56, h.prev.wal);
  put32(out + 124, crc32c(0, out, 124));
}

std::optional<SegmentHeader> decode_segment_header(const std::uint8_t* in, std::string& why) {
  if (!check_prefix(in, kSegmentMagic, why)) return std::nullopt;
  if (get32(in + 124) != crc32c(0, in, 124)) {
    why = "header checksum mismatch";
    return std::nullopt;
  }
  SegmentHeader h;
  std::memcpy(h.log_id.data(), in + 16, 16);
  h.first_frame = get64(in + 32);
  h.chain_seed = get32(in + 40);
  h.prev.db_size = get32(in + 44);
  h.prev.commit_time_us = static_cast<std::int64_t>(get64(in + 48));
  h.prev.wal = get_wal(in + 56);
  if (h.first_frame == 0) {
    why = "first frame 0";
    return std::nullopt;
  }
  return h;
}

std::uint32_t encode_record(const RecordHeader& h, const std::byte* page,
                            std::uint32_t prev_checksum, std::uint8_t* out) {
  std::memset(out, 0, kRecordHeaderSize);
  put64(out, h.frame_no);
  put64(out + 8, h.txn_first_frame);
  put32(out + 16, h.pgno);
  put32(out + 20, h.db_size);
  put64(out + 24, static_cast<std::uint64_t>(h.commit_time_us));
  put_wal(out + 32, h.wal);
  std::uint32_t c = crc32c(prev_checksum, out, 60);
  c = crc32c(c, page, kPageSize);
  put32(out + 60, c);
  return c;
}

RecordHeader decode_record_header(const std::uint8_t* in) {
  RecordHeader h;
  h.frame_no = get64(in);
  h.txn_first_frame = get64(in + 8);
  h.pgno = get32(in + 16);
  h.db_size = get32(in + 20);
  h.commit_time_us = static_cast<std::int64_t>(get64(in + 24));
  h.wal = get_wal(in + 32);
  h.checksum = get32(in + 60);
  return h;
}

std::uint32_t record_checksum(const std::uint8_t* record, std::uint32_t prev_checksum) {
  std::uint32_t c = crc32c(prev_checksum, record, 60);
  return crc32c(c, record + kRecordHeaderSize, kPageSize);
}

void encode_snapshot_header(const SnapshotHeader& h, std::uint8_t* out) {
  std::memset(out, 0, kSnapshotHeaderSize);
  std::memcpy(out, kSnapshotMagic, 8);
  put32(out + 8, kFormatVersion);
  put32(out + 12, kPageSize);
  std::memcpy(out + 16, h.log_id.data(), 16);
  put64(out + 32, h.frame);
  put32(out + 40, h.db_size);
  put32(out + 44, h.pages_checksum);
  put64(out + 48, static_cast<std::uint64_t>(h.commit_time_us));
  put32(out + 60, crc32c(0, out, 60));
}

std::optional<SnapshotHeader> decode_snapshot_header(const std::uint8_t* in, std::string& why) {
  if (!check_prefix(in, kSnapshotMagic, why)) return std::nullopt;
  if (get32(in + 60) != crc32c(0, in, 60)) {
    why = "header checksum mismatch";
    return std::nullopt;
  }
  SnapshotHeader h;
  std::memcpy(h.log_id.data(), in + 16, 16);
  h.frame = get64(in + 32);
  h.db_size = get32(in + 40);
  h.pages_checksum = get32(in + 44);
  h.commit_time_us = static_cast<std::int64_t>(get64(in + 48));
  return h;
}

}  // namespace quire::log
