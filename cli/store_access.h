// What the commands that read or write a backup (`quire backup`, `quire restore`, `quire
// replicate`) share: opening the object store a --backup-url names and loading the key of
// --encryption-key-file, each printing why it failed as "<command>: <reason>" on stderr.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "backup/encryption.h"
#include "storage/object_store.h"

namespace quire::cli {

// The store at `url`; nullptr after printing why it cannot be opened.
std::unique_ptr<storage::ObjectStore> open_store(const char* cmd, const std::string& url);

// The key in the file at `path`; nullopt after printing why it cannot be loaded.
std::optional<backup::EncryptionKey> load_key(const char* cmd, const std::string& path);

}  // namespace quire::cli
