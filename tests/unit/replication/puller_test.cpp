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
#include "server/http_session.h"
#include "server/router.h"

namespace quire::replication {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// A quire primary serving the main API (Hrana and the replication protocol) on 127.0.0.1.
class Primary {
 public:
  Primary(fs::path root, std::shared_ptr<const auth::KeySet> keys = nullptr,
          std::uint64_t segment_bytes = 64ull << 20, std::uint16_t port = 0) {
    engine::NamespaceStore::Options options;
    options.root = root.string();
    options.database.log_segment_bytes = segment_bytes;
    auto store = engine::NamespaceStore::open(options);
    EXPECT_TRUE(store);
    store_ = std::move(store.value());
    config_.auth_keys = std::move(keys);
    streams_ = std::make_unique<hrana::StreamRegistry>(config_.limits);
    router_ = std::make_unique<server::Router>(config_, *store_, *streams_);
    handler_ = std::make_unique<server::RouterHandler>(*router_);
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
  std::unique_ptr<server::RouterHandler> handler_;
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
                     std::uint64_t segment_bytes = 64ull << 20, std::uint16_t port = 0) {
    primary_ = std::make_unique<Primary>(dir_ / "primary", std::move(keys), segment_bytes, port);
  }
  void start_puller(std::string url, std::string token = "", std::string ns = "") {
    PullerOptions o;
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

}  // namespace
}  // namespace quire::replication
