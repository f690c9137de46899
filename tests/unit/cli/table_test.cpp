#include "cli/table.h"

#include <gtest/gtest.h>

namespace quire::cli {
namespace {

TEST(RenderTable, PadsColumnsToTheWidestCellWithTwoSpaces) {
  EXPECT_EQ(render_table({"NAME", "OPEN"}, {{"default", "no"}, {"a", "yes"}}),
            "NAME     OPEN\n"
            "default  no\n"
            "a        yes\n");
}

TEST(RenderTable, RightAlignedColumnsPadOnTheLeft) {
  EXPECT_EQ(render_table({"NAME", "SIZE", "OPEN"}, {{"a", "4.0 KiB", "no"}, {"b", "12 B", "yes"}},
                         {Align::kLeft, Align::kRight}),
            "NAME     SIZE  OPEN\n"
            "a     4.0 KiB  no\n"
            "b        12 B  yes\n");
}

TEST(RenderTable, NoTrailingBlanksEvenWithAnEmptyLastCell) {
  const auto text = render_table({"A", "B"}, {{"x", ""}, {"y"}});
  EXPECT_EQ(text, "A  B\nx\ny\n");
}

TEST(RenderTable, HeaderOnlyWithoutRows) {
  EXPECT_EQ(render_table({"NAME", "SIZE"}, {}), "NAME  SIZE\n");
}

TEST(RenderTable, WidthCountsCodePointsNotBytes) {
  // "é" is two bytes in UTF-8 but one column.
  EXPECT_EQ(render_table({"N", "X"}, {{"é", "1"}, {"ab", "2"}}),
            "N   X\n"
            "é   1\n"
            "ab  2\n");
}

TEST(RenderKeyValues, AlignsValuesAfterTheLongestKey) {
  EXPECT_EQ(render_key_values({{"id", "app"}, {"query_count", "5"}}),
            "id           app\n"
            "query_count  5\n");
}

TEST(RenderKeyValues, EmptyValueLeavesNoTrailingBlanks) {
  EXPECT_EQ(render_key_values({{"key", ""}}), "key\n");
}

TEST(SanitizeCell, ReplacesControlCharacters) {
  EXPECT_EQ(sanitize_cell("a\nb\tc\x1b[31m\x7f"), "a?b?c?[31m?");
  EXPECT_EQ(sanitize_cell("naïve"), "naïve");
}

TEST(DisplayWidth, CountsCodePoints) {
  EXPECT_EQ(display_width(""), 0u);
  EXPECT_EQ(display_width("abc"), 3u);
  EXPECT_EQ(display_width("日本"), 2u);
}

}  // namespace
}  // namespace quire::cli
