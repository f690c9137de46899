#include "server/router.h"

#include <spdlog/spdlog.h>

#include <boost/json.hpp>
#include <charconv>

#include "auth/bearer.h"
#include "auth/jwt.h"
#include "common/base64.h"
#include "common/text.h"
#include "protocol/hrana/codec.h"
#include "engine/executor.h"
#include "log/log.h"
#include "protocol/legacy.h"
#include "replication/primary_replicas.h"
#include "server/replica_forwarding.h"
#include "server/replication_router.h"

namespace quire::server {

namespace {

constexpr const char* kJsonType = "application/json";
constexpr const char* kProtobufType = "application/x-protobuf";

Response make(const Request& req, http::status status, const char* content_type, std::string body) {
  Response res(status, req.version());
  res.set(http::field::server, "quire/" QUIRE_VERSION);
  res.set(http::field::content_type, content_type);
  res.set(http::field::access_control_allow_origin, "*");
  res.keep_alive(req.keep_alive());
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

// A stream error is a Hrana error with an HTTP status: most are the client's fault (400);
// running out of streams is a load condition the client may retry (429).
http::status status_of(const hrana::Error& e) {
  return e.code == "STREAMS_EXHAUSTED" ? http::status::too_many_requests
                                       : http::status::bad_request;
}

}  // namespace

Router::Router(const Config& config, engine::NamespaceStore& namespaces,
               hrana::StreamRegistry& streams, replication::PrimaryReplicas* replicas)
    : config_(config),
      namespaces_(namespaces),
      streams_(streams),
      replication_(std::make_unique<ReplicationRouter>(config, namespaces, *this)),
      replicas_(replicas) {}

Router::~Router() = default;

Expected<std::string, std::string> Router::namespace_of(const Request& req) const {
  if (auto it = req.find("x-namespace-bin"); it != req.end()) {
    auto bytes = base64::decode(trim_ows(it->value()));
    if (!bytes) return unexpected(std::string("The x-namespace-bin header is not valid base64"));
    return std::string(bytes->begin(), bytes->end());
  }
  return namespace_of_host(req);
}

std::string Router::namespace_of_host(const Request& req) const {
  if (auto it = req.find("x-namespace"); it != req.end()) return std::string(trim_ows(it->value()));
  if (!config_.namespace_domain.empty()) {
    std::string_view host = req[http::field::host];
    if (auto colon = host.rfind(':');
        colon != std::string_view::npos && host.find(']') == std::string_view::npos) {
      host = host.substr(0, colon);
    }
    const std::string suffix = "." + config_.namespace_domain;
    if (host.size() > suffix.size() && iequals(host.substr(host.size() - suffix.size()), suffix)) {
      std::string_view label = host.substr(0, host.size() - suffix.size());
      if (label.find('.') == std::string_view::npos) return std::string(label);
    }
  }
  return std::string("default");
}

std::shared_ptr<const auth::KeySet> Router::keys_for(const engine::NamespaceConfig& config) {
  if (!config.jwt_key) return config_.auth_keys;
  std::lock_guard lock(keys_mu_);
  auto& cached = namespace_keys_[*config.jwt_key];
  if (!cached) {
    auto parsed = auth::KeySet::parse(*config.jwt_key);
    // A namespace key that does not parse lets no token in (never falls back to "no auth").
    cached =
        std::make_shared<const auth::KeySet>(parsed ? std::move(parsed.value()) : auth::KeySet());
  }
  return cached;
}

std::shared_ptr<const sqlite::Connection::Access::AttachResolver> Router::attach_resolver(
    std::optional<auth::Authorization> authz) {
  // Another namespace may be attached, read-only, when it allows it (its allow_attach) and the
  // token has the ATTACH right on it (roa/rwa); without authentication the first suffices.
  return std::make_shared<const sqlite::Connection::Access::AttachResolver>(
      [this,
       authz = std::move(authz)](std::string_view name) -> Expected<std::string, std::string> {
        const std::string ns(name);
        if (!engine::NamespaceStore::valid_name(ns))
          return unexpected("'" + ns.substr(0, 80) + "' is not a namespace name");
        if (authz && !authz->can_attach(ns)) {
          return unexpected("the token gives no ATTACH right on namespace '" + ns + "'");
        }
        auto config = namespaces_.cached_config(ns);
        if (!config) return unexpected("namespace '" + ns + "' does not exist");
        if (!(*config)->allow_attach)
          return unexpected("namespace '" + ns +
                            "' does not allow ATTACH (its allow_attach is off)");
        std::string uri = "file:";
        for (char c : namespaces_.database_path(ns)) {
          if (c == '?' || c == '#' || c == '%') {
            static constexpr char kHex[] = "0123456789ABCDEF";
            uri += '%';
            uri += kHex[(static_cast<unsigned char>(c) >> 4) & 0xF];
            uri += kHex[static_cast<unsigned char>(c) & 0xF];
          } else {
            uri += c;
          }
        }
        return uri + "?mode=ro";
      });
}

Expected<sqlite::Connection::Access, hrana::Error> Router::authorize(
    const std::string& ns, std::optional<std::string_view> jwt) {
  auto config = namespaces_.cached_config(ns);
  if (!config) {
    hrana::Error missing{config.error().message, "NAMESPACE_DOESNT_EXIST", {}};
    if (!config_.auth_keys) return unexpected(std::move(missing));
    // Only a token valid for the global keys, with rights on that name, may learn that a
    // namespace does not exist; anyone else is refused as on a namespace that exists.
    if (!jwt || jwt->empty()) {
      return unexpected(
          hrana::Error{"Authentication failed: no token (send Authorization: Bearer <jwt>)",
                       "AUTH_HEADER_NOT_FOUND",
                       {}});
    }
    auto verified = auth::verify_jwt(*jwt, *config_.auth_keys, std::chrono::system_clock::now());
    if (!verified) {
      return unexpected(hrana::Error{"Authentication failed: " + verified.error().client_message(),
                                     std::string(verified.error().code()),
                                     {}});
    }
    if (!verified->authorization.can_read(ns)) {
      return unexpected(hrana::Error{
          "Forbidden: the token gives no access to namespace '" + ns + "'", "AUTH_FORBIDDEN", {}});
    }
    return unexpected(std::move(missing));
  }
  sqlite::Connection::Access access;
  access.read_only = (*config)->block_writes;
  if (access.read_only) {
    access.read_only_why =
        "the namespace's writes are blocked" +
        ((*config)->block_reason ? ": " + *(*config)->block_reason : std::string());
  }
  auto keys = keys_for(**config);
  auto blocked = [&]() -> std::optional<hrana::Error> {
    if (!(*config)->block_reads) return std::nullopt;
    return hrana::Error{
        "The namespace is blocked" +
            ((*config)->block_reason ? ": " + *(*config)->block_reason : std::string()),
        "BLOCKED",
        {}};
  };
  if (!keys) {  // no authentication configured: full access, unless the namespace is blocked
    if (auto b = blocked()) return unexpected(std::move(*b));
    access.attach = attach_resolver(std::nullopt);
    return access;
  }
  if (!jwt || jwt->empty()) {
    return unexpected(
        hrana::Error{"Authentication failed: no token (send Authorization: Bearer <jwt>)",
                     "AUTH_HEADER_NOT_FOUND",
                     {}});
  }
  auto verified = auth::verify_jwt(*jwt, *keys, std::chrono::system_clock::now());
  if (!verified) {
    return unexpected(hrana::Error{"Authentication failed: " + verified.error().client_message(),
                                   std::string(verified.error().code()),
                                   {}});
  }
  const auto& authz = verified->authorization;
  if (!authz.can_read(ns)) {
    return unexpected(hrana::Error{
        "Forbidden: the token gives no access to namespace '" + ns + "'", "AUTH_FORBIDDEN", {}});
  }
  if (auto b = blocked()) return unexpected(std::move(*b));
  if (!access.read_only && !authz.can_write(ns)) {
    access.read_only = true;
    access.read_only_why = "the token only allows reading";
  }
  access.attach = attach_resolver(authz);
  return access;
}

Expected<Router::Target, Response> Router::target_for(const Request& req) {
  auto name = namespace_of(req);
  if (!name) {
    return unexpected(error(http::status::bad_request, name.error(), "NAMESPACE_INVALID",
                            req.version(), req.keep_alive()));
  }
  // Authenticate before looking the namespace up, so that a client without rights cannot
  // learn which namespaces exist (a bad token on a missing namespace is a 401 like any other).
  std::optional<std::string_view> jwt;
  if (auto it = req.find(http::field::authorization); it != req.end()) {
    auto token = auth::parse_authorization_header(it->value());
    if (token) {
      jwt = *token;
    } else if (config_.auth_keys) {
      return unexpected(error(http::status::unauthorized,
                              "Authentication failed: " + token.error().client_message(),
                              std::string(token.error().code()), req.version(), req.keep_alive()));
    }  // without keys any header is accepted, as sqld does (a namespace key then sees no token)
  }
  auto access = authorize(*name, jwt);
  if (!access) {
    const auto status = access.error().code == "AUTH_FORBIDDEN" || access.error().code == "BLOCKED"
                            ? http::status::forbidden
                        : access.error().code == "NAMESPACE_DOESNT_EXIST"
                            ? http::status::not_found
                            : http::status::unauthorized;
    return unexpected(error(status, access.error().message, access.error().code, req.version(),
                            req.keep_alive()));
  }
  auto db = database_for(req);
  if (!db) return unexpected(std::move(db.error()));
  return Target{std::move(*name), std::move(db.value()), *access};
}

Expected<std::shared_ptr<engine::Database>, Response> Router::database_for(const Request& req) {
  auto name = namespace_of(req);
  if (!name)
    return unexpected(error(http::status::bad_request, name.error(), "NAMESPACE_INVALID",
                            req.version(), req.keep_alive()));
  auto db = namespaces_.get(*name);
  if (!db) {
    using K = engine::NamespaceError::Kind;
    const auto& e = db.error();
    const auto status = e.kind == K::kNotFound      ? http::status::not_found
                        : e.kind == K::kInvalidName ? http::status::bad_request
                                                    : http::status::internal_server_error;
    const char* code = e.kind == K::kNotFound      ? "NAMESPACE_DOESNT_EXIST"
                       : e.kind == K::kInvalidName ? "NAMESPACE_INVALID"
                                                   : "INTERNAL";
    return unexpected(error(status, e.message, code, req.version(), req.keep_alive()));
  }
  return std::move(db.value());
}

Response Router::error(http::status status, std::string message, std::string code, unsigned version,
                       bool keep_alive) {
  Request req;
  req.version(version);
  req.keep_alive(keep_alive);
  return make(req, status, kJsonType,
              hrana::json::encode_error(hrana::Error{std::move(message), std::move(code), {}}));
}

Response Router::text(const Request& req, http::status status, std::string body) {
  return make(req, status, "text/plain; charset=utf-8", std::move(body));
}

Response Router::hrana_error(const Request& req, Encoding enc, http::status status,
                             const hrana::Error& e) {
  if (enc == Encoding::kProtobuf) {
    return make(req, status, kProtobufType, hrana::protobuf::encode_error(e));
  }
  return make(req, status, kJsonType, hrana::json::encode_error(e));
}

Router::Routed Router::handle(const Request& req, const std::string& client) {
  const std::string_view target = req.target();
  const std::string_view path = target.substr(0, target.find('?'));
  const auto method = req.method();

  if (ReplicationRouter::serves(path)) return replication_->handle(req, path, client);
  if (method == http::verb::options) {
    Response res = make(req, http::status::no_content, "text/plain", {});
    res.set(http::field::access_control_allow_methods, "GET, POST, OPTIONS");
    res.set(http::field::access_control_allow_headers, "*");
    res.set(http::field::access_control_max_age, "86400");
    return res;
  }
  if (method == http::verb::post) {
    if (path == "/v2/pipeline") return pipeline(req, hrana::Version::kV2, Encoding::kJson, client);
    if (path == "/v3/pipeline") return pipeline(req, hrana::Version::kV3, Encoding::kJson, client);
    if (path == "/v3-protobuf/pipeline") {
      return pipeline(req, hrana::Version::kV3, Encoding::kProtobuf, client);
    }
    if (path == "/v3/cursor") return cursor(req, Encoding::kJson, client);
    if (path == "/v3-protobuf/cursor") return cursor(req, Encoding::kProtobuf, client);
    if (path == "/") return Deferred([this, &req] { return legacy(req); });
  } else if (method == http::verb::get || method == http::verb::head) {
    if (path == "/health") return text(req, http::status::ok, {});
    if (path == "/version") return text(req, http::status::ok, "quire " QUIRE_VERSION);
    if (path == "/v2")
      return text(req, http::status::ok, "Hello, this is HTTP API v2 (Hrana over HTTP)");
    if (path == "/v3" || path == "/v3-protobuf") {
      return text(req, http::status::ok, "Hello, this is HTTP API v3 (Hrana over HTTP)");
    }
  }
  static const char* const kKnown[] = {"/v2/pipeline",
                                       "/v3/pipeline",
                                       "/v3-protobuf/pipeline",
                                       "/v3/cursor",
                                       "/v3-protobuf/cursor",
                                       "/",
                                       "/health",
                                       "/version",
                                       "/v2",
                                       "/v3",
                                       "/v3-protobuf"};
  for (const char* known : kKnown) {
    if (path == known) {
      Response res =
          make(req, http::status::method_not_allowed, kJsonType,
               hrana::json::encode_error(hrana::Error{"Method " + std::string(req.method_string()) +
                                                          " is not allowed on " + std::string(path),
                                                      "HTTP_METHOD_NOT_ALLOWED",
                                                      {}}));
      res.set(http::field::allow, std::string(path).find("pipeline") != std::string::npos ||
                                          std::string(path).find("cursor") != std::string::npos ||
                                          path == "/"
                                      ? "POST"
                                      : "GET");
      return res;
    }
  }
  return make(req, http::status::not_found, kJsonType,
              hrana::json::encode_error(hrana::Error{
                  "No route for " + std::string(req.method_string()) + " " + std::string(path),
                  "HTTP_NOT_FOUND",
                  {}}));
}

Router::Routed Router::pipeline(const Request& req, hrana::Version version, Encoding enc,
                                const std::string& client) {
  const std::size_t items = config_.limits.max_decoded_items();
  auto decoded = enc == Encoding::kJson
                     ? hrana::json::decode_pipeline_request(req.body(), items)
                     : hrana::protobuf::decode_pipeline_request(req.body(), items);
  if (!decoded) return text(req, http::status::bad_request, decoded.error().message);
  auto body = std::make_shared<hrana::PipelineRequest>(std::move(decoded.value()));
  if (body->requests.size() > config_.limits.max_requests_per_pipeline) {
    return text(req, http::status::bad_request,
                "Too many requests in one pipeline (the limit is " +
                    std::to_string(config_.limits.max_requests_per_pipeline) + ")");
  }
  for (const auto& r : body->requests) {
    if (auto* b = std::get_if<hrana::BatchReq>(&r);
        b && b->batch.steps.size() > config_.limits.max_batch_steps) {
      return text(req, http::status::bad_request,
                  "Too many steps in one batch (the limit is " +
                      std::to_string(config_.limits.max_batch_steps) + ")");
    }
    if (auto v = hrana::validate(r, version); !v) {
      return text(req, http::status::bad_request, v.error().message);
    }
  }

  auto target = target_for(req);
  if (!target) return std::move(target.error());
  if (replicas_) {
    const bool ours = body->baton && streams_.issued(*body->baton);
    if ((body->baton && !ours) || !runs_on_replica(body->requests, *target->db)) {
      return Deferred([this, &req, ns = target->ns, ours] { return forward(req, ns, ours); });
    }
  }
  const std::shared_ptr<engine::Database>* db = &target->db;
  Entry entry;
  if (!body->baton && !body->requests.empty() &&
      std::holds_alternative<hrana::CloseReq>(body->requests.back())) {
    entry = streams_.ephemeral(*db, client);
  } else {
    auto checkout = streams_.check_out(body->baton, *db, client);
    if (auto* pe = std::get_if<hrana::ProtocolError>(&checkout)) {
      return text(req, http::status::bad_request, pe->message);
    }
    if (auto* e = std::get_if<hrana::Error>(&checkout)) {
      return hrana_error(req, enc, status_of(*e), *e);
    }
    entry = std::get<Entry>(std::move(checkout));
    if (&entry->stream.database() != db->get()) {
      streams_.drop(entry);
      return text(req, http::status::bad_request,
                  "The baton belongs to a stream of another namespace");
    }
  }
  entry->stream.set_access(target->access);

  bool blocking = false;
  for (const auto& r : body->requests) {
    if (entry->stream.may_block(r, entry->sqls)) {
      blocking = true;
      break;
    }
  }
  if (!blocking) return run_pipeline(req, *body, entry, enc);
  if (grouped_write(*body, *entry)) return pipeline_grouped(req, body, entry, enc);
  return Deferred([this, &req, body, entry, enc] { return run_pipeline(req, *body, entry, enc); });
}

bool Router::grouped_write(const hrana::PipelineRequest& body,
                           hrana::StreamRegistry::Entry& entry) {
  // [execute] or [execute, close]: what @libsql/client's execute() sends.
  const auto& r = body.requests;
  if (r.empty() || r.size() > 2) return false;
  if (r.size() == 2 && !std::holds_alternative<hrana::CloseReq>(r[1])) return false;
  auto* exec = std::get_if<hrana::ExecuteReq>(&r[0]);
  return exec && entry.stream.groupable(exec->stmt, entry.sqls);
}

Router::LaneWrite Router::pipeline_grouped(const Request& req,
                                           std::shared_ptr<hrana::PipelineRequest> body,
                                           const Entry& entry, Encoding enc) {
  // What the task leaves for `finish`: the lane reports the task's end only after the task ran
  // (or never ran), on its own thread, and the session then calls `finish` on its I/O thread.
  struct Outcome {
    hrana::PipelineResponse out;
    std::optional<std::string> protocol_error;
  };
  auto outcome = std::make_shared<Outcome>();
  LaneWrite write;
  write.lane = &entry->stream.database().write_lane();
  write.task = [body, entry, outcome, carried = entry->stream.carried(),
                max_bytes = config_.limits.max_response_bytes](sqlite::Connection& conn) {
    // May run twice (see WriteLane): start from scratch each time, the stream included.
    outcome->out.results.clear();
    outcome->protocol_error.reset();
    entry->stream.restore(carried);
    engine::ResponseBudget budget{max_bytes};
    for (const auto& r : body->requests) {
      auto result = entry->stream.run_on(conn, r, entry->sqls, budget);
      if (!result) {
        outcome->protocol_error = result.error().message;
        return;
      }
      outcome->out.results.push_back(std::move(result.value()));
    }
  };
  write.finish = [this, &req, body, entry, outcome,
                  enc](Expected<void, engine::WriteLane::Failure> done) -> Response {
    auto& out = outcome->out;
    if (!done) {
      // The group never committed: the write did not happen.
      for (auto& result : out.results) {
        if (std::holds_alternative<hrana::StreamResponse>(result) &&
            std::holds_alternative<hrana::ExecuteResp>(std::get<hrana::StreamResponse>(result))) {
          result = hrana::Error{done.error().message, done.error().code, {}};
        }
      }
      if (out.results.empty()) {
        // The task never ran (refused, or its group failed first): the execute failed, and a
        // close after it still closes the stream, as after an execute that fails on its own,
        // so that no stream is left open for a client that will never use it again.
        engine::ResponseBudget budget{config_.limits.max_response_bytes};
        for (const auto& r : body->requests) {
          if (std::holds_alternative<hrana::CloseReq>(r)) {
            if (auto closed = entry->stream.run(r, entry->sqls, budget)) {
              out.results.push_back(std::move(closed.value()));
              continue;
            }
          }
          out.results.emplace_back(hrana::Error{done.error().message, done.error().code, {}});
        }
      }
    }
    if (outcome->protocol_error) {
      streams_.drop(entry);
      return text(req, http::status::bad_request, *outcome->protocol_error);
    }
    return finish_pipeline(req, out, entry, enc);
  };
  return write;
}

Response Router::run_pipeline(const Request& req, hrana::PipelineRequest& body, const Entry& entry,
                              Encoding enc) {
  hrana::PipelineResponse out;
  out.results.reserve(body.requests.size());
  engine::ResponseBudget budget{config_.limits.max_response_bytes};
  try {
    for (const auto& r : body.requests) {
      auto result = entry->stream.run(r, entry->sqls, budget);
      if (!result) {
        // sqld's rule: a protocol error ends the stream (rolling back its transaction).
        streams_.drop(entry);
        return text(req, http::status::bad_request, result.error().message);
      }
      out.results.push_back(std::move(result.value()));
    }
  } catch (...) {
    streams_.drop(entry);
    throw;
  }
  return finish_pipeline(req, out, entry, enc);
}

Response Router::finish_pipeline(const Request& req, hrana::PipelineResponse& out,
                                 const Entry& entry, Encoding enc) {
  if (entry->stream.closed()) {
    streams_.drop(entry);
  } else {
    out.baton = streams_.check_in(entry);
  }
  Response res = enc == Encoding::kProtobuf
                     ? make(req, http::status::ok, kProtobufType,
                            hrana::protobuf::encode_pipeline_response(out))
                     : make(req, http::status::ok, kJsonType,
                            hrana::json::encode_pipeline_response(out));
  stamp_frame(res, entry->stream.database());
  return res;
}

Router::Routed Router::cursor(const Request& req, Encoding enc, const std::string& client) {
  const std::size_t items = config_.limits.max_decoded_items();
  auto decoded = enc == Encoding::kJson
                     ? hrana::json::decode_cursor_request(req.body(), items)
                     : hrana::protobuf::decode_cursor_request(req.body(), items);
  if (!decoded) return text(req, http::status::bad_request, decoded.error().message);
  auto body = std::make_shared<hrana::CursorRequest>(std::move(decoded.value()));
  if (body->batch.steps.size() > config_.limits.max_batch_steps) {
    return text(req, http::status::bad_request, "Too many steps in one batch");
  }
  if (auto v = hrana::validate(body->batch, hrana::Version::kV3); !v) {
    return text(req, http::status::bad_request, v.error().message);
  }
  auto target = target_for(req);
  if (!target) return std::move(target.error());
  if (replicas_) {
    const bool ours = body->baton && streams_.issued(*body->baton);
    if ((body->baton && !ours) || !runs_on_replica(body->batch, *target->db)) {
      return Deferred([this, &req, ns = target->ns, ours] { return forward(req, ns, ours); });
    }
  }
  const std::shared_ptr<engine::Database>* db = &target->db;
  auto checkout = streams_.check_out(body->baton, *db, client);
  if (auto* pe = std::get_if<hrana::ProtocolError>(&checkout)) {
    return text(req, http::status::bad_request, pe->message);
  }
  if (auto* e = std::get_if<hrana::Error>(&checkout))
    return hrana_error(req, enc, status_of(*e), *e);
  auto entry = std::get<Entry>(std::move(checkout));
  if (&entry->stream.database() != db->get()) {
    streams_.drop(entry);
    return text(req, http::status::bad_request,
                "The baton belongs to a stream of another namespace");
  }
  entry->stream.set_access(target->access);
  if (entry->stream.may_block(body->batch, entry->sqls)) {
    return Deferred([this, &req, body, entry, enc] { return run_cursor(req, *body, entry, enc); });
  }
  return run_cursor(req, *body, entry, enc);
}

Response Router::run_cursor(const Request& req, const hrana::CursorRequest& body,
                            const Entry& entry, Encoding enc) {
  // The whole cursor is produced before the response is sent; the response budget bounds it.
  std::string entries;
  engine::ResponseBudget budget{config_.limits.max_response_bytes};
  auto append = [&](hrana::CursorEntry&& e) {
    if (enc == Encoding::kJson) {
      hrana::json::append_cursor_entry(e, entries);
    } else {
      hrana::protobuf::append_cursor_entry(e, entries);
    }
  };
  Expected<void, hrana::ProtocolError> ran;
  try {
    ran = entry->stream.run_cursor(body.batch, entry->sqls, budget, append);
  } catch (...) {
    streams_.drop(entry);
    throw;
  }
  if (!ran) {
    streams_.drop(entry);
    return text(req, http::status::bad_request, ran.error().message);
  }
  hrana::CursorResponseHead head;
  head.baton = streams_.check_in(entry);
  std::string out;
  if (enc == Encoding::kJson) {
    hrana::json::append_cursor_head(head, out);
  } else {
    hrana::protobuf::append_cursor_head(head, out);
  }
  out += entries;
  Response res =
      make(req, http::status::ok,
           enc == Encoding::kJson ? "text/plain; charset=utf-8" : "application/octet-stream",
           std::move(out));
  stamp_frame(res, entry->stream.database());
  return res;
}

Response Router::legacy(const Request& req) {
  auto target = target_for(req);
  if (!target) return std::move(target.error());
  // The legacy API's statements run as one transaction: on a replica, at the primary.
  if (replicas_) return forward(req, target->ns, false);
  auto r = protocol::run_legacy_query(*target->db, target->access, req.body(), config_.limits);
  Response res = make(req, static_cast<http::status>(r.status), kJsonType, std::move(r.body));
  stamp_frame(res, *target->db);
  return res;
}

void Router::stamp_frame(Response& res, engine::Database& db) {
  if (log::ReplicationLog* log = db.replication_log()) {
    res.set("x-quire-frame", std::to_string(log->last_frame()));
  }
}

Response Router::forward(const Request& req, const std::string& ns, bool drop_baton) {
  replication::HttpForwarder::Request out = req;
  if (drop_baton) {
    // A stream of this replica (never inside a transaction: BEGIN goes to the primary) now
    // writes: the primary continues it as a new stream of its own. Only JSON bodies can be
    // rewritten here.
    boost::system::error_code ec;
    auto parsed = boost::json::parse(req.body(), ec);
    if (ec || !parsed.is_object()) {
      return error(http::status::bad_request,
                   "This read replica cannot forward a write on a stream it started; begin a new "
                   "stream (no baton) for writes",
                   "REPLICA_STREAM_WRITE", req.version(), req.keep_alive());
    }
    parsed.as_object()["baton"] = nullptr;
    out.body() = boost::json::serialize(parsed);
  }
  for (auto field : {http::field::connection, http::field::keep_alive, http::field::upgrade,
                     http::field::te, http::field::transfer_encoding,
                     http::field::proxy_authorization}) {
    out.erase(field);
  }
  // The namespace as this replica resolved it (the Host, say, means nothing to the primary).
  out.set("x-namespace", ns);
  out.set("x-namespace-bin", base64::encode(ns));
  auto answer = replicas_->forwarder().forward(std::move(out));
  if (!answer) {
    spdlog::warn("forwarding to the primary failed: {}", answer.error());
    return error(http::status::bad_gateway,
                 "This read replica could not reach its primary " + replicas_->primary_url() +
                     ": " + answer.error(),
                 "PRIMARY_UNAVAILABLE", req.version(), req.keep_alive());
  }
  await_primary_frame(*replicas_, ns, *answer);
  Response res(answer->result(), req.version());
  for (const auto& field : *answer) {
    switch (field.name()) {
      case http::field::connection:
      case http::field::keep_alive:
      case http::field::content_length:
      case http::field::transfer_encoding:
        break;
      default:
        res.insert(field.name_string(), field.value());
    }
  }
  res.body() = std::move(answer->body());
  res.keep_alive(req.keep_alive());
  res.prepare_payload();
  return res;
}

}  // namespace quire::server
