#include "auth/key_set.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>

#include "auth/base64url.h"
#include "auth/openssl.h"

namespace quire::auth {
namespace {

constexpr std::size_t kEd25519KeySize = 32;
constexpr std::size_t kEd25519SignatureSize = 64;
constexpr std::size_t kMaxKeyFileBytes = 1 << 20;

std::string_view trim(std::string_view s) {
  auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && ws(s.back())) s.remove_suffix(1);
  return s;
}

std::shared_ptr<EVP_PKEY> share(EvpPkeyPtr key) {
  return std::shared_ptr<EVP_PKEY>(key.release(), EvpPkeyFree());
}

// One PEM block as PEM_read_bio returns it; frees the three OpenSSL allocations.
struct PemBlock {
  char* name = nullptr;
  char* header = nullptr;
  unsigned char* data = nullptr;
  long size = 0;
  ~PemBlock() {
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
  }
};

Expected<std::vector<std::shared_ptr<EVP_PKEY>>, std::string> parse_pem(std::string_view text) {
  BioPtr bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  if (!bio) return unexpected("cannot read PEM: " + openssl_error());
  std::vector<std::shared_ptr<EVP_PKEY>> keys;
  for (int index = 1;; ++index) {
    PemBlock block;
    if (PEM_read_bio(bio.get(), &block.name, &block.header, &block.data, &block.size) != 1) {
      unsigned long e = ERR_peek_last_error();
      bool at_end = ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
      if (at_end && !keys.empty()) {
        ERR_clear_error();
        return keys;
      }
      return unexpected("PEM block " + std::to_string(index) + " is malformed: " + openssl_error());
    }
    std::string_view label = block.name;
    if (label.find("PRIVATE KEY") != std::string_view::npos) {
      return unexpected(std::string("received a private key, but a public key is expected"));
    }
    if (label != "PUBLIC KEY") {
      return unexpected("PEM block " + std::to_string(index) + " is a \"" + std::string(label) +
                        "\", not a \"PUBLIC KEY\"");
    }
    const unsigned char* p = block.data;
    EvpPkeyPtr key(d2i_PUBKEY(nullptr, &p, block.size));
    if (!key || p != block.data + block.size) {
      return unexpected("PEM block " + std::to_string(index) +
                        " is not a valid public key: " + openssl_error());
    }
    if (EVP_PKEY_get_id(key.get()) != EVP_PKEY_ED25519) {
      return unexpected("PEM block " + std::to_string(index) + " is not an Ed25519 key");
    }
    keys.push_back(share(std::move(key)));
  }
}

}  // namespace

Expected<KeySet, std::string> KeySet::from_raw(const std::uint8_t* key, std::size_t size) {
  if (size != kEd25519KeySize) {
    return unexpected("an Ed25519 public key is 32 bytes, not " + std::to_string(size));
  }
  EvpPkeyPtr pkey(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, key, size));
  if (!pkey) return unexpected("invalid Ed25519 public key: " + openssl_error());
  KeySet set;
  set.keys_.push_back(share(std::move(pkey)));
  return set;
}

Expected<KeySet, std::string> KeySet::parse(std::string_view text) {
  text = trim(text);
  if (text.empty()) return unexpected(std::string("the key is empty"));
  if (text.starts_with("-----BEGIN")) {
    auto keys = parse_pem(text);
    if (!keys) return unexpected(std::move(keys.error()));
    KeySet set;
    set.keys_ = std::move(keys.value());
    return set;
  }
  // Raw: padding is tolerated (sqld would refuse it), the standard alphabet is not.
  std::string_view body = text;
  for (int i = 0; i < 2 && !body.empty() && body.back() == '='; ++i) body.remove_suffix(1);
  auto raw = base64url::decode(body);
  if (!raw) {
    return unexpected(
        std::string("the key is neither PEM nor a raw Ed25519 public key in URL-safe base64"));
  }
  return from_raw(raw->data(), raw->size());
}

Expected<KeySet, std::string> KeySet::load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return unexpected("cannot open key file " + path);
  std::string text(kMaxKeyFileBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) return unexpected("cannot read key file " + path);
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > kMaxKeyFileBytes) return unexpected("key file " + path + " is over 1 MiB");
  auto set = parse(text);
  if (!set) return unexpected("key file " + path + ": " + set.error());
  return set;
}

bool KeySet::verify(std::string_view message, const std::uint8_t* signature,
                    std::size_t signature_size) const {
  if (signature_size != kEd25519SignatureSize) return false;
  for (const auto& key : keys_) {
    EvpMdCtxPtr ctx(EVP_MD_CTX_new());
    if (!ctx) break;
    // Ed25519 signs the message itself (no pre-hash), hence no digest and the one-shot call.
    if (EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) == 1 &&
        EVP_DigestVerify(ctx.get(), signature, signature_size,
                         reinterpret_cast<const unsigned char*>(message.data()),
                         message.size()) == 1) {
      return true;
    }
  }
  ERR_clear_error();
  return false;
}

std::vector<std::string> KeySet::raw_base64url() const {
  std::vector<std::string> out;
  for (const auto& key : keys_) {
    std::uint8_t raw[kEd25519KeySize];
    std::size_t size = sizeof raw;
    if (EVP_PKEY_get_raw_public_key(key.get(), raw, &size) != 1) {
      ERR_clear_error();
      continue;
    }
    out.push_back(base64url::encode(raw, size));
  }
  return out;
}

}  // namespace quire::auth
