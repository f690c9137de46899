// S3ObjectStore: requests, retries, listing, batch delete and multipart upload over libcurl.
#include "storage/s3_object_store.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstdlib>
#include <random>
#include <thread>

#include "storage/s3_xml.h"

namespace quire::storage {

namespace {

constexpr std::size_t kMinPartSize = 5u << 20;
constexpr std::size_t kMaxDeleteBatch = 1000;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

std::string strip_quotes(std::string s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') return s.substr(1, s.size() - 2);
  return s;
}

bool transient_code(std::string_view code) {
  return code == "SlowDown" || code == "RequestTimeout" || code == "InternalError" ||
         code == "ServiceUnavailable" || code == "Throttling" || code == "ThrottlingException" ||
         code == "RequestTimeTooSkewed" || code == "OperationAborted";
}

bool auth_code(std::string_view code) {
  return code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" ||
         code == "AccessDenied" || code == "ExpiredToken" || code == "InvalidToken" ||
         code == "TokenRefreshRequired" || code == "AuthorizationHeaderMalformed" ||
         code == "InvalidSecurity";
}

// Turns an S3 <Error> code (and HTTP status, 0 when the code came inside a 200 body) into a kind.
StorageErrc classify(long status, std::string_view code) {
  if (transient_code(code) || status == 429 || status >= 500) return StorageErrc::kTransient;
  if (auth_code(code) || status == 401 || status == 403) return StorageErrc::kAuth;
  if (code == "NoSuchKey" || (status == 404 && code.empty())) return StorageErrc::kNotFound;
  return StorageErrc::kPermanent;
}

StorageError error_from_body(long status, const std::string& body, const std::string& what) {
  std::string code = xml::first_text(body, "Code").value_or("");
  std::string message = xml::first_text(body, "Message").value_or("");
  std::string text = "S3 " + what + ": HTTP " + std::to_string(status);
  if (!code.empty()) text += " " + code;
  if (!message.empty()) text += ": " + message;
  if (code == "NoSuchBucket") text += " (create the bucket first)";
  if (status == 301 || status == 307) text += " (wrong region or endpoint?)";
  return storage_error(classify(status, code), text);
}

bool curl_transient(CURLcode rc) {
  switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_AGAIN:
      return true;
    default:
      return false;
  }
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* headers = static_cast<std::map<std::string, std::string>*>(user);
  std::string_view line(data, size * n);
  if (line.starts_with("HTTP/")) {
    headers->clear();  // a new response (after 100 Continue or a retry within curl)
    return size * n;
  }
  std::size_t colon = line.find(':');
  if (colon == std::string_view::npos) return size * n;
  std::string name = lower(std::string(line.substr(0, colon)));
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' '))
    value.remove_suffix(1);
  (*headers)[name] = std::string(value);
  return size * n;
}

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::chrono::milliseconds backoff(const RetryPolicy& policy, int attempt) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  auto cap = policy.base_delay * (1LL << std::min(attempt, 20));
  if (cap > policy.max_delay) cap = policy.max_delay;
  std::uniform_int_distribution<long long> dist(0, std::max<long long>(cap.count(), 0));
  return std::chrono::milliseconds(dist(rng));  // "full jitter"
}

class S3Writer final : public MultipartWriter {
 public:
  S3Writer(S3ObjectStore& store, std::string key) : store_(store), key_(std::move(key)) {}
  ~S3Writer() override { abort(); }

  StorageResult<void> write(std::string_view bytes) override {
    if (done_) return unexpected(storage_error(StorageErrc::kPermanent, "writer is closed"));
    buffer_.append(bytes);
    std::size_t part = store_.part_size();
    if (buffer_.size() < part) return {};
    std::size_t at = 0;
    for (; buffer_.size() - at >= part; at += part) {
      auto shipped = ship(std::string_view(buffer_).substr(at, part));
      if (!shipped) {
        buffer_.erase(0, at);
        return shipped;
      }
    }
    buffer_.erase(0, at);
    return {};
  }

  StorageResult<ObjectInfo> complete() override {
    if (done_) return unexpected(storage_error(StorageErrc::kPermanent, "writer is closed"));
    if (upload_id_.empty()) {  // smaller than one part: a plain PUT
      done_ = true;
      auto put = store_.put(key_, buffer_);
      if (!put) return unexpected(put.error());
      return ObjectInfo{key_, buffer_.size(), ""};
    }
    if (!buffer_.empty()) {
      auto shipped = ship(buffer_);
      if (!shipped) return unexpected(shipped.error());
      buffer_.clear();
    }
    std::string body = "<CompleteMultipartUpload>";
    for (std::size_t i = 0; i < etags_.size(); ++i) {
      body += "<Part><PartNumber>" + std::to_string(i + 1) + "</PartNumber><ETag>&quot;" +
              xml::escape(etags_[i]) + "&quot;</ETag></Part>";
    }
    body += "</CompleteMultipartUpload>";
    S3ObjectStore::Call call{"POST",
                             store_.full_key(key_),
                             {{"uploadId", upload_id_}},
                             {{"Content-Type", "application/xml"}},
                             body,
                             "CompleteMultipartUpload " + key_};
    auto r = store_.perform(call);
    if (!r) return unexpected(std::move(r).error());
    // S3 may answer 200 and put the failure in the body.
    if (r->body.find("<Error>") != std::string::npos) {
      return unexpected(error_from_body(0, r->body, call.what));
    }
    done_ = true;
    return ObjectInfo{key_, total_, strip_quotes(xml::first_text(r->body, "ETag").value_or(""))};
  }

  void abort() override {
    if (done_) return;
    done_ = true;
    if (upload_id_.empty()) return;
    S3ObjectStore::Call call{
        "DELETE", store_.full_key(key_),         {{"uploadId", upload_id_}}, {},
        {},       "AbortMultipartUpload " + key_};
    (void)store_.perform(call);
  }

 private:
  StorageResult<void> ship(std::string_view part) {
    if (upload_id_.empty()) {
      S3ObjectStore::Call call{"POST", store_.full_key(key_),          {{"uploads", ""}}, {},
                               {},     "CreateMultipartUpload " + key_};
      auto r = store_.perform(call);
      if (!r) return unexpected(std::move(r).error());
      upload_id_ = xml::first_text(r->body, "UploadId").value_or("");
      if (upload_id_.empty()) {
        return unexpected(storage_error(StorageErrc::kCorrupt,
                                        "S3 " + call.what + ": no UploadId in the answer"));
      }
    }
    std::string number = std::to_string(etags_.size() + 1);
    S3ObjectStore::Call call{"PUT",
                             store_.full_key(key_),
                             {{"partNumber", number}, {"uploadId", upload_id_}},
                             {},
                             part,
                             "UploadPart " + number + " " + key_};
    auto r = store_.perform(call);
    if (!r) return unexpected(std::move(r).error());
    auto etag = r->headers.find("etag");
    if (etag == r->headers.end() || etag->second.empty()) {
      return unexpected(
          storage_error(StorageErrc::kCorrupt, "S3 " + call.what + ": no ETag in the answer"));
    }
    etags_.push_back(strip_quotes(etag->second));
    total_ += part.size();
    return {};
  }

  S3ObjectStore& store_;
  std::string key_;
  std::string buffer_;
  std::string upload_id_;
  std::vector<std::string> etags_;
  std::uint64_t total_ = 0;
  bool done_ = false;
};

}  // namespace

StorageResult<std::unique_ptr<S3ObjectStore>> S3ObjectStore::open(
    std::string_view url, const ObjectStoreOptions& options) {
  auto fail = [&](StorageErrc kind, const std::string& why) {
    return unexpected(storage_error(kind, "object store " + std::string(url) + ": " + why));
  };
  if (!url.starts_with("s3://")) return fail(StorageErrc::kPermanent, "not an s3:// URL");
  std::string_view rest = url.substr(5);
  std::size_t slash = rest.find('/');
  std::string bucket(rest.substr(0, slash));
  std::string prefix(slash == std::string_view::npos ? "" : rest.substr(slash + 1));
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  if (bucket.empty()) return fail(StorageErrc::kPermanent, "no bucket (s3://bucket[/prefix])");
  for (char c : bucket) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_';
    if (!ok) return fail(StorageErrc::kPermanent, "invalid bucket name '" + bucket + "'");
  }
  if (!prefix.empty()) {
    if (auto bad = validate_key(prefix)) return fail(StorageErrc::kPermanent, bad->message);
  }

  std::unique_ptr<S3ObjectStore> store(new S3ObjectStore());
  ObjectStoreOptions& o = store->options_;
  o = options;
  if (o.region.empty()) o.region = env("AWS_REGION");
  if (o.region.empty()) o.region = env("AWS_DEFAULT_REGION");
  if (o.region.empty()) o.region = "us-east-1";
  if (o.endpoint.empty()) o.endpoint = env("AWS_ENDPOINT_URL_S3");
  if (o.endpoint.empty()) o.endpoint = env("AWS_ENDPOINT_URL");
  if (o.access_key_id.empty()) {
    o.access_key_id = env("AWS_ACCESS_KEY_ID");
    o.secret_access_key = env("AWS_SECRET_ACCESS_KEY");
    o.session_token = env("AWS_SESSION_TOKEN");
  }
  if (o.access_key_id.empty() || o.secret_access_key.empty()) {
    return fail(StorageErrc::kAuth,
                "no credentials: pass an access key id and secret, or set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY");
  }
  o.part_size = std::max(o.part_size, kMinPartSize);
  o.list_page_size = std::clamp(o.list_page_size, 1, 1000);
  if (o.retry.max_attempts < 1) o.retry.max_attempts = 1;

  std::string endpoint = o.endpoint;
  if (endpoint.empty()) {
    store->scheme_ = "https";
    store->endpoint_host_ = "s3." + o.region + ".amazonaws.com";
    store->path_style_ = o.path_style.value_or(false);
  } else {
    std::size_t sep = endpoint.find("://");
    if (sep == std::string::npos) {
      return fail(StorageErrc::kPermanent,
                  "endpoint '" + endpoint + "' needs a scheme (http://host:port)");
    }
    store->scheme_ = lower(endpoint.substr(0, sep));
    if (store->scheme_ != "http" && store->scheme_ != "https") {
      return fail(StorageErrc::kPermanent, "endpoint '" + endpoint + "': only http and https");
    }
    std::string host = endpoint.substr(sep + 3);
    while (!host.empty() && host.back() == '/') host.pop_back();
    if (host.empty() || host.find('/') != std::string::npos) {
      return fail(StorageErrc::kPermanent,
                  "endpoint '" + endpoint + "' must be scheme://host[:port] without a path");
    }
    store->endpoint_host_ = host;
    store->path_style_ = o.path_style.value_or(true);
  }
  store->bucket_ = std::move(bucket);
  store->prefix_ = std::move(prefix);
  global_init();
  return store;
}

S3ObjectStore::~S3ObjectStore() {
  for (void* h : pool_) curl_easy_cleanup(static_cast<CURL*>(h));
}

std::string S3ObjectStore::describe() const {
  std::string out = "s3://" + bucket_;
  if (!prefix_.empty()) out += "/" + prefix_;
  if (!options_.endpoint.empty()) out += " at " + options_.endpoint;
  return out;
}

std::string S3ObjectStore::full_key(std::string_view key) const {
  if (prefix_.empty()) return std::string(key);
  return prefix_ + "/" + std::string(key);
}

void* S3ObjectStore::acquire_handle() {
  {
    std::lock_guard lock(pool_mu_);
    if (!pool_.empty()) {
      void* h = pool_.back();
      pool_.pop_back();
      curl_easy_reset(static_cast<CURL*>(h));
      return h;
    }
  }
  return curl_easy_init();
}

void S3ObjectStore::release_handle(void* handle) {
  std::lock_guard lock(pool_mu_);
  pool_.push_back(handle);
}

StorageResult<S3ObjectStore::Response> S3ObjectStore::attempt(const Call& call) {
  std::string host = path_style_ ? endpoint_host_ : bucket_ + "." + endpoint_host_;
  std::string path = path_style_ ? "/" + bucket_ : "";
  if (!call.object_key.empty()) {
    path += "/" + sigv4::uri_encode(call.object_key, /*encode_slash=*/false);
  } else if (!path_style_) {
    path = "/";
  }
  std::string query = sigv4::canonical_query(call.query);
  std::string url = scheme_ + "://" + host + path + (query.empty() ? "" : "?" + query);

  sigv4::Request req;
  req.method = call.method;
  req.canonical_uri = path;
  req.query = call.query;
  req.payload_hash = sigv4::sha256_hex(call.body);
  std::string date = sigv4::amz_date(std::chrono::system_clock::now());
  req.headers = call.headers;
  req.headers.emplace_back("host", host);
  req.headers.emplace_back("x-amz-date", date);
  req.headers.emplace_back("x-amz-content-sha256", req.payload_hash);
  if (!options_.session_token.empty()) {
    req.headers.emplace_back("x-amz-security-token", options_.session_token);
  }
  auto sig = sigv4::sign(req, {options_.access_key_id, options_.secret_access_key}, options_.region,
                         "s3", date);

  curl_slist* headers = nullptr;
  for (const auto& [name, value] : req.headers) {
    headers = curl_slist_append(headers, (name + ": " + value).c_str());
  }
  headers = curl_slist_append(headers, ("Authorization: " + sig.authorization).c_str());
  headers = curl_slist_append(headers, "Expect:");
  bool has_type = std::any_of(call.headers.begin(), call.headers.end(),
                              [](const auto& h) { return lower(h.first) == "content-type"; });
  if (!has_type && (call.method == "PUT" || call.method == "POST")) {
    headers = curl_slist_append(headers, "Content-Type: application/octet-stream");
  }

  CURL* curl = static_cast<CURL*>(acquire_handle());
  if (curl == nullptr) {
    curl_slist_free_all(headers);
    return unexpected(storage_error(StorageErrc::kTransient, "curl_easy_init failed"));
  }
  Response resp;
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(options_.connect_timeout.count()));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.request_timeout.count()));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &resp.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &resp.headers);
  if (call.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (call.method == "PUT" || call.method == "POST") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, call.method.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, call.body.empty() ? "" : call.body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(call.body.size()));
  } else if (call.method != "GET") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, call.method.c_str());
  }
  CURLcode rc = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp.status);
  release_handle(curl);
  curl_slist_free_all(headers);

  if (rc != CURLE_OK) {
    std::string detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    return unexpected(
        storage_error(curl_transient(rc) ? StorageErrc::kTransient : StorageErrc::kPermanent,
                      "S3 " + call.what + " at " + scheme_ + "://" + host + ": " + detail));
  }
  return resp;
}

StorageResult<S3ObjectStore::Response> S3ObjectStore::perform(const Call& call) {
  for (int attempt_no = 1;; ++attempt_no) {
    auto r = attempt(call);
    StorageError err;
    if (r) {
      if (r->status >= 200 && r->status < 300) return r;
      err = error_from_body(r->status, r->body, call.what);
      if (r->status == 304 || r->status == 416) return r;  // callers decide
    } else {
      err = std::move(r).error();
    }
    if (err.kind != StorageErrc::kTransient || attempt_no >= options_.retry.max_attempts) {
      if (err.kind == StorageErrc::kTransient && attempt_no > 1) {
        err.message += " (after " + std::to_string(attempt_no) + " attempts)";
      }
      return unexpected(std::move(err));
    }
    std::this_thread::sleep_for(backoff(options_.retry, attempt_no - 1));
  }
}

StorageResult<void> S3ObjectStore::put(std::string_view key, std::string_view bytes) {
  if (auto bad = validate_key(key)) return unexpected(*bad);
  auto r = perform({"PUT", full_key(key), {}, {}, bytes, "PUT " + std::string(key)});
  if (!r) return unexpected(std::move(r).error());
  return {};
}

StorageResult<std::string> S3ObjectStore::get(std::string_view key) {
  if (auto bad = validate_key(key)) return unexpected(*bad);
  auto r = perform({"GET", full_key(key), {}, {}, {}, "GET " + std::string(key)});
  if (!r) return unexpected(std::move(r).error());
  auto len = r->headers.find("content-length");
  if (len != r->headers.end() && len->second != std::to_string(r->body.size())) {
    return unexpected(storage_error(
        StorageErrc::kCorrupt, "S3 GET " + std::string(key) + ": Content-Length " + len->second +
                                   " but " + std::to_string(r->body.size()) + " bytes received"));
  }
  return std::move(r->body);
}

StorageResult<std::string> S3ObjectStore::get_range(std::string_view key, std::uint64_t offset,
                                                    std::uint64_t length) {
  if (auto bad = validate_key(key)) return unexpected(*bad);
  if (length == 0) {
    auto h = head(key);
    if (!h) return unexpected(std::move(h).error());
    return std::string();
  }
  std::uint64_t last = length > UINT64_MAX - offset ? UINT64_MAX - 1 : offset + length - 1;
  std::string range = "bytes=" + std::to_string(offset) + "-" + std::to_string(last);
  auto r = perform(
      {"GET", full_key(key), {}, {{"Range", range}}, {}, "GET " + std::string(key) + " " + range});
  if (!r) return unexpected(std::move(r).error());
  if (r->status == 416) return std::string();  // offset at or past the end
  if (r->status == 200) {                      // the server ignored Range: cut it ourselves
    if (offset >= r->body.size()) return std::string();
    return r->body.substr(offset, length);
  }
  if (r->body.size() > length) {
    return unexpected(storage_error(StorageErrc::kCorrupt,
                                    "S3 GET " + std::string(key) + " " + range + ": " +
                                        std::to_string(r->body.size()) + " bytes received"));
  }
  return std::move(r->body);
}

StorageResult<ObjectInfo> S3ObjectStore::head(std::string_view key) {
  if (auto bad = validate_key(key)) return unexpected(*bad);
  auto r = perform({"HEAD", full_key(key), {}, {}, {}, "HEAD " + std::string(key)});
  if (!r) return unexpected(std::move(r).error());
  ObjectInfo info{std::string(key), 0, ""};
  auto len = r->headers.find("content-length");
  if (len != r->headers.end()) info.size = std::strtoull(len->second.c_str(), nullptr, 10);
  auto etag = r->headers.find("etag");
  if (etag != r->headers.end()) info.etag = strip_quotes(etag->second);
  return info;
}

StorageResult<std::vector<ObjectInfo>> S3ObjectStore::list(std::string_view prefix) {
  if (auto bad = validate_prefix(prefix)) return unexpected(*bad);
  std::string strip = prefix_.empty() ? "" : prefix_ + "/";
  std::string full_prefix = strip + std::string(prefix);
  std::vector<ObjectInfo> out;
  std::string token;
  for (int page = 0;; ++page) {
    Call call{
        "GET", "", {{"list-type", "2"}, {"max-keys", std::to_string(options_.list_page_size)}},
        {},    {}, "ListObjectsV2 " + full_prefix};
    if (!full_prefix.empty()) call.query.emplace_back("prefix", full_prefix);
    if (!token.empty()) call.query.emplace_back("continuation-token", token);
    auto r = perform(call);
    if (!r) return unexpected(std::move(r).error());
    for (std::string_view contents : xml::elements(r->body, "Contents")) {
      auto key = xml::first_text(contents, "Key");
      auto size = xml::first_text(contents, "Size");
      if (!key || !size || !key->starts_with(full_prefix)) {
        return unexpected(storage_error(StorageErrc::kCorrupt,
                                        "S3 " + call.what + ": malformed <Contents> entry"));
      }
      out.push_back(ObjectInfo{key->substr(strip.size()), std::strtoull(size->c_str(), nullptr, 10),
                               strip_quotes(xml::first_text(contents, "ETag").value_or(""))});
    }
    bool truncated = xml::first_text(r->body, "IsTruncated").value_or("false") == "true";
    if (!truncated) break;
    token = xml::first_text(r->body, "NextContinuationToken").value_or("");
    if (token.empty()) {
      return unexpected(
          storage_error(StorageErrc::kCorrupt,
                        "S3 " + call.what + ": truncated page without a continuation token"));
    }
  }
  std::sort(out.begin(), out.end(),
            [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
  return out;
}

StorageResult<void> S3ObjectStore::remove(std::string_view key) {
  if (auto bad = validate_key(key)) return unexpected(*bad);
  auto r = perform({"DELETE", full_key(key), {}, {}, {}, "DELETE " + std::string(key)});
  if (!r) {
    if (r.error().kind == StorageErrc::kNotFound) return {};
    return unexpected(std::move(r).error());
  }
  return {};
}

StorageResult<void> S3ObjectStore::remove_many(std::span<const std::string> keys) {
  for (const auto& key : keys) {
    if (auto bad = validate_key(key)) return unexpected(*bad);
  }
  for (std::size_t at = 0; at < keys.size(); at += kMaxDeleteBatch) {
    std::size_t end = std::min(keys.size(), at + kMaxDeleteBatch);
    std::string body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Delete><Quiet>true</Quiet>";
    for (std::size_t i = at; i < end; ++i) {
      body += "<Object><Key>" + xml::escape(full_key(keys[i])) + "</Key></Object>";
    }
    body += "</Delete>";
    Call call{"POST",
              "",
              {{"delete", ""}},
              {{"Content-Type", "application/xml"}, {"Content-MD5", sigv4::md5_base64(body)}},
              body,
              "DeleteObjects (" + std::to_string(end - at) + " keys)"};
    auto r = perform(call);
    if (!r) return unexpected(std::move(r).error());
    for (std::string_view error : xml::elements(r->body, "Error")) {
      std::string code = xml::first_text(error, "Code").value_or("");
      if (code == "NoSuchKey") continue;
      return unexpected(storage_error(
          classify(0, code), "S3 " + call.what + ": " + xml::first_text(error, "Key").value_or("") +
                                 ": " + code + " " +
                                 xml::first_text(error, "Message").value_or("")));
    }
  }
  return {};
}

StorageResult<std::unique_ptr<MultipartWriter>> S3ObjectStore::open_writer(std::string_view key) {
  if (auto bad = validate_key(key)) return unexpected(*bad);
  return std::unique_ptr<MultipartWriter>(new S3Writer(*this, std::string(key)));
}

}  // namespace quire::storage
