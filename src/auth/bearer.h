// The credentials in an `Authorization` (or gRPC `x-authorization`) header value, as sqld reads
// them: "<scheme> <token>", the scheme matched case-insensitively. Only Bearer is supported; a
// WebSocket hello carries the bare token and skips this step.
#pragma once

#include <optional>
#include <string_view>

#include "auth/auth_error.h"
#include "common/expected.h"

namespace quire::auth {

// The token, a view into `header_value`. nullopt (no header) is kMissing; a value that is not
// printable ASCII, or has no space after the scheme, or no token, is kHeaderMalformed; a scheme
// other than Bearer is kUnsupportedScheme. Surrounding whitespace, and extra spaces between
// scheme and token, are skipped.
Expected<std::string_view, AuthError> parse_authorization_header(
    std::optional<std::string_view> header_value);

}  // namespace quire::auth
