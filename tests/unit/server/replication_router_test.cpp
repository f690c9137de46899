#include "server/replication_router.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "common/base64.h"
#include "protocol/replication/codec.h"
#include "protocol/replication/frame.h"
#include "protocol/replication/grpc_web.h"
#include "server/router.h"
#include "router_test_util.h"

namespace quire::server {
namespace {

using replication::GrpcStatus;

// What a gRPC-Web answer said: its data messages and its trailer status.
struct Answer {
  std::vector<std::string> messages;
  int status = -1;
  std::string message;
};

class ReplicationRouterTest : public testing::RouterFixture {
 protected:
  ReplicationRouterTest() : RouterFixture("replication-router") {}

  static Request rpc(const std::string& method, std::string_view message,
                     std::initializer_list<std::pair<std::string, std::string>> headers) {
    Request req{http::verb::post, "/" + method, 11};
    req.set(http::field::host, "127.0.0.1:8080");
    for (const auto& [k, v] : headers) req.set(k, v);
    std::string body;
    replication::append_grpc_web_data_frame(body, message);
    req.body() = body;
    req.prepare_payload();
    return req;
  }

  Response run(const Request& req, const std::string& address = "127.0.0.1") {
    auto routed = router_->handle(req, address);
    if (auto* deferred = std::get_if<Router::Deferred>(&routed)) return (*deferred)();
    return std::get<Response>(std::move(routed));
  }

  static Answer answer(const Response& res) {
    EXPECT_EQ(res.result(), http::status::ok);
    Answer a;
    auto frames = replication::split_grpc_web_frames(res.body(), 1u << 30);
    EXPECT_TRUE(frames);
    if (!frames) return a;
    for (const auto& f : *frames) {
      if (!f.trailers) {
        a.messages.emplace_back(f.payload);
        continue;
      }
      auto t = replication::parse_grpc_web_trailers(f.payload);
      EXPECT_TRUE(t);
      if (t) {
        a.status = t->status;
        a.message = t->message;
      }
    }
    return a;
  }

  static std::string bin(std::string_view ns) { return base64::encode(ns); }

  replication::HelloResponse hello(std::initializer_list<std::pair<std::string, std::string>> h) {
    auto a =
        answer(run(rpc("wal_log.ReplicationLog/Hello", replication::encode_hello_request({1}), h)));
    EXPECT_EQ(a.status, 0) << a.message;
    EXPECT_EQ(a.messages.size(), 1u);
    if (a.messages.empty()) return {};
    auto decoded = replication::decode_hello_response(a.messages[0]);
    EXPECT_TRUE(decoded);
    return decoded ? *decoded : replication::HelloResponse{};
  }

};

TEST_F(ReplicationRouterTest, InfoIsNotFoundSoClientsStayOnThisProtocol) {
  Request req{http::verb::get, "/info", 11};
  EXPECT_EQ(run(req).result(), http::status::not_found);
}

TEST_F(ReplicationRouterTest, NamespaceBinDerivedFromTheHostIsRoutedLikeHrana) {
  const auto dflt = hello({});
  const auto derived = hello({{"x-namespace-bin", bin("127")}});  // client on 127.0.0.1
  const auto acme = hello({{"x-namespace-bin", bin("acme")}});
  EXPECT_EQ(derived.log_id, dflt.log_id);
  EXPECT_NE(acme.log_id, dflt.log_id);
  EXPECT_EQ(acme.session_token, dflt.session_token);
  // A client on acme.db.example.com derives "acme": routed by --namespace-domain, to acme.
  auto by_host =
      answer(run(rpc("wal_log.ReplicationLog/Hello", replication::encode_hello_request({1}),
                     {{"host", "acme.db.example.com"}, {"x-namespace-bin", bin("acme")}})));
  ASSERT_EQ(by_host.status, 0);
  EXPECT_EQ(replication::decode_hello_response(by_host.messages.at(0))->log_id, acme.log_id);
}

TEST_F(ReplicationRouterTest, NamedNamespaceThatDoesNotExistIsFatalForTheClient) {
  auto a = answer(run(rpc("wal_log.ReplicationLog/Hello", replication::encode_hello_request({1}),
                          {{"x-namespace-bin", bin("nosuch")}})));
  EXPECT_EQ(a.status, static_cast<int>(GrpcStatus::kFailedPrecondition));
  EXPECT_EQ(a.message, replication::kNamespaceDoesntExistMessage);
  auto p = answer(
      run(rpc("proxy.Proxy/Describe", replication::encode_describe_request({"c", "SELECT 1"}),
              {{"x-namespace-bin", bin("nosuch")}})));
  EXPECT_EQ(p.status, static_cast<int>(GrpcStatus::kNotFound));
}

TEST_F(ReplicationRouterTest, LogCallsWithoutThisServersSessionTokenGetNoHello) {
  const std::string offset = replication::encode_log_offset({});
  auto none = answer(run(rpc("wal_log.ReplicationLog/BatchLogEntries", offset, {})));
  EXPECT_EQ(none.status, static_cast<int>(GrpcStatus::kFailedPrecondition));
  EXPECT_EQ(none.message, replication::kNoHelloMessage);
  auto stale = answer(run(rpc("wal_log.ReplicationLog/Snapshot", offset,
                              {{"x-session-token", "00000000-0000-4000-8000-000000000000"}})));
  EXPECT_EQ(stale.message, replication::kNoHelloMessage);
  const auto h = hello({});
  auto ok = answer(run(rpc("wal_log.ReplicationLog/BatchLogEntries", offset,
                           {{"x-session-token", h.session_token}})));
  EXPECT_EQ(ok.status, 0) << ok.message;
}

TEST_F(ReplicationRouterTest, BatchEndsOnACommitFrameAndIsEmptyWhenCaughtUp) {
  const auto h = hello({});
  ASSERT_TRUE(h.current_replication_index);
  auto a =
      answer(run(rpc("wal_log.ReplicationLog/BatchLogEntries", replication::encode_log_offset({}),
                     {{"x-session-token", h.session_token}})));
  ASSERT_EQ(a.status, 0) << a.message;
  auto frames = replication::decode_frames(a.messages.at(0));
  ASSERT_TRUE(frames);
  ASSERT_FALSE(frames->frames.empty());
  auto first = replication::decode_frame_data(frames->frames.front().data);
  auto last = replication::decode_frame_data(frames->frames.back().data);
  ASSERT_TRUE(first && last);
  EXPECT_EQ(first->header.frame_no, 0u);
  EXPECT_EQ(last->header.frame_no, *h.current_replication_index);
  EXPECT_TRUE(last->header.is_commit());

  auto caught_up = answer(
      run(rpc("wal_log.ReplicationLog/BatchLogEntries",
              replication::encode_log_offset({*h.current_replication_index + 1, std::nullopt}),
              {{"x-session-token", h.session_token}})));
  ASSERT_EQ(caught_up.status, 0);
  ASSERT_EQ(caught_up.messages.size(), 1u);
  EXPECT_TRUE(caught_up.messages[0].empty());
}

TEST_F(ReplicationRouterTest, ExecuteKeepsATransactionPerClientUntilItEnds) {
  auto exec = [&](const std::string& client, const std::string& sql) {
    replication::ProgramReq p;
    p.client_id = client;
    p.pgm.steps.push_back(replication::Step{std::nullopt, replication::Query{sql, {}, false}});
    auto a = answer(run(rpc("proxy.Proxy/Execute", replication::encode_program_req(p), {})));
    EXPECT_EQ(a.status, 0) << a.message;
    auto r = replication::decode_execute_results(a.messages.at(0));
    EXPECT_TRUE(r);
    return *r;
  };
  EXPECT_EQ(exec("a", "CREATE TABLE t (x)").state, replication::TxnState::kInit);
  EXPECT_EQ(exec("a", "BEGIN").state, replication::TxnState::kTxn);
  EXPECT_EQ(exec("a", "INSERT INTO t VALUES (1)").state, replication::TxnState::kTxn);
  auto other = exec("b", "SELECT count(*) FROM t");  // another client: not inside a's transaction
  EXPECT_EQ(other.state, replication::TxnState::kInit);
  auto& rows = std::get<replication::ResultRows>(other.results.at(0).result);
  EXPECT_EQ(rows.rows.at(0).values.at(0), Value(std::int64_t{0}));
  EXPECT_EQ(exec("a", "COMMIT").state, replication::TxnState::kInit);
  auto after = exec("b", "SELECT count(*) FROM t");
  EXPECT_EQ(std::get<replication::ResultRows>(after.results.at(0).result).rows.at(0).values.at(0),
            Value(std::int64_t{1}));
  auto failed = exec("a", "INSERT INTO nosuch VALUES (1)");
  auto& error = std::get<replication::ProxyError>(failed.results.at(0).result);
  EXPECT_EQ(error.extended_code, 1);  // SQLITE_ERROR
}

TEST_F(ReplicationRouterTest, OneAddressKeepsNoMoreTransactionsThanTheLimitPerClient) {
  config_.limits.max_streams_per_client = 2;
  auto exec = [&](const std::string& client, const std::string& sql,
                  const std::string& address = "127.0.0.1") {
    replication::ProgramReq p;
    p.client_id = client;
    p.pgm.steps.push_back(replication::Step{std::nullopt, replication::Query{sql, {}, false}});
    return answer(run(rpc("proxy.Proxy/Execute", replication::encode_program_req(p), {}), address));
  };
  EXPECT_EQ(exec("a", "BEGIN").status, 0);
  EXPECT_EQ(exec("b", "BEGIN").status, 0);
  auto refused = exec("c", "BEGIN");
  EXPECT_EQ(refused.status, 8);  // RESOURCE_EXHAUSTED
  EXPECT_NE(refused.message.find("from this address (the limit is 2)"), std::string::npos)
      << refused.message;
  EXPECT_EQ(exec("a", "SELECT 1").status, 0);  // a kept client is not a new one
  EXPECT_EQ(exec("d", "BEGIN", "10.0.0.2").status, 0);  // another address has its own count
  EXPECT_EQ(exec("a", "COMMIT").status, 0);             // a is forgotten: room for c
  EXPECT_EQ(exec("c", "BEGIN").status, 0);
  EXPECT_EQ(exec("e", "SELECT 1").status, 8);  // b and c hold the two
  EXPECT_EQ(exec("b", "ROLLBACK").status, 0);
  EXPECT_EQ(exec("e", "SELECT 1").status, 0);  // autocommit: forgotten at once
  EXPECT_EQ(exec("f", "SELECT 1").status, 0);
}

}  // namespace
}  // namespace quire::server
