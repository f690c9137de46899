// The admin API as the `quire db` commands see it: JSON requests to /v1/namespaces/...,
// answers parsed as JSON, and failures sorted into "could not talk to the server" and "the
// server said no" (whose {"error": "..."} message is what the user needs to read).
//
// Thread model: stateless apart from its settings; one call at a time per object.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cli/http_client.h"
#include "common/expected.h"

namespace quire::cli {

struct AdminError {
  // 0: no HTTP answer (refused, timed out, bad response); else the HTTP status.
  unsigned status = 0;
  std::string message;
};

struct AdminReply {
  std::string body;         // exactly as the server sent it
  boost::json::value json;  // null when the body is empty
};

class AdminClient {
 public:
  // `auth_key` empty: no Authorization header.
  AdminClient(HttpEndpoint endpoint, std::string auth_key, HttpOptions options = {});

  // `segments` are appended to the endpoint's base path, each percent-encoded, e.g.
  // {"v1", "namespaces", name, "config"}. A status of 400 or more, or a body that is not
  // JSON, is an AdminError.
  Expected<AdminReply, AdminError> call(std::string_view method,
                                        const std::vector<std::string>& segments,
                                        const std::optional<boost::json::object>& body = {}) const;

  const HttpEndpoint& endpoint() const { return endpoint_; }

 private:
  HttpEndpoint endpoint_;
  std::string auth_key_;
  HttpOptions options_;
};

// The message to show for an HTTP error answer: the "error" member of a JSON object body,
// else the body text itself (trimmed, at most 500 bytes), else the status alone.
std::string error_message_from(unsigned status, std::string_view body);

}  // namespace quire::cli
