// Tests for the 24-byte replication frame header (protocol/replication/frame.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <string_view>

#include "protocol/replication/codec.h"
#include "protocol/replication/frame.h"
#include "protocol/replication/grpc_web.h"

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

// A Snapshot answer is built with append_grpc_web_frame_message: it must be byte for byte the
// gRPC-Web data frame of the Frame message encode_frame makes, which the libSQL client reads.
TEST(ReplicationFrame, SnapshotFrameMessageMatchesTheGeneralEncoder) {
  const FrameHeader h{41, 0, 7, 0};
  const std::string page(kPageSize, 'p');
  Frame f;
  f.data = make_frame_data(h, page);
  std::string expected;
  append_grpc_web_data_frame(expected, encode_frame(f));

  std::string out = "xy";
  const std::size_t at = append_grpc_web_frame_message(out, h, page);
  EXPECT_EQ(out.size(), 2 + grpc_web_frame_message_size());
  EXPECT_EQ(out.substr(2), expected);
  EXPECT_EQ(out.substr(at, kPageSize), page);

  // Without a page: room for it, to be read into place at the offset returned.
  std::string empty;
  const std::size_t at2 = append_grpc_web_frame_message(empty, h, {});
  std::copy(page.begin(), page.end(), empty.begin() + static_cast<std::ptrdiff_t>(at2));
  EXPECT_EQ(empty, expected);
}

TEST(ReplicationFrame, FrameRefsPointIntoTheMessage) {
  Frames frames;
  for (std::uint32_t p = 1; p <= 3; ++p) {
    Frame f;
    f.data = make_frame_data(FrameHeader{p, 0, p, p == 3 ? 3u : 0u}, std::string(kPageSize, 'a'));
    if (p == 3) f.timestamp = 1234;
    frames.frames.push_back(f);
  }
  const std::string bytes = encode_frames(frames);
  auto refs = decode_frames_ref(bytes);
  ASSERT_TRUE(refs);
  ASSERT_EQ(refs->size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ((*refs)[i].data, frames.frames[i].data);
    EXPECT_GE((*refs)[i].data.data(), bytes.data());
    EXPECT_LT((*refs)[i].data.data(), bytes.data() + bytes.size());
  }
  EXPECT_EQ((*refs)[2].timestamp, std::optional<std::int64_t>(1234));
  const std::string single = encode_frame(frames.frames[0]);
  auto one = decode_frame_ref(single);
  ASSERT_TRUE(one);
  EXPECT_EQ(one->data, frames.frames[0].data);
  EXPECT_FALSE(
      decode_frame_ref(std::string_view("\x0a\x05"
                                        "ab",
                                        4)));  // data cut short
}

}  // namespace
}  // namespace quire::replication
