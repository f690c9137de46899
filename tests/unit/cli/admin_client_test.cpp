#include "cli/admin_client.h"

#include <gtest/gtest.h>

#include "cli/http_client.h"

namespace quire::cli {
namespace {

TEST(ParseHttpUrl, HostAndPort) {
  auto e = parse_http_url("http://127.0.0.1:9090").value();
  EXPECT_EQ(e.host, "127.0.0.1");
  EXPECT_EQ(e.port, "9090");
  EXPECT_EQ(e.host_header, "127.0.0.1:9090");
  EXPECT_EQ(e.base_path, "");
}

TEST(ParseHttpUrl, DefaultPortIs80) {
  auto e = parse_http_url("http://admin.internal").value();
  EXPECT_EQ(e.host, "admin.internal");
  EXPECT_EQ(e.port, "80");
  EXPECT_EQ(e.host_header, "admin.internal");
}

TEST(ParseHttpUrl, Ipv6LosesItsBracketsForTheResolverOnly) {
  auto e = parse_http_url("http://[::1]:9090/").value();
  EXPECT_EQ(e.host, "::1");
  EXPECT_EQ(e.host_header, "[::1]:9090");
  EXPECT_EQ(e.base_path, "");
}

TEST(ParseHttpUrl, KeepsABasePathWithoutTrailingSlashes) {
  EXPECT_EQ(parse_http_url("http://h:1/admin//").value().base_path, "/admin");
  EXPECT_EQ(parse_http_url("http://h:1/a/b").value().base_path, "/a/b");
}

TEST(ParseHttpUrl, RefusesWhatItCannotHonour) {
  for (const char* text : {"", "127.0.0.1:9090", "https://h:1", "ftp://h", "http://u:p@h:1",
                           "http://h:1/?x=1", "http://h:1/#f", "http://:1", "not a url"}) {
    EXPECT_FALSE(parse_http_url(text)) << text;
  }
}

TEST(EncodePathSegment, EncodesEverythingThatCouldChangeTheRoute) {
  EXPECT_EQ(encode_path_segment("app-1_x.y~"), "app-1_x.y~");
  EXPECT_EQ(encode_path_segment("a/b"), "a%2Fb");
  EXPECT_EQ(encode_path_segment("a b?c#d%"), "a%20b%3Fc%23d%25");
  EXPECT_EQ(encode_path_segment(".."), "..");  // a name the server itself must refuse
}

TEST(ErrorMessageFrom, TakesTheErrorMember) {
  EXPECT_EQ(error_message_from(404, R"({"error":"namespace 'x' does not exist"})"),
            "namespace 'x' does not exist");
}

TEST(ErrorMessageFrom, ANonStringErrorIsShownAsJson) {
  EXPECT_EQ(error_message_from(400, R"({"error":{"code":1}})"), R"({"code":1})");
}

TEST(ErrorMessageFrom, FallsBackToTheBodyThenTheStatus) {
  EXPECT_EQ(error_message_from(502, "  Bad Gateway\n"), "Bad Gateway");
  EXPECT_EQ(error_message_from(500, R"({"message":"x"})"), R"({"message":"x"})");
  EXPECT_EQ(error_message_from(503, ""), "HTTP 503");
}

TEST(ErrorMessageFrom, TruncatesLongBodies) {
  const auto message = error_message_from(500, std::string(2000, 'x'));
  EXPECT_EQ(message, std::string(500, 'x') + "...");
}

}  // namespace
}  // namespace quire::cli
