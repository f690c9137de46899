// One HTTP/1.1 connection: reads requests (bounded in size and time), hands each to its handler
// (the main Router or the admin API), writes the response, repeats while keep-alive holds.
//
// Thread model: lives on one io_context (one thread); every member runs there.
#pragma once

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>

#include <memory>
#include <string>

#include "server/config.h"
#include "server/router.h"
#include "server/ws_session.h"

namespace quire::server {

class WsSession;

// What a session serves: the main API (RouterHandler) or the admin API (AdminRouter). One
// handler is shared by every session of a listener, so its members must be thread-safe.
class HttpHandler {
 public:
  virtual ~HttpHandler() = default;

  // Answers `req` now, or returns the work to run on the blocking pool (see Router::handle).
  virtual Router::Routed handle(const Request& req, const std::string& client) = 0;

  // False: every WebSocket upgrade is refused (404) before anything else is looked at.
  virtual bool serves_websocket() const { return true; }

  // The database a WebSocket upgrade addresses, or the response refusing the upgrade.
  virtual Expected<std::shared_ptr<engine::Database>, Response> websocket_database(
      const Request& req) = 0;

  // What a WebSocket client's hello token allows on the namespace the upgrade addressed;
  // `has_database`: websocket_database() gave the upgrade one (false: the namespace was missing).
  virtual WsAuthorizer websocket_authorizer(const Request&, bool /*has_database*/) {
    return [](std::optional<std::string_view>) -> Expected<sqlite::Connection::Access, hrana::Error> {
      return sqlite::Connection::Access{};
    };
  }

  // On a read replica, where a WebSocket connection's writes and transactions go (see
  // WsReplica); empty on a primary.
  virtual WsReplica websocket_replica(const Request&) { return {}; }

  // The response for a request that could not be read or served (too large, malformed, an
  // internal error), in this API's error format.
  virtual Response error(http::status status, std::string message, std::string code,
                         unsigned version, bool keep_alive) = 0;
};

// The main API: Hrana over HTTP and WebSocket, the legacy API, probes.
class RouterHandler final : public HttpHandler {
 public:
  explicit RouterHandler(Router& router) : router_(router) {}
  Router::Routed handle(const Request& req, const std::string& client) override {
    return router_.handle(req, client);
  }
  Expected<std::shared_ptr<engine::Database>, Response> websocket_database(
      const Request& req) override {
    auto db = router_.database_for(req);
    // With authentication on, a missing namespace is not revealed at the upgrade (the client
    // has not shown its token yet): the upgrade succeeds without a database, and the hello
    // answers as on HTTP (401/403 for a bad token, "does not exist" only for a valid one).
    if (!db && db.error().result() == http::status::not_found && router_.authenticates()) {
      return std::shared_ptr<engine::Database>();
    }
    return db;
  }
  WsAuthorizer websocket_authorizer(const Request& req, bool has_database) override {
    auto ns = router_.namespace_of(req);
    std::string name = ns ? *ns : std::string("default");
    // The upgrade's own answer, not a second look: a namespace created since then still leaves
    // this connection without a database.
    const bool missing = !has_database;
    return [this, name, missing](std::optional<std::string_view> jwt)
               -> Expected<sqlite::Connection::Access, hrana::Error> {
      auto access = router_.authorize(name, jwt);
      if (access && missing) {
        return unexpected(hrana::Error{"Namespace '" + name + "' does not exist", "NAMESPACE_DOESNT_EXIST", {}});
      }
      return access;
    };
  }  WsReplica websocket_replica(const Request& req) override {
    if (!router_.replicas()) return {};
    auto ns = router_.namespace_of(req);
    return WsReplica{router_.replicas(), ns ? *ns : std::string("default")};
  }
  Response error(http::status status, std::string message, std::string code, unsigned version,
                 bool keep_alive) override {
    return Router::error(status, std::move(message), std::move(code), version, keep_alive);
  }

 private:
  Router& router_;
};

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  using BlockingExecutor = boost::asio::thread_pool::executor_type;

  HttpSession(boost::asio::ip::tcp::socket socket, const Config& config, HttpHandler& handler,
              BlockingExecutor blocking);

  boost::asio::awaitable<void> run();

  // Shutdown: an idle connection is closed now; a busy one after its current response.
  void shutdown();

 private:
  // Hands the connection over to a WebSocket session (an `Upgrade: websocket` request).
  boost::asio::awaitable<void> upgrade(Request req);
  // Runs `task` in `lane` and resumes once its group committed (or failed), with no thread
  // waiting meanwhile.
  boost::asio::awaitable<Expected<void, engine::WriteLane::Failure>> in_write_lane(
      engine::WriteLane& lane, engine::WriteLane::Task task);
  // Sends a final error response and lets the client read it before the connection closes.
  boost::asio::awaitable<void> reply_and_drain(Response& res);

 public:

 private:
  boost::beast::tcp_stream stream_;
  const Config& config_;
  HttpHandler& handler_;
  BlockingExecutor blocking_;
  std::string client_;
  std::shared_ptr<WsSession> ws_;  // set once the connection is upgraded
  bool idle_ = true;
  bool closing_ = false;
};

}  // namespace quire::server
