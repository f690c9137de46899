// The puller against a real quire primary: NamespaceStore + Router + HttpSession on a loopback
// port, in process. The replica side is a sink that materialises pages into a plain file, which
// SQLite then opens and compares with the primary.
#include "replication/puller.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include "auth/jwt.h"
#include "auth/signing_key.h"
#include "engine/executor.h"
#include "engine/namespace_store.h"
#include "log/log.h"
#include "protocol/replication/codec.h"
#include "protocol/replication/frame.h"
#include "protocol/replication/grpc_web.h"
#include "server/http_session.h"
#include "server/router.h"

namespace quire::replication {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// The main API as a primary that predates the long-poll (or sqld) serves it: the wait header is
// dropped before the router sees it.
class IgnoresWaitHandler final : public server::HttpHandler {
 public:
  explicit IgnoresWaitHandler(server::Router& router) : inner_(router) {}
  server::Router::Routed handle(const server::Request& req, const std::string& client) override {
    auto copy = std::make_shared<server::Request>(req);
    copy->erase(std::string(kWaitHeader));
    auto routed = inner_.handle(*copy, client);
    if (auto* work = std::get_if<server::Router::Deferred>(&routed)) {
      // The deferred work reads the request later: keep the copy alive with it.
      return server::Router::Deferred([copy, w = std::move(*work)] { return w(); });
    }
    if (auto* write = std::get_if<server::Router::LaneWrite>(&routed)) {
      write->finish = [copy, f = std::move(write->finish)](auto done) { return f(std::move(done)); };
    }
    return routed;
  }
  Expected<std::shared_ptr<engine::Database>, server::Response> websocket_database(
      const server::Request& req) override {
    return inner_.websocket_database(req);
  }
  server::Response error(boost::beast::http::status status, std::string message, std::string code,
                         unsigned version, bool keep_alive) override {
    return inner_.error(status, std::move(message), std::move(code), version, keep_alive);
  }

 private:
  server::RouterHandler inner_;
};

// A quire primary serving the main API (Hrana and the replication protocol) on 127.0.0.1.
class Primary {
 public:
  Primary(fs::path root, std::shared_ptr<const auth::KeySet> keys = nullptr,
          std::uint64_t segment_bytes = 64ull << 20, std::uint16_t port = 0,
          bool ignores_wait = false) {
    engine::NamespaceStore::Options options;
    options.root = root.string();
    options.database.log_segment_bytes = segment_bytes;
    auto store = engine::NamespaceStore::open(options);
    EXPECT_TRUE(store);
    store_ = std::move(store.value());
    config_.auth_keys = std::move(keys);
    streams_ = std::make_unique<hrana::StreamRegistry>(config_.limits);
    router_ = std::make_unique<server::Router>(config_, *store_, *streams_);
    if (ignores_wait) {
      handler_ = std::make_unique<IgnoresWaitHandler>(*router_);
    } else {
      handler_ = std::make_unique<server::RouterHandler>(*router_);
    }
    acceptor_.open(tcp::v4());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(ioc_, accept_loop(), asio::detached);
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~Primary() {
    asio::post(ioc_, [this] {
      boost::system::error_code ec;
      acceptor_.close(ec);
      for (auto& w : sessions_) {
        if (auto s = w.lock()) s->shutdown();
      }
      guard_.reset();
    });
    thread_.join();
    blocking_.join();
    handler_.reset();
    router_.reset();
    streams_.reset();
    store_->close_all();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::uint16_t port() const { return port_; }
  // The namespace run(), text() and log() address.
  void use_namespace(const std::string& ns) {
    if (ns != "default" && !store_->get(ns)) {
      EXPECT_TRUE(store_->create(ns, {}));
    }
    ns_ = ns;
  }
  std::shared_ptr<engine::Database> db() { return store_->get(ns_).value(); }
  log::ReplicationLog& log() { return *db()->replication_log(); }

  engine::StmtResult run(std::string_view sql) {
    auto lease = db()->acquire();
    EXPECT_TRUE(lease);
    engine::ResponseBudget budget{64 << 20};
    auto r = engine::execute(**lease, engine::Query{sql, {}, {}, true}, budget);
    EXPECT_TRUE(r) << sql << ": " << (r ? "" : r.error().message);
    return r ? std::move(r.value()) : engine::StmtResult{};
  }
  std::string text(std::string_view sql) {
    auto r = run(sql);
    if (r.rows.empty() || r.rows[0].empty()) return "<none>";
    if (auto* s = std::get_if<std::string>(&r.rows[0][0])) return *s;
    if (auto* i = std::get_if<std::int64_t>(&r.rows[0][0])) return std::to_string(*i);
    return "<null>";
  }

 private:
  asio::awaitable<void> accept_loop() {
    for (;;) {
      boost::system::error_code ec;
      auto socket = co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      auto session = std::make_shared<server::HttpSession>(std::move(socket), config_, *handler_,
                                                           blocking_.get_executor());
      sessions_.push_back(session);
      asio::co_spawn(ioc_, session->run(), asio::detached);
    }
  }

  server::Config config_;
  std::unique_ptr<engine::NamespaceStore> store_;
  std::unique_ptr<hrana::StreamRegistry> streams_;
  std::unique_ptr<server::Router> router_;
  std::unique_ptr<server::HttpHandler> handler_;
  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_{ioc_.get_executor()};
  asio::thread_pool blocking_{4};
  tcp::acceptor acceptor_{ioc_};
  std::vector<std::weak_ptr<server::HttpSession>> sessions_;  // touched on ioc_ only
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::string ns_ = "default";
};

// Pages into a plain database file: each transaction written in place and the file cut to its
// size; a snapshot built in a side file and renamed over the database at its end.
class FileSink final : public ReplicaSink {
 public:
  explicit FileSink(fs::path path) : path_(std::move(path)) {}

  ReplicaPosition position() override { return pos_; }
  Expected<void, std::string> on_new_log_id(const std::string& id) override {
    log_ids_.push_back(id);
    pos_.log_id = id;
    return {};
  }
  Expected<void, std::string> apply(const log::Transaction& txn, std::uint64_t frame) override {
    if (fail_applies_) return unexpected(std::string("disk full (test)"));
    const int fd = ::open(path_.c_str(), O_RDWR | O_CREAT, 0644);
    if (fd < 0) return unexpected(std::string("open failed"));
    for (std::size_t i = 0; i < txn.page_count(); ++i) {
      auto page = txn.page(i);
      if (::pwrite(fd, page.data(), page.size(), off_t(txn.pgnos[i] - 1) * 4096) != 4096) {
        ::close(fd);
        return unexpected(std::string("pwrite failed"));
      }
    }
    const bool ok = ::ftruncate(fd, off_t(txn.db_size) * 4096) == 0;
    ::close(fd);
    if (!ok) return unexpected(std::string("ftruncate failed"));
    EXPECT_GT(frame, pos_.frame);
    pos_.frame = frame;
    ++applies_;
    return {};
  }
  Expected<void, std::string> begin_snapshot(const std::string& id, std::uint64_t frame,
                                             std::uint32_t db_size) override {
    snap_ = std::string(std::size_t{db_size} * 4096, '\0');
    snap_id_ = id;
    snap_frame_ = frame;
    return {};
  }
  Expected<void, std::string> snapshot_page(std::uint32_t pgno,
                                            std::span<const std::byte> page) override {
    std::memcpy(snap_.data() + std::size_t{pgno - 1} * 4096, page.data(), page.size());
    return {};
  }
  Expected<void, std::string> end_snapshot() override {
    const fs::path tmp = path_.string() + ".snap";
    std::ofstream(tmp, std::ios::binary | std::ios::trunc).write(snap_.data(), snap_.size());
    fs::rename(tmp, path_);
    pos_ = {snap_id_, snap_frame_};
    ++snapshots_;
    return {};
  }
  void abort_snapshot() override { snap_.clear(); }

  // SQLite's view of the replica (on a copy, so the sink's file stays ours alone).
  std::string query(const std::string& sql) const {
    const fs::path copy = path_.string() + ".check";
    fs::remove(copy.string() + "-wal");
    fs::remove(copy.string() + "-shm");
    fs::copy_file(path_, copy, fs::copy_options::overwrite_existing);
    sqlite3* db = nullptr;
    std::string out = "<error>";
    if (sqlite3_open(copy.c_str(), &db) == SQLITE_OK) {
      sqlite3_stmt* stmt = nullptr;
      if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
          sqlite3_step(stmt) == SQLITE_ROW) {
        const auto* t = sqlite3_column_text(stmt, 0);
        out = t ? reinterpret_cast<const char*>(t) : "<null>";
      } else {
        out = std::string("<error: ") + sqlite3_errmsg(db) + ">";
      }
      sqlite3_finalize(stmt);
    }
    sqlite3_close(db);
    return out;
  }

  fs::path path_;
  ReplicaPosition pos_;
  std::vector<std::string> log_ids_;
  std::string snap_, snap_id_;
  std::uint64_t snap_frame_ = 0;
  int applies_ = 0;
  int snapshots_ = 0;
  std::atomic<bool> fail_applies_{false};
};

constexpr const char* kContent =
    "SELECT count(*) || ':' || coalesce(sum(id), 0) || ':' || coalesce(sum(length(v)), 0) || ':' "
    "|| coalesce(hex(substr(group_concat(v, ''), -16)), '') FROM t";

class PullerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("quire-puller-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "replica");
    sink_ = std::make_unique<FileSink>(dir_ / "replica" / "db");
  }
  void TearDown() override {
    puller_.reset();
    primary_.reset();
    fs::remove_all(dir_);
  }

  void start_primary(std::shared_ptr<const auth::KeySet> keys = nullptr,
                     std::uint64_t segment_bytes = 64ull << 20, std::uint16_t port = 0,
                     bool ignores_wait = false) {
    primary_ = std::make_unique<Primary>(dir_ / "primary", std::move(keys), segment_bytes, port,
                                         ignores_wait);
  }
  void start_puller(std::string url, std::string token = "", std::string ns = "",
                    std::chrono::milliseconds long_poll = PullerOptions{}.long_poll) {
    PullerOptions o;
    o.long_poll = long_poll;
    o.primary_url = std::move(url);
    o.namespace_name = std::move(ns);
    o.auth_token = std::move(token);
    o.min_retry = std::chrono::milliseconds(10);
    o.max_retry = std::chrono::milliseconds(100);
    auto p = Puller::create(std::move(o), *sink_);
    ASSERT_TRUE(p) << p.error();
    puller_ = std::move(p.value());
    puller_->start();
  }
  // Waits until the replica holds the primary's last commit, then compares the content.
  void expect_in_sync() {
    const auto frame = primary_->log().last_frame();
    auto r = puller_->wait_until_frame(frame, Clock::now() + std::chrono::seconds(20));
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(sink_->query("PRAGMA integrity_check"), "ok");
    EXPECT_EQ(sink_->query(kContent), primary_->text(kContent));
  }

  fs::path dir_;
  std::unique_ptr<Primary> primary_;
  std::unique_ptr<FileSink> sink_;
  std::unique_ptr<Puller> puller_;
};

TEST_F(PullerTest, ReplicaMatchesThePrimaryAndFollowsNewCommits) {
  start_primary();
  primary_->run("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
  for (int i = 0; i < 20; ++i) primary_->run("INSERT INTO t (v) VALUES (randomblob(100))");
  start_puller(primary_->url());
  expect_in_sync();
  for (int i = 0; i < 50; ++i) primary_->run("INSERT INTO t (v) VALUES (randomblob(5000))");
  primary_->run("DELETE FROM t WHERE id % 3 = 0");
  expect_in_sync();
  const auto s = puller_->stats();
  EXPECT_EQ(s.errors, 0u) << s.last_error;
  EXPECT_EQ(s.snapshots, 0u);
  EXPECT_EQ(s.applied_frame, primary_->log().last_frame());
  EXPECT_EQ(s.log_id, sink_->pos_.log_id);
  EXPECT_EQ(sink_->log_ids_.size(), 1u);
  EXPECT_GE(s.transactions_applied, 70u);
  EXPECT_EQ(s.frames_applied, primary_->log().last_frame());
}

TEST_F(PullerTest, CatchesUpAfterManyCommitsInSeveralBatches) {
  start_primary();
  primary_->run("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
  for (int i = 0; i < 400; ++i) primary_->run("INSERT INTO t (v) VALUES (randomblob(6000))");
  start_puller(primary_->url());
  expect_in_sync();
  const auto s = puller_->stats();
  EXPECT_GT(s.batches, 2u) << "more than 700 frames need several batches";
  EXPECT_EQ(s.transactions_applied, std::uint64_t(sink_->applies_));
  EXPECT_TRUE(s.caught_up || s.applied_frame == primary_->log().last_frame());
}

TEST_F(PullerTest, BootstrapsFromASnapshotWhenTheLogWasCompacted) {
  start_primary(nullptr, /*segment_bytes=*/128 * 1024);
  primary_->run("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
  for (int i = 0; i < 200; ++i) primary_->run("INSERT INTO t (v) VALUES (randomblob(3000))");
  auto& log = primary_->log();
  ASSERT_TRUE(log.snapshot());
  ASSERT_TRUE(log.compact());
  ASSERT_GT(log.first_available_frame(), 1u);
  start_puller(primary_->url());
  expect_in_sync();
  EXPECT_EQ(puller_->stats().snapshots, 1u);
  EXPECT_EQ(sink_->snapshots_, 1);
  // And then it follows the log from the snapshot on.
  for (int i = 0; i < 20; ++i) primary_->run("INSERT INTO t (v) VALUES (randomblob(300))");
  expect_in_sync();
  EXPECT_EQ(puller_->stats().snapshots, 1u);
  EXPECT_EQ(puller_->stats().errors, 0u) << puller_->stats().last_error;
}

TEST_F(PullerTest, AReplicaOfAnotherLogIsRebootstrappedFromASnapshot) {
  start_primary();
  primary_->run("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
  primary_->run("INSERT INTO t (v) VALUES ('x')");
  // What a replica holds after the primary's log was recreated: frames of an older log.
  sink_->pos_ = {"00000000-0000-4000-8000-000000000000", 2};
  start_puller(primary_->url());
  expect_in_sync();
  EXPECT_EQ(sink_->snapshots_, 1);
  EXPECT_EQ(sink_->pos_.log_id, log::format_log_id(primary_->log().log_id()));
}

TEST_F(PullerTest, ResumesAfterThePrimaryRestarts) {
  start_primary();
  primary_->run("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
  primary_->run("INSERT INTO t (v) VALUES ('before')");
  start_puller(primary_->url());
  expect_in_sync();
  const auto port = primary_->port();
  primary_.reset();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_GT(puller_->stats().errors, 0u);
  EXPECT_FALSE(puller_->stats().last_error.empty());
  start_primary(nullptr, 64ull << 20, port);  // a new session token: NO_HELLO, then Hello
  for (int i = 0; i < 10; ++i) primary_->run("INSERT INTO t (v) VALUES ('after')");
  expect_in_sync();
  EXPECT_TRUE(puller_->stats().last_error.empty()) << puller_->stats().last_error;
  EXPECT_EQ(puller_->stats().snapshots, 0u);
}

TEST_F(PullerTest, StopReturnsWhileThePrimaryIsUnreachable) {
  std::uint16_t closed_port = 0;
  {
    asio::io_context ioc;
    tcp::acceptor a(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    closed_port = a.local_endpoint().port();
  }
  start_puller("http://127.0.0.1:" + std::to_string(closed_port));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto s = puller_->stats();
  EXPECT_GT(s.errors, 0u);
  EXPECT_NE(s.last_error.find("connect"), std::string::npos) << s.last_error;
  auto r = puller_->wait_until_frame(1, Clock::now() + std::chrono::milliseconds(50));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("last error"), std::string::npos) << r.error();
  // A hang guard, not a speed check: stop() must not wait out the retry loop.
  const auto t0 = Clock::now();
  puller_->stop();
  EXPECT_LT(Clock::now() - t0, RpcOptions{}.call_timeout / 2);
}

TEST_F(PullerTest, StopCancelsACallThePrimaryNeverAnswers) {
  asio::io_context ioc;
  tcp::acceptor silent(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  // Connections complete in the backlog and are never read: the Hello hangs until its timeout.
  start_puller("http://127.0.0.1:" + std::to_string(silent.local_endpoint().port()));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(puller_->stats().hellos, 0u);
  // Not a speed check: without cancelling, stop() would wait for the call's 30 s timeout.
  const auto t0 = Clock::now();
  puller_->stop();
  EXPECT_LT(Clock::now() - t0, RpcOptions{}.call_timeout / 2);
}

TEST_F(PullerTest, ARefusedTokenSurfacesAsAClearError) {
  auto key = auth::SigningKey::generate();
  ASSERT_TRUE(key);
  auto keys = auth::KeySet::parse(key->public_key_pem());
  ASSERT_TRUE(keys) << keys.error();
  start_primary(std::make_shared<auth::KeySet>(std::move(keys.value())));
  primary_->run("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
  start_puller(primary_->url(), "not-a-jwt");
  auto r = puller_->wait_until_frame(1, Clock::now() + std::chrono::milliseconds(500));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("UNAUTHENTICATED"), std::string::npos) << r.error();
  EXPECT_EQ(sink_->applies_, 0);
  puller_.reset();

  auto token = auth::create_jwt(*key, auth::Claims{});
  ASSERT_TRUE(token) << token.error();
  start_puller(primary_->url(), *token);
  expect_in_sync();
}

TEST_F(PullerTest, AFailingSinkIsRetriedWithoutLosingTransactions) {
  start_primary();
  primary_->run("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
  sink_->fail_applies_ = true;
  start_puller(primary_->url());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_GT(puller_->stats().errors, 0u);
  EXPECT_NE(puller_->stats().last_error.find("disk full"), std::string::npos);
  for (int i = 0; i < 5; ++i) primary_->run("INSERT INTO t (v) VALUES ('y')");
  sink_->fail_applies_ = false;
  expect_in_sync();
}

TEST_F(PullerTest, FollowsTheNamespaceItNames) {
  start_primary();
  primary_->run("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
  primary_->run("INSERT INTO t (v) VALUES ('default')");
  primary_->use_namespace("acme");
  primary_->run("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
  for (int i = 0; i < 3; ++i) primary_->run("INSERT INTO t (v) VALUES ('acme')");
  start_puller(primary_->url(), "", "acme");
  expect_in_sync();
  EXPECT_EQ(sink_->query("SELECT group_concat(DISTINCT v) FROM t"), "acme");
  EXPECT_EQ(sink_->pos_.log_id, log::format_log_id(primary_->log().log_id()));
}

TEST_F(PullerTest, ANamespaceThatDoesNotExistIsReported) {
  start_primary();
  start_puller(primary_->url(), "", "nosuch");
  auto r = puller_->wait_until_frame(1, Clock::now() + std::chrono::milliseconds(300));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("NAMESPACE_DOESNT_EXIST"), std::string::npos) << r.error();
}

TEST_F(PullerTest, OnlyPlainHttpUrlsAreAccepted) {
  PullerOptions o;
  o.primary_url = "https://db.example.com";
  EXPECT_FALSE(Puller::create(o, *sink_));
  o.primary_url = "http://127.0.0.1:8080/v2";
  EXPECT_FALSE(Puller::create(o, *sink_));
  o.primary_url = "http://127.0.0.1:8080/";
  EXPECT_TRUE(Puller::create(o, *sink_));
}

// Caught up, the puller long-polls: a call is held by the primary until a commit or its
// deadline, so an idle replica sends about one call per long_poll and no Hello.
TEST_F(PullerTest, ACaughtUpReplicaLongPollsInsteadOfPolling) {
  start_primary();
  primary_->run("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
  start_puller(primary_->url());
  expect_in_sync();
  // Let the first long-poll start, then count over an idle second.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto before = puller_->stats();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const auto idle = puller_->stats();
  EXPECT_EQ(idle.errors, 0u) << idle.last_error;
  EXPECT_EQ(idle.hellos, before.hellos);
  // About two at 500 ms each; polling every 100 ms would make ten Hellos.
  EXPECT_LE(idle.batches - before.batches, 4u);
  EXPECT_EQ(idle.long_polls - before.long_polls, idle.batches - before.batches);
  EXPECT_TRUE(idle.caught_up);

  // A commit reaches the replica through the call in flight, without a Hello.
  for (int i = 0; i < 3; ++i) primary_->run("INSERT INTO t (v) VALUES (randomblob(2000))");
  expect_in_sync();
  const auto after = puller_->stats();
  EXPECT_EQ(after.hellos, before.hellos);
  EXPECT_EQ(after.errors, 0u) << after.last_error;
  EXPECT_EQ(after.transactions_applied, before.transactions_applied + 3);
  EXPECT_GE(after.primary_frame, after.applied_frame);
}

// A primary that does not wait (sqld, an older quire) answers the long-poll empty at once: the
// puller goes back to sleeping between Hellos, with no loop of calls.
TEST_F(PullerTest, FallsBackToPollingAPrimaryThatDoesNotWait) {
  start_primary(nullptr, 64ull << 20, 0, /*ignores_wait=*/true);
  primary_->run("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
  start_puller(primary_->url());
  expect_in_sync();
  const auto before = puller_->stats();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const auto idle = puller_->stats();
  EXPECT_EQ(idle.errors, 0u) << idle.last_error;
  // Polling every 100 ms at most makes about ten Hellos a second; a loop would make thousands.
  const auto calls = (idle.hellos - before.hellos) + (idle.batches - before.batches);
  EXPECT_LE(calls, 40u);
  EXPECT_LE(idle.long_polls - before.long_polls, 2u);
  EXPECT_TRUE(idle.caught_up);
  for (int i = 0; i < 3; ++i) primary_->run("INSERT INTO t (v) VALUES ('polled')");
  expect_in_sync();
}

TEST_F(PullerTest, LongPollOffPollsWithHellos) {
  start_primary();
  primary_->run("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
  start_puller(primary_->url(), "", "", std::chrono::milliseconds(0));
  expect_in_sync();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const auto s = puller_->stats();
  EXPECT_EQ(s.long_polls, 0u);
  EXPECT_GE(s.hellos, 2u);
  primary_->run("INSERT INTO t (v) VALUES ('polled')");
  expect_in_sync();
}

TEST_F(PullerTest, StopCancelsALongPollInFlight) {
  start_primary();
  primary_->run("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
  start_puller(primary_->url());
  expect_in_sync();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  // A hang guard: the call is cancelled rather than waited out (500 ms plus the call timeout).
  const auto t0 = Clock::now();
  puller_->stop();
  EXPECT_LT(Clock::now() - t0, RpcOptions{}.call_timeout / 2);
  EXPECT_GE(puller_->stats().long_polls, 1u);
}

// The primary's side of the long-poll, called directly.
class LongPollTest : public PullerTest {
 protected:
  void SetUp() override {
    PullerTest::SetUp();
    start_primary();
    primary_->run("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
    auto endpoint = parse_primary_url(primary_->url());
    ASSERT_TRUE(endpoint);
    rpc_ = std::make_unique<RpcClient>(*endpoint, RpcOptions{});
    auto hello =
        rpc_->call("wal_log.ReplicationLog/Hello", encode_hello_request(HelloRequest{1}), {});
    ASSERT_TRUE(hello) << hello.error().describe();
    auto decoded = decode_hello_response(hello->front());
    ASSERT_TRUE(decoded);
    token_ = decoded->session_token;
    log_id_ = decoded->log_id;
  }
  void TearDown() override {
    rpc_.reset();
    PullerTest::TearDown();
  }
  struct Answer {
    Expected<std::vector<std::string>, RpcError> result;
    Clock::duration took;
    // Frames in the answer (-1 when it failed).
    int frames() const {
      if (!result || result->size() != 1) return -1;
      auto f = decode_frames(result->front());
      return f ? static_cast<int>(f->frames.size()) : -1;
    }
  };
  // BatchLogEntries from the primary's last commit, with `extra` headers.
  // `offset` defaults to the libSQL frame_no of the frame after the last commit.
  Answer batch_at_end(RpcHeaders extra, std::optional<std::uint64_t> at = std::nullopt) {
    RpcHeaders h{{std::string(kSessionTokenHeader), token_}};
    for (auto& e : extra) h.push_back(std::move(e));
    const std::uint64_t offset = at ? *at : primary_->log().last_frame();
    const auto t0 = Clock::now();
    auto r = rpc_->call("wal_log.ReplicationLog/BatchLogEntries",
                        encode_log_offset(LogOffset{offset, std::nullopt}), h,
                        std::chrono::milliseconds(kMaxWaitMs));
    return {std::move(r), Clock::now() - t0};
  }

  std::unique_ptr<RpcClient> rpc_;
  std::string token_, log_id_;
};

TEST_F(LongPollTest, WithoutTheWaitHeaderACaughtUpCallIsAnsweredAtOnce) {
  // The fastest of three, so that one stall of a loaded machine does not fail the test; a call
  // that waited would take the 500 ms every time.
  auto fastest = Clock::duration::max();
  for (int i = 0; i < 3; ++i) {
    auto a = batch_at_end({});
    ASSERT_EQ(a.frames(), 0) << (a.result ? "" : a.result.error().describe());
    fastest = std::min(fastest, a.took);
  }
  EXPECT_LT(fastest, std::chrono::milliseconds(250));
  // A value that is not a plain number is no request to wait either.
  fastest = Clock::duration::max();
  for (int i = 0; i < 3; ++i) {
    auto a = batch_at_end({{std::string(kWaitHeader), "soon"}});
    ASSERT_EQ(a.frames(), 0);
    fastest = std::min(fastest, a.took);
  }
  EXPECT_LT(fastest, std::chrono::milliseconds(250));
}

TEST_F(LongPollTest, WithTheWaitHeaderTheCallWaitsUntilItsDeadline) {
  auto a = batch_at_end({{std::string(kWaitHeader), "300"}});
  ASSERT_EQ(a.frames(), 0) << (a.result ? "" : a.result.error().describe());
  EXPECT_GE(a.took, std::chrono::milliseconds(250));
}

TEST_F(LongPollTest, AWaitingCallBringsTheCommitMadeMeanwhile) {
  // A long wait (clamped to 500 ms): the commit lands inside it, so the answer carries it.
  std::optional<Answer> answer;
  const auto frame_before = primary_->log().last_frame();
  std::thread caller([&] {
    answer = batch_at_end({{std::string(kWaitHeader), "100000"}}, frame_before);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  primary_->run("INSERT INTO t (v) VALUES ('meanwhile')");
  caller.join();
  ASSERT_TRUE(answer->result) << answer->result.error().describe();
  // The call may have reached the primary after the commit (a slow start); either way it holds
  // the commit and nothing before it.
  EXPECT_GT(answer->frames(), 0);
  auto frames = decode_frames(answer->result->front());
  ASSERT_TRUE(frames);
  auto first = decode_frame_data(frames->frames.front().data);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->header.frame_no, frame_before);  // libSQL numbering: our frame_before + 1
}

TEST_F(LongPollTest, ACallNamingAnotherLogIsSentBackToHello) {
  auto a = batch_at_end({{std::string(kLogIdHeader), "00000000-0000-4000-8000-000000000000"}});
  ASSERT_FALSE(a.result);
  EXPECT_EQ(a.result.error().kind, RpcError::Kind::kStatus);
  EXPECT_EQ(a.result.error().message, kNoHelloMessage);
  auto ok = batch_at_end({{std::string(kLogIdHeader), log_id_}});
  EXPECT_EQ(ok.frames(), 0) << (ok.result ? "" : ok.result.error().describe());
}

}  // namespace
}  // namespace quire::replication
