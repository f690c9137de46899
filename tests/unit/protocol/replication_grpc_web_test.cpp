// Tests for gRPC-Web framing (protocol/replication/grpc_web.h). Golden request bodies were
// captured from the real npm libsql 0.5.29 client by tests/integration/tools/replication-probe.mjs.
#include <gtest/gtest.h>

#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/replication/grpc_web.h"

namespace quire::replication {
namespace {

std::string unhex(std::string_view h) {
  std::string out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

// The parsers return views into their input: keep each test body alive for the whole test run.
std::string_view keep(std::string_view hex) {
  static std::deque<std::string> bodies;
  return bodies.emplace_back(unhex(hex));
}

constexpr std::size_t kLimit = 1 << 20;

TEST(ReplicationGrpcWeb, ParsesTheClientsHelloRequestBody) {
  // POST /wal_log.ReplicationLog/Hello: one data frame holding HelloRequest{handshake_version=1}.
  const std::string body = unhex("00000000020801");
  auto msg = parse_unary_grpc_web_request(body, kLimit);
  ASSERT_TRUE(msg) << msg.error().message;
  EXPECT_EQ(*msg, unhex("0801"));
}

TEST(ReplicationGrpcWeb, AnEmptyMessageIsAMessage) {
  // The first BatchLogEntries: LogOffset{next_offset=0} encodes to nothing.
  const std::string body = unhex("0000000000");
  auto msg = parse_unary_grpc_web_request(body, kLimit);
  ASSERT_TRUE(msg) << msg.error().message;
  EXPECT_TRUE(msg->empty());
}

TEST(ReplicationGrpcWeb, ParsesSeveralMessagesInOneBody) {
  auto msgs = parse_grpc_web_request(keep("00000000020801"
                                          "0000000003"
                                          "aabb"),
                                     kLimit);
  ASSERT_FALSE(msgs);  // the last frame announces 3 bytes but holds 2
  auto ok = parse_grpc_web_request(keep("00000000020801"
                                        "0000000000"
                                        "000000000199"),
                                   kLimit);
  ASSERT_TRUE(ok) << ok.error().message;
  ASSERT_EQ(ok->size(), 3u);
  EXPECT_EQ((*ok)[0], unhex("0801"));
  EXPECT_EQ((*ok)[1], "");
  EXPECT_EQ((*ok)[2], unhex("99"));
}

TEST(ReplicationGrpcWeb, UnaryRejectsZeroOrSeveralMessages) {
  EXPECT_FALSE(parse_unary_grpc_web_request(std::string_view(), kLimit));
  auto two = parse_unary_grpc_web_request(keep("0000000000"
                                               "0000000000"),
                                          kLimit);
  ASSERT_FALSE(two);
  EXPECT_NE(two.error().message.find("exactly one"), std::string::npos);
}

TEST(ReplicationGrpcWeb, RejectsCompressedFrames) {
  auto r = parse_grpc_web_request(keep("01000000020801"), kLimit);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("compressed"), std::string::npos);
}

TEST(ReplicationGrpcWeb, RejectsUnknownFlagsAndTrailersInRequests) {
  EXPECT_FALSE(parse_grpc_web_request(keep("40000000020801"), kLimit));
  auto t = parse_grpc_web_request(keep("800000000f677270632d7374617475733a300d0a"), kLimit);
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message.find("trailer"), std::string::npos);
}

TEST(ReplicationGrpcWeb, RejectsTruncatedPrefixAndPayload) {
  for (std::string_view h : {"00", "00000000", "0000000002", "000000000208"}) {
    EXPECT_FALSE(parse_grpc_web_request(keep(h), kLimit)) << h;
  }
  // A length near 4 GiB must not overflow the bounds check.
  EXPECT_FALSE(parse_grpc_web_request(keep("00ffffffff08"), SIZE_MAX));
}

TEST(ReplicationGrpcWeb, RejectsFramesOverTheLimit) {
  auto r = parse_grpc_web_request(keep("0000000003010203"), 2);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("limit"), std::string::npos);
  EXPECT_TRUE(parse_grpc_web_request(keep("0000000002"
                                          "0102"),
                                     2));
}

TEST(ReplicationGrpcWeb, BuildsAUnarySuccessResponse) {
  // The same bytes our probe served and the real client accepted: data frame + "grpc-status:0".
  EXPECT_EQ(grpc_web_response(unhex("0a06120418012003") + unhex("10001801")),
            unhex("000000000c0a0612041801200310001801"
                  "800000000f677270632d7374617475733a300d0a"));
}

TEST(ReplicationGrpcWeb, BuildsStreamingResponsesWithOneFramePerMessage) {
  const std::vector<std::string> msgs{"ab", "", "c"};
  EXPECT_EQ(grpc_web_response(msgs), unhex("00000000026162"
                                           "0000000000"
                                           "000000000163"
                                           "800000000f677270632d7374617475733a300d0a"));
}

TEST(ReplicationGrpcWeb, BuildsErrorTrailers) {
  // Accepted by the client as FailedPrecondition "NEED_SNAPSHOT" (it then called Snapshot).
  EXPECT_EQ(grpc_web_error(GrpcStatus::kFailedPrecondition, kNeedSnapshotMessage),
            unhex("800000002b677270632d7374617475733a390d0a677270632d6d6573736167653a4e4545445f534e"
                  "415053484f540d0a"));
  const std::string r = grpc_web_error(GrpcStatus::kUnavailable, "");
  EXPECT_EQ(r.substr(5), "grpc-status:14\r\n");
}

TEST(ReplicationGrpcWeb, PercentEncodesGrpcMessage) {
  EXPECT_EQ(percent_encode_grpc_message("no such table: t"), "no such table: t");
  EXPECT_EQ(percent_encode_grpc_message("100%"), "100%25");
  EXPECT_EQ(percent_encode_grpc_message("a\r\nb"), "a%0D%0Ab");
  EXPECT_EQ(percent_encode_grpc_message("\xc3\xbc"), "%C3%BC");
  EXPECT_EQ(percent_decode_grpc_message("%C3%BCn%c3%afcode 100%25"),
            "\xc3\xbcn\xc3\xaf"
            "code 100%");
  EXPECT_EQ(percent_decode_grpc_message("bad %G1 %4"), "bad %G1 %4");
  const std::string all = [] {
    std::string s;
    for (int c = 0; c < 256; ++c) s.push_back(static_cast<char>(c));
    return s;
  }();
  const std::string enc = percent_encode_grpc_message(all);
  for (char c : enc) EXPECT_TRUE(c >= 0x20 && c <= 0x7E);
  EXPECT_EQ(percent_decode_grpc_message(enc), all);
}

TEST(ReplicationGrpcWeb, TrailersRoundTrip) {
  std::string out;
  append_grpc_web_trailers(out, GrpcStatus::kInvalidArgument, "bad program: \xc3\xbc\r\n");
  auto frames = split_grpc_web_frames(out, kLimit);
  ASSERT_TRUE(frames);
  ASSERT_EQ(frames->size(), 1u);
  ASSERT_TRUE((*frames)[0].trailers);
  auto t = parse_grpc_web_trailers((*frames)[0].payload);
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->status, 3);
  EXPECT_EQ(t->message, "bad program: \xc3\xbc\r\n");
}

TEST(ReplicationGrpcWeb, ParsesTrailersLeniently) {
  auto t = parse_grpc_web_trailers("Grpc-Status: 9\r\ngrpc-message:NO_HELLO\r\nx-other:1");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->status, 9);
  EXPECT_EQ(t->message, "NO_HELLO");
  auto none = parse_grpc_web_trailers("");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, -1);
  EXPECT_FALSE(parse_grpc_web_trailers("grpc-status:x\r\n"));
  EXPECT_FALSE(parse_grpc_web_trailers("no colon here\r\n"));
}

TEST(ReplicationGrpcWeb, StatusNamesAndHeaders) {
  EXPECT_STREQ(grpc_status_name(GrpcStatus::kFailedPrecondition), "FAILED_PRECONDITION");
  EXPECT_STREQ(grpc_status_name(GrpcStatus::kUnauthenticated), "UNAUTHENTICATED");
  EXPECT_STREQ(grpc_status_name(static_cast<GrpcStatus>(99)), "UNKNOWN_STATUS");
  const auto headers = grpc_web_response_headers();
  ASSERT_EQ(headers.size(), 1u);
  EXPECT_EQ(headers[0].name, "content-type");
  EXPECT_EQ(headers[0].value, "application/grpc-web+proto");
}

}  // namespace
}  // namespace quire::replication
