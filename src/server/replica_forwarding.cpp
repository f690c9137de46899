#include "server/replica_forwarding.h"

#include <spdlog/spdlog.h>

#include <boost/json.hpp>
#include <charconv>
#include <unordered_map>

#include "common/base64.h"
#include "engine/executor.h"
// The JSON codec's building blocks (value encoding, the request decoder's value parser): the
// primary's pipeline is spoken with the same JSON the server itself reads and writes.
#include "protocol/hrana/json_detail.h"
#include "protocol/json_parse.h"
#include "replication/primary_replicas.h"

namespace quire::server {

namespace bj = boost::json;
namespace http = boost::beast::http;
using hrana::json::detail::append_escaped;
using hrana::json::detail::append_uint;
using hrana::json::detail::append_value;

// ---------------------------------------------------------------- what runs here

namespace {

// A statement a replica may run itself: it prepares here, is one statement, only reads, and is
// not transaction control (a transaction runs on the primary as a whole) nor ATTACH/DETACH.
bool replica_statement(const std::string& sql, sqlite::Connection& conn) {
  const auto words = engine::leading_keywords(sql, 1);
  if (words.empty()) return false;
  static constexpr std::string_view kPrimaryOnly[] = {"BEGIN",   "COMMIT",  "END",    "ROLLBACK",
                                                      "SAVEPOINT", "RELEASE", "ATTACH", "DETACH",
                                                      "VACUUM",  "REINDEX", "ANALYZE"};
  for (auto w : kPrimaryOnly) {
    if (words[0] == w) return false;
  }
  auto prepared = conn.prepare_cached(sql);
  if (!prepared || !(*prepared)->stmt || (*prepared)->has_tail) return false;
  return sqlite3_stmt_readonly((*prepared)->stmt.get()) != 0;
}

// Judges statements on one leased connection; remembers store_sql texts seen so far.
class Classifier {
 public:
  explicit Classifier(engine::Database& db) : lease_(db.acquire()) {}

  bool stmt(const hrana::Stmt& s) {
    if (!lease_) return false;  // the primary answers (or says why it cannot)
    const std::string* sql = nullptr;
    if (s.sql) {
      sql = &*s.sql;
    } else if (s.sql_id) {
      if (auto it = stored_.find(*s.sql_id); it != stored_.end()) sql = &it->second;
    }
    return sql && replica_statement(*sql, **lease_);
  }
  bool batch(const hrana::Batch& b) {
    for (const auto& step : b.steps) {
      if (!stmt(step.stmt)) return false;
    }
    return true;
  }
  void store(std::int32_t id, const std::string& sql) { stored_[id] = sql; }

 private:
  Expected<engine::Lease, sqlite::Error> lease_;
  std::unordered_map<std::int32_t, std::string> stored_;
};

}  // namespace

bool runs_on_replica(const std::vector<hrana::StreamRequest>& requests, engine::Database& db) {
  Classifier c(db);
  for (const auto& r : requests) {
    if (auto* e = std::get_if<hrana::ExecuteReq>(&r)) {
      if (!c.stmt(e->stmt)) return false;
    } else if (auto* b = std::get_if<hrana::BatchReq>(&r)) {
      if (!c.batch(b->batch)) return false;
    } else if (auto* st = std::get_if<hrana::StoreSqlReq>(&r)) {
      c.store(st->sql_id, st->sql);
    } else if (std::holds_alternative<hrana::SequenceReq>(r)) {
      return false;  // a script may do anything
    }  // close, describe, close_sql, get_autocommit: answered here
  }
  return true;
}

bool runs_on_replica(const hrana::Batch& batch, engine::Database& db) {
  return Classifier(db).batch(batch);
}

bool runs_on_replica(const hrana::Stmt& stmt, engine::Database& db) {
  return Classifier(db).stmt(stmt);
}

// ---------------------------------------------------------------- read-your-writes

void await_primary_frame(replication::PrimaryReplicas& replicas, const std::string& ns,
                         const replication::HttpForwarder::Response& answer) {
  auto it = answer.find("x-quire-frame");
  if (it == answer.end()) return;
  std::uint64_t frame = 0;
  const std::string_view v = it->value();
  auto [p, e] = std::from_chars(v.data(), v.data() + v.size(), frame);
  if (e != std::errc() || frame == 0) return;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  if (auto w = replicas.wait_for_frame(ns, frame, deadline); !w) {
    spdlog::warn("namespace '{}': a forwarded write's frame {} is not applied here yet: {}", ns,
                 frame, w.error());
  }
}

// ---------------------------------------------------------------- requests, as JSON

namespace {

void append_stmt(std::string& out, const hrana::Stmt& s) {
  out += "{";
  if (s.sql) {
    out += R"("sql":)";
    append_escaped(out, *s.sql);
  } else if (s.sql_id) {
    // Not reached from WebSocket (its sql_ids are replaced by their text before forwarding).
    out += R"("sql_id":)";
    out += std::to_string(*s.sql_id);
  } else {
    out += R"("sql":null)";
  }
  out += R"(,"args":[)";
  for (std::size_t i = 0; i < s.args.size(); ++i) {
    if (i) out += ',';
    append_value(out, s.args[i]);
  }
  out += R"(],"named_args":[)";
  for (std::size_t i = 0; i < s.named_args.size(); ++i) {
    if (i) out += ',';
    out += R"({"name":)";
    append_escaped(out, s.named_args[i].name);
    out += R"(,"value":)";
    append_value(out, s.named_args[i].value);
    out += '}';
  }
  out += R"(],"want_rows":)";
  out += s.want_rows ? "true" : "false";
  out += '}';
}

void append_cond(std::string& out, const hrana::BatchCond& c) {
  using K = hrana::BatchCond::Kind;
  switch (c.kind) {
    case K::kOk:
    case K::kError:
      out += c.kind == K::kOk ? R"({"type":"ok","step":)" : R"({"type":"error","step":)";
      append_uint(out, c.step);
      out += '}';
      return;
    case K::kNot:
      out += R"({"type":"not","cond":)";
      // The decoder guarantees exactly one operand; an empty one would be a bug upstream.
      if (c.conds.empty()) {
        out += R"({"type":"and","conds":[]})";
      } else {
        append_cond(out, c.conds.front());
      }
      out += '}';
      return;
    case K::kAnd:
    case K::kOr:
      out += c.kind == K::kAnd ? R"({"type":"and","conds":[)" : R"({"type":"or","conds":[)";
      for (std::size_t i = 0; i < c.conds.size(); ++i) {
        if (i) out += ',';
        append_cond(out, c.conds[i]);
      }
      out += "]}";
      return;
    case K::kIsAutocommit:
      out += R"({"type":"is_autocommit"})";
      return;
  }
}

void append_batch(std::string& out, const hrana::Batch& b) {
  out += R"({"steps":[)";
  for (std::size_t i = 0; i < b.steps.size(); ++i) {
    if (i) out += ',';
    out += R"({"condition":)";
    if (b.steps[i].condition) {
      append_cond(out, *b.steps[i].condition);
    } else {
      out += "null";
    }
    out += R"(,"stmt":)";
    append_stmt(out, b.steps[i].stmt);
    out += '}';
  }
  out += "]}";
}

void append_sql(std::string& out, const std::optional<std::string>& sql,
                const std::optional<std::int32_t>& sql_id) {
  if (sql) {
    out += R"(,"sql":)";
    append_escaped(out, *sql);
  } else if (sql_id) {
    out += R"(,"sql_id":)";
    out += std::to_string(*sql_id);
  }
}

std::string encode_request(const hrana::StreamRequest& r) {
  std::string out;
  if (auto* e = std::get_if<hrana::ExecuteReq>(&r)) {
    out += R"({"type":"execute","stmt":)";
    append_stmt(out, e->stmt);
  } else if (auto* b = std::get_if<hrana::BatchReq>(&r)) {
    out += R"({"type":"batch","batch":)";
    append_batch(out, b->batch);
  } else if (auto* s = std::get_if<hrana::SequenceReq>(&r)) {
    out += R"({"type":"sequence")";
    append_sql(out, s->sql, s->sql_id);
  } else if (auto* d = std::get_if<hrana::DescribeReq>(&r)) {
    out += R"({"type":"describe")";
    append_sql(out, d->sql, d->sql_id);
  } else if (std::holds_alternative<hrana::GetAutocommitReq>(r)) {
    out += R"({"type":"get_autocommit")";
  } else {
    out += R"({"type":"close")";
  }
  out += '}';
  return out;
}

// ---------------------------------------------------------------- answers, from JSON

// Reads the primary's pipeline answer into the shared model. The primary is trusted to speak
// Hrana, but its answer is still checked: a surprise becomes an error for the one request.
struct AnswerReader {
  hrana::json::detail::Decoder decoder;  // its value() parses Hrana values
  std::string problem;

  bool fail(std::string what) {
    if (problem.empty()) problem = std::move(what);
    return false;
  }
  const bj::value* field(const bj::object& o, const char* name) {
    auto it = o.find(name);
    return it == o.end() || it->value().is_null() ? nullptr : &it->value();
  }
  bool u64(const bj::object& o, const char* name, std::uint64_t& out) {
    const bj::value* v = field(o, name);
    if (!v) return true;
    std::error_code ec;
    out = v->to_number<std::uint64_t>(ec);
    return !ec || fail(std::string("'") + name + "' is not a count");
  }
  bool opt_string(const bj::value* v, std::optional<std::string>& out) {
    if (!v) return true;
    if (!v->is_string()) return fail("a string field is not a string");
    out = std::string(v->get_string());
    return true;
  }
  bool cols(const bj::object& o, std::vector<engine::Column>& out) {
    const bj::value* v = field(o, "cols");
    if (!v) return true;
    if (!v->is_array()) return fail("'cols' is not an array");
    for (const auto& c : v->get_array()) {
      if (!c.is_object()) return fail("a column is not an object");
      engine::Column col;
      std::optional<std::string> name;
      if (!opt_string(field(c.get_object(), "name"), name)) return false;
      col.name = name.value_or("");
      if (!opt_string(field(c.get_object(), "decltype"), col.decltype_)) return false;
      out.push_back(std::move(col));
    }
    return true;
  }
  bool error(const bj::value& v, hrana::Error& out) {
    if (!v.is_object()) return fail("an error is not an object");
    std::optional<std::string> message, code, extended;
    const auto& o = v.get_object();
    if (!opt_string(field(o, "message"), message) || !opt_string(field(o, "code"), code) ||
        !opt_string(field(o, "extended_code"), extended)) {
      return false;
    }
    out = hrana::Error{message.value_or("error at the primary"), code.value_or("UNKNOWN"),
                       extended.value_or("")};
    return true;
  }
  bool stmt_result(const bj::value& v, engine::StmtResult& out) {
    if (!v.is_object()) return fail("a statement result is not an object");
    const auto& o = v.get_object();
    if (!cols(o, out.cols)) return false;
    if (const bj::value* rows = field(o, "rows")) {
      if (!rows->is_array()) return fail("'rows' is not an array");
      out.rows.reserve(rows->get_array().size());
      for (const auto& row : rows->get_array()) {
        if (!row.is_array()) return fail("a row is not an array");
        auto& values = out.rows.emplace_back();
        values.reserve(row.get_array().size());
        for (const auto& cell : row.get_array()) {
          if (!decoder.value(cell, values.emplace_back())) return fail("a value does not parse");
        }
      }
    }
    if (!u64(o, "affected_row_count", out.affected_row_count) ||
        !u64(o, "rows_read", out.rows_read) || !u64(o, "rows_written", out.rows_written)) {
      return false;
    }
    if (const bj::value* id = field(o, "last_insert_rowid")) {
      std::int64_t n = 0;
      if (id->is_string()) {
        std::string_view s = id->get_string();
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
        if (ec != std::errc() || p != s.data() + s.size()) return fail("bad last_insert_rowid");
      } else {
        std::error_code ec;
        n = id->to_number<std::int64_t>(ec);
        if (ec) return fail("bad last_insert_rowid");
      }
      out.last_insert_rowid = n;
    }
    if (const bj::value* ms = field(o, "query_duration_ms")) {
      std::error_code ec;
      out.query_duration_ms = ms->to_number<double>(ec);
      if (ec) out.query_duration_ms = 0;  // informative only
    }
    return true;
  }
  bool batch_result(const bj::value& v, hrana::BatchResult& out) {
    if (!v.is_object()) return fail("a batch result is not an object");
    const auto& o = v.get_object();
    const bj::value* results = field(o, "step_results");
    const bj::value* errors = field(o, "step_errors");
    if (!results || !results->is_array() || !errors || !errors->is_array()) {
      return fail("a batch result needs 'step_results' and 'step_errors'");
    }
    for (const auto& r : results->get_array()) {
      auto& slot = out.step_results.emplace_back();
      if (!r.is_null() && !stmt_result(r, slot.emplace())) return false;
    }
    for (const auto& e : errors->get_array()) {
      auto& slot = out.step_errors.emplace_back();
      if (!e.is_null() && !error(e, slot.emplace())) return false;
    }
    return true;
  }
  bool describe_result(const bj::value& v, engine::DescribeResult& out) {
    if (!v.is_object()) return fail("a describe result is not an object");
    const auto& o = v.get_object();
    if (const bj::value* params = field(o, "params")) {
      if (!params->is_array()) return fail("'params' is not an array");
      for (const auto& p : params->get_array()) {
        if (!p.is_object()) return fail("a parameter is not an object");
        if (!opt_string(field(p.get_object(), "name"), out.params.emplace_back().name)) {
          return false;
        }
      }
    }
    if (!cols(o, out.cols)) return false;
    const bj::value* explain = field(o, "is_explain");
    const bj::value* readonly = field(o, "is_readonly");
    out.is_explain = explain && explain->is_bool() && explain->get_bool();
    out.is_readonly = readonly && readonly->is_bool() && readonly->get_bool();
    return true;
  }
  // One entry of the pipeline's `results`.
  bool result(const bj::value& v, hrana::StreamResult& out) {
    if (!v.is_object()) return fail("a result is not an object");
    const auto& o = v.get_object();
    const bj::value* type = field(o, "type");
    if (!type || !type->is_string()) return fail("a result has no 'type'");
    if (type->get_string() == "error") {
      const bj::value* e = field(o, "error");
      if (!e) return fail("an error result has no 'error'");
      hrana::Error err;
      if (!error(*e, err)) return false;
      out = std::move(err);
      return true;
    }
    const bj::value* resp = field(o, "response");
    if (type->get_string() != "ok" || !resp || !resp->is_object()) {
      return fail("a result is neither ok nor error");
    }
    const auto& r = resp->get_object();
    const bj::value* rtype = field(r, "type");
    if (!rtype || !rtype->is_string()) return fail("a response has no 'type'");
    const std::string_view t = rtype->get_string();
    const bj::value* res = field(r, "result");
    if (t == "execute") {
      hrana::ExecuteResp e;
      if (!res || !stmt_result(*res, e.result)) return fail("bad execute result");
      out = hrana::StreamResponse(std::move(e));
    } else if (t == "batch") {
      hrana::BatchResp b;
      if (!res || !batch_result(*res, b.result)) return fail("bad batch result");
      out = hrana::StreamResponse(std::move(b));
    } else if (t == "describe") {
      hrana::DescribeResp d;
      if (!res || !describe_result(*res, d.result)) return fail("bad describe result");
      out = hrana::StreamResponse(std::move(d));
    } else if (t == "sequence") {
      out = hrana::StreamResponse(hrana::SequenceResp{});
    } else if (t == "get_autocommit") {
      const bj::value* a = field(r, "is_autocommit");
      out = hrana::StreamResponse(
          hrana::GetAutocommitResp{!a || !a->is_bool() || a->get_bool()});
    } else if (t == "close") {
      out = hrana::StreamResponse(hrana::CloseResp{});
    } else {
      return fail("unknown response type '" + std::string(t) + "'");
    }
    return true;
  }
};

}  // namespace

// ---------------------------------------------------------------- PrimaryStream

PrimaryStream::PrimaryStream(replication::PrimaryReplicas& replicas, std::string ns)
    : replicas_(replicas), ns_(std::move(ns)) {}

hrana::StreamResult PrimaryStream::run(const hrana::StreamRequest& request,
                                       const std::optional<std::string>& jwt) {
  if (broken_) return *broken_;
  return send(encode_request(request), jwt);
}

void PrimaryStream::close(const std::optional<std::string>& jwt) {
  if (!holds_stream()) return;  // nothing held at the primary (or nothing we can name)
  auto r = send(R"({"type":"close"})", jwt);
  if (auto* e = std::get_if<hrana::Error>(&r)) {
    spdlog::debug("closing a forwarded stream at the primary failed: {}", e->message);
  }
  baton_.reset();
}

hrana::StreamResult PrimaryStream::send(const std::string& request_json,
                                        const std::optional<std::string>& jwt) {
  replication::HttpForwarder::Request req{http::verb::post, "/v3/pipeline", 11};
  std::string body = R"({"baton":)";
  hrana::json::detail::append_opt_string(body, baton_);
  body += R"(,"requests":[)";
  body += request_json;
  body += "]}";
  req.body() = std::move(body);
  req.set(http::field::content_type, "application/json");
  req.set("x-namespace", ns_);
  req.set("x-namespace-bin", base64::encode(ns_));
  if (jwt) req.set(http::field::authorization, "Bearer " + *jwt);
  req.prepare_payload();

  // What the primary's stream is, if this request did not come back: unknown. Without a
  // baton there was nothing there to lose (the next request starts afresh).
  const bool had_state = baton_.has_value();
  auto lost = [&](hrana::Error e) -> hrana::StreamResult {
    if (had_state) {
      broken_ = hrana::Error{"This stream's state at the primary (a transaction, perhaps) was "
                             "lost: " + e.message + "; open a new stream",
                             e.code, {}};
      baton_.reset();
    }
    return e;
  };

  auto answer = replicas_.forwarder().forward(std::move(req));
  if (!answer) {
    spdlog::warn("forwarding a WebSocket request to the primary failed: {}", answer.error());
    return lost(hrana::Error{"This read replica could not reach its primary " +
                                 replicas_.primary_url() + ": " + answer.error(),
                             "PRIMARY_UNAVAILABLE",
                             {}});
  }
  if (answer->result() != http::status::ok) {
    // The primary refused the whole pipeline (a bad token, an expired baton, an unknown
    // namespace): its error body is a Hrana error, passed on as it is where it parses.
    hrana::Error e{"The primary answered HTTP " + std::to_string(answer->result_int()),
                   "PRIMARY_ERROR",
                   {}};
    if (auto parsed = protocol::parse_json(answer->body()); parsed && parsed->is_object()) {
      AnswerReader reader;
      hrana::Error from;
      if (reader.error(*parsed, from)) e = std::move(from);
    }
    return lost(std::move(e));
  }
  await_primary_frame(replicas_, ns_, *answer);

  AnswerReader reader;
  hrana::StreamResult out = hrana::Error{};
  auto parsed = protocol::parse_json(answer->body());
  bool ok = parsed && parsed->is_object();
  if (ok) {
    const auto& o = parsed->get_object();
    baton_.reset();
    ok = reader.opt_string(reader.field(o, "baton"), baton_);
    const bj::value* results = reader.field(o, "results");
    ok = ok && results && results->is_array() && results->get_array().size() == 1 &&
         reader.result(results->get_array().front(), out);
  }
  if (!ok) {
    return lost(hrana::Error{"The primary's answer is not a Hrana pipeline answer" +
                                 (reader.problem.empty() ? "" : ": " + reader.problem),
                             "PRIMARY_ERROR",
                             {}});
  }
  return out;
}

}  // namespace quire::server
