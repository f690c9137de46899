#include "auth/bearer.h"

#include <gtest/gtest.h>

namespace quire::auth {
namespace {

AuthError::Kind error_of(std::optional<std::string_view> header) {
  auto r = parse_authorization_header(header);
  EXPECT_FALSE(r) << *header;
  return r ? AuthError::kMalformed : r.error().kind;
}

TEST(AuthBearer, ReturnsTheToken) {
  EXPECT_EQ(parse_authorization_header("Bearer abc.def.ghi").value(), "abc.def.ghi");
}

TEST(AuthBearer, SchemeIsCaseInsensitive) {
  EXPECT_EQ(parse_authorization_header("bearer t").value(), "t");
  EXPECT_EQ(parse_authorization_header("BEARER t").value(), "t");
  EXPECT_EQ(parse_authorization_header("bEaReR t").value(), "t");
}

TEST(AuthBearer, SkipsExtraWhitespace) {
  EXPECT_EQ(parse_authorization_header("  Bearer   t  ").value(), "t");
  EXPECT_EQ(parse_authorization_header("Bearer\tt").value(), "t");
}

TEST(AuthBearer, MissingHeader) {
  auto r = parse_authorization_header(std::nullopt);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, AuthError::kMissing);
  EXPECT_EQ(r.error().code(), "AUTH_HEADER_NOT_FOUND");
  EXPECT_EQ(r.error().http_status(), 401);
}

TEST(AuthBearer, MalformedHeader) {
  EXPECT_EQ(error_of(""), AuthError::kHeaderMalformed);
  EXPECT_EQ(error_of("Bearer"), AuthError::kHeaderMalformed);
  EXPECT_EQ(error_of("Bearer "), AuthError::kHeaderMalformed);
  EXPECT_EQ(error_of("token-without-scheme"), AuthError::kHeaderMalformed);
  EXPECT_EQ(error_of("Bearer t\x01"), AuthError::kHeaderMalformed);
  EXPECT_EQ(error_of("Bearer t\n"), AuthError::kHeaderMalformed);
  EXPECT_EQ(error_of("Bearer I\xe2\x9d\xa4NY"), AuthError::kHeaderMalformed);
  auto r = parse_authorization_header("Bearer");
  EXPECT_EQ(r.error().code(), "AUTH_HEADER_MALFORMED");
}

TEST(AuthBearer, OtherSchemesAreUnsupported) {
  EXPECT_EQ(error_of("Basic dXNlcjpwYXNz"), AuthError::kUnsupportedScheme);
  EXPECT_EQ(error_of("Token t"), AuthError::kUnsupportedScheme);
  EXPECT_EQ(error_of("Bearerx t"), AuthError::kUnsupportedScheme);
  auto r = parse_authorization_header("Basic abc");
  EXPECT_EQ(r.error().code(), "AUTH_HTTP_HEADER_UNSUPPORTED_SCHEME");
}

TEST(AuthError, EveryKindHasAnSqldCodeAnd401) {
  struct Case {
    AuthError::Kind kind;
    std::string_view code;
  };
  for (Case c : {Case{AuthError::kMissing, "AUTH_HEADER_NOT_FOUND"},
                 Case{AuthError::kHeaderMalformed, "AUTH_HEADER_MALFORMED"},
                 Case{AuthError::kUnsupportedScheme, "AUTH_HTTP_HEADER_UNSUPPORTED_SCHEME"},
                 Case{AuthError::kMalformed, "AUTH_JWT_INVALID"},
                 Case{AuthError::kTooLarge, "AUTH_JWT_INVALID"},
                 Case{AuthError::kUnsupportedAlg, "AUTH_JWT_INVALID"},
                 Case{AuthError::kBadSignature, "AUTH_JWT_INVALID"},
                 Case{AuthError::kExpired, "AUTH_JWT_EXPIRED"},
                 Case{AuthError::kNotYetValid, "AUTH_JWT_IMMATURE"}}) {
    AuthError e{c.kind, "detail"};
    EXPECT_EQ(e.code(), c.code);
    EXPECT_EQ(e.http_status(), 401);
    EXPECT_TRUE(e.client_message().starts_with("Authentication failed: "));
  }
  EXPECT_EQ((AuthError{AuthError::kExpired, ""}.client_message()),
            "Authentication failed: The JWT has expired");
}

}  // namespace
}  // namespace quire::auth
