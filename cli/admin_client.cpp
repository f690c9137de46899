#include "cli/admin_client.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cctype>

namespace quire::cli {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace

AdminClient::AdminClient(HttpEndpoint endpoint, std::string auth_key, HttpOptions options)
    : endpoint_(std::move(endpoint)), auth_key_(std::move(auth_key)), options_(options) {}

Expected<AdminReply, AdminError> AdminClient::call(
    std::string_view method, const std::vector<std::string>& segments,
    const std::optional<boost::json::object>& body) const {
  HttpRequest request;
  request.method = std::string(method);
  for (const auto& segment : segments) request.target += "/" + encode_path_segment(segment);
  if (body) request.body = boost::json::serialize(*body);
  if (!auth_key_.empty()) request.headers.emplace_back("Authorization", "Bearer " + auth_key_);

  auto response = http_request(endpoint_, request, options_);
  if (!response) return unexpected(AdminError{0, std::move(response.error())});
  if (response->status >= 400) {
    return unexpected(
        AdminError{response->status, error_message_from(response->status, response->body)});
  }
  AdminReply reply;
  reply.body = std::move(response->body);
  if (!trim(reply.body).empty()) {
    boost::system::error_code ec;
    reply.json = boost::json::parse(reply.body, ec);
    if (ec) {
      return unexpected(AdminError{0, "the answer from http://" + endpoint_.host_header +
                                          " is not JSON (is --admin-url the admin listener, not "
                                          "the SQL one?)"});
    }
  }
  return reply;
}

std::string error_message_from(unsigned status, std::string_view body) {
  boost::system::error_code ec;
  auto json = boost::json::parse(body, ec);
  if (!ec && json.is_object()) {
    if (const auto* error = json.as_object().if_contains("error")) {
      if (error->is_string()) return std::string(error->as_string());
      return boost::json::serialize(*error);
    }
  }
  std::string_view text = trim(body);
  if (text.empty()) return "HTTP " + std::to_string(status);
  constexpr std::size_t kMax = 500;
  if (text.size() > kMax) return std::string(text.substr(0, kMax)) + "...";
  return std::string(text);
}

}  // namespace quire::cli
