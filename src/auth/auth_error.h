// Why a request could not be authenticated. These are expected failures (a client with a stale
// or forged token), so they travel as values. Each kind maps to the error code sqld sends in a
// Hrana error (WS hello_error, HTTP `{"error":...}` body) and to an HTTP status; the mapping lives
// in one table in auth_error.cpp.
//
// Authentication failures are all HTTP 401, as in sqld. A request that authenticated but lacks
// the right for what it asks (a write with a read-only token) is not an AuthError: see
// Forbidden in authorization.h (HTTP 403).
#pragma once

#include <string>
#include <string_view>

namespace quire::auth {

struct AuthError {
  enum Kind {
    kMissing,            // auth is on, but no Authorization header / null hello.jwt
    kHeaderMalformed,    // header value is not "<scheme> <credentials>", or not ASCII
    kUnsupportedScheme,  // a scheme other than Bearer
    kMalformed,          // not a well-formed JWS / JSON / claims of the wrong type
    kTooLarge,           // longer than VerifyOptions::max_token_bytes
    kUnsupportedAlg,     // header alg is not EdDSA, or typ is not JWT
    kBadSignature,       // no configured key verifies the signature
    kExpired,            // exp (plus leeway) is in the past
    kNotYetValid,        // nbf (minus leeway) is in the future
  };

  Kind kind;
  std::string message;  // for logs and the client; never echoes the token

  // sqld's code: AUTH_HEADER_NOT_FOUND, AUTH_HEADER_MALFORMED,
  // AUTH_HTTP_HEADER_UNSUPPORTED_SCHEME, AUTH_JWT_INVALID, AUTH_JWT_EXPIRED or AUTH_JWT_IMMATURE.
  std::string_view code() const;
  // 401 for every kind.
  int http_status() const;
  // What sqld shows the client, e.g. "Authentication failed: The JWT has expired".
  std::string client_message() const;
};

}  // namespace quire::auth
