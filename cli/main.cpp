// The `quire` command: argument parsing, then calls into the libraries.
#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <sqlite3.h>

#include <csignal>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <thread>

#include <boost/asio/ip/address.hpp>

#include "auth/key_set.h"
#include "cli/backup_cmd.h"
#include "cli/db_cmd.h"
#include "cli/log_cmd.h"
#include "cli/replica_cmd.h"
#include "cli/replicate_cmd.h"
#include "cli/token_cmd.h"
#include "cli/units.h"
#include "backup/encryption.h"
#include "server/server.h"

namespace {

// Parses "HOST:PORT", "[v6]:PORT" or ":PORT".
bool parse_listen(const std::string& s, std::string& host, std::uint16_t& port) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos) return false;
  host = s.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) host = "127.0.0.1";
  try {
    std::size_t used = 0;
    int p = std::stoi(s.substr(colon + 1), &used);
    if (used != s.size() - colon - 1 || p < 0 || p > 65535) return false;
    port = static_cast<std::uint16_t>(p);
  } catch (...) {
    return false;
  }
  return true;
}

// Parses sizes such as "16MiB", "10MB", "512k", "1048576".
bool parse_size(const std::string& s, std::size_t& out) {
  std::size_t used = 0;
  double n = 0;
  try {
    n = std::stod(s, &used);
  } catch (...) {
    return false;
  }
  std::string unit = s.substr(used);
  for (auto& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  double mult = 1;
  if (unit.empty() || unit == "b") mult = 1;
  else if (unit == "k" || unit == "kb" || unit == "kib") mult = 1024;
  else if (unit == "m" || unit == "mb" || unit == "mib") mult = 1024.0 * 1024;
  else if (unit == "g" || unit == "gb" || unit == "gib") mult = 1024.0 * 1024 * 1024;
  else return false;
  if (n < 0) return false;
  out = static_cast<std::size_t>(n * mult);
  return true;
}

int serve(quire::server::Config config) {
  // Block the stop signals before any thread starts, so only the waiter below receives them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  quire::server::Server server(config);
  if (auto started = server.start(); !started) {
    spdlog::critical("{}", started.error());
    return 1;
  }
  std::thread signals([&server, set] {
    int sig = 0;
    sigwait(&set, &sig);
    spdlog::info("received {}, shutting down: in-flight requests finish, open transactions roll "
                 "back", sig == SIGINT ? "SIGINT" : "SIGTERM");
    server.stop();
  });

  const std::string shown_host = config.listen_host.find(':') != std::string::npos
                                     ? "[" + config.listen_host + "]"
                                     : config.listen_host;
  spdlog::info("quire {} serving http://{}:{} with data in {}", QUIRE_VERSION, shown_host,
               server.port(), config.data_dir);
  std::printf("listening on http://%s:%u\n", shown_host.c_str(), server.port());
  if (server.admin_port() != 0) {
    const std::string& h = config.admin_listen_host;
    const std::string shown = h.find(':') != std::string::npos ? "[" + h + "]" : h;
    spdlog::info("admin API on http://{}:{}", shown, server.admin_port());
    std::printf("admin listening on http://%s:%u\n", shown.c_str(), server.admin_port());
  }
  std::fflush(stdout);
  server.run();
  // If run() ended without a signal, wake the waiter so it can be joined.
  pthread_kill(signals.native_handle(), SIGTERM);
  signals.join();
  return 0;
}

}  // namespace

// 127.0.0.0/8, ::1 and localhost: addresses no other machine can reach.
bool is_loopback(const std::string& host) {
  if (host == "localhost" || host == "::1" || host == "[::1]") return true;
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(host, ec);
  return !ec && address.is_loopback();
}

int main(int argc, char** argv) {
  // Before SQLite initialises: no up-front page-cache reservation per connection (Debian's build
  // reserves about 87 KB each); pages are allocated as they are used.
  sqlite3_config(SQLITE_CONFIG_PAGECACHE, nullptr, 0, 0);
  CLI::App app{"quire: a production SQLite server that speaks libSQL's protocols", "quire"};
  app.set_version_flag("--version", std::string("quire ") + QUIRE_VERSION);
  app.require_subcommand(1);
  app.footer(
      "Quick start: `quire serve` serves ./data on http://127.0.0.1:8080; point @libsql/client at\n"
      "it with url 'http://127.0.0.1:8080' (or ws://). `quire serve --help` lists every option.\n"
      "`quire token --help`: keys and access tokens; `quire db --help`: create, list, fork and\n"
      "delete databases on a running server through its admin API.");

  quire::server::Config config;
  std::string listen = "127.0.0.1:8080";
  std::string admin_listen;
  std::string synchronous = "normal";
  std::string log_level = "info";
  std::string max_body = "16MiB", max_response = "16MiB";
  double stream_idle_timeout_s = 10;
  double transaction_timeout_s = 5;
  unsigned idle_connection_timeout_s = 60;
  unsigned request_read_timeout_s = 30;

  auto* serve_cmd = app.add_subcommand("serve", "Serve SQLite databases over HTTP and WebSocket (Hrana v1-v3 in JSON and protobuf, sqld's legacy API)");
  serve_cmd->add_option("--data,--db-path", config.data_dir,
                        "Data directory; the default database is DIR/dbs/default/data")
      ->capture_default_str();
  serve_cmd->add_option("--listen,--http-listen-addr", listen, "Address to serve HTTP on, HOST:PORT "
                        "(port 0 picks a free one)")
      ->capture_default_str();
  serve_cmd->add_option("--admin-listen,--admin-listen-addr", admin_listen,
                        "Serve the admin API (create, delete, fork, configure namespaces) on "
                        "HOST:PORT, a listener of its own (docs/admin-api.md)")
      ->envname("SQLD_ADMIN_LISTEN_ADDR");
  serve_cmd->add_option("--admin-auth-key", config.admin_auth_key,
                        "Key every admin request must carry as `Authorization: Bearer KEY` (or "
                        "Basic KEY); without one the admin API must listen on a loopback address")
      ->envname("LIBSQL_ADMIN_AUTH_KEY");
  std::string auth_jwt_key_file;
  serve_cmd->add_option("--auth-jwt-key-file", auth_jwt_key_file,
                        "Ed25519 public key(s) that verify client JWTs (PEM, or the raw key in "
                        "URL-safe base64); also SQLD_AUTH_JWT_KEY_FILE, or the key itself in "
                        "SQLD_AUTH_JWT_KEY. Without a key every client has full access, and the "
                        "server refuses to listen beyond loopback unless --insecure");
  serve_cmd->add_flag("--insecure", config.insecure,
                      "Allow setups that are unsafe on a network, such as an admin API without "
                      "--admin-auth-key on a non-loopback address");
  serve_cmd->add_option("--threads", config.threads,
                        "I/O threads (0 = one per core)")
      ->capture_default_str();
  serve_cmd->add_option("--synchronous", synchronous,
                        "SQLite synchronous mode: normal (WAL default: durable across process "
                        "crashes) or full (fsync on every commit: durable across power loss)")
      ->check(CLI::IsMember({"normal", "full"}, CLI::ignore_case))
      ->capture_default_str();
  serve_cmd->add_option("--busy-timeout", config.database.open.busy_timeout_ms,
                        "Milliseconds SQLite waits on a file lock held by another process "
                        "(writers inside quire queue for the write lock instead)")
      ->capture_default_str();
  serve_cmd->add_option("--namespace-domain", config.namespace_domain,
                        "Route requests for Host NS.DOMAIN to namespace NS (headers x-namespace "
                        "and x-namespace-bin always route)");
  serve_cmd->add_option("--max-open-databases", config.max_open_databases,
                        "Databases kept open at once; idle ones close, least recently used first")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  serve_cmd->add_option("--transaction-timeout", transaction_timeout_s,
                        "Seconds a transaction may keep the write lock between requests while "
                        "other writers wait; then it is rolled back (TRANSACTION_TIMEOUT)")
      ->capture_default_str();
  serve_cmd->add_option("--cache-size", config.database.open.cache_size_kib,
                        "Page cache per connection, KiB")
      ->capture_default_str();
  bool no_replication_log = false;
  serve_cmd->add_flag("--no-replication-log", no_replication_log,
                      "Write no replication log (no replicas, no backups; for measuring its cost)");
  serve_cmd->add_option("--primary-url,--primary-grpc-url", config.primary_url,
                        "Run as a read replica of the quire (or sqld) primary at http://HOST:PORT: "
                        "its namespaces are copied into DIR/replica and followed as they change; "
                        "reads run here, writes and transactions are forwarded to the primary, "
                        "and a client reads its own writes (docs/replica-mode.md)");
  serve_cmd->add_option("--primary-auth-token", config.primary_auth_token,
                        "A JWT the replica presents to the primary's replication API (clients' "
                        "own tokens travel with the requests forwarded for them)")
      ->envname("QUIRE_PRIMARY_AUTH_TOKEN");
  serve_cmd->add_option("--backup-url", config.backup.url,
                        "Back up every namespace continuously to file:///DIR, a path, or "
                        "s3://BUCKET[/PREFIX] (S3 endpoint, region and keys from AWS_ENDPOINT_URL, "
                        "AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY): every commit "
                        "reaches the store within --backup-interval, any moment of the retained "
                        "history can be restored or forked (docs/backup.md)")
      ->envname("QUIRE_BACKUP_URL");
  double backup_interval_s = 1.0;
  serve_cmd->add_option("--backup-interval", backup_interval_s,
                        "Seconds between a commit and its upload: the commits of one interval go "
                        "up as one object (plus the manifest), so longer means fewer requests")
      ->capture_default_str();
  serve_cmd->add_flag("--backup-sync", config.backup.sync,
                      "Acknowledge a write only once it is in the object store (no second of "
                      "loss, at the cost of an upload's latency per commit group)");
  std::string backup_retention = "30d";
  serve_cmd->add_option("--backup-retention", backup_retention,
                        "Point-in-time history to keep in the store, e.g. 30d, 12h, 90m (0: "
                        "keep everything)")
      ->capture_default_str();
  std::string backup_key_file;
  serve_cmd->add_option("--backup-encryption-key-file", backup_key_file,
                        "Encrypt every backup object with AES-256-GCM under this key (32 raw bytes "
                        "or 64 hex digits; e.g. `openssl rand -hex 32 > key`); restores need it");
  std::string backup_snapshot_interval = "24h";
  serve_cmd->add_option("--backup-snapshot-interval", backup_snapshot_interval,
                        "Upload a fresh snapshot of a database this long after its last one (if "
                        "it changed), or once its batches since outgrow it; restores replay less "
                        "and retention can drop what is older")
      ->capture_default_str();
  serve_cmd->add_option("--checkpoint-threshold", config.database.checkpoint_threshold_frames,
                        "WAL frames after which the server checkpoints (PASSIVE)")
      ->capture_default_str();
  serve_cmd->add_option("--max-body-size", max_body, "Largest request body (e.g. 16MiB)")
      ->capture_default_str();
  serve_cmd->add_option("--max-response-size", max_response,
                        "Largest result one request may produce (e.g. 16MiB)")
      ->capture_default_str();
  serve_cmd->add_option("--max-requests-per-pipeline", config.limits.max_requests_per_pipeline,
                        "Requests in one Hrana pipeline")
      ->capture_default_str();
  serve_cmd->add_option("--max-batch-steps", config.limits.max_batch_steps,
                        "Steps in one batch (and statements in one legacy request)")
      ->capture_default_str();
  serve_cmd->add_option("--max-stored-sql", config.limits.max_stored_sql,
                        "SQL texts one stream may store (store_sql)")
      ->capture_default_str();
  serve_cmd->add_option("--stream-idle-timeout", stream_idle_timeout_s,
                        "Seconds an HTTP stream (baton) may sit idle before it is closed and its "
                        "transaction rolled back")
      ->capture_default_str();
  serve_cmd->add_option("--max-streams", config.limits.max_streams, "Open HTTP streams in total")
      ->capture_default_str();
  serve_cmd->add_option("--max-streams-per-client", config.limits.max_streams_per_client,
                        "Open HTTP streams per client address")
      ->capture_default_str();
  serve_cmd->add_option("--idle-connection-timeout", idle_connection_timeout_s,
                        "Seconds a keep-alive connection may wait for its next request")
      ->capture_default_str();
  serve_cmd->add_option("--request-read-timeout", request_read_timeout_s,
                        "Seconds a client may take to send one request (headers and body)")
      ->capture_default_str();
  serve_cmd->add_option("--log-level", log_level, "trace, debug, info, warn, error, critical, off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}))
      ->capture_default_str();

  const auto token_cmd = quire::cli::add_token_command(app);
  const auto db_cmd = quire::cli::add_db_command(app);
  const auto log_cmd = quire::cli::add_log_command(app);
  const auto replica_cmd = quire::cli::add_replica_command(app);
  const auto backup_cmd = quire::cli::add_backup_command(app);
  const auto restore_cmd = quire::cli::add_restore_command(app);
  const auto replicate_cmd = quire::cli::add_replicate_command(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; any other parse error is a usage error: exit 2.
    return app.exit(e) == 0 ? 0 : quire::cli::kExitUsage;
  }

  auto logger = spdlog::stderr_color_mt("quire");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(log_level));

  if (token_cmd.app->parsed()) return token_cmd.run();
  if (db_cmd.app->parsed()) return db_cmd.run();
  if (log_cmd.app->parsed()) return log_cmd.run();
  if (replica_cmd.app->parsed()) return replica_cmd.run();
  if (backup_cmd.app->parsed()) return backup_cmd.run();
  if (restore_cmd.app->parsed()) return restore_cmd.run();
  if (replicate_cmd.app->parsed()) return replicate_cmd.run();
  if (serve_cmd->parsed()) {
    if (!parse_listen(listen, config.listen_host, config.listen_port)) {
      std::cerr << "quire: --listen must be HOST:PORT, got '" << listen << "'\n";
      return 2;
    }
    if (!admin_listen.empty() &&
        !parse_listen(admin_listen, config.admin_listen_host, config.admin_listen_port)) {
      std::cerr << "quire: --admin-listen must be HOST:PORT, got '" << admin_listen << "'\n";
      return 2;
    }
    if (!parse_size(max_body, config.limits.max_body_bytes) ||
        !parse_size(max_response, config.limits.max_response_bytes)) {
      std::cerr << "quire: sizes look like 16MiB, 512KiB or 1048576\n";
      return 2;
    }
    if (stream_idle_timeout_s <= 0) {
      std::cerr << "quire: --stream-idle-timeout must be positive\n";
      return 2;
    }
    if (transaction_timeout_s <= 0) {
      std::cerr << "quire: --transaction-timeout must be positive\n";
      return 2;
    }
    config.database.transaction_timeout =
        std::chrono::milliseconds(static_cast<long long>(transaction_timeout_s * 1000));
    config.limits.stream_idle_timeout =
        std::chrono::milliseconds(static_cast<long long>(stream_idle_timeout_s * 1000));
    config.idle_connection_timeout = std::chrono::seconds(idle_connection_timeout_s);
    config.request_read_timeout = std::chrono::seconds(request_read_timeout_s);
    config.database.open.synchronous_full = synchronous == "full" || synchronous == "FULL";
    config.replication_log = !no_replication_log;
    if (!(backup_interval_s >= 0) || backup_interval_s > 3600) {
      std::cerr << "quire: --backup-interval must be between 0 and 3600 seconds\n";
      return 2;
    }
    config.backup.interval =
        std::chrono::milliseconds(static_cast<long long>(backup_interval_s * 1000));
    if (auto r = quire::cli::parse_duration_setting(backup_retention); !r) {
      std::cerr << "quire: --backup-retention: expected a duration such as 30d, 12h, 90m or 0, "
                   "got '"
                << backup_retention << "'\n";
      return 2;
    } else {
      config.backup.retention = *r;
    }
    if (auto r = quire::cli::parse_duration_setting(backup_snapshot_interval); !r) {
      std::cerr << "quire: --backup-snapshot-interval: expected a duration such as 24h, 30m or "
                   "90s, got '"
                << backup_snapshot_interval << "'\n";
      return 2;
    } else {
      config.backup.ship.snapshot_interval_us = r->count() * 1'000'000;
    }
    if (!backup_key_file.empty()) {
      auto key = quire::backup::load_encryption_key(backup_key_file);
      if (!key) {
        std::cerr << "quire: --backup-encryption-key-file: " << key.error().message << "\n";
        return 2;
      }
      config.backup.encryption_key = std::move(key.value());
    }
    if (auth_jwt_key_file.empty()) {
      if (const char* env = std::getenv("SQLD_AUTH_JWT_KEY_FILE"); env && *env) auth_jwt_key_file = env;
    }
    if (!auth_jwt_key_file.empty()) {
      auto keys = quire::auth::KeySet::load_file(auth_jwt_key_file);
      if (!keys) {
        std::cerr << "quire: --auth-jwt-key-file: " << keys.error() << "\n";
        return 2;
      }
      config.auth_keys = std::make_shared<const quire::auth::KeySet>(std::move(keys.value()));
    } else if (const char* env = std::getenv("SQLD_AUTH_JWT_KEY"); env && *env) {
      auto keys = quire::auth::KeySet::parse(env);
      if (!keys) {
        std::cerr << "quire: SQLD_AUTH_JWT_KEY: " << keys.error() << "\n";
        return 2;
      }
      config.auth_keys = std::make_shared<const quire::auth::KeySet>(std::move(keys.value()));
    }
    if (!config.auth_keys && !config.insecure && !is_loopback(config.listen_host)) {
      std::cerr << "quire: refusing to serve " << config.listen_host
                << " without authentication: give --auth-jwt-key-file (see `quire token keygen`), "
                   "or --insecure to serve every client with full access\n";
      return 2;
    }
    return serve(std::move(config));
  }
  return 0;
}
