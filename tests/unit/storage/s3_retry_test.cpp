// S3ObjectStore's retry and error classification against a scripted HTTP server on 127.0.0.1
// that answers each request with the next canned status and body, and records what it got.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <deque>
#include <mutex>
#include <thread>

#include "storage/s3_object_store.h"
#include "storage/sigv4.h"

namespace quire::storage {
namespace {

class ScriptedServer {
 public:
  explicit ScriptedServer(std::deque<std::pair<int, std::string>> script)
      : script_(std::move(script)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(fd_, 16);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedServer() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<std::string> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  void serve() {
    while (true) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string req;
      char buf[4096];
      std::size_t body_at = std::string::npos, want = 0;
      while (true) {
        ssize_t n = ::read(c, buf, sizeof buf);
        if (n <= 0) break;
        req.append(buf, static_cast<std::size_t>(n));
        if (body_at == std::string::npos && (body_at = req.find("\r\n\r\n")) != std::string::npos) {
          body_at += 4;
          auto cl = req.find("Content-Length: ");
          if (cl != std::string::npos && cl < body_at) want = std::stoul(req.substr(cl + 16));
        }
        if (body_at != std::string::npos && req.size() >= body_at + want) break;
      }
      std::pair<int, std::string> answer{200, ""};
      {
        std::lock_guard lock(mu_);
        requests_.push_back(req);
        if (!script_.empty()) {
          answer = script_.front();
          script_.pop_front();
        }
      }
      std::string resp = "HTTP/1.1 " + std::to_string(answer.first) +
                         " Scripted\r\nContent-Length: " + std::to_string(answer.second.size()) +
                         "\r\nConnection: close\r\n\r\n" + answer.second;
      (void)!::write(c, resp.data(), resp.size());
      ::close(c);
    }
  }

  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::deque<std::pair<int, std::string>> script_;
  std::vector<std::string> requests_;
};

std::string s3_error(const std::string& code) {
  return "<?xml version=\"1.0\"?><Error><Code>" + code + "</Code><Message>scripted " + code +
         "</Message></Error>";
}

std::unique_ptr<ObjectStore> open_store(const ScriptedServer& server, int attempts = 5) {
  ObjectStoreOptions o;
  o.endpoint = server.endpoint();
  o.access_key_id = "AKID";
  o.secret_access_key = "SECRET";
  o.retry.max_attempts = attempts;
  o.retry.base_delay = std::chrono::milliseconds(1);
  o.retry.max_delay = std::chrono::milliseconds(5);
  auto store = open_object_store("s3://bkt/pre", o);
  EXPECT_TRUE(store) << store.error().message;
  return std::move(*store);
}

TEST(S3Retry, RetriesServerErrorsAndThrottlingThenSucceeds) {
  ScriptedServer server({{503, s3_error("SlowDown")},
                         {429, ""},
                         {400, s3_error("RequestTimeout")},
                         {500, s3_error("InternalError")},
                         {200, ""}});
  auto store = open_store(server);
  auto put = store->put("k", "payload");
  ASSERT_TRUE(put) << put.error().message;
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 5u);
  for (const auto& r : reqs) {
    EXPECT_TRUE(r.starts_with("PUT /bkt/pre/k HTTP/1.1\r\n")) << r;
    EXPECT_NE(r.find("x-amz-content-sha256: " + sigv4::sha256_hex("payload")), std::string::npos);
    EXPECT_NE(r.find("Authorization: AWS4-HMAC-SHA256 Credential=AKID/"), std::string::npos);
    EXPECT_NE(r.find("/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;"
                     "x-amz-date, Signature="),
              std::string::npos)
        << r;
    EXPECT_TRUE(r.ends_with("\r\n\r\npayload"));
  }
}

TEST(S3Retry, GivesUpAfterMaxAttemptsWithATransientError) {
  ScriptedServer server({{503, ""}, {503, ""}, {503, ""}, {200, ""}});
  auto store = open_store(server, /*attempts=*/3);
  auto get = store->get("k");
  ASSERT_FALSE(get);
  EXPECT_EQ(get.error().kind, StorageErrc::kTransient);
  EXPECT_NE(get.error().message.find("after 3 attempts"), std::string::npos);
  EXPECT_EQ(server.requests().size(), 3u);
}

TEST(S3Retry, AuthAndNotFoundAreNotRetried) {
  ScriptedServer server({{403, s3_error("SignatureDoesNotMatch")},
                         {404, s3_error("NoSuchKey")},
                         {404, ""},
                         {400, s3_error("InvalidArgument")},
                         {404, s3_error("NoSuchBucket")}});
  auto store = open_store(server);
  auto auth = store->get("a");
  EXPECT_EQ(auth.error().kind, StorageErrc::kAuth);
  EXPECT_NE(auth.error().message.find("SignatureDoesNotMatch"), std::string::npos);
  EXPECT_EQ(store->get("b").error().kind, StorageErrc::kNotFound);
  EXPECT_EQ(store->head("c").error().kind, StorageErrc::kNotFound);
  EXPECT_EQ(store->put("d", "x").error().kind, StorageErrc::kPermanent);
  auto bucket = store->get("e");
  EXPECT_EQ(bucket.error().kind, StorageErrc::kPermanent);
  EXPECT_NE(bucket.error().message.find("NoSuchBucket"), std::string::npos);
  EXPECT_EQ(server.requests().size(), 5u);
}

TEST(S3Retry, ErrorsInsideASuccessfulBatchDeleteAreReported) {
  ScriptedServer server(
      {{200,
        "<DeleteResult><Error><Key>pre/x</Key><Code>AccessDenied</Code><Message>no</Message>"
        "</Error></DeleteResult>"}});
  auto store = open_store(server);
  std::vector<std::string> keys{"x", "y"};
  auto removed = store->remove_many(keys);
  ASSERT_FALSE(removed);
  EXPECT_EQ(removed.error().kind, StorageErrc::kAuth);
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_TRUE(reqs[0].starts_with("POST /bkt?delete= HTTP/1.1\r\n")) << reqs[0];
  EXPECT_NE(reqs[0].find("Content-MD5: "), std::string::npos);
  EXPECT_NE(reqs[0].find("<Object><Key>pre/x</Key></Object><Object><Key>pre/y</Key></Object>"),
            std::string::npos);
}

TEST(S3Retry, TruncatedListingWithoutTokenIsCorrupt) {
  ScriptedServer server({{200,
                          "<ListBucketResult><IsTruncated>true</IsTruncated>"
                          "<Contents><Key>pre/a</Key><Size>1</Size></Contents>"
                          "</ListBucketResult>"}});
  auto store = open_store(server);
  auto listed = store->list("");
  ASSERT_FALSE(listed);
  EXPECT_EQ(listed.error().kind, StorageErrc::kCorrupt);
}

}  // namespace
}  // namespace quire::storage
