#include "common/rfc3339.h"

#include <gtest/gtest.h>

namespace quire {
namespace {

constexpr std::int64_t kS = 1'000'000;
// 2026-01-02T03:04:05Z.
constexpr std::int64_t kT = 1767323045LL * kS;

TEST(ParseRfc3339, UtcWithZ) {
  EXPECT_EQ(parse_rfc3339_us("2026-01-02T03:04:05Z"), kT);
  EXPECT_EQ(parse_rfc3339_us("2026-01-02t03:04:05z"), kT);
  EXPECT_EQ(parse_rfc3339_us("1970-01-01T00:00:00Z"), 0);
}

TEST(ParseRfc3339, ASpaceMayStandForTheT) {
  EXPECT_EQ(parse_rfc3339_us("2026-01-02 03:04:05Z"), kT);
}

TEST(ParseRfc3339, FractionsDownToTheMicrosecond) {
  EXPECT_EQ(parse_rfc3339_us("2026-01-02T03:04:05.5Z"), kT + 500'000);
  EXPECT_EQ(parse_rfc3339_us("2026-01-02T03:04:05.123456Z"), kT + 123'456);
  EXPECT_EQ(parse_rfc3339_us("2026-01-02T03:04:05.1234569Z"), kT + 123'456);
}

TEST(ParseRfc3339, OffsetsAreSubtracted) {
  EXPECT_EQ(parse_rfc3339_us("2026-01-02T05:04:05+02:00"), kT);
  EXPECT_EQ(parse_rfc3339_us("2026-01-01T23:34:05-03:30"), kT);
  EXPECT_EQ(parse_rfc3339_us("2026-01-02T05:04:05.123+02:00"), kT + 123'000);
}

TEST(ParseRfc3339, RejectsATimeWithoutAnOffsetBecauseItIsAmbiguous) {
  EXPECT_FALSE(parse_rfc3339_us("2026-01-02T03:04:05"));
  EXPECT_FALSE(parse_rfc3339_us("2026-01-02T03:04:05.123"));
}

TEST(ParseRfc3339, RejectsMalformedText) {
  for (const char* text :
       {"", "yesterday", "2026-01-02", "2026-1-02T03:04:05Z", "2026-01-02T03:04Z",
        "2026-13-02T03:04:05Z", "2026-01-32T03:04:05Z", "2026-01-02T24:04:05Z",
        "2026-01-02T03:60:05Z", "2026-01-02T03:04:05.Z", "2026-01-02T03:04:05Zjunk",
        "2026-01-02T03:04:05+2:00", "2026-01-02T03:04:05+02", "2026-01-02T03:04:05+24:00",
        "2026-01-02X03:04:05Z", " 2026-01-02T03:04:05Z"}) {
    EXPECT_FALSE(parse_rfc3339_us(text)) << text;
  }
}

TEST(FormatRfc3339, AlwaysSixFractionDigitsAndZ) {
  EXPECT_EQ(format_rfc3339_us(kT), "2026-01-02T03:04:05.000000Z");
  EXPECT_EQ(format_rfc3339_us(kT + 123'456), "2026-01-02T03:04:05.123456Z");
  EXPECT_EQ(format_rfc3339_us(0), "1970-01-01T00:00:00.000000Z");
}

TEST(FormatRfc3339, TimesBeforeTheEpochKeepAPositiveFraction) {
  EXPECT_EQ(format_rfc3339_us(-1), "1969-12-31T23:59:59.999999Z");
}

TEST(Rfc3339, FormatThenParseRoundTrips) {
  for (std::int64_t us : {std::int64_t{0}, kT, kT + 1, kT + 999'999, std::int64_t{-1}}) {
    EXPECT_EQ(parse_rfc3339_us(format_rfc3339_us(us)), us) << us;
  }
}

}  // namespace
}  // namespace quire
