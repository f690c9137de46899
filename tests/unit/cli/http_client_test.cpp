#include "cli/http_client.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <future>
#include <thread>

#include "cli/admin_client.h"

namespace quire::cli {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// A one-connection HTTP server on loopback: records the request it gets and answers with
// `response` verbatim (or, when `answer` is false, keeps the connection open without a word
// until the client gives up).
class OneShotServer {
 public:
  explicit OneShotServer(std::string response, bool answer = true)
      : acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this, response = std::move(response), answer] {
      boost::system::error_code ec;
      tcp::socket socket(ioc_);
      acceptor_.accept(socket, ec);
      if (ec) return;
      std::string data;
      auto n = asio::read_until(socket, asio::dynamic_buffer(data), "\r\n\r\n", ec);
      if (!ec) {
        // Read the body too, when there is one.
        const auto pos = data.find("Content-Length: ");
        if (pos != std::string::npos && pos < n) {
          const std::size_t length = std::stoul(data.substr(pos + 16));
          while (data.size() < n + length && !ec) {
            char buf[4096];
            const auto got = socket.read_some(asio::buffer(buf), ec);
            data.append(buf, got);
          }
        }
      }
      request_.set_value(data);
      if (answer) {
        asio::write(socket, asio::buffer(response), ec);
      } else {
        char c;
        socket.read_some(asio::buffer(&c, 1), ec);  // until the client closes
      }
    });
  }
  ~OneShotServer() {
    acceptor_.close();
    thread_.join();
  }

  HttpEndpoint endpoint(std::string base_path = "") const {
    HttpEndpoint e;
    e.host = "127.0.0.1";
    e.port = std::to_string(port_);
    e.host_header = "127.0.0.1:" + e.port;
    e.base_path = std::move(base_path);
    return e;
  }
  std::string request() { return request_.get_future().get(); }

 private:
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  unsigned short port_ = 0;
  std::promise<std::string> request_;
  std::thread thread_;
};

std::string json_response(unsigned status, const std::string& reason, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) + " " + reason +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n" + body;
}

TEST(HttpRequest, SendsMethodTargetHeadersAndBodyAndReturnsTheAnswer) {
  OneShotServer server(json_response(200, "OK", R"({"ok":true})"));
  HttpRequest request;
  request.method = "POST";
  request.target = "/v1/namespaces/a/create";
  request.body = R"({"dump":"x"})";
  request.headers.emplace_back("Authorization", "Bearer k");
  auto response = http_request(server.endpoint("/base"), request);
  ASSERT_TRUE(response) << response.error();
  EXPECT_EQ(response->status, 200u);
  EXPECT_EQ(response->body, R"({"ok":true})");

  const auto sent = server.request();
  EXPECT_EQ(sent.rfind("POST /base/v1/namespaces/a/create HTTP/1.1\r\n", 0), 0u) << sent;
  EXPECT_NE(sent.find("Host: 127.0.0.1:"), std::string::npos) << sent;
  EXPECT_NE(sent.find("Authorization: Bearer k\r\n"), std::string::npos) << sent;
  EXPECT_NE(sent.find("Content-Type: application/json\r\n"), std::string::npos) << sent;
  EXPECT_NE(sent.find("\r\n\r\n{\"dump\":\"x\"}"), std::string::npos) << sent;
}

TEST(HttpRequest, ARefusedConnectionIsAnErrorNamingTheEndpoint) {
  HttpEndpoint e;
  {
    asio::io_context ioc;
    tcp::acceptor a(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    e.port = std::to_string(a.local_endpoint().port());
  }  // closed: nothing listens there now
  e.host = "127.0.0.1";
  e.host_header = "127.0.0.1:" + e.port;
  auto response = http_request(e, HttpRequest{"GET", "/", "", {}});
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().rfind("cannot connect to http://127.0.0.1:" + e.port, 0), 0u)
      << response.error();
}

TEST(HttpRequest, AServerThatNeverAnswersTimesOut) {
  OneShotServer server("", /*answer=*/false);
  HttpOptions options;
  options.timeout = std::chrono::milliseconds(200);
  const auto start = std::chrono::steady_clock::now();
  auto response = http_request(server.endpoint(), HttpRequest{"GET", "/", "", {}}, options);
  ASSERT_FALSE(response);
  EXPECT_NE(response.error().find("timed out"), std::string::npos) << response.error();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(HttpRequest, AnOversizedAnswerIsRefused) {
  OneShotServer server(json_response(200, "OK", std::string(2048, ' ')));
  HttpOptions options;
  options.max_response_bytes = 1024;
  auto response = http_request(server.endpoint(), HttpRequest{"GET", "/", "", {}}, options);
  ASSERT_FALSE(response);
  EXPECT_NE(response.error().find("over 1024 bytes"), std::string::npos) << response.error();
}

TEST(HttpRequest, GarbageInsteadOfHttpIsAnError) {
  OneShotServer server("SSH-2.0-OpenSSH\r\n\r\n");
  auto response = http_request(server.endpoint(), HttpRequest{"GET", "/", "", {}});
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().rfind("no valid response from", 0), 0u) << response.error();
}

TEST(AdminClient, EncodesSegmentsAndSendsTheKeyAsBearer) {
  OneShotServer server(json_response(200, "OK", "{}"));
  AdminClient client(server.endpoint(), "secret");
  auto reply = client.call("DELETE", {"v1", "namespaces", "a b/c"});
  ASSERT_TRUE(reply) << reply.error().message;
  EXPECT_TRUE(reply->json.is_object());
  const auto sent = server.request();
  EXPECT_EQ(sent.rfind("DELETE /v1/namespaces/a%20b%2Fc HTTP/1.1\r\n", 0), 0u) << sent;
  EXPECT_NE(sent.find("Authorization: Bearer secret\r\n"), std::string::npos) << sent;
}

TEST(AdminClient, NoKeyMeansNoAuthorizationHeader) {
  OneShotServer server(json_response(200, "OK", ""));
  AdminClient client(server.endpoint(), "");
  auto reply = client.call("POST", {"v1", "namespaces", "a", "checkpoint"});
  ASSERT_TRUE(reply) << reply.error().message;
  EXPECT_TRUE(reply->json.is_null());  // an empty body is fine
  EXPECT_EQ(server.request().find("Authorization"), std::string::npos);
}

TEST(AdminClient, AnErrorStatusCarriesTheServersMessage) {
  OneShotServer server(json_response(409, "Conflict", R"({"error":"namespace 'a' exists"})"));
  AdminClient client(server.endpoint(), "");
  auto reply = client.call("POST", {"v1", "namespaces", "a", "create"}, boost::json::object{});
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().status, 409u);
  EXPECT_EQ(reply.error().message, "namespace 'a' exists");
}

TEST(AdminClient, ASuccessThatIsNotJsonIsAnError) {
  OneShotServer server("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
  AdminClient client(server.endpoint(), "");
  auto reply = client.call("GET", {"v1", "namespaces"});
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().status, 0u);
  EXPECT_NE(reply.error().message.find("is not JSON"), std::string::npos);
}

}  // namespace
}  // namespace quire::cli
