// An autocommit write routed to the write lane may run twice: when a later task of its group
// ends the transaction, the lane rolls the group back and runs the others again. What the
// stream carries between requests (last_insert_rowid(), changes()) must then be what the request
// was sent with, not what the undone run left behind.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <future>
#include <string>
#include <thread>

#include "server/router.h"
#include "router_test_util.h"

namespace quire::server {
namespace {

namespace json = boost::json;

class RouterLaneTest : public testing::RouterFixture {
 protected:
  RouterLaneTest() : RouterFixture("router-lane") {}

  // A /v2/pipeline request: `sqls` as execute requests, on the stream of `baton` if any.
  static Request pipeline(std::initializer_list<std::string> sqls, const std::string& baton = "") {
    json::array requests;
    for (const auto& sql : sqls) {
      requests.push_back(json::object{{"type", "execute"}, {"stmt", json::object{{"sql", sql}}}});
    }
    json::object body{{"requests", requests}};
    if (!baton.empty()) body["baton"] = baton;
    Request req{http::verb::post, "/v2/pipeline", 11};
    req.set(http::field::content_type, "application/json");
    req.body() = json::serialize(body);
    req.prepare_payload();
    return req;
  }

  // Runs a routed request the way a session does, waiting for the lane.
  Response run(const Request& req) {
    auto routed = router_->handle(req, "127.0.0.1");
    if (auto* r = std::get_if<Response>(&routed)) return std::move(*r);
    if (auto* d = std::get_if<Router::Deferred>(&routed)) return (*d)();
    auto& write = std::get<Router::LaneWrite>(routed);
    auto done = write.lane->submit(std::move(write.task)).get();
    return write.finish(std::move(done));
  }

  static json::value parse_ok(const Response& r) {
    EXPECT_EQ(r.result(), http::status::ok) << r.body();
    return json::parse(r.body());
  }

};

TEST_F(RouterLaneTest, ARunAgainStartsFromTheRowidTheRequestWasSentWith) {
  run(pipeline({"CREATE TABLE parent (id INTEGER PRIMARY KEY, v TEXT)",
                "CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER)",
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) "
                "INSERT INTO parent (v) SELECT 'old' FROM n"}));

  // A stream inserts a parent (rowid 101): its next request sees that as last_insert_rowid().
  const json::value first = parse_ok(run(pipeline({"INSERT INTO parent (v) VALUES ('new')"})));
  const std::string baton(first.at("baton").as_string());
  ASSERT_EQ(first.at("results").at(0).at("response").at("result").at("last_insert_rowid"),
            json::value("101"));

  auto db = store_->get("default");
  ASSERT_TRUE(db);
  engine::WriteLane& lane = (*db)->write_lane();
  // One task holds the lane while the next group queues up behind it: the stream's insert of a
  // child, then a statement that ends the group's transaction, so the child's insert runs again.
  std::promise<void> release;
  auto gate = release.get_future().share();
  auto holder = lane.submit([gate](sqlite::Connection&) { gate.wait(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));

  const Request child = pipeline({"INSERT INTO child (parent) VALUES (last_insert_rowid())"}, baton);
  auto routed = router_->handle(child, "127.0.0.1");
  auto* write = std::get_if<Router::LaneWrite>(&routed);
  ASSERT_NE(write, nullptr) << "an autocommit insert goes to the write lane";
  int runs = 0;
  auto child_done = lane.submit([&runs, task = std::move(write->task)](sqlite::Connection& conn) {
    ++runs;
    task(conn);
  });
  auto rollback = lane.submit([](sqlite::Connection& conn) {
    (void)conn.exec("INSERT OR ROLLBACK INTO parent (id, v) VALUES (1, 'taken')");
  });
  release.set_value();
  ASSERT_TRUE(holder.get());
  const Response answer = write->finish(child_done.get());
  (void)rollback.get();
  EXPECT_EQ(runs, 2) << "the group was rolled back, so the insert ran again";
  EXPECT_EQ(parse_ok(answer).at("results").at(0).at("type"), json::value("ok")) << answer.body();

  const json::value rows =
      parse_ok(run(pipeline({"SELECT id, parent FROM child"}))).at("results").at(0);
  const auto& result = rows.at("response").at("result").at("rows").as_array();
  ASSERT_EQ(result.size(), 1u) << json::serialize(rows);
  EXPECT_EQ(result[0].at(1).at("value"), json::value("101")) << json::serialize(rows);
}

TEST_F(RouterLaneTest, AWriteTheLaneNeverRanStillClosesItsStream) {
  run(pipeline({"CREATE TABLE t (v)"}));
  ASSERT_EQ(streams_->size(), 1u);  // the request above left its stream open (no close)
  // [execute, close], as @libsql/client's execute() sends it, refused by the lane (a full queue):
  // the execute fails, the close succeeds, and the stream is gone.
  Request req = pipeline({"INSERT INTO t VALUES (1)"});
  json::value body = json::parse(req.body());
  body.at("requests").as_array().push_back(json::object{{"type", "close"}});
  req.body() = json::serialize(body);
  req.prepare_payload();
  auto routed = router_->handle(req, "127.0.0.1");
  auto* write = std::get_if<Router::LaneWrite>(&routed);
  ASSERT_NE(write, nullptr);
  const Response answer = write->finish(unexpected(engine::WriteLane::Failure{
      "TRANSACTION_BUSY", "The database's write queue is full", 0}));
  const json::value out = parse_ok(answer);
  EXPECT_EQ(out.at("results").at(0).at("type"), json::value("error")) << answer.body();
  EXPECT_EQ(out.at("results").at(0).at("error").at("code"), json::value("TRANSACTION_BUSY"));
  EXPECT_EQ(out.at("results").at(1).at("type"), json::value("ok")) << answer.body();
  EXPECT_TRUE(out.at("baton").is_null()) << answer.body();
  EXPECT_EQ(streams_->size(), 1u) << "only the first request's stream is open";
}

}  // namespace
}  // namespace quire::server
