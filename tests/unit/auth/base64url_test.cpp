#include "auth/base64url.h"

#include <gtest/gtest.h>

namespace quire::auth::base64url {
namespace {

TEST(AuthBase64url, RoundTripsEveryLength) {
  std::string bytes;
  for (int n = 0; n < 70; ++n) {
    std::string enc = encode(bytes);
    EXPECT_EQ(enc.find_first_of("+/="), std::string::npos);
    EXPECT_EQ(decode_string(enc), bytes);
    bytes.push_back(static_cast<char>(n * 37 + 251));
  }
}

TEST(AuthBase64url, RejectsPaddingAndTheStandardAlphabet) {
  EXPECT_EQ(decode_string("Zm9vYg"), "foob");
  EXPECT_FALSE(decode("Zm9vYg=="));
  EXPECT_FALSE(decode("Zm9vYg="));
  EXPECT_FALSE(decode("+/+/"));
  EXPECT_EQ(decode("-_-_"), (std::vector<std::uint8_t>{0xfb, 0xff, 0xbf}));
  EXPECT_FALSE(decode("Zm9v Yg"));
  EXPECT_FALSE(decode("Zm9vY"));  // 4k+1 characters
}

TEST(AuthBase64url, RejectsNonZeroTrailingBits) {
  EXPECT_EQ(decode_string("Zg"), "f");
  EXPECT_FALSE(decode("Zh"));  // same byte, a low bit set
  EXPECT_EQ(decode_string("Zm8"), "fo");
  EXPECT_FALSE(decode("Zm9"));
}

}  // namespace
}  // namespace quire::auth::base64url
