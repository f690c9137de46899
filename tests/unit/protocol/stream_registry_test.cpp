#include "protocol/hrana/stream_registry.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace quire::hrana {
namespace {

TEST(SqlStoreTest, TheTextsOfOneStoreTogetherStayUnderTheTotalLimit) {
  protocol::Limits limits;
  limits.max_stored_sql_total_bytes = 10;
  SqlStore sqls(limits);
  ASSERT_FALSE(sqls.store(1, "SELECT").value());  // 6 bytes
  auto refused = sqls.store(2, "SELECT");         // 12 > 10
  ASSERT_TRUE(refused && *refused);
  EXPECT_EQ((*refused)->code, "SQL_STORE_TOO_LARGE");
  EXPECT_EQ(sqls.find(2), nullptr);
  ASSERT_FALSE(sqls.store(3, "SEL").value());  // 9: fits
  sqls.close(1);                                 // 3 left
  EXPECT_FALSE(sqls.store(2, "SELECT").value());  // 9 again
  sqls.close(42);                                 // not stored: changes nothing
  auto full = sqls.store(4, "AB");               // 11 > 10
  ASSERT_TRUE(full && *full);
}

using Entry = StreamRegistry::Entry;

class StreamRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("quire-reg-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    db_ = std::move(engine::Database::open((dir_ / "data").string(), {}).value());
    limits_.stream_idle_timeout = std::chrono::milliseconds(100);
    limits_.max_streams_per_client = 2;
    registry_ = std::make_unique<StreamRegistry>(limits_);
  }
  void TearDown() override {
    registry_.reset();
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::shared_ptr<Entry> fresh(const std::string& client = "c") {
    auto c = registry_->check_out(std::nullopt, db_, client);
    EXPECT_TRUE(std::holds_alternative<std::shared_ptr<Entry>>(c));
    return std::get<std::shared_ptr<Entry>>(c);
  }

  std::filesystem::path dir_;
  std::shared_ptr<engine::Database> db_;
  protocol::Limits limits_;
  std::unique_ptr<StreamRegistry> registry_;
};

TEST_F(StreamRegistryTest, ABatonIsGoodForExactlyOneRequest) {
  auto e = fresh();
  std::string baton = registry_->check_in(e);
  auto again = registry_->check_out(baton, db_, "c");
  ASSERT_TRUE(std::holds_alternative<std::shared_ptr<Entry>>(again));
  EXPECT_EQ(std::get<std::shared_ptr<Entry>>(again), e);
  std::string next = registry_->check_in(e);
  EXPECT_NE(next, baton);
  // Replaying the old baton is refused.
  EXPECT_TRUE(std::holds_alternative<ProtocolError>(registry_->check_out(baton, db_, "c")));
  EXPECT_TRUE(std::holds_alternative<std::shared_ptr<Entry>>(registry_->check_out(next, db_, "c")));
}

TEST_F(StreamRegistryTest, AStreamInUseCannotBeCheckedOutTwice) {
  auto e = fresh();
  std::string baton = registry_->check_in(e);
  ASSERT_TRUE(std::holds_alternative<std::shared_ptr<Entry>>(registry_->check_out(baton, db_, "c")));
  EXPECT_TRUE(std::holds_alternative<ProtocolError>(registry_->check_out(baton, db_, "c")));
}

TEST_F(StreamRegistryTest, ForgedOrGarbageBatonsAreRefused) {
  auto e = fresh();
  std::string baton = registry_->check_in(e);
  std::string forged = baton;
  forged[3] = forged[3] == 'A' ? 'B' : 'A';
  EXPECT_TRUE(std::holds_alternative<ProtocolError>(registry_->check_out(forged, db_, "c")));
  EXPECT_TRUE(std::holds_alternative<ProtocolError>(registry_->check_out("garbage", db_, "c")));
  EXPECT_TRUE(std::holds_alternative<ProtocolError>(registry_->check_out("", db_, "c")));
}

TEST_F(StreamRegistryTest, IdleStreamsExpireAndTheirBatonsSayStreamExpired) {
  auto e = fresh();
  std::string baton = registry_->check_in(e);
  e.reset();
  EXPECT_EQ(registry_->expire_idle(StreamRegistry::Clock::now()), 0u);
  EXPECT_EQ(registry_->expire_idle(StreamRegistry::Clock::now() + std::chrono::seconds(1)), 1u);
  auto c = registry_->check_out(baton, db_, "c");
  ASSERT_TRUE(std::holds_alternative<Error>(c));
  EXPECT_EQ(std::get<Error>(c).code, "STREAM_EXPIRED");
}

TEST_F(StreamRegistryTest, ExpiryRollsBackTheOpenTransaction) {
  auto e = fresh();
  SqlStore sqls(limits_);
  engine::ResponseBudget budget{1 << 20};
  auto run = [&](const char* sql) {
    Stmt s;
    s.sql = sql;
    auto r = e->stream.run(ExecuteReq{s}, sqls, budget);
    ASSERT_TRUE(r);
    ASSERT_TRUE(std::holds_alternative<StreamResponse>(*r)) << std::get<Error>(*r).message;
  };
  run("CREATE TABLE t(x)");
  run("BEGIN");
  run("INSERT INTO t VALUES (1)");
  registry_->check_in(e);
  e.reset();
  EXPECT_EQ(registry_->expire_idle(StreamRegistry::Clock::now() + std::chrono::seconds(1)), 1u);
  auto lease = db_->acquire();
  ASSERT_TRUE(lease);
  auto count = (*lease)->prepare("SELECT count(*) FROM t", nullptr);
  ASSERT_TRUE(count);
  ASSERT_EQ(sqlite3_step(count->get()), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(count->get(), 0), 0);
}

TEST_F(StreamRegistryTest, StreamsPerClientAreBounded) {
  auto a = fresh("c");
  auto b = fresh("c");
  auto c = registry_->check_out(std::nullopt, db_, "c");
  ASSERT_TRUE(std::holds_alternative<Error>(c));
  EXPECT_EQ(std::get<Error>(c).code, "STREAMS_EXHAUSTED");
  fresh("another-client");  // others are not affected
  registry_->drop(a);
  fresh("c");  // a slot is free again
}

}  // namespace
}  // namespace quire::hrana
