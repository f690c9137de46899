#include "cli/units.h"

#include <gtest/gtest.h>

namespace quire::cli {
namespace {

using std::chrono::seconds;

TEST(ParseDuration, AcceptsEachUnit) {
  EXPECT_EQ(parse_duration("30s").value(), seconds(30));
  EXPECT_EQ(parse_duration("15m").value(), seconds(15 * 60));
  EXPECT_EQ(parse_duration("12h").value(), seconds(12 * 3600));
  EXPECT_EQ(parse_duration("7d").value(), seconds(7 * 86400));
  EXPECT_EQ(parse_duration("2w").value(), seconds(14 * 86400));
}

TEST(ParseDuration, UnitIsCaseInsensitive) {
  EXPECT_EQ(parse_duration("7D").value(), seconds(7 * 86400));
}

TEST(ParseDuration, BareNumberIsRejectedBecauseTheUnitIsAmbiguous) {
  auto d = parse_duration("5");
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().find("needs a unit"), std::string::npos) << d.error();
}

TEST(ParseDuration, RejectsMalformedText) {
  for (const char* text :
       {"", "s", "7", "7x", "7dd", "1.5h", "-1h", " 7d", "7d ", "1h30m", "never"}) {
    EXPECT_FALSE(parse_duration(text)) << text;
  }
}

TEST(ParseDuration, ZeroIsRejected) { EXPECT_FALSE(parse_duration("0s")); }

TEST(ParseDuration, AHundredYearsIsTheLimit) {
  EXPECT_TRUE(parse_duration("36600d"));
  EXPECT_FALSE(parse_duration("36601d"));
  EXPECT_FALSE(parse_duration("99999999999999999999999s"));
}

TEST(ParseSize, PlainBytes) {
  EXPECT_EQ(parse_size("0").value(), 0u);
  EXPECT_EQ(parse_size("1048576").value(), 1048576u);
  EXPECT_EQ(parse_size("12b").value(), 12u);
}

TEST(ParseSize, DecimalUnitsArePowersOf1000AsInTheAdminApi) {
  EXPECT_EQ(parse_size("1k").value(), 1000u);
  EXPECT_EQ(parse_size("10MB").value(), 10'000'000u);
  EXPECT_EQ(parse_size("2G").value(), 2'000'000'000u);
  EXPECT_EQ(parse_size("1tb").value(), 1'000'000'000'000u);
}

TEST(ParseSize, BinaryUnitsArePowersOf1024) {
  EXPECT_EQ(parse_size("512KiB").value(), 512u * 1024);
  EXPECT_EQ(parse_size("512ki").value(), 512u * 1024);
  EXPECT_EQ(parse_size("10mib").value(), 10u * 1024 * 1024);
  EXPECT_EQ(parse_size("2GiB").value(), 2ull << 30);
  EXPECT_EQ(parse_size("1TiB").value(), 1ull << 40);
}

TEST(ParseSize, BlanksMaySeparateTheNumberFromTheUnit) {
  EXPECT_EQ(parse_size("10 MB").value(), 10'000'000u);
}

TEST(ParseSize, FractionsAreExactAndRoundDown) {
  EXPECT_EQ(parse_size("1.5GiB").value(), 1610612736u);
  EXPECT_EQ(parse_size("0.5KiB").value(), 512u);
  EXPECT_EQ(parse_size("1.0009KiB").value(), 1024u);  // 1024.92 bytes
  EXPECT_EQ(parse_size(".5KiB").value(), 512u);
  EXPECT_EQ(parse_size("1.2345678GB").value(), 1'234'567'000u);  // six fraction digits count
  EXPECT_EQ(parse_size("3.").value(), 3u);
}

TEST(ParseSize, RejectsMalformedText) {
  for (const char* text :
       {"", "k", ".", "-1", "+1", "1e6", "0x10", "inf", "nan", "10XB", "10MBs", " 10", "1.2.3"}) {
    auto s = parse_size(text);
    EXPECT_FALSE(s) << text;
  }
}

TEST(ParseSize, RejectsValuesBeyondInt64) {
  EXPECT_TRUE(parse_size("8388607TiB"));  // 2^63 - 2^40
  EXPECT_FALSE(parse_size("8388608TiB"));
  EXPECT_FALSE(parse_size("9223372036854775808"));
  EXPECT_FALSE(parse_size("99999999999999999999999999"));
}

TEST(FormatSize, BytesBelowAKibibyteAreExact) {
  EXPECT_EQ(format_size(0), "0 B");
  EXPECT_EQ(format_size(1), "1 B");
  EXPECT_EQ(format_size(1023), "1023 B");
}

TEST(FormatSize, LargerSizesGetOneDecimal) {
  EXPECT_EQ(format_size(1024), "1.0 KiB");
  EXPECT_EQ(format_size(1536), "1.5 KiB");
  EXPECT_EQ(format_size(10 * 1024 * 1024), "10.0 MiB");
  EXPECT_EQ(format_size(1610612736), "1.5 GiB");
  EXPECT_EQ(format_size(1ull << 40), "1.0 TiB");
}

TEST(FormatSize, NeverPrints1024OfAUnit) {
  EXPECT_EQ(format_size(1024 * 1024 - 1), "1.0 MiB");
  EXPECT_EQ(format_size(1024 * 1024 - 60), "1023.9 KiB");
}

TEST(FormatSize, TheLargestValueFits) { EXPECT_EQ(format_size(UINT64_MAX), "16.0 EiB"); }

TEST(FormatSize, RoundTripsThroughParseSizeForWholeUnits) {
  EXPECT_EQ(parse_size("10.0MiB").value(), 10u * 1024 * 1024);
}

}  // namespace
}  // namespace quire::cli
