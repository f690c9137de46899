// An S3-compatible object store over libcurl, signing every request with our own SigV4
// (storage/sigv4.h) so the payload hash header is always present (curl 7.88's --aws-sigv4 omits
// it and some servers refuse such requests).
//
// URL: s3://bucket[/prefix]; every key is stored as "prefix/key". Endpoint, region, credentials
// and addressing come from ObjectStoreOptions, falling back to the AWS environment variables
// (docs/object-stores.md). Transient failures (connection errors, timeouts, 5xx, 429, SlowDown,
// RequestTimeout) are retried with capped exponential backoff and full jitter; auth, not-found
// and other 4xx answers are returned at once.
//
// Thread model: any number of threads may call concurrently; each request borrows a curl easy
// handle from a mutex-guarded pool (keeping connections alive between requests).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "storage/object_store.h"
#include "storage/sigv4.h"

namespace quire::storage {

class S3ObjectStore final : public ObjectStore {
 public:
  static StorageResult<std::unique_ptr<S3ObjectStore>> open(std::string_view url,
                                                            const ObjectStoreOptions& options);
  ~S3ObjectStore() override;

  StorageResult<void> put(std::string_view key, std::string_view bytes) override;
  StorageResult<std::string> get(std::string_view key) override;
  StorageResult<std::string> get_range(std::string_view key, std::uint64_t offset,
                                       std::uint64_t length) override;
  StorageResult<ObjectInfo> head(std::string_view key) override;
  StorageResult<std::vector<ObjectInfo>> list(std::string_view prefix) override;
  StorageResult<void> remove(std::string_view key) override;
  StorageResult<void> remove_many(std::span<const std::string> keys) override;
  StorageResult<std::unique_ptr<MultipartWriter>> open_writer(std::string_view key) override;
  std::string describe() const override;
  std::size_t part_size() const override { return options_.part_size; }

  bool path_style() const { return path_style_; }
  const std::string& region() const { return options_.region; }

  // One HTTP exchange, for the implementation and its multipart writer.
  struct Call {
    std::string method;
    std::string object_key;  // full key in the bucket; empty for bucket-level calls
    std::vector<std::pair<std::string, std::string>> query;
    std::vector<std::pair<std::string, std::string>> headers;  // signed too
    std::string_view body;
    std::string what;  // for messages: "PUT db1/x"
  };
  struct Response {
    long status = 0;
    std::string body;
    std::map<std::string, std::string> headers;  // lowercase names
  };
  // Sends with retries; any status the classifier does not accept becomes an error.
  StorageResult<Response> perform(const Call& call);
  std::string full_key(std::string_view key) const;

 private:
  S3ObjectStore() = default;
  StorageResult<Response> attempt(const Call& call);
  void* acquire_handle();
  void release_handle(void* handle);

  ObjectStoreOptions options_;  // resolved: region, endpoint, credentials filled in
  std::string bucket_;
  std::string prefix_;         // without leading/trailing '/'; may be empty
  std::string scheme_;         // "http" or "https"
  std::string endpoint_host_;  // "127.0.0.1:9000" or "s3.us-east-1.amazonaws.com"
  bool path_style_ = true;

  std::mutex pool_mu_;
  std::vector<void*> pool_;  // CURL* handles not in use
};

}  // namespace quire::storage
