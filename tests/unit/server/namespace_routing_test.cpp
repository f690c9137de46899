#include <gtest/gtest.h>

#include <filesystem>

#include "common/base64.h"
#include "server/router.h"
#include "router_test_util.h"

namespace quire::server {
namespace {

class NamespaceRoutingTest : public testing::RouterFixture {
 protected:
  NamespaceRoutingTest() : RouterFixture("routing") {}

  static Request request(std::initializer_list<std::pair<std::string, std::string>> headers) {
    Request req{http::verb::post, "/v2/pipeline", 11};
    for (const auto& [k, v] : headers) req.set(k, v);
    return req;
  }

  std::string ns(std::initializer_list<std::pair<std::string, std::string>> headers) {
    auto r = router_->namespace_of(request(headers));
    return r ? *r : "error: " + r.error();
  }
};

TEST_F(NamespaceRoutingTest, HeadersThenHostThenDefault) {
  EXPECT_EQ(ns({}), "default");
  EXPECT_EQ(ns({{"Host", "127.0.0.1:8080"}}), "default");
  EXPECT_EQ(ns({{"Host", "acme.db.example.com"}}), "acme");
  EXPECT_EQ(ns({{"Host", "ACME.DB.EXAMPLE.COM:443"}}), "ACME");
  EXPECT_EQ(ns({{"Host", "a.b.db.example.com"}}), "default");  // only the first label
  EXPECT_EQ(ns({{"Host", "acme.db.example.org"}}), "default");  // another domain
  EXPECT_EQ(ns({{"Host", "acme.db.example.com"}, {"x-namespace", "other"}}), "other");
  EXPECT_EQ(ns({{"x-namespace", "other"}, {"x-namespace-bin", base64::encode("bin")}}), "bin");
  EXPECT_EQ(ns({{"x-namespace-bin", "!!!"}}).rfind("error: ", 0), 0u);
}

TEST_F(NamespaceRoutingTest, UnknownAndInvalidNamespacesAreRefusedNotCreated) {
  auto ok = router_->database_for(request({{"x-namespace", "acme"}}));
  EXPECT_TRUE(ok);
  auto unknown = router_->database_for(request({{"x-namespace", "nobody"}}));
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().result(), http::status::not_found);
  EXPECT_FALSE(store_->exists("nobody"));
  auto invalid = router_->database_for(request({{"x-namespace", "../etc"}}));
  ASSERT_FALSE(invalid);
  EXPECT_EQ(invalid.error().result(), http::status::bad_request);
}

}  // namespace
}  // namespace quire::server
