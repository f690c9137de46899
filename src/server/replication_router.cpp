// Dispatch, namespaces and tokens, `GET /info`, and the wal_log.ReplicationLog service. The
// proxy.Proxy service is in replication_router_proxy.cpp.
#include "server/replication_router.h"

#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "auth/bearer.h"
#include "common/base64.h"
#include "common/text.h"
#include "log/format.h"
#include "log/log.h"
#include "log/snapshot.h"
#include "protocol/hrana/codec.h"
#include "protocol/replication/codec.h"
#include "protocol/replication/frame.h"

namespace quire::server {

using replication::GrpcStatus;

namespace {

// A random (version 4) UUID in text form.
std::string random_uuid() {
  log::LogId bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    throw std::runtime_error("RAND_bytes failed");
  }
  bytes[6] = static_cast<std::uint8_t>((bytes[6] & 0x0F) | 0x40);
  bytes[8] = static_cast<std::uint8_t>((bytes[8] & 0x3F) | 0x80);
  return log::format_log_id(bytes);
}

// The namespace the libSQL client derives from its URL's host (and so sends as x-namespace-bin
// without being told to): the first DNS label when the host contains a dot, else "default".
// The Host header carries the same host (with a port, and brackets around an IPv6 address).
std::string client_derived_namespace(std::string_view host) {
  if (!host.empty() && host.front() == '[') return "default";  // an IPv6 literal has no dot
  if (auto colon = host.rfind(':'); colon != std::string_view::npos) host = host.substr(0, colon);
  const auto dot = host.find('.');
  if (dot == std::string_view::npos) return "default";
  return std::string(host.substr(0, dot));
}

Response grpc_error(const Request& req, const ReplicationRouter::Status& s) {
  return reply_grpc_web(req, replication::grpc_web_error(s.code, s.message));
}

ReplicationRouter::Status status(GrpcStatus code, std::string message) {
  return {code, std::move(message)};
}

// The status for a log error while serving the log.
ReplicationRouter::Status log_status(const log::LogError& e) {
  using log::LogErrc;
  switch (e.code) {
    case LogErrc::kNeedSnapshot:
      return status(GrpcStatus::kFailedPrecondition,
                    std::string(replication::kNeedSnapshotMessage));
    case LogErrc::kCorrupt:
      return status(GrpcStatus::kDataLoss, "replication log: " + e.message);
    default:
      return status(GrpcStatus::kInternal, "replication log: " + e.message);
  }
}

// libSQL's frame_no for our frame `f` (ours start at 1, libSQL's at 0).
std::uint64_t libsql_frame_no(log::Frame f) { return f - 1; }

// How long a BatchLogEntries call may wait for the next commit: x-quire-wait-ms, at most
// kMaxWaitMs. Zero when absent or not a plain decimal number (libSQL's clients never send it).
std::chrono::milliseconds requested_wait(const Request& req) {
  auto it = req.find(std::string(replication::kWaitHeader));
  if (it == req.end()) return std::chrono::milliseconds(0);
  const std::string_view v = trim_ows(it->value());
  if (v.empty() || v.size() > 9 || v.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::chrono::milliseconds(0);
  }
  return std::chrono::milliseconds(std::min(std::stoi(std::string(v)), replication::kMaxWaitMs));
}

// Holds one of `limit` long-poll places while in scope; false when all were taken.
class LongPollSlot {
 public:
  LongPollSlot(std::atomic<int>& count, int limit) : count_(count) {
    held_ = count_.fetch_add(1) < limit;
    if (!held_) count_.fetch_sub(1);
  }
  ~LongPollSlot() {
    if (held_) count_.fetch_sub(1);
  }
  LongPollSlot(const LongPollSlot&) = delete;
  LongPollSlot& operator=(const LongPollSlot&) = delete;
  explicit operator bool() const { return held_; }

 private:
  std::atomic<int>& count_;
  bool held_ = false;
};

}  // namespace

Response reply_grpc_web(const Request& req, std::string body) {
  Response res(http::status::ok, req.version());
  res.set(http::field::server, "quire/" QUIRE_VERSION);
  for (const auto& h : replication::grpc_web_response_headers()) {
    res.set(std::string(h.name), std::string(h.value));
  }
  res.keep_alive(req.keep_alive());
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

ReplicationRouter::ReplicationRouter(const Config& config, engine::NamespaceStore& namespaces,
                                     Router& router)
    : config_(config),
      namespaces_(namespaces),
      router_(router),
      session_token_(random_uuid()),
      generation_id_(random_uuid()),
      sweeper_([this] { sweep_loop(); }) {}

ReplicationRouter::~ReplicationRouter() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  sweeper_.join();
  // The Clients (and their transactions) go with clients_.
}

bool ReplicationRouter::serves(std::string_view path) {
  return path == "/info" || path.starts_with("/wal_log.ReplicationLog/") ||
         path.starts_with("/proxy.Proxy/");
}

Router::Routed ReplicationRouter::handle(const Request& req, std::string_view path,
                                         const std::string& client) {
  const auto method = req.method();
  if (path == "/info") {
    if (method != http::verb::get && method != http::verb::head) {
      return Router::error(http::status::method_not_allowed, "Method not allowed on /info",
                           "HTTP_METHOD_NOT_ALLOWED", req.version(), req.keep_alive());
    }
    return info(req);
  }
  if (method != http::verb::post) {
    auto res = Router::error(http::status::method_not_allowed, "gRPC methods are called with POST",
                             "HTTP_METHOD_NOT_ALLOWED", req.version(), req.keep_alive());
    res.set(http::field::allow, "POST");
    return res;
  }
  // Cheap, or bounded in-memory work: answered here. Disk reads and writes, and anything that
  // may wait for a lock, go to the blocking pool.
  if (path == "/wal_log.ReplicationLog/Hello") return hello(req);
  if (path == "/wal_log.ReplicationLog/BatchLogEntries") {
    return Router::Deferred([this, &req] { return batch_log_entries(req, false); });
  }
  if (path == "/wal_log.ReplicationLog/LogEntries") {
    return Router::Deferred([this, &req] { return batch_log_entries(req, true); });
  }
  if (path == "/wal_log.ReplicationLog/Snapshot") {
    return Router::Deferred([this, &req] { return snapshot(req); });
  }
  if (path == "/proxy.Proxy/Execute")
    return Router::Deferred([this, &req, client] { return execute(req, client); });
  if (path == "/proxy.Proxy/Describe") {
    return Router::Deferred([this, &req] { return describe(req); });
  }
  if (path == "/proxy.Proxy/Disconnect") return disconnect(req);
  return grpc_error(req, status(GrpcStatus::kUnimplemented,
                                "quire does not implement " + std::string(path.substr(1))));
}

// ------------------------------------------------------------------ namespaces and tokens

Expected<std::string, ReplicationRouter::Status> ReplicationRouter::resolve_namespace(
    const Request& req) const {
  auto it = req.find(std::string(replication::kNamespaceHeader));
  if (it == req.end()) return router_.namespace_of_host(req);
  auto bytes = base64::decode(trim_ows(it->value()));
  if (!bytes) {
    return unexpected(
        status(GrpcStatus::kInvalidArgument, "The x-namespace-bin header is not valid base64"));
  }
  std::string named(bytes->begin(), bytes->end());
  // The libSQL client always sends the header, made from the URL's host: "127" for 127.0.0.1,
  // "default" for localhost, "db" for db.example.com. That value says nothing the Host does not
  // say, so the request is routed as Hrana routes the same URL (x-namespace, the Host under
  // --namespace-domain, else default): a replica syncs the very database that
  // createClient({url}) on its syncUrl talks to. Any other value was chosen by someone (a client
  // that sets its namespace, a proxy) and is honoured, as on Hrana.
  if (named == client_derived_namespace(req[http::field::host])) {
    return router_.namespace_of_host(req);
  }
  return named;
}

Expected<ReplicationRouter::Target, ReplicationRouter::Status> ReplicationRouter::target_for(
    const Request& req, Service service) {
  auto ns = resolve_namespace(req);
  if (!ns) return unexpected(std::move(ns.error()));
  // The client sends its token in x-authorization ("Bearer" alone when it has none); accept
  // Authorization too, as Hrana does.
  std::optional<std::string_view> jwt;
  auto header = req.find(std::string(replication::kAuthorizationHeader));
  if (header == req.end()) header = req.find(http::field::authorization);
  if (header != req.end() && !iequals(trim_ows(header->value()), "Bearer")) {
    auto token = auth::parse_authorization_header(header->value());
    if (token) {
      jwt = *token;
    } else if (router_.authenticates()) {
      return unexpected(status(GrpcStatus::kUnauthenticated,
                               std::string(token.error().code()) +
                                   ": Authentication failed: " + token.error().client_message()));
    }
  }
  auto access = router_.authorize(*ns, jwt);
  auto missing = [&] {
    // The log service's client matches this text exactly (with FAILED_PRECONDITION) and stops
    // at once instead of retrying the handshake.
    return service == Service::kLog
               ? status(GrpcStatus::kFailedPrecondition,
                        std::string(replication::kNamespaceDoesntExistMessage))
               : status(GrpcStatus::kNotFound,
                        std::string(replication::kNamespaceDoesntExistMessage) + ": namespace '" +
                            *ns + "' does not exist");
  };
  if (!access) {
    const auto& e = access.error();
    if (e.code == "NAMESPACE_DOESNT_EXIST") return unexpected(missing());
    const auto code = e.code == "AUTH_FORBIDDEN" || e.code == "BLOCKED"
                          ? GrpcStatus::kPermissionDenied
                          : GrpcStatus::kUnauthenticated;
    return unexpected(status(code, e.code + ": " + e.message));
  }
  auto db = namespaces_.get(*ns);
  if (!db) {
    using K = engine::NamespaceError::Kind;
    if (db.error().kind == K::kNotFound) return unexpected(missing());
    if (db.error().kind == K::kInvalidName) {
      return unexpected(status(GrpcStatus::kInvalidArgument, db.error().message));
    }
    return unexpected(status(GrpcStatus::kUnavailable, db.error().message));
  }
  return Target{std::move(*ns), std::move(db.value()), *access};
}

Response ReplicationRouter::info(const Request& req) {
  // The client picks its protocol with this probe: 404 keeps it on the gRPC protocol served
  // here, a 2xx would switch it to the "v2" sync protocol quire does not serve. 401 makes the
  // client's constructor fail with "Unauthorized" at once, so a token that would be refused gets
  // that answer here rather than three failed handshakes later. The probe carries no
  // x-namespace-bin: its namespace is the URL's, as the RPCs' (see resolve_namespace).
  const std::string ns = router_.namespace_of_host(req);
  std::optional<std::string_view> jwt;
  if (auto it = req.find(http::field::authorization); it != req.end()) {
    if (auto token = auth::parse_authorization_header(it->value())) jwt = *token;
  }
  if (auto access = router_.authorize(ns, jwt);
      !access && access.error().code.starts_with("AUTH_")) {
    return Router::error(http::status::unauthorized, access.error().message, access.error().code,
                         req.version(), req.keep_alive());
  }
  return Router::error(http::status::not_found,
                       "No route for /info: quire serves embedded replicas with libSQL's "
                       "gRPC replication protocol",
                       "HTTP_NOT_FOUND", req.version(), req.keep_alive());
}

// ------------------------------------------------------------------ wal_log.ReplicationLog

Response ReplicationRouter::hello(const Request& req) {
  auto body = replication::parse_unary_grpc_web_request(req.body(), config_.limits.max_body_bytes);
  if (!body) return grpc_error(req, status(GrpcStatus::kInvalidArgument, body.error().message));
  if (auto m = replication::decode_hello_request(*body); !m) {
    return grpc_error(req, status(GrpcStatus::kInvalidArgument, m.error().message));
  }
  auto target = target_for(req, Service::kLog);
  if (!target) return grpc_error(req, target.error());
  log::ReplicationLog* log = target->db->replication_log();
  if (!log) {
    return grpc_error(req, status(GrpcStatus::kUnavailable,
                                  "namespace '" + target->ns + "' has no replication log"));
  }
  replication::HelloResponse out;
  out.generation_id = generation_id_;
  out.log_id = log::format_log_id(log->log_id());
  out.session_token = session_token_;
  // The last committed frame: every commit is in the log before it is acknowledged, so a client
  // that wrote sees its write counted here.
  if (const log::Frame last = log->last_frame(); last > 0) {
    out.current_replication_index = libsql_frame_no(last);
  }
  return reply_grpc_web(req,
                        replication::grpc_web_response(replication::encode_hello_response(out)));
}

Expected<std::pair<ReplicationRouter::Target, std::uint64_t>, ReplicationRouter::Status>
ReplicationRouter::begin_log_call(const Request& req) {
  auto body = replication::parse_unary_grpc_web_request(req.body(), config_.limits.max_body_bytes);
  if (!body) return unexpected(status(GrpcStatus::kInvalidArgument, body.error().message));
  auto offset = replication::decode_log_offset(*body);
  if (!offset) return unexpected(status(GrpcStatus::kInvalidArgument, offset.error().message));
  if (offset->wal_flavor && *offset->wal_flavor != replication::WalFlavor::kSqlite) {
    return unexpected(
        status(GrpcStatus::kInvalidArgument,
               "only the sqlite WAL flavor is served (wal_flavor must be unset or 0)"));
  }
  auto target = target_for(req, Service::kLog);
  if (!target) return unexpected(std::move(target.error()));
  // After the token check, so the answer says nothing to a client that may not read. A token
  // from before a restart (or none) sends the client back to Hello.
  if (auto it = req.find(std::string(replication::kSessionTokenHeader));
      it == req.end() || trim_ows(it->value()) != session_token_) {
    return unexpected(
        status(GrpcStatus::kFailedPrecondition, std::string(replication::kNoHelloMessage)));
  }
  if (!target->db->replication_log()) {
    return unexpected(
        status(GrpcStatus::kUnavailable, "namespace '" + target->ns + "' has no replication log"));
  }
  return std::make_pair(std::move(target.value()), offset->next_offset);
}

Response ReplicationRouter::batch_log_entries(const Request& req, bool stream) {
  auto begun = begin_log_call(req);
  if (!begun) return grpc_error(req, begun.error());
  auto& [target, next_offset] = begun.value();
  log::ReplicationLog& log = *target.db->replication_log();

  // quire's replica names the log it follows; frames of another log (this one was recreated)
  // must not reach it: NO_HELLO sends it to Hello, which sees the new log id.
  if (auto it = req.find(std::string(replication::kLogIdHeader));
      it != req.end() && trim_ows(it->value()) != log::format_log_id(log.log_id())) {
    return grpc_error(
        req, status(GrpcStatus::kFailedPrecondition, std::string(replication::kNoHelloMessage)));
  }

  // libSQL's next_offset is the frame_no after the replica's last commit; ours is one more.
  log::Frame last = log.last_frame();
  // A replica exactly at the last commit that asked to wait gets the next commit as soon as it
  // is in the log (or an empty batch at the deadline). Only exactly there: a replica ahead of
  // the log holds frames this log never had, and must see that at its next Hello.
  if (!stream && next_offset == last) {
    if (const auto wait = requested_wait(req); wait.count() > 0) {
      if (LongPollSlot slot(long_polls_, kMaxLongPolls); slot) {
        log.wait_for(last + 1, Clock::now() + wait);
        last = log.last_frame();
      }
    }
  }
  std::string frames;                 // BatchLogEntries: one Frames message
  std::vector<std::string> messages;  // LogEntries: one Frame message each
  auto reply = [&]() {
    if (stream) return reply_grpc_web(req, replication::grpc_web_response(messages));
    return reply_grpc_web(req, replication::grpc_web_response(frames));
  };
  if (next_offset >= last) return reply();  // caught up (or ahead): nothing to send, never wait
  const log::Frame from = next_offset + 1;
  if (from < log.first_available_frame()) {
    return grpc_error(req, log_status(log::LogError{log::LogErrc::kNeedSnapshot, {}, 0}));
  }
  auto reader = log.read_from(from);
  if (!reader) {
    // kInvalidArgument: the offset is inside a transaction, so the replica holds something this
    // log never sent it as a whole; a snapshot puts it back on a transaction boundary.
    if (reader.error().code == log::LogErrc::kInvalidArgument) {
      return grpc_error(req, log_status(log::LogError{log::LogErrc::kNeedSnapshot, {}, 0}));
    }
    return grpc_error(req, log_status(reader.error()));
  }
  std::size_t bytes = 0, count = 0;
  log::TransactionView t;  // in the reader's buffer: each page is copied once, into its frame
  while (bytes < kMaxBatchBytes && count < kMaxBatchFrames) {
    const log::Frame first_frame = reader->next_frame();
    auto next = reader->next_view(t);
    if (!next) return grpc_error(req, log_status(next.error()));
    if (!*next) break;
    const std::size_t n = t.page_count();
    for (std::size_t i = 0; i < n; ++i) {
      replication::FrameHeader h;
      h.frame_no = libsql_frame_no(first_frame + i);
      h.page_no = t.pgnos[i];
      h.size_after = i + 1 == n ? t.db_size : 0;
      const auto page = t.page(i);
      replication::Frame f;
      f.data = replication::make_frame_data(
          h, std::string_view(reinterpret_cast<const char*>(page.data()), page.size()));
      if (stream) {
        messages.push_back(replication::encode_frame(f));
      } else {
        replication::append_frames_element(frames, f);
      }
      bytes += replication::kFrameSize;
    }
    count += n;
  }
  return reply();
}

Response ReplicationRouter::snapshot(const Request& req) {
  auto begun = begin_log_call(req);
  if (!begun) return grpc_error(req, begun.error());
  auto& target = begun.value().first;
  log::ReplicationLog& log = *target.db->replication_log();
  if (log.last_frame() == 0) {
    return grpc_error(req,
                      status(GrpcStatus::kUnavailable, "snapshot not found: the log is empty"));
  }
  // A snapshot at frame S lets the replica go on from S+1, which must still be in the log.
  // Otherwise (none yet, or compaction moved past it) one is made now from the log itself.
  std::optional<log::SnapshotFile> file;
  for (int attempt = 0; attempt < 2 && !file; ++attempt) {
    auto info = log.latest_snapshot();
    if (!info || info->frame + 1 < log.first_available_frame()) {
      auto made = log.snapshot();
      if (!made) return grpc_error(req, log_status(made.error()));
      info = std::move(made.value());
    }
    auto opened = log::SnapshotFile::open(info->path, &log.log_id());
    if (opened) {
      file.emplace(std::move(opened.value()));
    } else if (opened.error().code != log::LogErrc::kNotFound &&
               opened.error().code != log::LogErrc::kIo) {
      return grpc_error(req, log_status(opened.error()));
    }  // else compacted away between the two calls: look again
  }
  if (!file) return grpc_error(req, status(GrpcStatus::kUnavailable, "snapshot not found"));

  // Every page once, newest page number first, all tagged with the snapshot's frame_no; the last
  // one sent (page 1) carries the database size and commits the snapshot on the replica. The
  // body is built in place, each page read straight into its frame: a snapshot is as large as the
  // database, so a copy or an allocation per page is what would bound the replica's catch-up.
  const std::uint32_t pages = file->page_count();
  const std::uint64_t frame_no = libsql_frame_no(file->info().frame);
  std::string body;
  body.reserve(std::size_t{pages} * replication::grpc_web_frame_message_size() + 64);
  for (std::uint32_t p = pages; p >= 1; --p) {
    replication::FrameHeader h;
    h.frame_no = frame_no;
    h.page_no = p;
    h.size_after = p == 1 ? pages : 0;
    const std::size_t at = replication::append_grpc_web_frame_message(body, h, {});
    auto read =
        file->read_page(p, std::span<std::byte>(reinterpret_cast<std::byte*>(body.data() + at),
                                                replication::kPageSize));
    if (!read) return grpc_error(req, log_status(read.error()));
  }
  replication::append_grpc_web_trailers(body, GrpcStatus::kOk, {});
  return reply_grpc_web(req, std::move(body));
}

}  // namespace quire::server
