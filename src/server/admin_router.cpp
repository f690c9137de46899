#include "server/admin_router.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <array>
#include <boost/json.hpp>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <vector>

#include "auth/key_set.h"
#include "common/rfc3339.h"
#include "common/text.h"
#include "log/format.h"
#include "log/log.h"
#include "replication/primary_replicas.h"
#include "server/backup_service.h"

namespace quire::server {

namespace bj = boost::json;
namespace fs = std::filesystem;

namespace {

using Kind = engine::NamespaceError::Kind;

constexpr const char* kJsonType = "application/json";

Response json(const Request& req, http::status status, std::string body) {
  Response res(status, req.version());
  res.set(http::field::server, "quire/" QUIRE_VERSION);
  res.set(http::field::content_type, kJsonType);
  res.keep_alive(req.keep_alive());
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

Response fail(const Request& req, http::status status, std::string_view message) {
  bj::object o;
  o["error"] = message;
  return json(req, status, bj::serialize(o));
}

Response ok(const Request& req) { return json(req, http::status::ok, "{}"); }

http::status status_of(const engine::NamespaceError& e) {
  switch (e.kind) {
    case Kind::kInvalidName:
    case Kind::kProtected:
      return http::status::bad_request;
    case Kind::kNotFound:
      return http::status::not_found;
    case Kind::kExists:
      return http::status::conflict;
    case Kind::kIo:
    case Kind::kSqlite:
      break;
  }
  return http::status::internal_server_error;
}

Response fail(const Request& req, const engine::NamespaceError& e) {
  const auto status = status_of(e);
  if (status == http::status::internal_server_error) {
    spdlog::error("admin {} {}: {}", std::string(req.method_string()), std::string(req.target()),
                  e.message);
  }
  return fail(req, status, e.message);
}

Response invalid_name(const Request& req, std::string_view name) {
  return fail(req, http::status::bad_request,
              "Invalid namespace name '" + std::string(name.substr(0, 80)) +
                  "': use 1 to 64 characters of A-Z, a-z, 0-9, '-' and '_'");
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes %XX escapes; nullopt for a malformed one.
std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    const int hi = hex_digit(s[i + 1]), lo = hex_digit(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

// "/v1/namespaces/a%2Fb/create" -> {"v1", "namespaces", "a/b", "create"}: a decoded slash stays
// inside its segment (and then fails the name check). nullopt for a malformed escape.
std::optional<std::vector<std::string>> segments_of(std::string_view path) {
  std::vector<std::string> out;
  if (!path.starts_with('/')) return out;  // not origin-form: matches no route
  path.remove_prefix(1);
  while (true) {
    const auto slash = path.find('/');
    auto segment = percent_decode(path.substr(0, slash));
    if (!segment) return std::nullopt;
    out.push_back(std::move(*segment));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

// The request body as a JSON object; an empty body is `{}`.
Expected<bj::object, std::string> body_object(const Request& req) {
  if (trim(req.body()).empty()) return bj::object{};
  boost::system::error_code ec;
  bj::value v = bj::parse(req.body(), ec);
  if (ec) return unexpected("The request body is not valid JSON: " + ec.message());
  if (!v.is_object()) return unexpected(std::string("The request body must be a JSON object"));
  return std::move(v.get_object());
}

const bj::value* field(const bj::object& o, std::string_view key) {
  auto it = o.find(key);
  return it == o.end() || it->value().is_null() ? nullptr : &it->value();
}

Expected<void, std::string> read_bool(const bj::object& o, std::string_view key, bool& out) {
  if (auto* v = field(o, key)) {
    if (!v->is_bool()) return unexpected("'" + std::string(key) + "' must be a boolean");
    out = v->get_bool();
  }
  return {};
}

// A field that may be cleared with null: absent leaves `out` alone, null resets it.
template <class T, class Parse>
Expected<void, std::string> read_optional(const bj::object& o, std::string_view key,
                                          std::optional<T>& out, Parse parse) {
  auto it = o.find(key);
  if (it == o.end()) return {};
  if (it->value().is_null()) {
    out.reset();
    return {};
  }
  auto parsed = parse(it->value());
  if (!parsed) return unexpected("'" + std::string(key) + "' " + parsed.error());
  out = std::move(parsed.value());
  return {};
}

Expected<std::uint64_t, std::string> byte_size_of(const bj::value& v) {
  if (v.is_string()) {
    auto n = parse_byte_size(v.get_string());
    if (!n) return unexpected(n.error());
    if (*n == 0) return unexpected(std::string("must be positive"));
    return n.value();
  }
  if (v.is_uint64() && v.get_uint64() > 0) return v.get_uint64();
  if (v.is_int64() && v.get_int64() > 0) return static_cast<std::uint64_t>(v.get_int64());
  if (v.is_double()) {
    const double d = v.get_double();
    if (d >= 1 && d < 1.8e19 && std::floor(d) == d) return static_cast<std::uint64_t>(d);
  }
  return unexpected(std::string("must be a positive number of bytes or a size such as \"10MB\""));
}

// Applies the config fields present in `body` (sqld's names) to `config`; others are ignored.
Expected<void, std::string> apply_config(const bj::object& body, engine::NamespaceConfig& c) {
  if (auto r = read_bool(body, "block_reads", c.block_reads); !r) return r;
  if (auto r = read_bool(body, "block_writes", c.block_writes); !r) return r;
  if (auto r = read_bool(body, "allow_attach", c.allow_attach); !r) return r;
  auto string = [](const bj::value& v) -> Expected<std::string, std::string> {
    if (!v.is_string()) return unexpected(std::string("must be a string"));
    return std::string(v.get_string());
  };
  if (auto r = read_optional(body, "block_reason", c.block_reason, string); !r) return r;
  if (auto r = read_optional(body, "max_db_size", c.max_db_size, byte_size_of); !r) return r;
  auto seconds = [](const bj::value& v) -> Expected<double, std::string> {
    if (!v.is_number() || !(v.to_number<double>() > 0) || !std::isfinite(v.to_number<double>())) {
      return unexpected(std::string("must be a positive number of seconds"));
    }
    return v.to_number<double>();
  };
  if (auto r = read_optional(body, "txn_timeout_s", c.txn_timeout_s, seconds); !r) return r;
  auto key = [](const bj::value& v) -> Expected<std::string, std::string> {
    if (!v.is_string()) return unexpected(std::string("must be a string"));
    // A key that cannot verify anything would lock every client out of the namespace.
    if (auto keys = auth::KeySet::parse(v.get_string()); !keys) {
      return unexpected("is not an Ed25519 public key: " + keys.error());
    }
    return std::string(v.get_string());
  };
  if (auto r = read_optional(body, "jwt_key", c.jwt_key, key); !r) return r;
  return {};
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  const auto ms = floor<milliseconds>(t.time_since_epoch());
  const auto secs = floor<seconds>(ms);
  const std::time_t whole = static_cast<std::time_t>(secs.count());
  std::tm tm{};
  gmtime_r(&whole, &tm);
  char buf[96];  // room for any int the compiler can imagine
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>((ms - secs).count()));
  return buf;
}

std::uint64_t file_size_or_zero(const fs::path& p) {
  std::error_code ec;
  auto n = fs::file_size(p, ec);
  return ec ? 0 : n;
}

// SHA-256 of `s`, so keys of any length compare in constant time.
std::array<unsigned char, 32> digest(std::string_view s) {
  std::array<unsigned char, 32> out{};
  unsigned int n = 0;
  EVP_Digest(s.data(), s.size(), out.data(), &n, EVP_sha256(), nullptr);
  return out;
}

}  // namespace

bool admin_key_matches(std::string_view authorization, std::string_view key) {
  authorization = trim(authorization);
  const auto space = authorization.find(' ');
  if (space == std::string_view::npos) return false;
  const auto scheme = authorization.substr(0, space);
  if (!iequals(scheme, "basic") && !iequals(scheme, "bearer")) return false;
  const auto given = digest(trim(authorization.substr(space + 1)));
  const auto expected = digest(key);
  return CRYPTO_memcmp(given.data(), expected.data(), given.size()) == 0;
}

Expected<std::uint64_t, std::string> parse_byte_size(std::string_view text) {
  const std::string s(trim(text));
  const auto bad = [&] {
    return unexpected("'" + std::string(text.substr(0, 40)) +
                      "' is not a size (examples: 4096, \"10MB\", \"512KiB\", \"1GB\")");
  };
  if (s.empty() || !(std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '.')) return bad();
  std::size_t used = 0;
  double n = 0;
  try {
    n = std::stod(s, &used);
  } catch (...) {
    return bad();
  }
  std::string unit(trim(std::string_view(s).substr(used)));
  for (auto& ch : unit) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  struct Unit {
    const char* name;
    double factor;
  };
  static constexpr Unit kUnits[] = {{"", 1},
                                    {"b", 1},
                                    {"k", 1e3},
                                    {"kb", 1e3},
                                    {"m", 1e6},
                                    {"mb", 1e6},
                                    {"g", 1e9},
                                    {"gb", 1e9},
                                    {"t", 1e12},
                                    {"tb", 1e12},
                                    {"ki", 1024.0},
                                    {"kib", 1024.0},
                                    {"mi", 1048576.0},
                                    {"mib", 1048576.0},
                                    {"gi", 1073741824.0},
                                    {"gib", 1073741824.0},
                                    {"ti", 1099511627776.0},
                                    {"tib", 1099511627776.0}};
  for (const auto& u : kUnits) {
    if (unit == u.name) {
      const double bytes = n * u.factor;
      if (!std::isfinite(bytes) || bytes < 0 || bytes >= 1.8e19) return bad();
      return static_cast<std::uint64_t>(bytes);
    }
  }
  return bad();
}

Expected<std::string, std::string> dump_url_path(std::string_view url) {
  const auto colon = url.find(':');
  const std::string_view scheme = colon == std::string_view::npos ? "" : url.substr(0, colon);
  if (iequals(scheme, "http") || iequals(scheme, "https")) {
    return unexpected(std::string(
        "dump_url: downloading a dump over HTTP is not supported; use a file: URL of a dump on "
        "the server's disk, or send the SQL in 'dump'"));
  }
  if (!iequals(scheme, "file")) {
    return unexpected(
        std::string("dump_url must be an absolute file: URL (file:///path/to/dump.sql)"));
  }
  std::string_view rest = url.substr(colon + 1);
  if (rest.starts_with("//")) {
    rest.remove_prefix(2);
    const auto slash = rest.find('/');
    const std::string_view host = rest.substr(0, slash);
    if (!host.empty() && !iequals(host, "localhost")) {
      return unexpected("dump_url: a file: URL on another host ('" + std::string(host) +
                        "') cannot be read");
    }
    if (slash == std::string_view::npos)
      rest = {};
    else
      rest.remove_prefix(slash);
  }
  rest = rest.substr(0, rest.find_first_of("?#"));
  if (!rest.starts_with('/')) {
    return unexpected(std::string("dump_url: the path of a file: URL must be absolute"));
  }
  auto path = percent_decode(rest);
  if (!path || path->find('\0') != std::string::npos) {
    return unexpected(std::string("dump_url: malformed percent-encoding in the path"));
  }
  return std::move(*path);
}

AdminRouter::AdminRouter(const Config& config, engine::NamespaceStore& namespaces,
                         replication::PrimaryReplicas* replicas, BackupService* backup)
    : config_(config), namespaces_(namespaces), replicas_(replicas), backup_(backup) {}

Expected<std::shared_ptr<engine::Database>, Response> AdminRouter::websocket_database(
    const Request& req) {
  return unexpected(fail(req, http::status::not_found, "WebSocket is not served on the admin API"));
}

Response AdminRouter::error(http::status status, std::string message, std::string code,
                            unsigned version, bool keep_alive) {
  Request req;
  req.version(version);
  req.keep_alive(keep_alive);
  return fail(req, status, message);
}

Router::Routed AdminRouter::handle(const Request& req, const std::string& client) {
  if (!config_.admin_auth_key.empty()) {
    auto it = req.find(http::field::authorization);
    if (it == req.end()) {
      return fail(req, http::status::unauthorized,
                  "The admin API needs the admin key: send `Authorization: Bearer <key>`");
    }
    if (!admin_key_matches(it->value(), config_.admin_auth_key)) {
      spdlog::warn("admin API: rejected a request from {} with a wrong key", client);
      return fail(req, http::status::unauthorized, "Wrong admin key");
    }
  }

  const std::string_view target = req.target();
  const std::string_view path = target.substr(0, target.find('?'));
  auto parsed = segments_of(path);
  if (!parsed)
    return fail(req, http::status::bad_request, "Malformed percent-encoding in the path");
  const std::vector<std::string>& s = *parsed;
  const auto method = req.method();

  auto not_allowed = [&](const char* allow) {
    Response res = fail(
        req, http::status::method_not_allowed,
        "Method " + std::string(req.method_string()) + " is not allowed on " + std::string(path));
    res.set(http::field::allow, allow);
    return res;
  };
  auto defer = [](auto work) { return Router::Routed(Router::Deferred(std::move(work))); };

  if (s.size() == 1 && s[0] == "health") {
    if (method != http::verb::get && method != http::verb::head) return not_allowed("GET");
    Response res(http::status::ok, req.version());
    res.set(http::field::server, "quire/" QUIRE_VERSION);
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    return res;
  }
  if (s.size() >= 2 && s[0] == "v1" && s[1] == "namespaces") {
    if (s.size() == 2) {
      if (method != http::verb::get) return not_allowed("GET");
      return defer([this, &req] { return list(req); });
    }
    const std::string ns = s[2];
    if (s.size() == 3) {
      if (method != http::verb::delete_) return not_allowed("DELETE");
      return defer([this, &req, ns] { return remove(req, ns); });
    }
    if (s.size() == 4 && s[3] == "create") {
      if (method != http::verb::post) return not_allowed("POST");
      return defer([this, &req, ns] { return create(req, ns); });
    }
    if (s.size() == 4 && s[3] == "config") {
      if (method == http::verb::get) return defer([this, &req, ns] { return get_config(req, ns); });
      if (method == http::verb::post)
        return defer([this, &req, ns] { return set_config(req, ns); });
      return not_allowed("GET, POST");
    }
    if (s.size() == 4 && s[3] == "stats") {
      if (method != http::verb::get) return not_allowed("GET");
      return defer([this, &req, ns] { return stats(req, ns); });
    }
    if (s.size() == 4 && s[3] == "checkpoint") {
      if (method != http::verb::post) return not_allowed("POST");
      return defer([this, &req, ns] { return checkpoint(req, ns); });
    }
    if (s.size() == 4 && s[3] == "backup") {
      if (method != http::verb::get) return not_allowed("GET");
      return defer([this, &req, ns] { return backup_status(req, ns); });
    }
    if (s.size() == 4 && s[3] == "restore") {
      if (method != http::verb::post) return not_allowed("POST");
      return defer([this, &req, ns] { return restore(req, ns); });
    }
    if (s.size() == 5 && s[3] == "fork") {
      if (method != http::verb::post) return not_allowed("POST");
      const std::string to = s[4];
      return defer([this, &req, ns, to] { return fork(req, ns, to); });
    }
  }
  return fail(req, http::status::not_found,
              "No route for " + std::string(req.method_string()) + " " + std::string(path));
}

Response AdminRouter::list(const Request& req) {
  bj::array out;
  for (const auto& info : namespaces_.list()) {
    bj::object o;
    o["name"] = info.name;
    o["size_bytes"] = info.size_bytes;
    o["last_access"] =
        info.last_access ? bj::value(rfc3339(*info.last_access)) : bj::value(nullptr);
    o["open"] = info.open;
    out.push_back(std::move(o));
  }
  bj::object doc;
  doc["namespaces"] = std::move(out);
  return json(req, http::status::ok, bj::serialize(doc));
}

Response AdminRouter::create(const Request& req, const std::string& name) {
  if (!engine::NamespaceStore::valid_name(name)) return invalid_name(req, name);
  auto body = body_object(req);
  if (!body) return fail(req, http::status::bad_request, body.error());
  engine::NamespaceConfig config;
  if (auto r = apply_config(*body, config); !r) {
    return fail(req, http::status::bad_request, r.error());
  }
  const bj::value* dump = field(*body, "dump");
  const bj::value* dump_url = field(*body, "dump_url");
  if (dump && dump_url) {
    return fail(req, http::status::bad_request, "Give either 'dump' or 'dump_url', not both");
  }
  // Before reading a dump that may be large.
  if (namespaces_.exists(name)) {
    return fail(req, http::status::conflict, "Namespace '" + name + "' already exists");
  }
  std::optional<std::string> sql;
  if (dump) {
    if (!dump->is_string()) return fail(req, http::status::bad_request, "'dump' must be SQL text");
    sql = std::string(dump->get_string());
  } else if (dump_url) {
    if (!dump_url->is_string()) {
      return fail(req, http::status::bad_request, "'dump_url' must be a string");
    }
    auto path = dump_url_path(dump_url->get_string());
    if (!path) return fail(req, http::status::bad_request, path.error());
    std::error_code ec;
    if (!fs::is_regular_file(*path, ec)) {
      return fail(req, http::status::bad_request, "dump_url: no such file: " + *path);
    }
    std::ifstream in(*path, std::ios::binary);
    std::stringstream text;
    if (in) text << in.rdbuf();
    if (!in || in.bad()) {
      return fail(req, http::status::bad_request,
                  "dump_url: cannot read " + *path + ": " + std::strerror(errno));
    }
    sql = std::move(text).str();
  }
  auto created = namespaces_.create(name, config, sql);
  if (!created) {
    // With a dump, an SQLite failure is almost always the dump's: bad input.
    if (sql && created.error().kind == Kind::kSqlite) {
      return fail(req, http::status::bad_request, created.error().message);
    }
    return fail(req, created.error());
  }
  spdlog::info("admin API: created namespace '{}'{}", name, sql ? " from a dump" : "");
  return ok(req);
}

Response AdminRouter::remove(const Request& req, const std::string& name) {
  auto body = body_object(req);
  if (!body) return fail(req, http::status::bad_request, body.error());
  bool keep_backup = false;  // accepted for sqld's clients; there are no backups to keep yet
  if (auto r = read_bool(*body, "keep_backup", keep_backup); !r) {
    return fail(req, http::status::bad_request, r.error());
  }
  if (auto removed = namespaces_.remove(name); !removed) return fail(req, removed.error());
  spdlog::info("admin API: deleted namespace '{}'", name);
  return ok(req);
}

Response AdminRouter::fork(const Request& req, const std::string& from, const std::string& to) {
  auto body = body_object(req);
  if (!body) return fail(req, http::status::bad_request, body.error());
  if (field(*body, "timestamp") || field(*body, "frame") || field(*body, "log_id")) {
    // A branch at a past moment, from the backup (the source need not exist any more).
    if (!backup_) return backups_off(req);
    if (!engine::NamespaceStore::valid_name(to)) return invalid_name(req, to);
    if (namespaces_.exists(to)) {
      return fail(req, http::status::conflict, "Namespace '" + to + "' already exists");
    }
    // The restore first: it checks the body and the source's name before anything is read.
    const auto scratch = namespaces_.scratch_path("pitr-fork", to);
    auto restored = restore_to(req, from, *body, scratch);
    if (!restored) return std::move(restored.error());
    auto drop_scratch = [&] {
      std::error_code ec;
      std::filesystem::remove(scratch, ec);
    };
    engine::NamespaceConfig config;
    if (namespaces_.exists(from)) {
      auto c = namespaces_.config(from);
      if (!c) {
        drop_scratch();
        return fail(req, c.error());
      }
      config = *c;
    } else {
      // Deleted: the settings it was backed up with.
      auto stored = backup_->stored_config(from);
      if (!stored) {
        drop_scratch();
        return fail(req, http::status::service_unavailable, stored.error());
      }
      config = stored->value_or(engine::NamespaceConfig{});
    }
    if (auto adopted = namespaces_.adopt(to, scratch, config); !adopted) {
      drop_scratch();
      return fail(req, adopted.error());
    }
    spdlog::info("admin API: forked namespace '{}' as of frame {} ({}) into '{}'", from,
                 restored->frame, format_rfc3339_us(restored->commit_time_us), to);
    bj::object o;
    o["log_id"] = log::format_log_id(restored->log_id);
    o["frame"] = restored->frame;
    o["commit_time"] = format_rfc3339_us(restored->commit_time_us);
    bj::object doc;
    doc["restored"] = std::move(o);
    return json(req, http::status::ok, bj::serialize(doc));
  }
  if (auto forked = namespaces_.fork(from, to); !forked) return fail(req, forked.error());
  spdlog::info("admin API: forked namespace '{}' into '{}'", from, to);
  return ok(req);
}

Response AdminRouter::backups_off(const Request& req) {
  return fail(req, http::status::bad_request,
              "Backups are off on this server: start it with --backup-url to restore or fork at "
              "a past moment");
}

Expected<backup::RestoreResult, Response> AdminRouter::restore_to(
    const Request& req, const std::string& name, const bj::object& body,
    const std::filesystem::path& out) {
  if (!backup_) return unexpected(backups_off(req));
  if (!engine::NamespaceStore::valid_name(name)) return unexpected(invalid_name(req, name));
  backup::RestoreTarget target = backup::RestoreTarget::latest();
  const bj::value* ts = field(body, "timestamp");
  const bj::value* fr = field(body, "frame");
  if (ts && fr) {
    return unexpected(
        fail(req, http::status::bad_request, "Give either 'timestamp' or 'frame', not both"));
  }
  if (ts) {
    std::optional<std::int64_t> t;
    if (ts->is_string()) t = parse_rfc3339_us(ts->get_string());
    if (!t) {
      return unexpected(fail(req, http::status::bad_request,
                             "'timestamp' must be an RFC 3339 time such as "
                             "2026-01-02T03:04:05Z or 2026-01-02T03:04:05.123+01:00"));
    }
    target = backup::RestoreTarget::at_time(*t);
  } else if (fr) {
    if (!fr->is_int64() || fr->get_int64() < 0) {
      return unexpected(
          fail(req, http::status::bad_request, "'frame' must be a non-negative integer"));
    }
    target = backup::RestoreTarget::at_frame(static_cast<log::Frame>(fr->get_int64()));
  }
  if (const bj::value* id = field(body, "log_id")) {
    if (id->is_string()) target.log_id = log::parse_log_id(id->get_string());
    if (!target.log_id) {
      return unexpected(fail(req, http::status::bad_request,
                             "'log_id' must be a log id as GET /v1/namespaces/:ns/backup lists "
                             "it (32 hex digits, dashes allowed)"));
    }
  }
  // What the namespace holds now goes up first, so that the state being replaced (or forked
  // from) is restorable to its last commit.
  if (namespaces_.exists(name)) {
    if (auto flushed = backup_->flush(name); !flushed) {
      return unexpected(fail(req, http::status::service_unavailable,
                             "Cannot back up namespace '" + name +
                                 "' before restoring (nothing was changed): " + flushed.error()));
    }
  }
  auto restored = backup::restore(backup_->object_store(), BackupService::prefix(name), target,
                                  out, backup_->encryption_key());
  if (!restored) {
    const auto& e = restored.error();
    http::status status = http::status::internal_server_error;
    switch (e.kind) {
      case backup::BackupErrc::kNoBackup:
        status = http::status::not_found;
        break;
      case backup::BackupErrc::kOutOfRange:
      case backup::BackupErrc::kInvalidArgument:
        status = http::status::bad_request;
        break;
      case backup::BackupErrc::kStorage:
        status = http::status::service_unavailable;
        break;
      default:
        break;
    }
    std::error_code ec;
    std::filesystem::remove(out, ec);
    spdlog::warn("admin API: restoring namespace '{}' failed: {}: {}", name,
                 backup::to_string(e.kind), e.message);
    return unexpected(fail(req, status,
                           "Cannot restore namespace '" + name + "' (" +
                               backup::to_string(e.kind) + "): " + e.message));
  }
  return std::move(restored.value());
}

Response AdminRouter::restore(const Request& req, const std::string& name) {
  auto body = body_object(req);
  if (!body) return fail(req, http::status::bad_request, body.error());
  const auto scratch = namespaces_.scratch_path("restore", name);
  const bool existed = namespaces_.exists(name);
  std::string before_log_id;
  std::uint64_t before_frame = 0;
  auto restored = restore_to(req, name, *body, scratch);
  if (!restored) return std::move(restored.error());
  if (existed) {
    // restore_to() shipped it first: this is the state being replaced, all in the store.
    if (auto st = backup_->status(name)) {
      before_log_id = st->log_id;
      before_frame = st->shipped_frame;
    }
  }
  engine::NamespaceConfig config;
  if (!existed) {
    // Deleted: it comes back with the settings it was backed up with.
    auto stored = backup_->stored_config(name);
    if (!stored) {
      std::error_code ec;
      std::filesystem::remove(scratch, ec);
      return fail(req, http::status::service_unavailable, stored.error());
    }
    config = stored->value_or(engine::NamespaceConfig{});
  }
  auto done = existed ? namespaces_.replace(name, scratch) : namespaces_.adopt(name, scratch, config);
  if (!done) {
    std::error_code ec;
    std::filesystem::remove(scratch, ec);
    return fail(req, done.error());
  }
  // The new log's base image goes up as the first batch of a new lineage.
  if (auto flushed = backup_->flush(name); !flushed) {
    spdlog::warn("admin API: namespace '{}' was restored, but backing up its new state failed "
                 "(retried in the background): {}", name, flushed.error());
  }
  spdlog::info("admin API: restored namespace '{}' to frame {} of log {} ({})", name,
               restored->frame, log::format_log_id(restored->log_id),
               format_rfc3339_us(restored->commit_time_us));
  bj::object o;
  o["log_id"] = log::format_log_id(restored->log_id);
  o["frame"] = restored->frame;
  o["commit_time"] = format_rfc3339_us(restored->commit_time_us);
  bj::object doc;
  doc["restored"] = std::move(o);
  if (existed) {
    // The state it replaced stays restorable: by timestamp, or by this log id and frame.
    bj::object p;
    p["log_id"] = before_log_id;
    p["last_frame"] = before_frame;
    doc["previous"] = std::move(p);
  }
  return json(req, http::status::ok, bj::serialize(doc));
}

Response AdminRouter::backup_status(const Request& req, const std::string& name) {
  if (!engine::NamespaceStore::valid_name(name)) return invalid_name(req, name);
  if (!backup_) {
    return fail(req, http::status::bad_request,
                "Backups are off on this server: start it with --backup-url");
  }
  bj::object doc;
  doc["namespace"] = name;
  doc["exists"] = namespaces_.exists(name);
  doc["url"] = backup_->options().url;
  auto reader = backup::BackupReader::open(backup_->object_store(), BackupService::prefix(name),
                                           backup_->encryption_key());
  if (!reader) {
    // The store may be down: the shipping status below still says how far behind it is.
    if (reader.error().kind != backup::BackupErrc::kNoBackup) {
      doc["store_error"] = reader.error().message;
    }
    doc["restorable"] = nullptr;
    doc["lineages"] = bj::array();
  } else {
    bj::array lineages;
    for (const auto& m : reader->lineages()) {
      bj::object l;
      l["log_id"] = log::format_log_id(m.log_id);
      if (auto r = reader->restorable_range(m.log_id)) {
        l["first_frame"] = r->first_frame;
        l["first_time"] = format_rfc3339_us(r->first_time_us);
        l["last_frame"] = r->last_frame;
        l["last_time"] = format_rfc3339_us(r->last_time_us);
      } else {
        l["error"] = r.error().message;  // no restorable point, or a broken tail
      }
      l["snapshots"] = m.snapshots.size();
      l["batches"] = m.batch_count();
      lineages.push_back(std::move(l));
    }
    doc["lineages"] = std::move(lineages);
    if (auto r = reader->restorable_range()) {
      bj::object o;
      o["log_id"] = log::format_log_id(r->log_id);
      o["first_frame"] = r->first_frame;
      o["first_time"] = format_rfc3339_us(r->first_time_us);
      o["last_frame"] = r->last_frame;
      o["last_time"] = format_rfc3339_us(r->last_time_us);
      doc["restorable"] = std::move(o);
    } else {
      // Why not (a broken tail names the object that cannot be used).
      doc["restorable"] = nullptr;
      doc["restorable_error"] = r.error().message;
    }
  }
  if (auto st = backup_->status(name)) {
    bj::object o;
    o["log_id"] = st->log_id;
    o["committed_frame"] = st->committed_frame;
    o["shipped_frame"] = st->shipped_frame;
    o["ships"] = st->ships;
    o["objects_written"] = st->objects_written;
    o["bytes_uploaded"] = st->bytes_uploaded;
    o["failures"] = st->failures;
    o["last_error"] = st->last_error;
    o["last_ship"] =
        st->last_ship_unix_us ? bj::value(format_rfc3339_us(st->last_ship_unix_us)) : nullptr;
    o["config_current"] = st->config_current;
    doc["shipping"] = std::move(o);
  }
  // Server-wide, for what object storage bills: requests.
  const auto t = backup_->totals();
  const double hours =
      std::max(1.0 / 60, std::chrono::duration<double>(t.uptime).count() / 3600.0);
  bj::object server;
  server["objects_written"] = t.objects_written;
  server["bytes_uploaded"] = t.bytes_uploaded;
  server["objects_per_hour"] = std::round(static_cast<double>(t.objects_written) / hours);
  server["uptime_s"] = std::chrono::duration_cast<std::chrono::seconds>(t.uptime).count();
  doc["server"] = std::move(server);
  return json(req, http::status::ok, bj::serialize(doc));
}

Response AdminRouter::get_config(const Request& req, const std::string& name) {
  auto config = namespaces_.config(name);
  if (!config) return fail(req, config.error());
  return json(req, http::status::ok, engine::to_json(*config));
}

Response AdminRouter::set_config(const Request& req, const std::string& name) {
  auto body = body_object(req);
  if (!body) return fail(req, http::status::bad_request, body.error());
  std::lock_guard lock(config_mu_);
  auto config = namespaces_.config(name);
  if (!config) return fail(req, config.error());
  if (auto r = apply_config(*body, *config); !r) {
    return fail(req, http::status::bad_request, r.error());
  }
  if (auto set = namespaces_.set_config(name, *config); !set) return fail(req, set.error());
  if (backup_ != nullptr) backup_->config_changed(name);
  return json(req, http::status::ok, engine::to_json(*config));
}

Response AdminRouter::stats(const Request& req, const std::string& name) {
  auto db = namespaces_.get(name);
  if (!db) return fail(req, db.error());
  const auto& s = (*db)->stats();
  const std::string& file = (*db)->path();
  bj::object o;
  o["id"] = name;
  o["rows_read_count"] = s.rows_read.load(std::memory_order_relaxed);
  o["rows_written_count"] = s.rows_written.load(std::memory_order_relaxed);
  o["query_count"] = s.queries.load(std::memory_order_relaxed);
  o["storage_bytes_used"] = file_size_or_zero(file) + file_size_or_zero(file + "-wal") +
                            file_size_or_zero(file + "-overlay");
  // Where this database stands in replication (a quire extension of sqld's stats).
  bj::object r;
  if (replicas_) {
    r["role"] = "replica";
    r["primary"] = replicas_->primary_url();
    if (auto st = replicas_->status(name)) {
      const auto& p = st->puller;
      r["log_id"] = p.log_id;
      r["applied_frame"] = p.applied_frame;
      r["primary_frame"] = p.primary_frame;
      r["caught_up"] = p.caught_up;
      r["transactions_applied"] = p.transactions_applied;
      r["snapshots"] = p.snapshots;
      r["errors"] = p.errors;
      r["last_error"] = p.last_error;
      r["overlay_versions"] = st->overlay_versions;
      r["folds"] = st->folds;
    }
  } else if (log::ReplicationLog* log = (*db)->replication_log()) {
    r["role"] = "primary";
    r["log_id"] = log::format_log_id(log->log_id());
    r["last_frame"] = log->last_frame();
    r["first_available_frame"] = log->first_available_frame();
  } else {
    r["role"] = "none";
  }
  o["replication"] = std::move(r);
  return json(req, http::status::ok, bj::serialize(o));
}

Response AdminRouter::checkpoint(const Request& req, const std::string& name) {
  auto db = namespaces_.get(name);
  if (!db) return fail(req, db.error());
  if (auto r = (*db)->checkpoint(SQLITE_CHECKPOINT_TRUNCATE); !r) {
    spdlog::error("admin API: checkpoint of '{}' failed: {}", name, r.error().message);
    return fail(req, http::status::internal_server_error,
                "The checkpoint failed: " + r.error().message);
  }
  return ok(req);
}

}  // namespace quire::server
