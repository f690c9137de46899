// Chunked AES-256-GCM (chunk_cipher.h) over OpenSSL 3 EVP.
#include "backup/chunk_cipher.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cassert>
#include <cstring>
#include <stdexcept>

#include "backup/object_format.h"

namespace quire::backup::detail {

struct GcmState {
  EVP_CIPHER_CTX* ctx = nullptr;
  std::array<std::uint8_t, kHeaderSize> header{};
  Nonce nonce_base{};
  bool encrypt = true;

  GcmState(const EncryptionKey& key, const std::uint8_t* h, const Nonce& nonce, bool enc)
      : ctx(EVP_CIPHER_CTX_new()), nonce_base(nonce), encrypt(enc) {
    std::memcpy(header.data(), h, kHeaderSize);
    const bool ok =
        ctx != nullptr &&
        EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), nullptr, nullptr, nullptr, enc ? 1 : 0) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, kNonceSize, nullptr) == 1 &&
        EVP_CipherInit_ex(ctx, nullptr, nullptr, key.bytes().data(), nullptr, enc ? 1 : 0) == 1;
    if (!ok) {
      ERR_clear_error();
      EVP_CIPHER_CTX_free(ctx);
      throw std::runtime_error("AES-256-GCM initialisation failed");
    }
  }
  ~GcmState() { EVP_CIPHER_CTX_free(ctx); }

  // Starts chunk `index`: its nonce and its AAD.
  bool begin(std::uint64_t index, bool final) {
    Nonce nonce = nonce_base;
    for (int i = 0; i < 8; ++i) nonce[4 + i] ^= static_cast<std::uint8_t>(index >> (8 * i));
    std::uint8_t tail[9];
    put_u64(tail, index);
    tail[8] = final ? 1 : 0;
    int len = 0;
    return EVP_CipherInit_ex(ctx, nullptr, nullptr, nullptr, nonce.data(), encrypt ? 1 : 0) == 1 &&
           EVP_CipherUpdate(ctx, nullptr, &len, header.data(), kHeaderSize) == 1 &&
           EVP_CipherUpdate(ctx, nullptr, &len, tail, sizeof tail) == 1;
  }
};

Nonce random_nonce() {
  Nonce n{};
  if (RAND_bytes(n.data(), static_cast<int>(n.size())) != 1) {
    ERR_clear_error();
    throw std::runtime_error("RAND_bytes failed");
  }
  return n;
}

std::optional<std::uint64_t> opened_length(std::uint64_t sealed, std::uint32_t chunk_bytes) {
  const std::uint64_t full = std::uint64_t{chunk_bytes} + kTagSize;
  if (sealed == 0) return std::nullopt;
  const std::uint64_t chunks = (sealed + full - 1) / full;
  const std::uint64_t last = sealed - (chunks - 1) * full;
  if (last <= kTagSize) return std::nullopt;  // a final chunk holds at least one byte
  return sealed - chunks * kTagSize;
}

std::uint64_t sealed_length(std::uint64_t plain, std::uint32_t chunk_bytes) {
  assert(plain > 0);
  return plain + (plain + chunk_bytes - 1) / chunk_bytes * kTagSize;
}

ChunkSealer::ChunkSealer(const EncryptionKey& key, const std::uint8_t* header,
                         std::uint32_t chunk_bytes, const Nonce& nonce_base)
    : gcm_(std::make_unique<GcmState>(key, header, nonce_base, true)), chunk_bytes_(chunk_bytes) {
  assert(chunk_bytes >= kMinChunkBytes && chunk_bytes <= kMaxChunkBytes);
}

ChunkSealer::~ChunkSealer() = default;

void ChunkSealer::seal(bool final, std::string& out) {
  assert(!pending_.empty() && pending_.size() <= chunk_bytes_);
  const std::size_t at = out.size();
  out.resize(at + pending_.size() + kTagSize);
  auto* dst = reinterpret_cast<std::uint8_t*>(out.data() + at);
  int len = 0, fin = 0;
  const bool ok =
      gcm_->begin(index_, final) &&
      EVP_EncryptUpdate(gcm_->ctx, dst, &len, reinterpret_cast<const std::uint8_t*>(pending_.data()),
                        static_cast<int>(pending_.size())) == 1 &&
      EVP_EncryptFinal_ex(gcm_->ctx, dst + len, &fin) == 1 &&
      static_cast<std::size_t>(len + fin) == pending_.size() &&
      EVP_CIPHER_CTX_ctrl(gcm_->ctx, EVP_CTRL_GCM_GET_TAG, kTagSize, dst + pending_.size()) == 1;
  if (!ok) {
    ERR_clear_error();
    throw std::runtime_error("AES-256-GCM encryption failed");
  }
  ++index_;
  pending_.clear();
}

std::string ChunkSealer::update(const void* data, std::size_t n) {
  std::string out;
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    // A full pending chunk is sealed only once more bytes show it is not the last.
    if (pending_.size() == chunk_bytes_) seal(false, out);
    const std::size_t take = std::min<std::size_t>(n, chunk_bytes_ - pending_.size());
    pending_.append(p, take);
    p += take;
    n -= take;
  }
  return out;
}

std::string ChunkSealer::finish() {
  std::string out;
  seal(true, out);
  return out;
}

ChunkOpener::ChunkOpener(const EncryptionKey& key, const std::uint8_t* header,
                         std::uint32_t chunk_bytes, const Nonce& nonce_base,
                         std::uint64_t sealed_total)
    : gcm_(std::make_unique<GcmState>(key, header, nonce_base, false)),
      chunk_bytes_(chunk_bytes),
      sealed_total_(sealed_total) {
  assert(opened_length(sealed_total, chunk_bytes).has_value());
}

ChunkOpener::~ChunkOpener() = default;

bool ChunkOpener::update(const std::uint8_t* data, std::size_t n, std::string& out,
                         std::string& why) {
  if (n > sealed_total_ - consumed_) {
    why = "more encrypted bytes than announced";
    return false;
  }
  const std::uint64_t full = std::uint64_t{chunk_bytes_} + kTagSize;
  while (n > 0) {
    const std::uint64_t chunk_start = index_ * full;
    const std::uint64_t chunk_len = std::min(full, sealed_total_ - chunk_start);
    const std::size_t take = static_cast<std::size_t>(
        std::min<std::uint64_t>(n, chunk_len - pending_.size()));
    pending_.append(reinterpret_cast<const char*>(data), take);
    data += take;
    n -= take;
    consumed_ += take;
    if (pending_.size() < chunk_len) break;
    const bool final = chunk_start + chunk_len == sealed_total_;
    const std::size_t plain = pending_.size() - kTagSize;
    const std::size_t at = out.size();
    out.resize(at + plain);
    auto* dst = reinterpret_cast<std::uint8_t*>(out.data() + at);
    auto* src = reinterpret_cast<std::uint8_t*>(pending_.data());
    int len = 0, fin = 0;
    const bool ok =
        gcm_->begin(index_, final) &&
        EVP_DecryptUpdate(gcm_->ctx, dst, &len, src, static_cast<int>(plain)) == 1 &&
        EVP_CIPHER_CTX_ctrl(gcm_->ctx, EVP_CTRL_GCM_SET_TAG, kTagSize, src + plain) == 1 &&
        EVP_DecryptFinal_ex(gcm_->ctx, dst + len, &fin) == 1;
    if (!ok) {
      ERR_clear_error();
      out.resize(at);  // never release unauthenticated plaintext
      why = "chunk " + std::to_string(index_) +
            " fails authentication (tampered, truncated, reordered or from another object)";
      return false;
    }
    ++index_;
    pending_.clear();
  }
  return true;
}

}  // namespace quire::backup::detail
