// The quire server process: listeners, I/O threads, the databases it serves, clean shutdown.
//
// Thread model: run() is called once, from the main thread, and returns after stop(). stop() may
// be called from any thread (the signal handler path posts it). Each I/O thread runs its own
// io_context; a connection lives on one of them for its whole life, so a session needs no locks.
#pragma once

#include <boost/asio.hpp>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "common/expected.h"
#include "engine/database.h"
#include "protocol/hrana/stream_registry.h"
#include "server/config.h"
#include "server/router.h"

namespace quire::server {

class AdminRouter;
class HttpHandler;
class HttpSession;

// The sessions of one I/O thread, so shutdown can reach them. Touched only on that thread.
struct ThreadSessions {
  std::vector<std::weak_ptr<HttpSession>> sessions;
};

class Server {
 public:
  explicit Server(Config config);
  ~Server();

  // Opens the data directory and the default database, and binds the listeners (the admin API's
  // too when configured). The error is a message for the operator.
  Expected<void, std::string> start();

  // The bound port (useful with port 0).
  std::uint16_t port() const { return port_; }

  // The backup service; null without --backup-url.
  BackupService* backup() { return backup_.get(); }

  // The admin API's bound port; 0 without an admin listener.
  std::uint16_t admin_port() const { return admin_port_; }

  // Serves until stop(); then lets in-flight requests finish, closes streams (rolling back open
  // transactions) and closes the databases cleanly.
  void run();

  // Asks run() to return. Thread-safe, idempotent.
  void stop();

 private:
  // Accepts connections on `acceptor` until stop(), each served by `handler`.
  boost::asio::awaitable<void> accept_loop(boost::asio::ip::tcp::acceptor& acceptor,
                                           HttpHandler& handler);
  boost::asio::awaitable<void> sweep_loop();
  void shutdown_sessions();

  Config config_;
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts_;
  // Runs work that may wait for a write lock, so no I/O thread ever does.
  boost::asio::thread_pool blocking_{kBlockingThreads};
  static constexpr std::size_t kBlockingThreads = 32;
  std::vector<std::unique_ptr<ThreadSessions>> sessions_;
  using WorkGuard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;
  std::vector<WorkGuard> guards_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
  std::unique_ptr<boost::asio::steady_timer> sweep_timer_;
  std::shared_ptr<replication::PrimaryReplicas> replicas_;  // a read replica's; null on a primary
  std::unique_ptr<BackupService> backup_;  // null without --backup-url
  std::unique_ptr<engine::NamespaceStore> namespaces_;
  std::unique_ptr<hrana::StreamRegistry> streams_;
  std::unique_ptr<Router> router_;
  std::unique_ptr<HttpHandler> main_handler_;  // serves router_
  std::unique_ptr<boost::asio::ip::tcp::acceptor> admin_acceptor_;  // null: no admin API
  std::unique_ptr<AdminRouter> admin_router_;
  std::uint16_t port_ = 0;
  std::uint16_t admin_port_ = 0;
  std::atomic<bool> stopping_{false};
  std::size_t next_context_ = 0;
};

}  // namespace quire::server
