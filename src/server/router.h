// Maps an HTTP request to its handler: Hrana pipelines and cursors, the legacy API, probes.
//
// Thread model: handle() is called concurrently from every I/O thread; Router's own state is
// immutable after construction, and what it shares (the stream registry, the database) is
// thread-safe.
#pragma once

#include <boost/beast/http.hpp>

#include <functional>
#include <memory>
#include <string>
#include <variant>

#include "engine/database.h"
#include "engine/namespace_store.h"
#include "protocol/hrana/stream_registry.h"
#include "server/config.h"

namespace quire::server {

namespace http = boost::beast::http;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

class Router {
 public:
  Router(const Config& config, engine::NamespaceStore& namespaces, hrana::StreamRegistry& streams);

  // Work that may wait for a database's write lock. It must run on the blocking pool, never on
  // an I/O thread; `req` must outlive it.
  using Deferred = std::function<Response()>;
  using Routed = std::variant<Response, Deferred>;

  // Answers `req` now, or returns the work to run on the blocking pool. `client` is the peer's
  // address, for per-client limits.
  Routed handle(const Request& req, const std::string& client);

  // The namespace a request addresses: the `x-namespace-bin` header (base64 of the name), else
  // `x-namespace`, else the first label of the Host when the host is under --namespace-domain,
  // else `default`. An error message for a header that cannot be a namespace.
  Expected<std::string, std::string> namespace_of(const Request& req) const;

  // The database a request addresses, or the response for a bad or unknown namespace (400/404;
  // never an implicit create).
  Expected<std::shared_ptr<engine::Database>, Response> database_for(const Request& req);

  // A response for a request that could not be read (too large, malformed).
  static Response error(http::status status, std::string message, std::string code,
                        unsigned version, bool keep_alive);

 private:
  enum class Encoding { kJson, kProtobuf };
  using Entry = std::shared_ptr<hrana::StreamRegistry::Entry>;
  Routed pipeline(const Request& req, hrana::Version version, Encoding enc,
                  const std::string& client);
  Response run_pipeline(const Request& req, hrana::PipelineRequest& body, const Entry& entry,
                        Encoding enc);
  // The same for a pipeline that is one autocommit write: it runs in the database's write lane
  // and is acknowledged when its group commits.
  Response run_pipeline_grouped(const Request& req, hrana::PipelineRequest& body,
                                const Entry& entry, Encoding enc);
  bool grouped_write(const hrana::PipelineRequest& body, hrana::StreamRegistry::Entry& entry);
  Response finish_pipeline(const Request& req, hrana::PipelineResponse& out, const Entry& entry,
                           Encoding enc);
  Routed cursor(const Request& req, Encoding enc, const std::string& client);
  Response run_cursor(const Request& req, const hrana::CursorRequest& body, const Entry& entry,
                      Encoding enc);
  Response legacy(const Request& req);
  Response hrana_error(const Request& req, Encoding enc, http::status status,
                       const hrana::Error& e);
  Response text(const Request& req, http::status status, std::string body);

  const Config& config_;
  engine::NamespaceStore& namespaces_;
  hrana::StreamRegistry& streams_;
};

}  // namespace quire::server
