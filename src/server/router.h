// Maps an HTTP request to its handler: Hrana pipelines and cursors, the legacy API, probes.
//
// Thread model: handle() is called concurrently from every I/O thread; Router's own state is
// immutable after construction, and what it shares (the stream registry, the database) is
// thread-safe.
#pragma once

#include <boost/beast/http.hpp>

#include <memory>
#include <string>

#include "engine/database.h"
#include "protocol/hrana/stream_registry.h"
#include "server/config.h"

namespace quire::server {

namespace http = boost::beast::http;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

class Router {
 public:
  Router(const Config& config, std::shared_ptr<engine::Database> db,
         hrana::StreamRegistry& streams);

  // `client` is the peer's address, for per-client limits.
  Response handle(const Request& req, const std::string& client);

  // A response for a request that could not be read (too large, malformed).
  static Response error(http::status status, std::string message, std::string code,
                        unsigned version, bool keep_alive);

 private:
  enum class Encoding { kJson, kProtobuf };
  Response pipeline(const Request& req, hrana::Version version, Encoding enc,
                    const std::string& client);
  Response cursor(const Request& req, Encoding enc, const std::string& client);
  Response legacy(const Request& req);
  Response hrana_error(const Request& req, Encoding enc, http::status status,
                       const hrana::Error& e);
  Response text(const Request& req, http::status status, std::string body);

  const Config& config_;
  std::shared_ptr<engine::Database> db_;
  hrana::StreamRegistry& streams_;
};

}  // namespace quire::server
