#include "auth/auth_error.h"

namespace quire::auth {
namespace {

struct Row {
  std::string_view code;
  std::string_view text;  // sqld's Display text for the same error
};

// One row per AuthError::Kind, in declaration order. sqld folds every way a JWT can be bad
// (syntax, algorithm, signature) into AUTH_JWT_INVALID; so do we on the wire, while the kind
// keeps the distinction for logs and tests.
Row row(AuthError::Kind kind) {
  switch (kind) {
    case AuthError::kMissing:
      return {"AUTH_HEADER_NOT_FOUND", "Expected authorization header but none given"};
    case AuthError::kHeaderMalformed:
      return {"AUTH_HEADER_MALFORMED", "Auth string does not conform to '<scheme> <token>' form"};
    case AuthError::kUnsupportedScheme:
      return {"AUTH_HTTP_HEADER_UNSUPPORTED_SCHEME",
              "The authentication scheme in the `Authorization` HTTP header is not supported"};
    case AuthError::kMalformed:
    case AuthError::kTooLarge:
    case AuthError::kUnsupportedAlg:
    case AuthError::kBadSignature:
      return {"AUTH_JWT_INVALID", "The JWT is invalid"};
    case AuthError::kExpired:
      return {"AUTH_JWT_EXPIRED", "The JWT has expired"};
    case AuthError::kNotYetValid:
      return {"AUTH_JWT_IMMATURE", "The JWT is immature (not valid yet)"};
  }
  return {"AUTH_FAILED", "Authentication failed"};
}

}  // namespace

std::string_view AuthError::code() const { return row(kind).code; }

int AuthError::http_status() const { return 401; }

std::string AuthError::client_message() const {
  return "Authentication failed: " + std::string(row(kind).text);
}

}  // namespace quire::auth
