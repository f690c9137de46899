// Errors of the backup library (docs/formats/backup.md): expected failures are values.
#pragma once

#include <optional>
#include <string>

#include "common/expected.h"
#include "storage/object_store.h"

namespace quire::backup {

enum class BackupErrc {
  kNoBackup,         // nothing under the prefix (no lineages.json / manifest)
  kMissingObject,    // the manifest names an object the store does not have
  kCorrupt,          // an object or manifest contradicts its checksum, its tag or the format
  kGap,              // frames needed for the target are in no batch
  kOutOfRange,       // the target is outside the restorable range
  kInvalidArgument,  // the caller broke a precondition
  kStorage,          // the object store failed (storage_kind says how)
  kIo,               // the local file system failed
  kEncryption,       // encrypted and no key given, encrypted with another key, or a key was
                     // given and the object is not encrypted
};

struct BackupError {
  BackupErrc kind = BackupErrc::kIo;
  std::string message;
  std::optional<storage::StorageErrc> storage_kind;
};

const char* to_string(BackupErrc kind);

template <class T>
using BackupResult = Expected<T, BackupError>;

}  // namespace quire::backup
