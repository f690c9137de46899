#include "protocol/json_parse.h"

#include <gtest/gtest.h>

#include <charconv>
#include <cmath>
#include <random>

namespace quire::protocol {
namespace {

namespace bj = boost::json;

bj::value ok(std::string_view text) {
  auto v = parse_json(text);
  EXPECT_TRUE(v) << text << ": " << (v ? "" : v.error());
  return v ? std::move(v.value()) : bj::value();
}

TEST(JsonParse, DoublesSurviveBitForBit) {
  // Values Boost 1.81's parser rounds to a neighbour.
  EXPECT_EQ(ok("11.528280205449093").as_double(), 11.528280205449093);
  EXPECT_EQ(ok("-2.5e-300").as_double(), -2.5e-300);
  std::mt19937_64 rng(42);
  for (int i = 0; i < 20000; ++i) {
    std::uint64_t bits = rng();
    double d;
    std::memcpy(&d, &bits, sizeof d);
    if (!std::isfinite(d)) continue;
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, d);
    std::string_view text(buf, static_cast<std::size_t>(r.ptr - buf));
    auto v = ok(text);
    ASSERT_TRUE(v.is_double() || v.is_int64() || v.is_uint64()) << text;
    double back = v.is_double() ? v.as_double() : v.to_number<double>();
    ASSERT_EQ(std::memcmp(&back, &d, sizeof d) == 0 || back == d, true) << text;
  }
}

TEST(JsonParse, IntegersStayIntegers) {
  EXPECT_EQ(ok("-9223372036854775808").as_int64(), INT64_MIN);
  EXPECT_EQ(ok("18446744073709551615").as_uint64(), UINT64_MAX);
  EXPECT_TRUE(ok("18446744073709551616").is_double());
  EXPECT_TRUE(ok("1.0").is_double());
  EXPECT_EQ(ok("0").as_int64(), 0);
}

TEST(JsonParse, OverflowIsInfinityAsInJavaScript) {
  EXPECT_EQ(ok("1e999").as_double(), HUGE_VAL);
  EXPECT_EQ(ok("-1e999").as_double(), -HUGE_VAL);
  EXPECT_EQ(ok("1e-999").as_double(), 0.0);
}

TEST(JsonParse, StringsWithEscapesAndUnicode) {
  EXPECT_EQ(ok(R"("a\"b\\c\/\n\t\u00e9\ud83d\ude00")").as_string(), "a\"b\\c/\n\t\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(ok("\"h\xc3\xa9\"").as_string(), "h\xc3\xa9");
}

TEST(JsonParse, ObjectsAndArrays) {
  auto v = ok(R"( {"a": [1, 2.5, "x", null, true, false, {}], "b": {"c": []}} )");
  EXPECT_EQ(v.at("a").as_array().size(), 7u);
  EXPECT_TRUE(v.at("b").at("c").as_array().empty());
}

TEST(JsonParse, RejectsMalformedInputWithAnOffset) {
  for (std::string_view bad :
       {"", "{", "[1,]", "{\"a\"}", "{\"a\":1,}", "01", "1.", "-", "+1", "1e", ".5", "tru",
        "nul", "\"abc", "\"\\x\"", "\"\\ud800\"", "\"\\udc00\"", "\"a\x01\"", "\"\xff\"",
        "\"\xc0\x80\"", "\"\xed\xa0\x80\"", "{} x", "[1 2]", "{1:2}", "NaN", "Infinity"}) {
    auto v = parse_json(bad);
    EXPECT_FALSE(v) << bad;
    if (!v) {
      EXPECT_NE(v.error().find("offset"), std::string::npos) << v.error();
    }
  }
}

TEST(JsonParse, NestingIsBounded) {
  std::string deep(200, '[');
  deep += std::string(200, ']');
  EXPECT_FALSE(parse_json(deep));
  std::string ok_depth(100, '[');
  ok_depth += std::string(100, ']');
  EXPECT_TRUE(parse_json(ok_depth));
}

}  // namespace
}  // namespace quire::protocol
