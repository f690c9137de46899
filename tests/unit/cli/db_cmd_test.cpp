#include "cli/db_cmd.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

namespace quire::cli {
namespace {

TEST(RenderNamespaceList, ShowsSizeHumanReadableNeverForNullAndYesNo) {
  auto reply = boost::json::parse(R"({"namespaces":[
      {"name":"default","size_bytes":4096,"last_access":null,"open":false},
      {"name":"app","size_bytes":1610612736,"last_access":"2025-01-02T03:04:05Z","open":true}]})");
  EXPECT_EQ(render_namespace_list(reply).value(),
            "NAME        SIZE  LAST ACCESS           OPEN\n"
            "default  4.0 KiB  never                 no\n"
            "app      1.5 GiB  2025-01-02T03:04:05Z  yes\n");
}

TEST(RenderNamespaceList, EmptyListSaysSo) {
  EXPECT_EQ(render_namespace_list(boost::json::parse(R"({"namespaces":[]})")).value(),
            "no namespaces\n");
}

TEST(RenderNamespaceList, MissingOptionalFieldsShowADash) {
  EXPECT_EQ(render_namespace_list(boost::json::parse(R"({"namespaces":[{"name":"x"}]})")).value(),
            "NAME  SIZE  LAST ACCESS  OPEN\n"
            "x        -  never        -\n");
}

TEST(RenderNamespaceList, ControlCharactersInNamesCannotBreakTheTable) {
  auto text = render_namespace_list(
      boost::json::parse(R"({"namespaces":[{"name":"a\nb","size_bytes":1,"open":true}]})"));
  EXPECT_EQ(text.value(),
            "NAME  SIZE  LAST ACCESS  OPEN\n"
            "a?b    1 B  never        yes\n");
}

TEST(RenderNamespaceList, RejectsAnswersOfTheWrongShape) {
  EXPECT_FALSE(render_namespace_list(boost::json::parse("[]")));
  EXPECT_FALSE(render_namespace_list(boost::json::parse(R"({"namespaces":{}})")));
  EXPECT_FALSE(render_namespace_list(boost::json::parse(R"({"namespaces":[{"size_bytes":1}]})")));
  EXPECT_FALSE(render_namespace_list(boost::json::parse(R"({"namespaces":[1]})")));
  EXPECT_FALSE(render_namespace_list(boost::json::value()));
}

TEST(RenderObject, KeepsTheServersOrderAndFormatsEachType) {
  auto stats = boost::json::parse(
      R"({"id":"app","rows_read_count":3,"storage_bytes_used":8192,"max_db_size":null,
          "block_writes":true,"txn_timeout_s":2.5})");
  EXPECT_EQ(render_object(stats.as_object()),
            "id                  app\n"
            "rows_read_count     3\n"
            "storage_bytes_used  8192 (8.0 KiB)\n"
            "max_db_size         -\n"
            "block_writes        true\n"
            "txn_timeout_s       2.5\n");
}

}  // namespace
}  // namespace quire::cli
