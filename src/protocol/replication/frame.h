// The replication frame that wal_log.Frame.data carries: a 24-byte little-endian header, then
// one 4096-byte page image. This is libSQL's own log format, not SQLite's WAL frame (whose header
// is big-endian and holds salts).
//
//   offset  size  field
//   0       8     frame_no    position in the primary's replication log (0-based)
//   8       8     checksum    rolling checksum; the replica never checks it
//   16      4     page_no     1-based SQLite page number
//   20      4     size_after  database size in pages after the commit, on a transaction's
//                             commit frame; 0 on every other frame
//   24      4096  page image  (the client's page size is fixed at 4096)
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/replication/messages.h"

namespace quire::replication {

inline constexpr std::size_t kFrameHeaderSize = 24;
inline constexpr std::size_t kPageSize = 4096;
inline constexpr std::size_t kFrameSize = kFrameHeaderSize + kPageSize;  // 4120

struct FrameHeader {
  std::uint64_t frame_no = 0;
  std::uint64_t checksum = 0;
  std::uint32_t page_no = 0;
  std::uint32_t size_after = 0;

  bool is_commit() const { return size_after != 0; }
  bool operator==(const FrameHeader&) const = default;
};

// Writes exactly kFrameHeaderSize bytes at out.
void write_frame_header(const FrameHeader& h, char* out);
std::string encode_frame_header(const FrameHeader& h);
// Reads the header at the start of bytes; needs at least kFrameHeaderSize bytes.
Decoded<FrameHeader> decode_frame_header(std::string_view bytes);

// Frame.data for a page: header then page. The page must be kPageSize bytes (a caller bug
// otherwise; pages come from our own database, never from a client).
std::string make_frame_data(const FrameHeader& h, std::string_view page);

struct FrameView {
  FrameHeader header;
  std::string_view page;  // points into the decoded input
};
// Splits Frame.data; it must be exactly kFrameSize bytes, as the client requires.
Decoded<FrameView> decode_frame_data(std::string_view data);

}  // namespace quire::replication
