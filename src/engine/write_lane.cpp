#include "engine/write_lane.h"

#include <cctype>

#include <spdlog/spdlog.h>

#include "common/background_pool.h"
#include "sqlite/error.h"

namespace quire::engine {

namespace {

WriteLane::Failure failure_of(const sqlite::Error& e) {
  return {sqlite::primary_code_name(e.rc), "SQLite error: " + e.message, e.rc};
}

}  // namespace

namespace {

// The first keyword of `sql`, upper-cased (at most 8 letters), after whitespace and comments;
// empty when an unterminated comment or no letter comes first.
std::string leading_keyword(std::string_view sql) {
  std::size_t i = 0;
  while (i < sql.size()) {
    if (std::isspace(static_cast<unsigned char>(sql[i]))) {
      ++i;
    } else if (sql.substr(i, 2) == "--") {
      while (i < sql.size() && sql[i] != '\n') ++i;
    } else if (sql.substr(i, 2) == "/*") {
      auto end = sql.find("*/", i + 2);
      if (end == std::string_view::npos) return {};
      i = end + 2;
    } else {
      break;
    }
  }
  std::string kw;
  while (i < sql.size() && std::isalpha(static_cast<unsigned char>(sql[i])) && kw.size() < 8) {
    kw += static_cast<char>(std::toupper(static_cast<unsigned char>(sql[i++])));
  }
  return kw;
}

bool is_write_keyword(const std::string& kw) {
  return kw == "INSERT" || kw == "REPLACE" || kw == "UPDATE" || kw == "DELETE" || kw == "CREATE" ||
         kw == "DROP" || kw == "ALTER";
}

}  // namespace

bool writes_by_keyword(std::string_view sql) { return is_write_keyword(leading_keyword(sql)); }

bool groupable_statement(std::string_view sql) {
  const std::string kw = leading_keyword(sql);
  return is_write_keyword(kw) || kw == "WITH";
}

WriteLane::WriteLane(ConnectionFactory open, WriteGate& gate, WriteLaneOptions options)
    : open_(std::move(open)), gate_(gate), options_(options) {}

WriteLane::WriteLane(std::unique_ptr<sqlite::Connection> conn, WriteGate& gate,
                     WriteLaneOptions options)
    : gate_(gate), options_(options) {
  conn_ = std::move(conn);
  claim_ = std::make_unique<WriteClaim>(gate_, *conn_);
}

WriteLane::~WriteLane() {
  stop();
  claim_.reset();  // before its connection
  conn_.reset();
}

void WriteLane::stop() {
  std::unique_lock lock(mu_);
  stop_ = true;
  idle_cv_.wait(lock, [&] { return !draining_; });
}

void WriteLane::submit(Task task, Done done) {
  {
    std::unique_lock lock(mu_);
    if (stop_) {
      lock.unlock();
      done(unexpected(Failure{"SERVER_SHUTTING_DOWN", "The server is shutting down", 0}));
      return;
    }
    if (queue_.size() >= options_.max_queue) {
      Failure full{"TRANSACTION_BUSY",
                   "The database's write queue is full (" + std::to_string(queue_.size()) +
                       " writes waiting); retry later",
                   0};
      lock.unlock();
      done(unexpected(std::move(full)));
      return;
    }
    queue_.push_back(Item{std::move(task), std::move(done)});
    if (draining_) return;  // the running job takes it with the next group
    draining_ = true;
  }
  BackgroundPool::shared().post([this] { drain(); });
}

std::future<Expected<void, WriteLane::Failure>> WriteLane::submit(Task task) {
  auto promise = std::make_shared<std::promise<Expected<void, Failure>>>();
  auto future = promise->get_future();
  submit(std::move(task),
         [promise](Expected<void, Failure> result) { promise->set_value(std::move(result)); });
  return future;
}

void WriteLane::drain() {
  std::deque<Item> group;
  while (true) {
    {
      std::lock_guard lock(mu_);
      // Whatever arrived while the previous group committed forms the next group.
      while (!queue_.empty() && group.size() < options_.max_group) {
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      if (group.empty()) {
        draining_ = false;
        idle_cv_.notify_all();
        return;
      }
    }
    run_group(group);
  }
}

void WriteLane::report(Item& item, Expected<void, Failure> result) {
  // The task goes first: whatever it holds (a client's stream, its session) is then released
  // here, while the caller still waits for `done`, never as the last reference.
  item.task = nullptr;
  Done done = std::move(item.done);
  done(std::move(result));
}

void WriteLane::fail_alone(std::deque<Item>& group, std::size_t i, const std::string& what) {
  spdlog::error("write lane: a task threw: {}", what);
  Done done = std::move(group[i].done);
  group.erase(group.begin() + static_cast<long>(i));
  if (conn_->in_transaction()) (void)conn_->exec("ROLLBACK");
  done(unexpected(Failure{"INTERNAL_ERROR", "Internal error: " + what, 0}));
}

void WriteLane::run_group(std::deque<Item>& group) {
  if (!conn_) {
    auto opened = open_();
    if (!opened) {
      const Failure f = failure_of(opened.error());
      for (auto& item : group) report(item, unexpected(f));
      group.clear();
      return;
    }
    conn_ = std::move(opened.value());
    claim_ = std::make_unique<WriteClaim>(gate_, *conn_);
  }
  sqlite::Connection& conn = *conn_;
  if (auto gate = gate_.acquire(*claim_); !gate) {
    const Failure f{gate.error().code, gate.error().message, 0};
    for (auto& item : group) report(item, unexpected(f));
    group.clear();
    return;
  }
  struct Release {
    WriteGate& gate;
    WriteClaim& claim;
    ~Release() { gate.release(claim); }
  } release{gate_, *claim_};
  if (auto begun = conn.exec("BEGIN IMMEDIATE"); !begun) {
    const Failure f = failure_of(begun.error());
    for (auto& item : group) report(item, unexpected(f));
    group.clear();
    return;
  }
  std::size_t i = 0;
  while (i < group.size()) {
    try {
      group[i].task(conn);
    } catch (const std::exception& e) {
      // A bug in the task: it fails alone, and whatever it wrote is undone with the group; the
      // others run again in the next group.
      fail_alone(group, i, e.what());
      return;
    } catch (...) {
      fail_alone(group, i, "unknown exception");
      return;
    }
    if (!conn.in_transaction()) {
      // The task's statement ended the transaction: everything before it in this group is
      // undone. The task itself behaved as it would have alone (its statement failed, and in
      // autocommit mode nothing else would have been written), so it is finished; the tasks
      // before it run again at the head of the next group.
      report(group[i], {});
      group.erase(group.begin() + static_cast<long>(i));
      return;
    }
    ++i;
  }
  if (auto committed = conn.exec("COMMIT"); !committed) {
    const Failure f = failure_of(committed.error());
    (void)conn.exec("ROLLBACK");
    for (auto& item : group) report(item, unexpected(f));
  } else {
    groups_.fetch_add(1, std::memory_order_relaxed);
    tasks_.fetch_add(group.size(), std::memory_order_relaxed);
    for (auto& item : group) report(item, {});
  }
  group.clear();
}

}  // namespace quire::engine
