// An Ed25519 private key, for minting tokens (`quire token keygen|create`, and tests). The
// server itself never needs one: it only verifies (key_set.h).
//
// Immutable after construction; sign() may be called from several threads at once.
#pragma once

#include <openssl/evp.h>

#include <memory>
#include <string>
#include <string_view>

#include "common/expected.h"

namespace quire::auth {

// A fresh key pair in the forms the CLI prints.
struct KeyPairText {
  std::string private_key_pem;       // PKCS#8 "PRIVATE KEY"; keep it secret
  std::string public_key_pem;        // SPKI "PUBLIC KEY", for --auth-jwt-key-file
  std::string public_key_base64url;  // raw 32 bytes, for SQLD_AUTH_JWT_KEY
};

class SigningKey {
 public:
  static Expected<SigningKey, std::string> generate();
  // A PKCS#8 "PRIVATE KEY" PEM block holding an Ed25519 key (unencrypted).
  static Expected<SigningKey, std::string> parse_pem(std::string_view pem);
  static Expected<SigningKey, std::string> load_file(const std::string& path);

  // The 64-byte Ed25519 signature of `message`.
  Expected<std::string, std::string> sign(std::string_view message) const;

  std::string private_key_pem() const;
  std::string public_key_pem() const;
  std::string public_key_base64url() const;

 private:
  explicit SigningKey(std::shared_ptr<EVP_PKEY> key) : key_(std::move(key)) {}
  std::shared_ptr<EVP_PKEY> key_;
};

// generate() and the three texts, in one call.
Expected<KeyPairText, std::string> generate_key_pair();

}  // namespace quire::auth
