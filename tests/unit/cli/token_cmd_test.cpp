#include "cli/token_cmd.h"

#include <gtest/gtest.h>

#include "auth/jwt.h"

namespace quire::cli {
namespace {

using std::chrono::seconds;
using std::chrono::system_clock;

const system_clock::time_point kNow{seconds(1'800'000'000)};

TEST(BuildTokenClaims, NoNamespaceMeansEveryNamespace) {
  auto c = build_token_claims({}, auth::Access::kReadWrite, seconds(60), kNow).value();
  EXPECT_EQ(c.a, auth::Access::kReadWrite);
  EXPECT_FALSE(c.id);
  EXPECT_FALSE(c.p);
  EXPECT_EQ(c.exp, 1'800'000'060);
}

TEST(BuildTokenClaims, OneNamespaceBecomesId) {
  auto c = build_token_claims({"app"}, auth::Access::kReadOnly, seconds(60), kNow).value();
  EXPECT_EQ(c.a, auth::Access::kReadOnly);
  ASSERT_TRUE(c.id);
  EXPECT_EQ(*c.id, std::vector<std::string>{"app"});
  EXPECT_FALSE(c.p);
}

TEST(BuildTokenClaims, TheSameNamespaceTwiceIsStillOne) {
  auto c = build_token_claims({"app", "app"}, auth::Access::kReadOnly, seconds(60), kNow).value();
  ASSERT_TRUE(c.id);
  EXPECT_EQ(*c.id, std::vector<std::string>{"app"});
  EXPECT_FALSE(c.p);
}

TEST(BuildTokenClaims, SeveralNamespacesBecomeAPermissionMapUnderTheAccessLevel) {
  auto c = build_token_claims({"a", "b", "a"}, auth::Access::kReadOnlyAttach, std::nullopt, kNow)
               .value();
  EXPECT_EQ(c.a, auth::Access::kReadOnlyAttach);
  EXPECT_FALSE(c.id);
  ASSERT_TRUE(c.p);
  ASSERT_TRUE(c.p->roa);
  EXPECT_EQ(c.p->roa->ns, (std::vector<std::string>{"a", "b"}));
  EXPECT_FALSE(c.p->ro);
  EXPECT_FALSE(c.p->rw);
}

TEST(BuildTokenClaims, NeverExpiringMeansNoExp) {
  auto c = build_token_claims({}, auth::Access::kReadWrite, std::nullopt, kNow).value();
  EXPECT_FALSE(c.exp);
}

TEST(BuildTokenClaims, EmptyNamespaceIsRejected) {
  auto c = build_token_claims({"a", ""}, auth::Access::kReadWrite, seconds(60), kNow);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error(), "--namespace must not be empty");
}

TEST(BuildTokenClaims, TheSignedTokenVerifiesWithTheScopeItWasGiven) {
  auto key = auth::SigningKey::generate().value();
  auto keys = auth::KeySet::parse(key.public_key_base64url()).value();
  auto claims = build_token_claims({"a", "b"}, auth::Access::kReadWrite, seconds(60), kNow);
  auto token = auth::create_jwt(key, claims.value()).value();

  auto verified = auth::verify_jwt(token, keys, kNow);
  ASSERT_TRUE(verified);
  EXPECT_EQ(verified->claims.exp, 1'800'000'060);
  ASSERT_TRUE(verified->claims.p && verified->claims.p->rw);
  EXPECT_EQ(verified->claims.p->rw->ns, (std::vector<std::string>{"a", "b"}));

  EXPECT_FALSE(auth::verify_jwt(token, keys, kNow + seconds(61)));  // expired
}

}  // namespace
}  // namespace quire::cli
