// The proxy.Proxy service of ReplicationRouter: the writes an embedded replica forwards, run on
// a Hrana stream per client_id (see replication_router.h), and the registry of those clients.
#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <unordered_map>

#include "engine/executor.h"
#include "engine/write_lane.h"
#include "log/log.h"
#include "protocol/hrana/stream.h"
#include "protocol/replication/codec.h"
#include "server/replication_router.h"
#include "sqlite/error.h"

namespace quire::server {

using replication::GrpcStatus;

// One client connection's state between its requests: a stream whose connection (a Lease) is
// kept while the client is inside a transaction, parked between requests (WriteGate).
struct ReplicationRouter::Client {
  Client(std::string key, std::string address, std::shared_ptr<engine::Database> db,
         const protocol::Limits& limits)
      : key(std::move(key)), address(std::move(address)), stream(std::move(db)), sqls(limits) {}
  const std::string key;
  const std::string address;  // of the request that created it
  std::mutex mu;  // one request at a time; taken before ReplicationRouter::mu_
  hrana::Stream stream;
  hrana::SqlStore sqls;  // this protocol stores no SQL texts; the stream API wants one
  // Guarded by ReplicationRouter::mu_:
  int users = 0;
  bool in_transaction = false;
  Clock::time_point last_used;
};

namespace {

// After a client's transaction was dropped for idleness, its next request learns it (once) for
// this long.
constexpr auto kTombstoneLifetime = std::chrono::minutes(5);

Response grpc_error(const Request& req, GrpcStatus code, std::string_view message) {
  return reply_grpc_web(req, replication::grpc_web_error(code, message));
}

// SQLite's result code for a code name the executor reports ("SQLITE_CONSTRAINT_UNIQUE",
// "SQLITE_AUTH"); SQLITE_ERROR for quire's own codes (TRANSACTION_TIMEOUT...).
int result_code(const std::string& name) {
  static const std::unordered_map<std::string, int> kCodes = [] {
    std::unordered_map<std::string, int> m;
    // Primary codes first: extended_code_name() gives the primary name for an rc without
    // extended information, and the first (smallest) rc with a name is the one to keep.
    for (int rc = 0; rc < (1 << 16); ++rc) {
      if ((rc & 0xff) > SQLITE_WARNING) continue;
      const std::string n =
          rc < 256 ? sqlite::primary_code_name(rc) : sqlite::extended_code_name(rc);
      if (n != "SQLITE_UNKNOWN") m.emplace(n, rc);
    }
    return m;
  }();
  auto it = kCodes.find(name);
  return it == kCodes.end() ? SQLITE_ERROR : it->second;
}

replication::ProxyError proxy_error(const hrana::Error& e) {
  replication::ProxyError out;
  out.code = replication::ErrorCode::kSqlError;
  out.extended_code = result_code(e.extended_code.empty() ? e.code : e.extended_code);
  // The client shows the message alone; quire's own codes say more than SQLITE_ERROR does.
  out.message = e.code.starts_with("SQLITE_") ? e.message : e.code + ": " + e.message;
  return out;
}

std::vector<replication::Column> columns(const std::vector<engine::Column>& cols) {
  std::vector<replication::Column> out;
  out.reserve(cols.size());
  for (const auto& c : cols) out.push_back(replication::Column{c.name, c.decltype_});
  return out;
}

replication::ResultRows result_rows(engine::StmtResult&& r) {
  replication::ResultRows out;
  out.column_descriptions = columns(r.cols);
  out.rows.reserve(r.rows.size());
  for (auto& row : r.rows) out.rows.push_back(replication::Row{std::move(row)});
  out.affected_row_count = r.affected_row_count;
  out.last_insert_rowid = r.last_insert_rowid;
  return out;
}

Expected<hrana::BatchCond, std::string> to_batch_cond(const replication::Cond& c, std::size_t step,
                                                      int depth) {
  using K = replication::Cond::Kind;
  using B = hrana::BatchCond::Kind;
  if (depth > replication::kMaxCondDepth)
    return unexpected(std::string("condition nested too deep"));
  hrana::BatchCond out;
  switch (c.kind) {
    case K::kNone:
      return unexpected(std::string("a condition with no kind"));
    case K::kOk:
    case K::kErr:
      if (c.step < 0 || static_cast<std::size_t>(c.step) >= step) {
        return unexpected("a condition of step " + std::to_string(step) + " names step " +
                          std::to_string(c.step) + ", which does not run before it");
      }
      out.kind = c.kind == K::kOk ? B::kOk : B::kError;
      out.step = static_cast<std::uint32_t>(c.step);
      return out;
    case K::kNot:
      if (c.conds.size() != 1) return unexpected(std::string("a NotCond without its condition"));
      out.kind = B::kNot;
      break;
    case K::kAnd:
      out.kind = B::kAnd;
      break;
    case K::kOr:
      out.kind = B::kOr;
      break;
    case K::kIsAutocommit:
      out.kind = B::kIsAutocommit;
      return out;
  }
  for (const auto& sub : c.conds) {
    auto converted = to_batch_cond(sub, step, depth + 1);
    if (!converted) return unexpected(std::move(converted.error()));
    out.conds.push_back(std::move(converted.value()));
  }
  return out;
}

Expected<hrana::Stmt, std::string> to_stmt(replication::Query&& q) {
  hrana::Stmt s;
  s.sql = std::move(q.stmt);
  s.want_rows = !q.skip_rows;
  if (auto* p = std::get_if<replication::Positional>(&q.params)) {
    s.args = std::move(p->values);
  } else if (auto* n = std::get_if<replication::Named>(&q.params)) {
    if (n->names.size() != n->values.size()) {
      return unexpected("named parameters: " + std::to_string(n->names.size()) + " names for " +
                        std::to_string(n->values.size()) + " values");
    }
    for (std::size_t i = 0; i < n->names.size(); ++i) {
      s.named_args.push_back(engine::NamedArg{std::move(n->names[i]), std::move(n->values[i])});
    }
  }
  return s;
}

}  // namespace

// ------------------------------------------------------------------ the client registry

Expected<std::shared_ptr<ReplicationRouter::Client>, ReplicationRouter::Status>
ReplicationRouter::acquire(const Target& target, const std::string& client_id,
                           const std::string& address, bool& lost) {
  lost = false;
  // Keyed by namespace too: a client_id names a connection to one database.
  std::string key = target.ns + '\0' + client_id;
  std::shared_ptr<Client> stale;  // released outside the lock
  std::lock_guard lock(mu_);
  auto it = clients_.find(key);
  if (it != clients_.end() && &it->second->stream.database() != target.db.get() &&
      it->second->users == 0) {
    // The namespace was deleted and created again since: the old transaction is gone with it.
    stale = forget_locked(it);
    it = clients_.end();
  }
  if (it == clients_.end()) {
    if (auto t = tombstones_.find(key); t != tombstones_.end()) {
      tombstones_.erase(t);
      lost = true;
      return std::shared_ptr<Client>();
    }
    if (clients_.size() >= config_.limits.max_streams) {
      return unexpected(Status{GrpcStatus::kResourceExhausted,
                               "the server holds too many open transactions of embedded "
                               "replicas; retry later"});
    }
    std::size_t& mine = clients_per_address_[address];
    if (mine >= config_.limits.max_streams_per_client) {
      if (mine == 0) clients_per_address_.erase(address);
      return unexpected(Status{GrpcStatus::kResourceExhausted,
                               "too many open transactions of embedded replicas from this address "
                               "(the limit is " +
                                   std::to_string(config_.limits.max_streams_per_client) + ")"});
    }
    ++mine;
    it = clients_
             .emplace(key, std::make_shared<Client>(key, address, target.db, config_.limits))
             .first;
  }
  Client& c = *it->second;
  ++c.users;
  c.last_used = Clock::now();
  return it->second;
}

std::shared_ptr<ReplicationRouter::Client> ReplicationRouter::forget_locked(
    std::unordered_map<std::string, std::shared_ptr<Client>>::iterator it) {
  std::shared_ptr<Client> c = std::move(it->second);
  clients_.erase(it);
  if (auto n = clients_per_address_.find(c->address);
      n != clients_per_address_.end() && --n->second == 0) {
    clients_per_address_.erase(n);
  }
  return c;
}

void ReplicationRouter::release(const std::shared_ptr<Client>& client) {
  // Called with client->mu held, so in_transaction is this request's outcome, not an older one.
  const bool in_txn = client->stream.in_transaction();
  std::shared_ptr<Client> forgotten;  // destroyed outside mu_
  std::lock_guard lock(mu_);
  client->in_transaction = in_txn;
  client->last_used = Clock::now();
  if (--client->users == 0 && !in_txn) {
    auto it = clients_.find(client->key);
    if (it != clients_.end() && it->second == client) forgotten = forget_locked(it);
  }
}

std::size_t ReplicationRouter::expire_idle(Clock::time_point now) {
  std::vector<std::shared_ptr<Client>> expired;  // their leases roll back outside the lock
  {
    std::lock_guard lock(mu_);
    for (auto it = clients_.begin(); it != clients_.end();) {
      Client& c = *it->second;
      if (c.users == 0 && now - c.last_used > config_.limits.stream_idle_timeout) {
        if (c.in_transaction) tombstones_[it->first] = now + kTombstoneLifetime;
        expired.push_back(forget_locked(it++));
      } else {
        ++it;
      }
    }
    for (auto it = tombstones_.begin(); it != tombstones_.end();) {
      it = it->second < now ? tombstones_.erase(it) : std::next(it);
    }
  }
  return expired.size();
}

std::size_t ReplicationRouter::clients() const {
  std::lock_guard lock(mu_);
  return clients_.size();
}

void ReplicationRouter::sweep_loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    stop_cv_.wait_for(lock, std::chrono::seconds(1));
    if (stopping_) break;
    lock.unlock();
    if (std::size_t n = expire_idle()) {
      spdlog::info(
          "dropped {} idle embedded-replica client(s); their transactions were rolled back", n);
    }
    lock.lock();
  }
}

// ------------------------------------------------------------------ proxy.Proxy

Response ReplicationRouter::execute(const Request& req, const std::string& address) {
  auto body = replication::parse_unary_grpc_web_request(req.body(), config_.limits.max_body_bytes);
  if (!body) return grpc_error(req, GrpcStatus::kInvalidArgument, body.error().message);
  auto program = replication::decode_program_req(*body, config_.limits.max_decoded_items());
  if (!program) return grpc_error(req, GrpcStatus::kInvalidArgument, program.error().message);
  auto target = target_for(req, Service::kProxy);
  if (!target) return grpc_error(req, target.error().code, target.error().message);
  if (program->client_id.empty()) {
    return grpc_error(req, GrpcStatus::kInvalidArgument, "ProgramReq.client_id is empty");
  }
  auto& steps = program->pgm.steps;
  if (steps.size() > config_.limits.max_batch_steps) {
    return grpc_error(req, GrpcStatus::kInvalidArgument,
                      "Too many steps in one program (the limit is " +
                          std::to_string(config_.limits.max_batch_steps) + ")");
  }
  hrana::Batch batch;
  batch.steps.reserve(steps.size());
  for (std::size_t i = 0; i < steps.size(); ++i) {
    hrana::BatchStep step;
    if (steps[i].cond) {
      auto cond = to_batch_cond(*steps[i].cond, i, 0);
      if (!cond) return grpc_error(req, GrpcStatus::kInvalidArgument, cond.error());
      step.condition = std::move(cond.value());
    }
    auto stmt = to_stmt(std::move(steps[i].query));
    if (!stmt) return grpc_error(req, GrpcStatus::kInvalidArgument, stmt.error());
    step.stmt = std::move(stmt.value());
    batch.steps.push_back(std::move(step));
  }

  replication::ExecuteResults out;
  out.results.resize(batch.steps.size());
  bool lost = false;
  auto client = acquire(*target, program->client_id, address, lost);
  if (!client) return grpc_error(req, client.error().code, client.error().message);
  if (lost) {
    // The client believes it is inside a transaction that was rolled back while it was idle:
    // nothing of this program runs (it would otherwise run in autocommit mode).
    const hrana::Error e{
        "Transaction timed out: the embedded replica's transaction was idle for "
        "longer than " +
            std::to_string(config_.limits.stream_idle_timeout.count()) + " ms and was rolled back",
        "TRANSACTION_TIMEOUT",
        {}};
    for (auto& r : out.results) r.result = proxy_error(e);
    out.state = replication::TxnState::kInit;
    return reply_grpc_web(req,
                          replication::grpc_web_response(replication::encode_execute_results(out)));
  }

  std::lock_guard use(client.value()->mu);
  struct Release {
    ReplicationRouter* self;
    const std::shared_ptr<Client>& client;
    ~Release() { self->release(client); }
  } release_guard{this, client.value()};
  Client& c = **client;
  c.stream.set_access(target->access);
  engine::ResponseBudget budget{config_.limits.max_response_bytes};
  auto set_result = [&](std::size_t i, Expected<engine::StmtResult, hrana::Error>&& r) {
    if (r) {
      out.results[i].result = result_rows(std::move(r.value()));
    } else {
      out.results[i].result = proxy_error(r.error());
    }
  };

  const bool single = batch.steps.size() == 1 && !batch.steps[0].condition;
  if (single && c.stream.groupable(batch.steps[0].stmt, c.sqls)) {
    // An autocommit write: it joins the database's group commit, as on Hrana, and is answered
    // once its group committed (and so is in the replication log).
    const hrana::StreamRequest request = hrana::ExecuteReq{batch.steps[0].stmt};
    std::optional<Expected<hrana::StreamResult, hrana::ProtocolError>> ran;
    const hrana::Stream::Carried carried = c.stream.carried();
    auto done = target->db->write_lane()
                    .submit([&](sqlite::Connection& conn) {
                      // May run twice (see WriteLane): only the last run counts, and each
                      // starts from the stream's state before the first.
                      c.stream.restore(carried);
                      engine::ResponseBudget task_budget = budget;
                      ran = c.stream.run_on(conn, request, c.sqls, task_budget);
                    })
                    .get();
    if (!done) {
      set_result(0, unexpected(hrana::Error{done.error().message, done.error().code, {}}));
    } else if (!ran || !*ran) {
      return grpc_error(req, GrpcStatus::kInvalidArgument,
                        ran ? ran->error().message : "the write was not run");
    } else if (auto* e = std::get_if<hrana::Error>(&ran->value())) {
      set_result(0, unexpected(std::move(*e)));
    } else {
      auto& resp = std::get<hrana::StreamResponse>(ran->value());
      set_result(0, std::move(std::get<hrana::ExecuteResp>(resp).result));
    }
  } else if (single) {
    auto ran = c.stream.run(hrana::ExecuteReq{batch.steps[0].stmt}, c.sqls, budget);
    if (!ran) return grpc_error(req, GrpcStatus::kInvalidArgument, ran.error().message);
    if (auto* e = std::get_if<hrana::Error>(&ran.value())) {
      set_result(0, unexpected(std::move(*e)));
    } else {
      auto& resp = std::get<hrana::StreamResponse>(ran.value());
      set_result(0, std::move(std::get<hrana::ExecuteResp>(resp).result));
    }
  } else {
    auto ran = c.stream.run(hrana::BatchReq{std::move(batch)}, c.sqls, budget);
    if (!ran) return grpc_error(req, GrpcStatus::kInvalidArgument, ran.error().message);
    if (auto* e = std::get_if<hrana::Error>(&ran.value())) {
      for (std::size_t i = 0; i < out.results.size(); ++i)
        set_result(i, unexpected(hrana::Error(*e)));
    } else {
      auto& result =
          std::get<hrana::BatchResp>(std::get<hrana::StreamResponse>(ran.value())).result;
      for (std::size_t i = 0; i < out.results.size(); ++i) {
        if (result.step_results[i]) {
          set_result(i, std::move(*result.step_results[i]));
        } else if (result.step_errors[i]) {
          set_result(i, unexpected(std::move(*result.step_errors[i])));
        }  // a skipped step: an empty QueryResult
      }
    }
  }
  out.state =
      c.stream.in_transaction() ? replication::TxnState::kTxn : replication::TxnState::kInit;
  if (log::ReplicationLog* log = target->db->replication_log()) {
    if (const log::Frame last = log->last_frame(); last > 0) out.current_frame_no = last - 1;
  }
  return reply_grpc_web(req,
                        replication::grpc_web_response(replication::encode_execute_results(out)));
}

Response ReplicationRouter::describe(const Request& req) {
  auto body = replication::parse_unary_grpc_web_request(req.body(), config_.limits.max_body_bytes);
  if (!body) return grpc_error(req, GrpcStatus::kInvalidArgument, body.error().message);
  auto request = replication::decode_describe_request(*body);
  if (!request) return grpc_error(req, GrpcStatus::kInvalidArgument, request.error().message);
  auto target = target_for(req, Service::kProxy);
  if (!target) return grpc_error(req, target.error().code, target.error().message);

  // On the client's own connection when it is inside a transaction (the statement may name a
  // table the transaction created); otherwise on any.
  replication::DescribeResult out;
  auto fill =
      [&](Expected<hrana::StreamResult, hrana::ProtocolError>&& ran) -> std::optional<Response> {
    if (!ran) return grpc_error(req, GrpcStatus::kInvalidArgument, ran.error().message);
    if (auto* e = std::get_if<hrana::Error>(&ran.value())) {
      out.result = proxy_error(*e);
      return std::nullopt;
    }
    auto& d = std::get<hrana::DescribeResp>(std::get<hrana::StreamResponse>(ran.value())).result;
    replication::Description desc;
    desc.column_descriptions = columns(d.cols);
    std::vector<std::optional<std::string>> names;
    names.reserve(d.params.size());
    for (const auto& p : d.params) names.push_back(p.name);
    desc.param_names = replication::client_param_names(names);
    desc.param_count = d.params.size();
    out.result = std::move(desc);
    return std::nullopt;
  };
  const hrana::StreamRequest describe_req = hrana::DescribeReq{request->stmt, std::nullopt};
  engine::ResponseBudget budget{config_.limits.max_response_bytes};
  std::shared_ptr<Client> client;
  if (!request->client_id.empty()) {
    std::lock_guard lock(mu_);
    auto it = clients_.find(target->ns + '\0' + request->client_id);
    if (it != clients_.end() && &it->second->stream.database() == target->db.get()) {
      client = it->second;
      ++client->users;
    }
  }
  if (client) {
    std::lock_guard use(client->mu);
    client->stream.set_access(target->access);
    auto failed = fill(client->stream.run(describe_req, client->sqls, budget));
    release(client);
    if (failed) return std::move(*failed);
  } else {
    hrana::Stream stream(target->db);
    hrana::SqlStore sqls(config_.limits);
    stream.set_access(target->access);
    if (auto failed = fill(stream.run(describe_req, sqls, budget))) return std::move(*failed);
  }
  return reply_grpc_web(req,
                        replication::grpc_web_response(replication::encode_describe_result(out)));
}

Response ReplicationRouter::disconnect(const Request& req) {
  auto body = replication::parse_unary_grpc_web_request(req.body(), config_.limits.max_body_bytes);
  if (!body) return grpc_error(req, GrpcStatus::kInvalidArgument, body.error().message);
  auto message = replication::decode_disconnect_message(*body);
  if (!message) return grpc_error(req, GrpcStatus::kInvalidArgument, message.error().message);
  auto target = target_for(req, Service::kProxy);
  if (!target) return grpc_error(req, target.error().code, target.error().message);
  std::shared_ptr<Client> gone;  // its transaction rolls back when the last user lets go
  {
    std::lock_guard lock(mu_);
    const std::string key = target->ns + '\0' + message->client_id;
    if (auto it = clients_.find(key); it != clients_.end()) gone = forget_locked(it);
    tombstones_.erase(key);
  }
  return reply_grpc_web(req, replication::grpc_web_response(replication::encode_ack({})));
}

}  // namespace quire::server
