#include "cli/store_access.h"

#include <iostream>

namespace quire::cli {

std::unique_ptr<storage::ObjectStore> open_store(const char* cmd, const std::string& url) {
  auto store = storage::open_object_store(url);
  if (!store) {
    std::cerr << cmd << ": cannot open the object store " << url << ": " << store.error().message
              << "\n";
    return nullptr;
  }
  return std::move(store.value());
}

std::optional<backup::EncryptionKey> load_key(const char* cmd, const std::string& path) {
  auto key = backup::load_encryption_key(path);
  if (!key) {
    std::cerr << cmd << ": " << key.error().message << "\n";
    return std::nullopt;
  }
  return std::move(key.value());
}

}  // namespace quire::cli
