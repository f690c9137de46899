#include "cli/namespace_log.h"

#include <gtest/gtest.h>

#include "../log/log_test_util.h"

namespace quire::cli {
namespace {

TEST(NamespaceLog, TheNamespaceLivesUnderDbs) {
  EXPECT_EQ(namespace_dir("/srv/data", "acme"), std::filesystem::path("/srv/data/dbs/acme"));
}

TEST(NamespaceLog, OpensTheLogOfTheNamespace) {
  const auto data = log::testing::scratch_dir("cli-ns");
  ASSERT_TRUE(log::ReplicationLog::create(data / "dbs" / "acme" / "log"));
  auto opened = open_namespace_log(data.string(), "acme");
  ASSERT_TRUE(opened) << opened.error();
  EXPECT_EQ(opened.value()->dir(), data / "dbs" / "acme" / "log");
  std::filesystem::remove_all(data);
}

TEST(NamespaceLog, AMissingLogNamesTheNamespaceAndTheDirectory) {
  const auto data = log::testing::scratch_dir("cli-ns");
  auto opened = open_namespace_log(data.string(), "nope");
  ASSERT_FALSE(opened);
  const std::string dir = (data / "dbs" / "nope" / "log").string();
  EXPECT_EQ(opened.error().rfind("cannot open the log of namespace 'nope' in " + dir + ": ", 0), 0u)
      << opened.error();
  std::filesystem::remove_all(data);
}

}  // namespace
}  // namespace quire::cli
