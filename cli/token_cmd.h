// `quire token keygen` and `quire token create`: Ed25519 key pairs and access tokens (JWTs)
// for a server started with --auth-jwt-key-file, compatible with sqld's tokens.
//
//   quire token keygen [--out-dir DIR] [--force] [--json]
//       writes DIR/jwt_private.pem (mode 0600) and DIR/jwt_public.pem, prints the public key in
//       raw base64url (the form SQLD_AUTH_JWT_KEY takes) and how to use both files.
//   quire token create --private-key FILE [--namespace NS ...] [--access rw|ro|roa]
//                      [--expires DURATION|never]
//       prints the token and a newline, nothing else, so `$(quire token create ...)` works.
//
// Thread model: runs on the main thread of the command.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "auth/claims.h"
#include "cli/command.h"
#include "common/expected.h"

namespace quire::cli {

Command add_token_command(CLI::App& parent);

// The claims `quire token create` signs:
//   a    always `access`;
//   id   the namespace, when exactly one is given (duplicates count once);
//   p    {"<access>": {"ns": [...]}} when several are given (sqld then ignores a and id);
//   exp  now + lifetime, whole seconds; absent when `lifetime` is empty (never expires).
// No namespace means every namespace. An empty namespace name is an error.
Expected<auth::Claims, std::string> build_token_claims(const std::vector<std::string>& namespaces,
                                                       auth::Access access,
                                                       std::optional<std::chrono::seconds> lifetime,
                                                       std::chrono::system_clock::time_point now);

}  // namespace quire::cli
