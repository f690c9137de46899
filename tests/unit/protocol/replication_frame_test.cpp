// Tests for the 24-byte replication frame header (protocol/replication/frame.h).
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "protocol/replication/codec.h"
#include "protocol/replication/frame.h"

namespace quire::replication {
namespace {

std::string hex(std::string_view s) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

TEST(ReplicationFrame, HeaderIsLittleEndian) {
  // The probe served frame 1 of a 2-page database (page 2, commit, size_after 2) this way, and
  // the real client committed it.
  const FrameHeader h{1, 0, 2, 2};
  EXPECT_EQ(hex(encode_frame_header(h)),
            "0100000000000000"
            "0000000000000000"
            "02000000"
            "02000000");
  const FrameHeader big{0x0102030405060708, 0x1112131415161718, 0x21222324, 0x31323334};
  EXPECT_EQ(hex(encode_frame_header(big)),
            "0807060504030201"
            "1817161514131211"
            "24232221"
            "34333231");
  EXPECT_EQ(decode_frame_header(encode_frame_header(big)).value(), big);
  EXPECT_TRUE(h.is_commit());
  EXPECT_FALSE((FrameHeader{1, 0, 2, 0}).is_commit());
}

TEST(ReplicationFrame, DecodeNeedsTwentyFourBytes) {
  const std::string bytes = encode_frame_header(FrameHeader{7, 8, 9, 10});
  for (std::size_t n = 0; n < kFrameHeaderSize; ++n) {
    EXPECT_FALSE(decode_frame_header(std::string_view(bytes).substr(0, n))) << n;
  }
  EXPECT_TRUE(decode_frame_header(bytes + "extra"));
}

TEST(ReplicationFrame, FrameDataIsHeaderThenPage) {
  const std::string page(kPageSize, '\x5a');
  const FrameHeader h{42, 99, 3, 0};
  const std::string data = make_frame_data(h, page);
  ASSERT_EQ(data.size(), 4120u);
  auto view = decode_frame_data(data);
  ASSERT_TRUE(view) << view.error().message;
  EXPECT_EQ(view->header, h);
  EXPECT_EQ(view->page, page);
  // Carried in a Frame message, it survives the protobuf codec.
  auto frame = decode_frame(encode_frame(Frame{data, std::nullopt, std::nullopt}));
  ASSERT_TRUE(frame);
  EXPECT_EQ(frame->data, data);
}

TEST(ReplicationFrame, FrameDataMustBeExactly4120Bytes) {
  // The client fails with InvalidFrameLen otherwise (seen with a 100-byte frame).
  EXPECT_FALSE(decode_frame_data(std::string(100, '\0')));
  EXPECT_FALSE(decode_frame_data(std::string(4119, '\0')));
  EXPECT_FALSE(decode_frame_data(std::string(4121, '\0')));
  EXPECT_TRUE(decode_frame_data(std::string(4120, '\0')));
}

}  // namespace
}  // namespace quire::replication
