#include "common/base64.h"

#include <gtest/gtest.h>

namespace quire::base64 {
namespace {

std::string decode_str(std::string_view s) {
  auto d = decode(s);
  EXPECT_TRUE(d.has_value()) << s;
  return d ? std::string(d->begin(), d->end()) : std::string();
}

TEST(Base64, EncodesRfc4648VectorsWithoutPadding) {
  EXPECT_EQ(encode(""), "");
  EXPECT_EQ(encode("f"), "Zg");
  EXPECT_EQ(encode("fo"), "Zm8");
  EXPECT_EQ(encode("foo"), "Zm9v");
  EXPECT_EQ(encode("foob"), "Zm9vYg");
  EXPECT_EQ(encode("fooba"), "Zm9vYmE");
  EXPECT_EQ(encode("foobar"), "Zm9vYmFy");
}

TEST(Base64, EncodesWithPaddingWhenAsked) {
  EXPECT_EQ(encode("f", Padding::kPad), "Zg==");
  EXPECT_EQ(encode("fo", Padding::kPad), "Zm8=");
}

TEST(Base64, DecodesWithAndWithoutPadding) {
  EXPECT_EQ(decode_str("Zm9vYg=="), "foob");
  EXPECT_EQ(decode_str("Zm9vYg"), "foob");
  EXPECT_EQ(decode_str("Zm9vYmFy"), "foobar");
  EXPECT_EQ(decode_str(""), "");
}

TEST(Base64, DecodesUrlSafeAlphabet) {
  const std::uint8_t bytes[] = {0xfb, 0xff, 0xbf};
  EXPECT_EQ(encode(bytes, 3), "+/+/");
  EXPECT_EQ(encode_url(bytes, 3), "-_-_");
  auto d = decode("-_-_");
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, std::vector<std::uint8_t>(bytes, bytes + 3));
}

TEST(Base64, RejectsForeignCharactersAndImpossibleLengths) {
  EXPECT_FALSE(decode("Zm9v!"));
  EXPECT_FALSE(decode("Z"));
  EXPECT_FALSE(decode("Zm 9v"));
}

TEST(Base64, RoundTripsEveryByte) {
  std::vector<std::uint8_t> all(256);
  for (int i = 0; i < 256; ++i) all[i] = static_cast<std::uint8_t>(i);
  for (std::size_t n = 0; n <= all.size(); n += 37) {
    auto d = decode(encode(all.data(), n));
    ASSERT_TRUE(d);
    EXPECT_EQ(*d, std::vector<std::uint8_t>(all.begin(), all.begin() + n));
  }
}

}  // namespace
}  // namespace quire::base64
