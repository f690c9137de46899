#include "auth/authorization.h"

#include <gtest/gtest.h>

namespace quire::auth {
namespace {

using R = Authorization::Right;

Claims legacy(std::optional<Access> a, std::optional<std::vector<std::string>> id) {
  Claims c;
  c.a = a;
  c.id = std::move(id);
  return c;
}

TEST(Authorization, FullAccessAllowsEverything) {
  Authorization a = Authorization::full_access();
  EXPECT_TRUE(a.is_full_access());
  EXPECT_EQ(a.level_for("any"), Authorization::kReadWriteAttach);
  EXPECT_TRUE(a.can_ddl_on_shared_schema("any"));
  for (R r : {R::kRead, R::kWrite, R::kAttach, R::kSharedSchemaDdl}) {
    EXPECT_TRUE(a.require("any", r));
  }
}

TEST(Authorization, LegacyLevelsFollowSqld) {
  Authorization ro = Authorization::from_claims(legacy(Access::kReadOnly, std::nullopt));
  EXPECT_TRUE(ro.can_read("x"));
  EXPECT_FALSE(ro.can_write("x"));
  EXPECT_FALSE(ro.can_attach("x"));

  Authorization rw = Authorization::from_claims(legacy(Access::kReadWrite, std::nullopt));
  EXPECT_TRUE(rw.can_write("x"));
  EXPECT_FALSE(rw.can_attach("x"));  // only roa may attach
  EXPECT_FALSE(rw.can_ddl_on_shared_schema("x"));

  Authorization roa = Authorization::from_claims(legacy(Access::kReadOnlyAttach, std::nullopt));
  EXPECT_TRUE(roa.can_read("x"));
  EXPECT_TRUE(roa.can_attach("x"));
  EXPECT_FALSE(roa.can_write("x"));
}

TEST(Authorization, LegacyIdRestrictsEveryRight) {
  Authorization a =
      Authorization::from_claims(legacy(Access::kReadOnlyAttach, std::vector<std::string>{"db"}));
  EXPECT_EQ(a.level_for("db"), Authorization::kReadOnlyAttach);
  EXPECT_FALSE(a.can_read("db2"));
  EXPECT_FALSE(a.can_attach("db2"));
  EXPECT_FALSE(a.can_read(""));
  EXPECT_FALSE(a.can_read("DB"));  // names compare exactly
}

TEST(Authorization, ScopedEntriesImplyReadAndOnlyAttachEntriesAllowAttach) {
  Claims c;
  c.p = PermissionMap{};
  c.p->rw = Scopes{std::vector<std::string>{"w"}, std::nullopt};
  c.p->rwa = Scopes{std::vector<std::string>{"wa"}, std::nullopt};
  c.p->roa = Scopes{std::vector<std::string>{"ra", "w"}, std::nullopt};
  c.p->ddl = Scopes{std::vector<std::string>{"d"}, std::nullopt};
  Authorization a = Authorization::from_claims(c);
  EXPECT_TRUE(a.can_read("w"));
  EXPECT_EQ(a.level_for("w"), Authorization::kReadWriteAttach);  // rw + roa
  EXPECT_EQ(a.level_for("wa"), Authorization::kReadWriteAttach);
  EXPECT_EQ(a.level_for("ra"), Authorization::kReadOnlyAttach);
  EXPECT_TRUE(a.can_write("d"));
  EXPECT_TRUE(a.can_ddl_on_shared_schema("d"));
  EXPECT_FALSE(a.can_attach("d"));
  EXPECT_EQ(a.level_for("none"), Authorization::kNone);
}

TEST(Authorization, ScopesWithoutNamespacesGrantNothing) {
  Claims c;
  c.p = PermissionMap{};
  c.p->rw = Scopes{};
  EXPECT_EQ(Authorization::from_claims(c).level_for("x"), Authorization::kNone);
}

TEST(Authorization, RequireExplainsTheDenialAs403) {
  Authorization ro = Authorization::from_claims(legacy(Access::kReadOnly, std::nullopt));
  EXPECT_TRUE(ro.require("db", R::kRead));
  auto denied = ro.require("db", R::kWrite);
  ASSERT_FALSE(denied);
  EXPECT_EQ(denied.error().http_status(), 403);
  EXPECT_EQ(denied.error().message,
            "Authorization forbidden: the session has no write permission on namespace `db`");
  EXPECT_FALSE(ro.require("db", R::kAttach));
  EXPECT_FALSE(ro.require("db", R::kSharedSchemaDdl));
}

}  // namespace
}  // namespace quire::auth
