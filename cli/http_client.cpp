#include "cli/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

namespace quire::cli {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// Runs the one operation just started on `ioc` to completion. The stream's expiry
// (tcp_stream::expires_at) bounds every step, so this always returns.
void run_until_done(asio::io_context& ioc) {
  ioc.restart();
  ioc.run();
}

std::string describe(const HttpEndpoint& e) { return "http://" + e.host_header; }

}  // namespace

Expected<HttpEndpoint, std::string> parse_http_url(std::string_view text) {
  auto parsed = boost::urls::parse_absolute_uri(text);
  if (!parsed) {
    return unexpected("'" + std::string(text) + "' is not a URL (expected http://HOST:PORT)");
  }
  const auto& url = *parsed;
  if (url.scheme_id() != boost::urls::scheme::http) {
    return unexpected("'" + std::string(text) +
                      "': only http:// is supported (reach a remote admin API through an SSH "
                      "tunnel or a TLS-terminating proxy on loopback)");
  }
  if (url.has_userinfo() || url.has_query() || url.has_fragment()) {
    return unexpected("'" + std::string(text) +
                      "': userinfo, a query or a fragment is not allowed in the admin URL (use "
                      "--admin-auth-key for credentials)");
  }
  HttpEndpoint e;
  if (url.host_type() == boost::urls::host_type::ipv6) {
    e.host = std::string(url.host_address());
  } else {
    e.host = std::string(url.host());
  }
  if (e.host.empty()) return unexpected("'" + std::string(text) + "' names no host");
  e.port = url.has_port() && !url.port().empty() ? std::string(url.port()) : "80";
  e.host_header = std::string(url.encoded_host_and_port());
  std::string path(url.encoded_path());
  while (!path.empty() && path.back() == '/') path.pop_back();
  e.base_path = std::move(path);
  return e;
}

std::string encode_path_segment(std::string_view segment) {
  return boost::urls::encode(segment, boost::urls::unreserved_chars);
}

Expected<HttpResponse, std::string> http_request(const HttpEndpoint& endpoint,
                                                 const HttpRequest& request,
                                                 const HttpOptions& options) {
  asio::io_context ioc;
  tcp::resolver resolver(ioc);
  beast::tcp_stream stream(ioc);
  const auto where = describe(endpoint);
  const auto deadline = std::chrono::steady_clock::now() + options.timeout;
  // Steps share one deadline: each gets whatever the earlier ones left over.
  auto arm = [&] { stream.expires_at(deadline); };

  // Resolution has no per-operation expiry in Asio; run it with the same deadline.
  boost::system::error_code ec;
  tcp::resolver::results_type endpoints;
  resolver.async_resolve(endpoint.host, endpoint.port,
                         [&](boost::system::error_code e, tcp::resolver::results_type r) {
                           ec = e;
                           endpoints = std::move(r);
                         });
  ioc.run_until(deadline);
  if (!ioc.stopped()) {
    resolver.cancel();
    run_until_done(ioc);
    return unexpected("cannot resolve " + endpoint.host + ": timed out");
  }
  if (ec) return unexpected("cannot resolve " + endpoint.host + ": " + ec.message());

  arm();
  stream.async_connect(endpoints,
                       [&](boost::system::error_code e, const tcp::endpoint&) { ec = e; });
  run_until_done(ioc);
  if (ec) {
    return unexpected("cannot connect to " + where + ": " +
                      (ec == beast::error::timeout ? std::string("timed out") : ec.message()));
  }

  http::request<http::string_body> req;
  const auto verb = http::string_to_verb(request.method);
  if (verb == http::verb::unknown) return unexpected("unknown HTTP method " + request.method);
  req.method(verb);
  req.target(endpoint.base_path + request.target);
  req.version(11);
  req.set(http::field::host, endpoint.host_header);
  req.set(http::field::user_agent, std::string("quire/") + QUIRE_VERSION);
  req.set(http::field::accept, "application/json");
  req.keep_alive(false);
  for (const auto& [name, value] : request.headers) req.set(name, value);
  if (!request.body.empty()) {
    req.set(http::field::content_type, "application/json");
    req.body() = request.body;
  }
  req.prepare_payload();

  arm();
  http::async_write(stream, req, [&](boost::system::error_code e, std::size_t) { ec = e; });
  run_until_done(ioc);
  if (ec) {
    return unexpected("cannot send the request to " + where + ": " +
                      (ec == beast::error::timeout ? std::string("timed out") : ec.message()));
  }

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(options.max_response_bytes);
  arm();
  http::async_read(stream, buffer, parser,
                   [&](boost::system::error_code e, std::size_t) { ec = e; });
  run_until_done(ioc);
  if (ec) {
    if (ec == http::error::body_limit) {
      return unexpected("the response from " + where + " is over " +
                        std::to_string(options.max_response_bytes) + " bytes");
    }
    return unexpected("no valid response from " + where + ": " +
                      (ec == beast::error::timeout ? std::string("timed out") : ec.message()));
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);

  HttpResponse out;
  auto res = parser.release();
  out.status = res.result_int();
  out.body = std::move(res.body());
  return out;
}

}  // namespace quire::cli
