#include "server/server.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <filesystem>

#include "common/thread_name.h"
#include "replication/primary_replicas.h"
#include "server/admin_router.h"
#include "server/http_session.h"

namespace quire::server {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

// A listening acceptor on host:port; `what` names the listener in the error message.
Expected<std::unique_ptr<tcp::acceptor>, std::string> listen_on(asio::io_context& ctx,
                                                                const asio::ip::address& address,
                                                                const std::string& host,
                                                                std::uint16_t port,
                                                                const std::string& what) {
  boost::system::error_code ec;
  auto acceptor = std::make_unique<tcp::acceptor>(ctx);
  tcp::endpoint endpoint(address, port);
  acceptor->open(endpoint.protocol(), ec);
  if (!ec) acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor->bind(endpoint, ec);
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return unexpected("cannot listen" + what + " on " + host + ":" + std::to_string(port) + ": " +
                      ec.message());
  }
  return acceptor;
}
}  // namespace

Server::Server(Config config) : config_(std::move(config)) {
  unsigned n = config_.threads;
  // Nothing that waits runs on an I/O thread (writes go to the blocking pool), so one thread
  // per core serves the most requests with the fewest context switches.
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < n; ++i) {
    contexts_.push_back(std::make_unique<asio::io_context>(1));
    sessions_.push_back(std::make_unique<ThreadSessions>());
    guards_.emplace_back(contexts_.back()->get_executor());
  }
  streams_ = std::make_unique<hrana::StreamRegistry>(config_.limits);
}

Server::~Server() {
  if (backup_) backup_->stop(std::chrono::milliseconds(0));
  if (namespaces_) namespaces_->close_all();
}

Expected<void, std::string> Server::start() {
  namespace fs = std::filesystem;
  engine::NamespaceStore::Options options;
  options.root = (fs::path(config_.data_dir) / "dbs").string();
  options.database = config_.database;
  options.max_open = config_.max_open_databases;
  options.replication_log = config_.replication_log;
  if (!config_.primary_url.empty()) {
    replication::ReplicaServeOptions ro;
    ro.primary_url = config_.primary_url;
    ro.auth_token = config_.primary_auth_token;
    auto replicas = replication::PrimaryReplicas::create(std::move(ro));
    if (!replicas) return unexpected("--primary-url: " + replicas.error());
    replicas_ = std::move(replicas.value());
    // Apart from a primary's namespaces (dbs/), so that one data directory never mixes the two.
    options.root = (fs::path(config_.data_dir) / "replica").string();
    options.replication_log = false;
    options.replica = replicas_;
  }
  if (!config_.backup.url.empty()) {
    if (replicas_) {
      return unexpected(std::string("--backup-url is for a primary: a read replica keeps no log of "
                                    "its own to back up (back up the primary)"));
    }
    if (!config_.replication_log) {
      return unexpected(std::string("--backup-url needs the replication log: drop --no-replication-log"));
    }
    auto service = BackupService::create(config_.backup);
    if (!service) return unexpected("--backup-url: " + service.error());
    backup_ = std::move(service.value());
    options.observe_commits = [svc = backup_.get()](const std::string& ns) {
      return svc->observer(ns);
    };
  }
  // A data directory that does not exist yet, with a backup configured: a new machine (or a
  // lost disk). What the store holds comes back before anything is served.
  const bool new_data_dir = !fs::exists(options.root);
  auto namespaces = engine::NamespaceStore::open(std::move(options));
  if (!namespaces) return unexpected("cannot open the data directory: " + namespaces.error().message);
  namespaces_ = std::move(namespaces.value());
  if (backup_ && new_data_dir) {
    auto restored = backup_->restore_all(*namespaces_);
    if (!restored) {
      return unexpected(restored.error() +
                        " (the data directory is new: serving it empty would back up empty "
                        "databases ahead of the real ones; fix the store, or remove --backup-url)");
    }
    if (!restored->empty()) {
      spdlog::info("the data directory was new: restored {} namespace(s) from {}",
                   restored->size(), config_.backup.url);
    }
  }
  // The default namespace opens at once, so a broken database is reported at start. A replica
  // whose primary is unreachable still starts (it serves what it has, and catches up later).
  if (auto db = namespaces_->get("default"); !db) {
    if (!replicas_) return unexpected("cannot open the default database: " + db.error().message);
    spdlog::warn("the default namespace is not available yet: {}", db.error().message);
  }
  if (backup_) {
    backup_->start(*namespaces_);
    spdlog::info("backing up every namespace to {} (every {} ms{}{})", config_.backup.url,
                 config_.backup.interval.count(),
                 config_.backup.sync ? ", writes acknowledged once in the store" : "",
                 config_.backup.retention.count() > 0
                     ? ", keeping " + std::to_string(config_.backup.retention.count() / 86400) +
                           " days of history"
                     : "");
  }
  router_ = std::make_unique<Router>(config_, *namespaces_, *streams_, replicas_.get());
  main_handler_ = std::make_unique<RouterHandler>(*router_);

  boost::system::error_code ec;
  auto address = asio::ip::make_address(config_.listen_host, ec);
  if (ec) return unexpected("invalid listen address '" + config_.listen_host + "': " + ec.message());
  auto acceptor = listen_on(*contexts_[0], address, config_.listen_host, config_.listen_port, "");
  if (!acceptor) return unexpected(acceptor.error());
  acceptor_ = std::move(acceptor.value());
  port_ = acceptor_->local_endpoint().port();

  if (!config_.admin_listen_host.empty()) {
    auto admin_address = asio::ip::make_address(config_.admin_listen_host, ec);
    if (ec) {
      return unexpected("invalid admin listen address '" + config_.admin_listen_host +
                        "': " + ec.message());
    }
    // Without a key, whoever reaches the admin API may delete every database.
    if (config_.admin_auth_key.empty() && !admin_address.is_loopback()) {
      if (!config_.insecure) {
        return unexpected("refusing to serve the admin API on " + config_.admin_listen_host +
                          ", which is not a loopback address, without --admin-auth-key; set a "
                          "key, listen on 127.0.0.1, or pass --insecure");
      }
      spdlog::warn("the admin API on {} accepts requests from anyone who can reach it "
                   "(--insecure, no --admin-auth-key)", config_.admin_listen_host);
    }
    auto admin = listen_on(*contexts_[0], admin_address, config_.admin_listen_host,
                           config_.admin_listen_port, " (admin API)");
    if (!admin) return unexpected(admin.error());
    admin_acceptor_ = std::move(admin.value());
    admin_port_ = admin_acceptor_->local_endpoint().port();
    admin_router_ =
        std::make_unique<AdminRouter>(config_, *namespaces_, replicas_.get(), backup_.get());
  }
  return {};
}

asio::awaitable<void> Server::accept_loop(tcp::acceptor& acceptor, HttpHandler& handler) {
  while (!stopping_) {
    // Spread connections over the I/O threads; each stays on the thread it was given.
    const std::size_t i = next_context_++ % contexts_.size();
    auto [ec, socket] = co_await acceptor.async_accept(*contexts_[i], kUseTuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || stopping_) break;
      spdlog::warn("accept failed: {}", ec.message());
      // Out of file descriptors and the like: back off instead of spinning.
      asio::steady_timer pause(co_await asio::this_coro::executor, std::chrono::milliseconds(50));
      co_await pause.async_wait(kUseTuple);
      continue;
    }
    auto session = std::make_shared<HttpSession>(std::move(socket), config_, handler,
                                                 blocking_.get_executor());
    ThreadSessions* list = sessions_[i].get();
    asio::io_context* ctx = contexts_[i].get();
    asio::post(*ctx, [session, list, ctx] {
      auto& v = list->sessions;
      std::erase_if(v, [](const auto& w) { return w.expired(); });
      v.push_back(session);
      asio::co_spawn(*ctx, session->run(), asio::detached);
    });
  }
}

asio::awaitable<void> Server::sweep_loop() {
  sweep_timer_ = std::make_unique<asio::steady_timer>(co_await asio::this_coro::executor);
  while (!stopping_) {
    sweep_timer_->expires_after(std::chrono::milliseconds(250));
    auto [ec] = co_await sweep_timer_->async_wait(kUseTuple);
    if (ec || stopping_) break;
    if (std::size_t n = streams_->expire_idle()) {
      spdlog::info("closed {} idle stream(s); their transactions were rolled back", n);
    }
  }
}

void Server::run() {
  asio::co_spawn(*contexts_[0], accept_loop(*acceptor_, *main_handler_), asio::detached);
  if (admin_acceptor_) {
    asio::co_spawn(*contexts_[0], accept_loop(*admin_acceptor_, *admin_router_), asio::detached);
  }
  asio::co_spawn(*contexts_[0], sweep_loop(), asio::detached);
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < contexts_.size(); ++i) {
    threads.emplace_back([ctx = contexts_[i].get(), i] {
      name_this_thread("quire-io-" + std::to_string(i));
      ctx->run();
    });
  }
  contexts_[0]->run();
  for (auto& t : threads) t.join();
  blocking_.join();
  // Every session has ended: drop the streams (rolling back what they left open), then close
  // the database, which checkpoints the WAL into the main file.
  streams_.reset();
  admin_router_.reset();
  main_handler_.reset();
  router_.reset();
  // What was committed before the stop goes up before the databases close.
  if (backup_) backup_->stop(std::chrono::seconds(10));
  if (namespaces_) namespaces_->close_all();
  spdlog::info("stopped");
}

void Server::stop() {
  if (stopping_.exchange(true)) return;
  // Under --backup-sync, commits waiting for the store must not hold up the shutdown forever:
  // they get an error (their outcome is unknown to the client) once the store was given a
  // last chance in run().
  if (backup_) backup_->release_waiters(std::chrono::seconds(10));
  asio::post(*contexts_[0], [this] {
    boost::system::error_code ec;
    if (acceptor_) acceptor_->close(ec);
    if (admin_acceptor_) admin_acceptor_->close(ec);
    if (sweep_timer_) sweep_timer_->cancel();
    shutdown_sessions();
    for (auto& g : guards_) g.reset();
  });
}

void Server::shutdown_sessions() {
  for (std::size_t i = 0; i < contexts_.size(); ++i) {
    ThreadSessions* list = sessions_[i].get();
    asio::post(*contexts_[i], [list] {
      for (auto& w : list->sessions) {
        if (auto s = w.lock()) s->shutdown();
      }
      list->sessions.clear();
    });
  }
}

}  // namespace quire::server
