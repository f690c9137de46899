// A small synchronous HTTP/1.1 client for the command line (`quire db` talking to the admin
// API): one request per connection, plain http only, a deadline over the whole exchange.
//
// Thread model: each call owns its own io_context and socket; call from any thread.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/expected.h"

namespace quire::cli {

// Where requests go, from a URL such as http://127.0.0.1:9090 or http://[::1]:9090/prefix.
struct HttpEndpoint {
  std::string host;         // for the resolver: no brackets around an IPv6 address
  std::string port;         // "80" when the URL names none
  std::string host_header;  // the URL's authority without userinfo, for the Host header
  std::string base_path;    // "" or "/prefix", never ending in '/'
};

// Only http:// is accepted (the admin API listens on plain HTTP, normally on loopback); a
// query, fragment or userinfo is refused rather than silently dropped.
Expected<HttpEndpoint, std::string> parse_http_url(std::string_view url);

// `segment` percent-encoded for use as one path segment (everything but ALPHA, DIGIT and
// "-._~" is encoded, so a '/' in a namespace name cannot change the route).
std::string encode_path_segment(std::string_view segment);

struct HttpRequest {
  std::string method = "GET";  // GET, POST, DELETE, ...
  std::string target;          // the path after the endpoint's base_path, starting with '/'
  std::string body;            // sent with Content-Type: application/json when non-empty
  std::vector<std::pair<std::string, std::string>> headers;
};

struct HttpResponse {
  unsigned status = 0;
  std::string body;
};

struct HttpOptions {
  std::chrono::milliseconds timeout{30'000};  // resolve, connect, send and receive
  std::size_t max_response_bytes = 64 * 1024 * 1024;
};

// The error is a sentence naming the endpoint and the cause (refused, timed out, ...).
Expected<HttpResponse, std::string> http_request(const HttpEndpoint& endpoint,
                                                 const HttpRequest& request,
                                                 const HttpOptions& options = {});

}  // namespace quire::cli
