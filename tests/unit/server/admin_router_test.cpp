#include "server/admin_router.h"

#include <gtest/gtest.h>

namespace quire::server {
namespace {

TEST(AdminKey, AcceptsBasicAndBearerInAnyCase) {
  EXPECT_TRUE(admin_key_matches("Bearer s3cret", "s3cret"));
  EXPECT_TRUE(admin_key_matches("Basic s3cret", "s3cret"));
  EXPECT_TRUE(admin_key_matches("bAsIc s3cret", "s3cret"));
  EXPECT_TRUE(admin_key_matches("BEARER s3cret", "s3cret"));
  EXPECT_TRUE(admin_key_matches("  Bearer   s3cret  ", "s3cret"));
}

TEST(AdminKey, ComparesTheKeyLiterallyNotBase64Decoded) {
  EXPECT_FALSE(admin_key_matches("Basic czNjcmV0", "s3cret"));  // base64("s3cret")
  EXPECT_TRUE(admin_key_matches("Basic czNjcmV0", "czNjcmV0"));
}

TEST(AdminKey, RejectsWrongKeysSchemesAndShapes) {
  EXPECT_FALSE(admin_key_matches("Bearer s3cre", "s3cret"));
  EXPECT_FALSE(admin_key_matches("Bearer s3crett", "s3cret"));
  EXPECT_FALSE(admin_key_matches("Bearer S3CRET", "s3cret"));
  EXPECT_FALSE(admin_key_matches("Bearer ", "s3cret"));
  EXPECT_FALSE(admin_key_matches("Token s3cret", "s3cret"));
  EXPECT_FALSE(admin_key_matches("s3cret", "s3cret"));
  EXPECT_FALSE(admin_key_matches("", "s3cret"));
}

TEST(ByteSize, DecimalUnitsArePowersOfTen) {
  EXPECT_EQ(parse_byte_size("10MB").value(), 10'000'000u);
  EXPECT_EQ(parse_byte_size("1GB").value(), 1'000'000'000u);
  EXPECT_EQ(parse_byte_size("2kb").value(), 2'000u);
  EXPECT_EQ(parse_byte_size("1.5 GB").value(), 1'500'000'000u);
  EXPECT_EQ(parse_byte_size("3T").value(), 3'000'000'000'000u);
}

TEST(ByteSize, BinaryUnitsArePowersOfTwo) {
  EXPECT_EQ(parse_byte_size("512KiB").value(), 524'288u);
  EXPECT_EQ(parse_byte_size("2MiB").value(), 2'097'152u);
  EXPECT_EQ(parse_byte_size("1gib").value(), 1'073'741'824u);
}

TEST(ByteSize, PlainNumbersAreBytes) {
  EXPECT_EQ(parse_byte_size("4096").value(), 4096u);
  EXPECT_EQ(parse_byte_size("4096B").value(), 4096u);
}

TEST(ByteSize, RejectsWhatIsNotASize) {
  for (const char* bad : {"", "MB", "-1MB", "10 parsecs", "1e400", "lots", "10MBB", "+5"}) {
    EXPECT_FALSE(parse_byte_size(bad).has_value()) << bad;
  }
}

TEST(DumpUrl, TakesAbsoluteFileUrlsAndDecodesThem) {
  EXPECT_EQ(dump_url_path("file:///srv/dumps/a.sql").value(), "/srv/dumps/a.sql");
  EXPECT_EQ(dump_url_path("file:/srv/a.sql").value(), "/srv/a.sql");
  EXPECT_EQ(dump_url_path("file://localhost/srv/a.sql").value(), "/srv/a.sql");
  EXPECT_EQ(dump_url_path("FILE:///srv/my%20dump.sql").value(), "/srv/my dump.sql");
}

TEST(DumpUrl, RefusesEverythingElse) {
  for (const char* bad : {"https://example.com/d.sql", "http://x/d.sql", "s3://bucket/d.sql",
                          "file:relative.sql", "file://otherhost/d.sql", "/plain/path.sql",
                          "file:///bad%zz", "file:///nul%00byte"}) {
    EXPECT_FALSE(dump_url_path(bad).has_value()) << bad;
  }
  EXPECT_NE(dump_url_path("https://example.com/d.sql").error().find("not supported"),
            std::string::npos);
}

}  // namespace
}  // namespace quire::server
