#include "backup/object_format.h"

#include <openssl/evp.h>
#include <zstd.h>

#include <cstring>
#include <stdexcept>

#include "backup/chunk_cipher.h"
#include "log/crc32c.h"

namespace quire::backup {

const char* to_string(BackupErrc kind) {
  switch (kind) {
    case BackupErrc::kNoBackup: return "no backup";
    case BackupErrc::kMissingObject: return "missing object";
    case BackupErrc::kCorrupt: return "corrupt";
    case BackupErrc::kGap: return "gap";
    case BackupErrc::kOutOfRange: return "out of range";
    case BackupErrc::kInvalidArgument: return "invalid argument";
    case BackupErrc::kStorage: return "storage";
    case BackupErrc::kIo: return "io";
    case BackupErrc::kEncryption: return "encryption";
  }
  return "?";
}

std::string snapshot_key(log::Frame frame) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "snapshots/%016llx.qbsnap", static_cast<unsigned long long>(frame));
  return buf;
}

std::string batch_key(log::Frame first) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "batches/%016llx.qbbat", static_cast<unsigned long long>(first));
  return buf;
}

std::string batch_key(log::Frame first, log::Frame last) {
  char buf[80];
  std::snprintf(buf, sizeof buf, "batches/%016llx-%016llx.qbbat",
                static_cast<unsigned long long>(first), static_cast<unsigned long long>(last));
  return buf;
}

std::string index_key(log::Frame first, log::Frame last, std::uint32_t level) {
  char buf[96];
  if (level <= 1)
    std::snprintf(buf, sizeof buf, "indexes/%016llx-%016llx.json",
                  static_cast<unsigned long long>(first), static_cast<unsigned long long>(last));
  else
    std::snprintf(buf, sizeof buf, "indexes/%016llx-%016llx.l%u.json",
                  static_cast<unsigned long long>(first), static_cast<unsigned long long>(last),
                  level);
  return buf;
}

std::optional<log::Frame> key_first_frame(std::string_view rel) {
  for (std::string_view dir : {std::string_view("batches/"), std::string_view("indexes/")}) {
    if (!rel.starts_with(dir) || rel.size() < dir.size() + 16) continue;
    log::Frame f = 0;
    for (char c : rel.substr(dir.size(), 16)) {
      const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (d < 0) return std::nullopt;
      f = f * 16 + static_cast<log::Frame>(d);
    }
    return f;
  }
  return std::nullopt;
}

log::Frame Manifest::last_frame() const {
  log::Frame f = snapshots.empty() ? 0 : snapshots.back().frame;
  if (auto e = batch_extent()) f = std::max(f, e->last_frame);
  return f;
}

std::optional<BatchExtent> Manifest::batch_extent() const {
  if (indexes.empty() && batches.empty()) return std::nullopt;
  BatchExtent e;
  if (!indexes.empty()) {
    const auto& i = indexes.front();
    e.first_frame = i.first_frame;
    e.first_commit_frame = i.first_commit_frame;
    e.first_commit_time_us = i.first_commit_time_us;
  } else {
    const auto& b = batches.front();
    e.first_frame = b.first_frame;
    e.first_commit_frame = b.first_commit_frame;
    e.first_commit_time_us = b.first_commit_time_us;
  }
  if (!batches.empty()) {
    e.last_frame = batches.back().last_frame;
    e.last_commit_time_us = batches.back().last_commit_time_us;
  } else {
    e.last_frame = indexes.back().last_frame;
    e.last_commit_time_us = indexes.back().last_commit_time_us;
  }
  return e;
}

std::size_t Manifest::batch_count() const {
  std::size_t n = batches.size();
  for (const auto& i : indexes) n += static_cast<std::size_t>(i.batches);
  return n;
}

}  // namespace quire::backup

namespace quire::backup::detail {

void put_u32(std::uint8_t* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
void put_u64(std::uint8_t* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
std::uint32_t get_u32(const std::uint8_t* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
std::uint64_t get_u64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

void encode_header(const ObjectHeader& h, std::uint8_t* out) {
  std::memset(out, 0, kHeaderSize);
  std::memcpy(out, h.kind == ObjectKind::kSnapshot ? kSnapshotMagic : kBatchMagic, 8);
  put_u32(out + 8, kVersion);
  put_u32(out + 12, static_cast<std::uint32_t>(log::kPageSize));
  std::memcpy(out + 16, h.log_id.data(), 16);
  put_u64(out + 32, h.first_frame);
  put_u64(out + 40, h.last_frame);
  put_u32(out + 48, h.db_size);
  put_u32(out + 52, h.txns);
  put_u64(out + 56, static_cast<std::uint64_t>(h.first_time_us));
  put_u64(out + 64, static_cast<std::uint64_t>(h.last_time_us));
  put_u32(out + 72, h.flags);
  put_u64(out + 100, h.first_commit_frame);
  if (h.encrypted()) {
    put_u32(out + 76, h.chunk_bytes);
    std::memcpy(out + 80, h.key_id.data(), h.key_id.size());
    std::memcpy(out + 88, h.nonce.data(), h.nonce.size());
  }
  put_u32(out + 124, log::crc32c(0, out, 124));
}

std::optional<ObjectHeader> decode_header(const std::uint8_t* in, std::string& why) {
  ObjectHeader h;
  if (std::memcmp(in, kSnapshotMagic, 8) == 0) {
    h.kind = ObjectKind::kSnapshot;
  } else if (std::memcmp(in, kBatchMagic, 8) == 0) {
    h.kind = ObjectKind::kBatch;
  } else {
    why = "bad magic";
    return std::nullopt;
  }
  if (get_u32(in + 124) != log::crc32c(0, in, 124)) {
    why = "header checksum mismatch";
    return std::nullopt;
  }
  if (get_u32(in + 8) != kVersion) {
    why = "unsupported version " + std::to_string(get_u32(in + 8));
    return std::nullopt;
  }
  if (get_u32(in + 12) != log::kPageSize) {
    why = "unsupported page size " + std::to_string(get_u32(in + 12));
    return std::nullopt;
  }
  std::memcpy(h.log_id.data(), in + 16, 16);
  h.first_frame = get_u64(in + 32);
  h.last_frame = get_u64(in + 40);
  h.db_size = get_u32(in + 48);
  h.txns = get_u32(in + 52);
  h.first_time_us = static_cast<std::int64_t>(get_u64(in + 56));
  h.last_time_us = static_cast<std::int64_t>(get_u64(in + 64));
  h.flags = get_u32(in + 72);
  h.first_commit_frame = get_u64(in + 100);
  if ((h.flags & ~kKnownFlags) != 0) {
    why = "unsupported header flags " + std::to_string(h.flags);
    return std::nullopt;
  }
  if (h.encrypted()) {
    h.chunk_bytes = get_u32(in + 76);
    std::memcpy(h.key_id.data(), in + 80, h.key_id.size());
    std::memcpy(h.nonce.data(), in + 88, h.nonce.size());
    if (h.chunk_bytes < kMinChunkBytes || h.chunk_bytes > kMaxChunkBytes) {
      why = "unsupported encryption chunk size " + std::to_string(h.chunk_bytes);
      return std::nullopt;
    }
  }
  return h;
}

void encode_trailer(const ObjectTrailer& t, std::uint8_t* out) {
  std::memset(out, 0, kTrailerSize);
  std::memcpy(out, kTrailerMagic, 8);
  put_u64(out + 8, t.content_length);
  std::memcpy(out + 16, t.content_sha256.data(), 32);
  put_u32(out + 60, log::crc32c(0, out, 60));
}

std::optional<ObjectTrailer> decode_trailer(const std::uint8_t* in, std::string& why) {
  if (std::memcmp(in, kTrailerMagic, 8) != 0) {
    why = "bad trailer magic";
    return std::nullopt;
  }
  if (get_u32(in + 60) != log::crc32c(0, in, 60)) {
    why = "trailer checksum mismatch";
    return std::nullopt;
  }
  ObjectTrailer t;
  t.content_length = get_u64(in + 8);
  std::memcpy(t.content_sha256.data(), in + 16, 32);
  return t;
}

std::string check_checksummed_zstd(const void* payload, std::size_t len, bool whole) {
  // RFC 8878, 3.1.1: a frame starts with the magic number 0xFD2FB528 (little-endian) and the
  // frame header descriptor, whose bit 2 is the content checksum flag.
  const auto* p = static_cast<const std::uint8_t*>(payload);
  if (len < 5 || get_u32(p) != 0xFD2FB528u) return "the zstd payload does not start with a frame";
  if ((p[4] & 0x04) == 0) return "zstd frame without its content checksum";
  if (whole) {
    const std::size_t frame = ZSTD_findFrameCompressedSize(payload, len);
    if (ZSTD_isError(frame)) return std::string("zstd frame: ") + ZSTD_getErrorName(frame);
    if (frame != len) return "the zstd payload is more than one frame";
  }
  return {};
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr || EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256 init failed");
}
Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }
void Sha256::update(const void* data, std::size_t n) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data, n);
}
std::array<std::uint8_t, 32> Sha256::finish() {
  std::array<std::uint8_t, 32> out{};
  unsigned int len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), out.data(), &len);
  return out;
}

std::string to_hex(const std::uint8_t* data, std::size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string s(2 * n, '0');
  for (std::size_t i = 0; i < n; ++i) {
    s[2 * i] = digits[data[i] >> 4];
    s[2 * i + 1] = digits[data[i] & 15];
  }
  return s;
}

BackupError error(BackupErrc kind, std::string message) {
  return BackupError{kind, std::move(message), std::nullopt};
}

BackupError storage_failure(const std::string& what, const storage::StorageError& e) {
  BackupErrc kind = e.kind == storage::StorageErrc::kNotFound ? BackupErrc::kMissingObject
                                                              : BackupErrc::kStorage;
  return BackupError{kind, what + ": " + storage::to_string(e.kind) + ": " + e.message, e.kind};
}

}  // namespace quire::backup::detail
