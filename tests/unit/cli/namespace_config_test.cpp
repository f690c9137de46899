#include "cli/namespace_config.h"

#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>

namespace quire::cli {
namespace {

std::string parsed(std::string_view text) {
  auto kv = parse_config_assignment(text);
  if (!kv) return "error: " + kv.error();
  return kv->first + "=" + boost::json::serialize(kv->second);
}

TEST(ParseConfigAssignment, BooleansAcceptTheUsualSpellings) {
  EXPECT_EQ(parsed("block_writes=true"), "block_writes=true");
  EXPECT_EQ(parsed("block_writes=On"), "block_writes=true");
  EXPECT_EQ(parsed("block_reads=0"), "block_reads=false");
  EXPECT_EQ(parsed("allow_attach=no"), "allow_attach=false");
}

TEST(ParseConfigAssignment, BooleanRejectsOtherWords) {
  EXPECT_EQ(parsed("block_reads=maybe"), "error: block_reads takes true or false, got 'maybe'");
}

TEST(ParseConfigAssignment, MaxDbSizeIsSentAsBytes) {
  EXPECT_EQ(parsed("max_db_size=10MB"), "max_db_size=10000000");
  EXPECT_EQ(parsed("max_db_size=10MiB"), "max_db_size=10485760");
  EXPECT_EQ(parsed("max_db_size=0"), "error: max_db_size must be positive");
  EXPECT_EQ(parsed("max_db_size=4096"), "max_db_size=4096");
  EXPECT_NE(parsed("max_db_size=big").find("error: max_db_size: size 'big'"), std::string::npos);
}

TEST(ParseConfigAssignment, TxnTimeoutIsAPositiveNumber) {
  EXPECT_EQ(parsed("txn_timeout_s=5"), "txn_timeout_s=5");
  EXPECT_EQ(parsed("txn_timeout_s=0.25"), "txn_timeout_s=2.5E-1");
  for (const char* bad : {"txn_timeout_s=0", "txn_timeout_s=-1", "txn_timeout_s=inf",
                          "txn_timeout_s=nan", "txn_timeout_s=0x10", "txn_timeout_s=1s"}) {
    EXPECT_EQ(parsed(bad).rfind("error: txn_timeout_s takes positive seconds", 0), 0u) << bad;
  }
}

TEST(ParseConfigAssignment, TextKeepsEverythingAfterTheFirstEquals) {
  EXPECT_EQ(parsed("block_reason=down for maintenance"), "block_reason=\"down for maintenance\"");
  EXPECT_EQ(parsed("jwt_key=abc=="), "jwt_key=\"abc==\"");
}

TEST(ParseConfigAssignment, EmptyValueResetsWithNull) {
  EXPECT_EQ(parsed("block_reason="), "block_reason=null");
  EXPECT_EQ(parsed("max_db_size="), "max_db_size=null");
  EXPECT_EQ(parsed("block_writes="), "block_writes=null");
}

TEST(ParseConfigAssignment, UnknownKeyListsTheKnownOnes) {
  const auto error = parsed("max_size=1");
  EXPECT_EQ(error.rfind("error: unknown config key 'max_size' (known: block_reads,", 0), 0u)
      << error;
}

TEST(ParseConfigAssignment, RequiresKeyEqualsValue) {
  EXPECT_EQ(parsed("block_reads"), "error: --set takes key=value, got 'block_reads'");
  EXPECT_EQ(parsed("=true"), "error: --set takes key=value, got '=true'");
}

TEST(NamespaceConfigKeys, AreTheAdminApiFields) {
  EXPECT_EQ(namespace_config_keys(),
            (std::vector<std::string>{"block_reads", "block_writes", "block_reason", "max_db_size",
                                      "txn_timeout_s", "jwt_key", "allow_attach"}));
}

}  // namespace
}  // namespace quire::cli
