// The overlay file `<db>-overlay` of a replica: which frame the base file holds, then one record
// per applied transaction that is not yet folded into the base file (docs/replica-apply.md,
// "On-disk files"). All integers are little-endian.
//
//   header (32 bytes): "QUIREOVL" | u32 version (1) | u32 page size (4096) | u64 base_frame |
//                      u32 base_npages | u32 crc32c of the preceding 28 bytes
//   record:            u32 magic 0x4F524543 | u32 count | u64 commit_frame | u32 db_size |
//                      u32 reserved (0) | count x u32 pgno | count x 4096-byte page |
//                      u32 crc32c of everything before it in the record | u32 magic 0x4F454E44
//
// The trailer is the record's commit marker: a record counts only when it is complete and its
// checksum matches. Reading stops at the first record that does not (the torn tail of a crash
// mid-append); the caller cuts the file back to the end of the valid prefix.
//
// Thread model: plain functions over files; the caller serialises writers.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "common/expected.h"

namespace quire::replica {

inline constexpr std::size_t kOverlayHeaderSize = 32;
inline constexpr std::size_t kRecordHeaderSize = 24;
inline constexpr std::size_t kRecordTrailerSize = 8;

struct OverlayHeader {
  std::uint64_t base_frame = 0;
  std::uint32_t base_npages = 0;
};

struct OverlayRecord {
  std::uint64_t commit_frame = 0;
  std::uint32_t db_size = 0;
  std::vector<std::uint32_t> pgnos;  // sorted ascending, distinct
  std::vector<std::byte> pages;      // page i at [i*4096, (i+1)*4096)
};

struct OverlayContents {
  OverlayHeader header;
  std::vector<OverlayRecord> records;
  std::uint64_t valid_end = 0;  // bytes of header + valid records
  std::uint64_t file_size = 0;
};

std::vector<std::byte> encode_overlay_header(const OverlayHeader& h);
// Appends the encoding of one record to `out`.
void encode_overlay_record(std::uint64_t commit_frame, std::uint32_t db_size,
                           std::span<const std::uint32_t> pgnos, std::span<const std::byte> pages,
                           std::vector<std::byte>& out);

// Reads the header and the valid prefix of records. An error when the file cannot be read or the
// header is damaged (that is not a torn tail: the header is only ever written via rename).
Expected<OverlayContents, std::string> read_overlay(const std::filesystem::path& path);

// Small POSIX helpers shared by the replica code; errors carry the path and strerror.
Expected<void, std::string> write_all(int fd, std::span<const std::byte> data, std::uint64_t off,
                                      const std::filesystem::path& path);
Expected<void, std::string> sync_fd(int fd, const std::filesystem::path& path);
Expected<void, std::string> sync_dir(const std::filesystem::path& dir);
// Writes `data` to `tmp`, fsyncs it, renames it to `path` and fsyncs the directory.
Expected<void, std::string> replace_file(const std::filesystem::path& path,
                                         const std::filesystem::path& tmp,
                                         std::span<const std::byte> data);
std::string errno_message(const std::string& what, const std::filesystem::path& path, int err);

}  // namespace quire::replica
