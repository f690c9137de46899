// The client-side encryption key of a backup (docs/formats/backup.md, "Encryption"): 32 bytes for
// AES-256-GCM, read from a file, and an 8-byte key id derived from it so that an object sealed
// with another key is reported as such instead of as a failed authentication.
//
// Thread model: an EncryptionKey is an immutable value; copies may be used from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "backup/backup_error.h"

namespace quire::backup {

class EncryptionKey {
 public:
  static constexpr std::size_t kSize = 32;
  static constexpr std::size_t kIdSize = 8;
  using Bytes = std::array<std::uint8_t, kSize>;
  using Id = std::array<std::uint8_t, kIdSize>;

  explicit EncryptionKey(const Bytes& bytes);
  EncryptionKey(const EncryptionKey&) = default;
  EncryptionKey& operator=(const EncryptionKey&) = default;
  ~EncryptionKey();  // wipes the key bytes

  const Bytes& bytes() const { return bytes_; }
  // First 8 bytes of SHA-256("quire-backup-key-id-v1" ‖ key): names the key, reveals nothing of it.
  const Id& id() const { return id_; }
  std::string id_hex() const;

 private:
  Bytes bytes_{};
  Id id_{};
};

// The key in `contents`: exactly 32 raw bytes, or 64 hex digits (either case), in both cases
// optionally followed by one "\n" or "\r\n". `what` names the source in the error message.
BackupResult<EncryptionKey> parse_encryption_key(std::string_view contents, const std::string& what);
// Reads `path` and parses it as above. kInvalidArgument naming the file and the accepted forms
// when it cannot be read or holds anything else.
BackupResult<EncryptionKey> load_encryption_key(const std::filesystem::path& path);

}  // namespace quire::backup
