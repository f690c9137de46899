#include "auth/signing_key.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <fstream>

#include "auth/base64url.h"
#include "auth/openssl.h"

namespace quire::auth {
namespace {

constexpr std::size_t kMaxKeyFileBytes = 1 << 20;

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  return size > 0 ? std::string(data, static_cast<std::size_t>(size)) : std::string();
}

}  // namespace

Expected<SigningKey, std::string> SigningKey::generate() {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_keygen(ctx.get(), &raw) != 1) {
    return unexpected("cannot generate an Ed25519 key: " + openssl_error());
  }
  return SigningKey(std::shared_ptr<EVP_PKEY>(raw, EvpPkeyFree()));
}

Expected<SigningKey, std::string> SigningKey::parse_pem(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return unexpected("cannot read PEM: " + openssl_error());
  // A null password callback with an empty passphrase: an encrypted key fails instead of
  // prompting on the terminal.
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, const_cast<char*>("")));
  if (!key) return unexpected("not a PEM private key: " + openssl_error());
  if (EVP_PKEY_get_id(key.get()) != EVP_PKEY_ED25519) {
    return unexpected(std::string("the private key is not an Ed25519 key"));
  }
  return SigningKey(std::shared_ptr<EVP_PKEY>(key.release(), EvpPkeyFree()));
}

Expected<SigningKey, std::string> SigningKey::load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return unexpected("cannot open key file " + path);
  std::string text(kMaxKeyFileBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) return unexpected("cannot read key file " + path);
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > kMaxKeyFileBytes) return unexpected("key file " + path + " is over 1 MiB");
  auto key = parse_pem(text);
  if (!key) return unexpected("key file " + path + ": " + key.error());
  return key;
}

Expected<std::string, std::string> SigningKey::sign(std::string_view message) const {
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  std::string sig(64, '\0');
  std::size_t size = sig.size();
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key_.get()) != 1 ||
      EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &size,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1) {
    return unexpected("Ed25519 signing failed: " + openssl_error());
  }
  sig.resize(size);
  return sig;
}

std::string SigningKey::private_key_pem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    ERR_clear_error();
    return {};
  }
  return bio_text(bio.get());
}

std::string SigningKey::public_key_pem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key_.get()) != 1) {
    ERR_clear_error();
    return {};
  }
  return bio_text(bio.get());
}

std::string SigningKey::public_key_base64url() const {
  std::uint8_t raw[32];
  std::size_t size = sizeof raw;
  if (EVP_PKEY_get_raw_public_key(key_.get(), raw, &size) != 1) {
    ERR_clear_error();
    return {};
  }
  return base64url::encode(raw, size);
}

Expected<KeyPairText, std::string> generate_key_pair() {
  auto key = SigningKey::generate();
  if (!key) return unexpected(std::move(key.error()));
  KeyPairText out{key->private_key_pem(), key->public_key_pem(), key->public_key_base64url()};
  if (out.private_key_pem.empty() || out.public_key_pem.empty() ||
      out.public_key_base64url.empty()) {
    return unexpected(std::string("cannot export the generated key"));
  }
  return out;
}

}  // namespace quire::auth
