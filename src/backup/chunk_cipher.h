// Chunked AES-256-GCM for backup objects (docs/formats/backup.md, "Encryption"). The body of an
// encrypted object (zstd payload ‖ trailer) is cut into chunks of chunk_bytes plaintext bytes
// (the last one 1..chunk_bytes), each stored as ciphertext ‖ 16-byte tag. Chunk i uses the nonce
// `nonce_base` with its last 8 bytes XORed with i (little-endian) and authenticates
// AAD = the object's 128-byte header ‖ i (u64 LE) ‖ final flag (1 byte), so reordering,
// truncation, extension and moving chunks between objects all fail authentication.
// Internal to quire_backup.
//
// Thread model: a sealer or opener belongs to one thread (one object) at a time.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "backup/encryption.h"

namespace quire::backup::detail {

inline constexpr std::size_t kNonceSize = 12;
inline constexpr std::size_t kTagSize = 16;
inline constexpr std::uint32_t kDefaultChunkBytes = 64u << 10;
inline constexpr std::uint32_t kMinChunkBytes = 4096;
inline constexpr std::uint32_t kMaxChunkBytes = 16u << 20;

using Nonce = std::array<std::uint8_t, kNonceSize>;

Nonce random_nonce();  // from the OpenSSL CSPRNG; throws if it fails (never expected)

// The plaintext length of a sealed body of `sealed` bytes, nullopt when no sequence of chunks has
// that length (in particular 0: there is always a final chunk).
std::optional<std::uint64_t> opened_length(std::uint64_t sealed, std::uint32_t chunk_bytes);
std::uint64_t sealed_length(std::uint64_t plain, std::uint32_t chunk_bytes);

struct GcmState;

// Seals a stream: update() returns the sealed bytes of every chunk known not to be the last;
// finish() seals the rest as the final chunk (at least one byte must have been given).
class ChunkSealer {
 public:
  ChunkSealer(const EncryptionKey& key, const std::uint8_t* header, std::uint32_t chunk_bytes,
              const Nonce& nonce_base);
  ~ChunkSealer();
  ChunkSealer(const ChunkSealer&) = delete;
  ChunkSealer& operator=(const ChunkSealer&) = delete;
  std::string update(const void* data, std::size_t n);
  std::string finish();

 private:
  void seal(bool final, std::string& out);
  std::unique_ptr<GcmState> gcm_;
  std::uint32_t chunk_bytes_;
  std::uint64_t index_ = 0;
  std::string pending_;  // plaintext not sealed yet (at most chunk_bytes_)
};

// Opens a sealed body of known total length, fed in pieces of any size. Plaintext is released
// only chunk by chunk after its tag verified.
class ChunkOpener {
 public:
  // `sealed_total` must satisfy opened_length().
  ChunkOpener(const EncryptionKey& key, const std::uint8_t* header, std::uint32_t chunk_bytes,
              const Nonce& nonce_base, std::uint64_t sealed_total);
  ~ChunkOpener();
  ChunkOpener(const ChunkOpener&) = delete;
  ChunkOpener& operator=(const ChunkOpener&) = delete;
  // Appends the plaintext of every chunk completed by these bytes to `out`; false (with `why`)
  // when a chunk fails authentication or more bytes arrive than announced.
  bool update(const std::uint8_t* data, std::size_t n, std::string& out, std::string& why);
  // True when every announced byte arrived (and so every chunk, the final one included, opened).
  bool done() const { return consumed_ == sealed_total_; }

 private:
  std::unique_ptr<GcmState> gcm_;
  std::uint32_t chunk_bytes_;
  std::uint64_t sealed_total_;
  std::uint64_t consumed_ = 0;
  std::uint64_t index_ = 0;
  std::string pending_;  // sealed bytes of the current chunk
};

}  // namespace quire::backup::detail
