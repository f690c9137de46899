// EncryptionKey and its key file (docs/formats/backup.md, "Encryption").
#include "backup/encryption.h"

#include <openssl/crypto.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "backup/object_format.h"

namespace quire::backup {

namespace {

constexpr char kIdLabel[] = "quire-backup-key-id-v1";

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

BackupError bad_key(const std::string& what, const std::string& why) {
  return detail::error(BackupErrc::kInvalidArgument,
                       "encryption key " + what + ": " + why +
                           "; expected exactly 32 raw bytes or 64 hex digits, optionally "
                           "followed by a newline (for instance `openssl rand -hex 32 > FILE`)");
}

}  // namespace

EncryptionKey::EncryptionKey(const Bytes& bytes) : bytes_(bytes) {
  detail::Sha256 sha;
  sha.update(kIdLabel, sizeof kIdLabel - 1);
  sha.update(bytes_.data(), bytes_.size());
  auto digest = sha.finish();
  std::memcpy(id_.data(), digest.data(), id_.size());
  OPENSSL_cleanse(digest.data(), digest.size());
}

EncryptionKey::~EncryptionKey() { OPENSSL_cleanse(bytes_.data(), bytes_.size()); }

std::string EncryptionKey::id_hex() const { return detail::to_hex(id_.data(), id_.size()); }

BackupResult<EncryptionKey> parse_encryption_key(std::string_view s, const std::string& what) {
  // Exactly 32 bytes are the raw key as they are, even when the last of them is a newline byte
  // (one random key in 256 ends with 0x0a); anything longer may carry one line ending.
  if (s.size() != EncryptionKey::kSize) {
    if (s.ends_with("\r\n")) s.remove_suffix(2);
    else if (s.ends_with("\n")) s.remove_suffix(1);
  }
  EncryptionKey::Bytes bytes{};
  if (s.size() == 2 * EncryptionKey::kSize) {
    bool hex = true;
    for (std::size_t i = 0; i < EncryptionKey::kSize && hex; ++i) {
      const int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
      hex = hi >= 0 && lo >= 0;
      bytes[i] = static_cast<std::uint8_t>(hi << 4 | lo);
    }
    if (!hex) {
      OPENSSL_cleanse(bytes.data(), bytes.size());
      return unexpected(bad_key(what, "64 characters that are not all hex digits"));
    }
  } else if (s.size() == EncryptionKey::kSize) {
    std::memcpy(bytes.data(), s.data(), bytes.size());
  } else {
    return unexpected(bad_key(what, "holds " + std::to_string(s.size()) + " bytes"));
  }
  EncryptionKey key(bytes);
  OPENSSL_cleanse(bytes.data(), bytes.size());
  return key;
}

BackupResult<EncryptionKey> load_encryption_key(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return unexpected(detail::error(BackupErrc::kInvalidArgument,
                                    "encryption key file " + path.string() +
                                        ": cannot open: " + std::strerror(errno)));
  }
  // A key file is tiny; refuse to read a large file whole (a wrong path, a device).
  std::string contents(200, '\0');
  in.read(contents.data(), static_cast<std::streamsize>(contents.size()));
  contents.resize(static_cast<std::size_t>(in.gcount()));
  if (in.bad()) {
    return unexpected(
        detail::error(BackupErrc::kInvalidArgument, "encryption key file " + path.string() +
                                                        ": read failed"));
  }
  if (contents.size() == 200) return unexpected(bad_key("file " + path.string(), "is too large"));
  auto key = parse_encryption_key(contents, "file " + path.string());
  OPENSSL_cleanse(contents.data(), contents.size());
  return key;
}

}  // namespace quire::backup
