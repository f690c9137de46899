// sqld/Turso access tokens: compact JWS (RFC 7515) signed with Ed25519 ("EdDSA", RFC 8037).
//
//   token  = base64url(header) "." base64url(claims) "." base64url(signature)
//   header = {"alg":"EdDSA"} with optional "typ":"JWT"; members such as kid are ignored, and
//            keys are never taken from the token (jwk, jku, x5u are not looked at)
//   signature = Ed25519 over the ASCII bytes of the first two segments and the dot
//
// verify_jwt() checks, in this order, and stops at the first failure:
//   1. size <= max_token_bytes                                    (kTooLarge)
//   2. three segments of strict base64url; header a JSON object   (kMalformed)
//   3. alg is "EdDSA"; typ absent or "JWT"; no `crit`             (kUnsupportedAlg)
//   4. a 64-byte signature that one of the keys verifies          (kBadSignature)
//   5. claims: a JSON object without duplicate keys, typed as in claims.h (kMalformed)
//   6. exp: expired when exp < now - leeway                       (kExpired)
//   7. nbf: immature when nbf > now + leeway                      (kNotYetValid)
// The payload is not parsed before the signature holds, so a forger learns nothing from the
// error but "invalid". Steps 6 and 7 follow the jsonwebtoken crate sqld uses (at exp itself the
// token is still valid); its default leeway is 60 s, ours is 0 unless configured.
//
// Thread model: free functions over immutable inputs; call from anywhere.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "auth/auth_error.h"
#include "auth/authorization.h"
#include "auth/claims.h"
#include "auth/key_set.h"
#include "auth/signing_key.h"
#include "common/expected.h"

namespace quire::auth {

struct VerifyOptions {
  std::chrono::seconds leeway{0};
  // Checked before any decoding. Real tokens are a few hundred bytes; a scoped token listing
  // many namespaces stays far below this.
  std::size_t max_token_bytes = 8 * 1024;
};

struct VerifiedToken {
  Claims claims;
  Authorization authorization;  // Authorization::from_claims(claims)
};

// `now` is a parameter so tests (and a server with an injected clock) control time. With an
// empty KeySet every token fails with kBadSignature; a server without keys should not call this
// (auth disabled means Authorization::full_access(), whatever the client sends).
Expected<VerifiedToken, AuthError> verify_jwt(std::string_view token, const KeySet& keys,
                                              std::chrono::system_clock::time_point now,
                                              const VerifyOptions& options = {});

// Signs `claims` under the header {"alg":"EdDSA","typ":"JWT"}.
Expected<std::string, std::string> create_jwt(const SigningKey& key, const Claims& claims);

}  // namespace quire::auth
