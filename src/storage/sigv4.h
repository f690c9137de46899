// AWS Signature Version 4 for S3 requests, written from AWS's published description: a canonical
// request, a string to sign, a signing key derived by HMAC-SHA256 chaining, and the
// Authorization header. Pure functions (no clock, no I/O) so tests can check known answers.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace quire::storage::sigv4 {

// Lowercase hex of SHA-256(data); of "" it is e3b0c442...b855.
std::string sha256_hex(std::string_view data);
// Raw HMAC-SHA256(key, data), 32 bytes.
std::string hmac_sha256(std::string_view key, std::string_view data);
std::string to_hex(std::string_view bytes);
// Base64 of MD5(data), for S3's Content-MD5 header.
std::string md5_base64(std::string_view data);

// Percent-encodes everything but A-Z a-z 0-9 - . _ ~ (and '/' unless encode_slash), uppercase hex,
// as SigV4 wants for paths (encode_slash=false) and query names and values (true).
std::string uri_encode(std::string_view s, bool encode_slash);

// "20130524T000000Z" for a time point.
std::string amz_date(std::chrono::system_clock::time_point t);

struct Request {
  std::string method;         // "GET"
  std::string canonical_uri;  // the path exactly as sent, already encoded: "/bucket/a%20b"
  std::vector<std::pair<std::string, std::string>> query;    // raw (unencoded) names and values
  std::vector<std::pair<std::string, std::string>> headers;  // every header to sign, incl. host,
                                                             // x-amz-date, x-amz-content-sha256
  std::string payload_hash;  // hex SHA-256 of the body, or "UNSIGNED-PAYLOAD"
};

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
};

struct Signature {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signed_headers;  // "host;range;x-amz-content-sha256;x-amz-date"
  std::string signature;       // lowercase hex
  std::string authorization;   // the Authorization header's value
};

// Signs `request` made at `amz_date` (which must also be the x-amz-date header's value).
Signature sign(const Request& request, const Credentials& credentials, std::string_view region,
               std::string_view service, std::string_view amz_date);

// The canonical query string (sorted, encoded, "a=1&b=") for a request URL's query too, so what
// is signed and what is sent cannot differ.
std::string canonical_query(const std::vector<std::pair<std::string, std::string>>& query);

}  // namespace quire::storage::sigv4
