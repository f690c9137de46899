#include "protocol/legacy.h"

#include <boost/json.hpp>

#include <cctype>

#include "common/base64.h"
#include "engine/executor.h"
#include "protocol/json_parse.h"

namespace quire::protocol {

namespace bj = boost::json;

namespace {

LegacyResponse error_response(int status, std::string message, std::string code) {
  bj::object o;
  o["error"] = message;
  o["message"] = std::move(message);
  o["code"] = std::move(code);
  return {status, bj::serialize(o)};
}

bool to_value(const bj::value& j, Value& out) {
  switch (j.kind()) {
    case bj::kind::null: out = std::monostate{}; return true;
    case bj::kind::bool_: out = std::int64_t{j.get_bool() ? 1 : 0}; return true;
    case bj::kind::int64: out = j.get_int64(); return true;
    case bj::kind::uint64:
      if (j.get_uint64() > INT64_MAX) return false;
      out = static_cast<std::int64_t>(j.get_uint64());
      return true;
    case bj::kind::double_: out = j.get_double(); return true;
    case bj::kind::string: out = std::string(j.get_string()); return true;
    case bj::kind::object: {
      auto* b = j.get_object().if_contains("base64");
      if (!b || !b->is_string()) return false;
      auto bytes = base64::decode(b->get_string());
      if (!bytes) return false;
      out = std::move(*bytes);
      return true;
    }
    default: return false;
  }
}

bj::value from_value(const Value& v) {
  switch (v.index()) {
    case 0: return nullptr;
    case 1: return std::get<1>(v);
    case 2: return std::get<2>(v);
    case 3: return bj::string(std::get<3>(v));
    default: {
      const auto& b = std::get<4>(v);
      return bj::object{{"base64", base64::encode(b.data(), b.size())}};
    }
  }
}

bool is_transaction_control(std::string_view sql) {
  std::size_t i = 0;
  while (i < sql.size() && std::isspace(static_cast<unsigned char>(sql[i]))) ++i;
  std::string kw;
  while (i < sql.size() && std::isalpha(static_cast<unsigned char>(sql[i])) && kw.size() < 10) {
    kw += static_cast<char>(std::toupper(static_cast<unsigned char>(sql[i++])));
  }
  return kw == "BEGIN" || kw == "COMMIT" || kw == "END" || kw == "ROLLBACK" ||
         kw == "SAVEPOINT" || kw == "RELEASE";
}

std::vector<std::string> words(std::string_view sql, std::size_t n) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (out.size() < n) {
    while (i < sql.size() && (std::isspace(static_cast<unsigned char>(sql[i])) || sql[i] == ';')) ++i;
    std::string w;
    while (i < sql.size() && std::isalpha(static_cast<unsigned char>(sql[i]))) {
      w += static_cast<char>(std::toupper(static_cast<unsigned char>(sql[i++])));
    }
    if (w.empty()) break;
    out.push_back(std::move(w));
  }
  while (i < sql.size() && (std::isspace(static_cast<unsigned char>(sql[i])) || sql[i] == ';')) ++i;
  if (i < sql.size()) out.emplace_back("?");  // more follows
  return out;
}

bool is_begin_concurrent(std::string_view sql) {
  auto w = words(sql, 3);
  return w.size() >= 2 && w[0] == "BEGIN" && w[1] == "CONCURRENT" &&
         (w.size() == 2 || (w.size() == 3 && w[2] == "TRANSACTION"));
}

bool is_commit(std::string_view sql) {
  auto w = words(sql, 2);
  return !w.empty() && (w[0] == "COMMIT" || w[0] == "END") &&
         (w.size() == 1 || (w.size() == 2 && w[1] == "TRANSACTION"));
}

}  // namespace

LegacyResponse run_legacy_query(engine::Database& db, const sqlite::Connection::Access& access,
                                std::string_view body, const Limits& limits) {
  auto parsed = parse_json(body);
  if (!parsed) return error_response(400, "Invalid JSON request: " + parsed.error(), "HTTP_BAD_REQUEST");
  bj::value doc = std::move(parsed.value());
  auto* root = doc.if_object();
  auto* stmts = root ? root->if_contains("statements") : nullptr;
  if (!stmts || !stmts->is_array()) {
    return error_response(400, "The body needs an array 'statements'", "HTTP_BAD_REQUEST");
  }
  if (stmts->get_array().size() > limits.max_batch_steps) {
    return error_response(400, "Too many statements in one request", "HTTP_BAD_REQUEST");
  }

  // Parse everything before touching the database.
  std::vector<engine::Query> queries;
  std::vector<std::string> texts;
  texts.reserve(stmts->get_array().size());
  for (const auto& s : stmts->get_array()) {
    engine::Query q;
    if (s.is_string()) {
      texts.emplace_back(s.get_string());
    } else if (auto* o = s.if_object(); o && o->contains("q") && o->at("q").is_string()) {
      texts.emplace_back(o->at("q").get_string());
      if (auto* p = o->if_contains("params")) {
        bool ok = true;
        if (p->is_array()) {
          for (const auto& a : p->get_array()) {
            q.args.emplace_back();
            ok = ok && to_value(a, q.args.back());
          }
        } else if (p->is_object()) {
          for (const auto& kv : p->get_object()) {
            engine::NamedArg arg{std::string(kv.key()), std::monostate{}};
            ok = ok && to_value(kv.value(), arg.value);
            q.named_args.push_back(std::move(arg));
          }
        } else if (!p->is_null()) {
          ok = false;
        }
        if (!ok) return error_response(400, "Invalid 'params' for statement", "HTTP_BAD_REQUEST");
      }
    } else {
      return error_response(400, "A statement must be a string or {\"q\": ..., \"params\": ...}",
                            "HTTP_BAD_REQUEST");
    }
    queries.push_back(std::move(q));
  }
  // The statements of a request run as one transaction of their own. A request may spell that
  // out as BEGIN CONCURRENT ... COMMIT: it is then exactly that transaction (it runs under the
  // write lock from start to end, so it commits as if alone); any other transaction control is
  // refused, as sqld does.
  const bool bracketed = texts.size() >= 2 && is_begin_concurrent(texts.front()) &&
                         is_commit(texts.back());
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const bool bracket = bracketed && (i == 0 || i + 1 == texts.size());
    if (!bracket && is_transaction_control(texts[i])) {
      return error_response(400, "interactive transaction not allowed in HTTP queries",
                            "HTTP_BAD_REQUEST");
    }
    queries[i].sql = texts[i];
  }

  auto lease = db.acquire();
  if (!lease) return error_response(500, lease.error().message, "SQLITE_CANTOPEN");
  (*lease)->set_access(access);
  // A request that writes takes the write gate and SQLite's write lock up front (BEGIN
  // IMMEDIATE): a deferred transaction that read first could meet a newer snapshot when it
  // upgrades (SQLITE_BUSY_SNAPSHOT). Read-only requests take no lock at all.
  bool writes = false;
  for (std::size_t i = bracketed ? 1 : 0; i < queries.size() - (bracketed ? 1 : 0); ++i) {
    const auto& q = queries[i];
    auto prepared = (*lease)->prepare_cached(q.sql);
    if (!access.read_only && prepared && (*prepared)->stmt && !sqlite3_stmt_readonly((*prepared)->stmt.get())) {
      writes = true;
      break;
    }
  }
  if (writes) {
    if (auto ok = (*lease)->write_access()->acquire(); !ok) {
      return error_response(503, ok.error().message, ok.error().code);
    }
  }
  if (auto r = (*lease)->exec(writes ? "BEGIN IMMEDIATE" : "BEGIN"); !r) {
    auto e = engine::sqlite_error(r.error());
    return error_response(500, e.message, e.code);
  }
  engine::ResponseBudget budget{limits.max_response_bytes};
  bj::array out;
  for (std::size_t i = 0; i < queries.size(); ++i) {
    if (bracketed && (i == 0 || i + 1 == queries.size())) {
      out.push_back(bj::object{{"results", bj::object{{"columns", bj::array()},
                                                      {"rows", bj::array()},
                                                      {"rows_read", 0},
                                                      {"rows_written", 0},
                                                      {"query_duration_ms", 0.0}}}});
      continue;
    }
    auto r = engine::execute(**lease, queries[i], budget);
    if (r) db.stats().count(r->rows_read, r->rows_written);
    if (!r) {
      (void)(*lease)->exec("ROLLBACK");
      out.push_back(bj::object{{"error", r.error().message}, {"code", r.error().code}});
      while (out.size() < queries.size()) out.push_back(nullptr);
      return {200, bj::serialize(out)};
    }
    bj::array columns;
    for (const auto& c : r->cols) columns.push_back(bj::string(c.name));
    bj::array rows;
    for (const auto& row : r->rows) {
      bj::array jr;
      for (const auto& v : row) jr.push_back(from_value(v));
      rows.push_back(std::move(jr));
    }
    out.push_back(bj::object{{"results",
                              bj::object{{"columns", std::move(columns)},
                                         {"rows", std::move(rows)},
                                         {"rows_read", r->rows_read},
                                         {"rows_written", r->rows_written},
                                         {"query_duration_ms", r->query_duration_ms}}}});
  }
  if (auto r = (*lease)->exec("COMMIT"); !r) {
    (void)(*lease)->exec("ROLLBACK");
    auto e = engine::sqlite_error(r.error());
    return error_response(500, e.message, e.code);
  }
  return {200, bj::serialize(out)};
}

}  // namespace quire::protocol
