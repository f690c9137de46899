// The Ed25519 public keys tokens are checked against, in the formats sqld accepts for
// --auth-jwt-key-file / SQLD_AUTH_JWT_KEY_FILE, SQLD_AUTH_JWT_KEY and a namespace's `jwt_key`:
//
//   * one or more PEM blocks labelled "PUBLIC KEY" (SubjectPublicKeyInfo DER holding an Ed25519
//     key), concatenated; a "PRIVATE KEY" block or any other label is an error;
//   * a single raw 32-byte key in URL-safe base64 (unpadded; trailing '=' tolerated).
//
// Text starting with "-----BEGIN" (after leading whitespace) is read as PEM, anything else as
// raw. Surrounding whitespace is ignored, so a key file may end with a newline.
//
// Immutable after construction; verify() may be called from any number of threads at once.
// Copies share the underlying keys.
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/expected.h"

namespace quire::auth {

class KeySet {
 public:
  KeySet() = default;  // empty: nothing verifies

  static Expected<KeySet, std::string> parse(std::string_view text);
  // At most 1 MiB. The error names the path.
  static Expected<KeySet, std::string> load_file(const std::string& path);
  static Expected<KeySet, std::string> from_raw(const std::uint8_t* key, std::size_t size);

  bool empty() const { return keys_.empty(); }
  std::size_t size() const { return keys_.size(); }

  // True when at least one key verifies the Ed25519 `signature` of `message`.
  bool verify(std::string_view message, const std::uint8_t* signature,
              std::size_t signature_size) const;

  // The raw 32-byte keys, in URL-safe base64, in load order (for logs and tests).
  std::vector<std::string> raw_base64url() const;

 private:
  std::vector<std::shared_ptr<EVP_PKEY>> keys_;
};

}  // namespace quire::auth
