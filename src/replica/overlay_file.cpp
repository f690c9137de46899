// Encoding, reading and crash-safe writing of the overlay file (format in overlay_file.h).
#include "replica/overlay_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <cstring>

#include "log/crc32c.h"
#include "log/transaction.h"

namespace quire::replica {
namespace {

constexpr char kMagic[8] = {'Q', 'U', 'I', 'R', 'E', 'O', 'V', 'L'};
constexpr std::uint32_t kVersion = 1;
constexpr std::uint32_t kRecordMagic = 0x4F524543;
constexpr std::uint32_t kTrailerMagic = 0x4F454E44;

void put32(std::byte* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::byte>(v >> (8 * i));
}
void put64(std::byte* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::byte>(v >> (8 * i));
}
std::uint32_t get32(const std::byte* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= std::uint32_t{std::to_integer<std::uint8_t>(p[i])} << (8 * i);
  return v;
}
std::uint64_t get64(const std::byte* p) {
  return std::uint64_t{get32(p)} | std::uint64_t{get32(p + 4)} << 32;
}

}  // namespace

std::string errno_message(const std::string& what, const std::filesystem::path& path, int err) {
  return what + " " + path.string() + ": " + std::strerror(err);
}

std::vector<std::byte> encode_overlay_header(const OverlayHeader& h) {
  std::vector<std::byte> out(kOverlayHeaderSize);
  std::memcpy(out.data(), kMagic, sizeof kMagic);
  put32(&out[8], kVersion);
  put32(&out[12], static_cast<std::uint32_t>(log::kPageSize));
  put64(&out[16], h.base_frame);
  put32(&out[24], h.base_npages);
  put32(&out[28], log::crc32c(0, out.data(), 28));
  return out;
}

void encode_overlay_record(std::uint64_t commit_frame, std::uint32_t db_size,
                           std::span<const std::uint32_t> pgnos, std::span<const std::byte> pages,
                           std::vector<std::byte>& out) {
  assert(pages.size() == pgnos.size() * log::kPageSize);
  const std::size_t start = out.size();
  out.resize(start + kRecordHeaderSize + 4 * pgnos.size() + pages.size() + kRecordTrailerSize);
  std::byte* p = out.data() + start;
  put32(p, kRecordMagic);
  put32(p + 4, static_cast<std::uint32_t>(pgnos.size()));
  put64(p + 8, commit_frame);
  put32(p + 16, db_size);
  put32(p + 20, 0);
  p += kRecordHeaderSize;
  for (std::uint32_t pgno : pgnos) {
    put32(p, pgno);
    p += 4;
  }
  std::memcpy(p, pages.data(), pages.size());
  p += pages.size();
  const std::size_t body = static_cast<std::size_t>(p - (out.data() + start));
  put32(p, log::crc32c(0, out.data() + start, body));
  put32(p + 4, kTrailerMagic);
}

Expected<OverlayContents, std::string> read_overlay(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return unexpected(errno_message("open", path, errno));
  std::vector<std::byte> data;
  std::byte buf[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return unexpected(errno_message("read", path, err));
    }
    if (n == 0) break;
    data.insert(data.end(), buf, buf + n);
  }
  ::close(fd);

  OverlayContents out;
  out.file_size = data.size();
  if (data.size() < kOverlayHeaderSize || std::memcmp(data.data(), kMagic, sizeof kMagic) != 0 ||
      get32(&data[28]) != log::crc32c(0, data.data(), 28)) {
    return unexpected("corrupt overlay header in " + path.string());
  }
  if (get32(&data[8]) != kVersion || get32(&data[12]) != log::kPageSize) {
    return unexpected("unsupported overlay version or page size in " + path.string());
  }
  out.header.base_frame = get64(&data[16]);
  out.header.base_npages = get32(&data[24]);

  std::size_t pos = kOverlayHeaderSize;
  std::uint64_t last_frame = out.header.base_frame;
  while (data.size() - pos >= kRecordHeaderSize) {
    const std::byte* p = data.data() + pos;
    const std::uint32_t count = get32(p + 4);
    if (get32(p) != kRecordMagic || count == 0) break;
    const std::uint64_t len =
        kRecordHeaderSize + std::uint64_t{count} * (4 + log::kPageSize) + kRecordTrailerSize;
    if (len > data.size() - pos) break;  // torn: the record was not completely written
    const std::size_t body = static_cast<std::size_t>(len - kRecordTrailerSize);
    if (get32(p + body) != log::crc32c(0, p, body) || get32(p + body + 4) != kTrailerMagic) break;
    OverlayRecord rec;
    rec.commit_frame = get64(p + 8);
    rec.db_size = get32(p + 16);
    if (rec.commit_frame <= last_frame) {
      return unexpected("overlay record frames out of order in " + path.string());
    }
    rec.pgnos.resize(count);
    for (std::uint32_t i = 0; i < count; ++i) rec.pgnos[i] = get32(p + kRecordHeaderSize + 4 * i);
    const std::byte* pages = p + kRecordHeaderSize + 4 * std::size_t{count};
    rec.pages.assign(pages, pages + std::size_t{count} * log::kPageSize);
    last_frame = rec.commit_frame;
    out.records.push_back(std::move(rec));
    pos += static_cast<std::size_t>(len);
  }
  out.valid_end = pos;
  return out;
}

Expected<void, std::string> write_all(int fd, std::span<const std::byte> data, std::uint64_t off,
                                      const std::filesystem::path& path) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n =
        ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(off + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return unexpected(errno_message("write", path, errno));
    done += static_cast<std::size_t>(n);
  }
  return {};
}

Expected<void, std::string> sync_fd(int fd, const std::filesystem::path& path) {
  if (::fdatasync(fd) != 0) return unexpected(errno_message("fdatasync", path, errno));
  return {};
}

Expected<void, std::string> sync_dir(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return unexpected(errno_message("open", dir, errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return unexpected(errno_message("fsync", dir, err));
  return {};
}

Expected<void, std::string> replace_file(const std::filesystem::path& path,
                                         const std::filesystem::path& tmp,
                                         std::span<const std::byte> data) {
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return unexpected(errno_message("create", tmp, errno));
  auto r = write_all(fd, data, 0, tmp);
  if (r) r = sync_fd(fd, tmp);
  ::close(fd);
  if (!r) return r;
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return unexpected(errno_message("rename to " + path.string(), tmp, errno));
  }
  return sync_dir(path.parent_path());
}

}  // namespace quire::replica
