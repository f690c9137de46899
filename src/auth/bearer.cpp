#include "auth/bearer.h"

#include <string>

namespace quire::auth {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] - 'A' + 'a') : a[i];
    char y = b[i] >= 'A' && b[i] <= 'Z' ? static_cast<char>(b[i] - 'A' + 'a') : b[i];
    if (x != y) return false;
  }
  return true;
}

bool is_space(char c) { return c == ' ' || c == '\t'; }

}  // namespace

Expected<std::string_view, AuthError> parse_authorization_header(
    std::optional<std::string_view> header_value) {
  if (!header_value) {
    return unexpected(AuthError{AuthError::kMissing, "no Authorization header"});
  }
  std::string_view v = *header_value;
  for (char c : v) {
    if (static_cast<unsigned char>(c) < 0x20 && c != '\t') {
      return unexpected(AuthError{AuthError::kHeaderMalformed, "control character in header"});
    }
    if (static_cast<unsigned char>(c) >= 0x7f) {
      return unexpected(AuthError{AuthError::kHeaderMalformed, "non-ASCII auth header"});
    }
  }
  while (!v.empty() && is_space(v.front())) v.remove_prefix(1);
  while (!v.empty() && is_space(v.back())) v.remove_suffix(1);

  std::size_t space = v.find_first_of(" \t");
  if (space == std::string_view::npos) {
    return unexpected(AuthError{AuthError::kHeaderMalformed,
                                "the Authorization header is not \"<scheme> <token>\""});
  }
  std::string_view scheme = v.substr(0, space);
  std::string_view token = v.substr(space);
  while (!token.empty() && is_space(token.front())) token.remove_prefix(1);
  if (!iequals(scheme, "bearer")) {
    return unexpected(AuthError{AuthError::kUnsupportedScheme,
                                "unsupported authentication scheme " + std::string(scheme)});
  }
  return token;
}

}  // namespace quire::auth
