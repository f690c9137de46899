// The database image a new lineage starts from: the database file with the WAL's committed
// transactions laid over it, as SQLite itself would read it at the WAL's last commit.
//
// Why that is consistent although the application keeps writing: the caller holds a read
// transaction (WalPin) that began before it read the WAL. A checkpoint then only copies into the
// database file frames at or before that transaction's mark, which are all among the
// transactions read here, so every page a concurrent checkpoint may be rewriting is taken from
// the WAL, never from the file; and the pages of the file that no WAL transaction touches have
// not changed since the WAL generation began.
//
// Thread model: used by one thread at a time (positioned reads of the file).
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "log/file.h"
#include "log/snapshot.h"
#include "log/transaction.h"

namespace quire::sidecar {

class BaseImage final : public log::PageSource {
 public:
  // `wal` are the WAL's committed transactions from its frame 1, oldest first; they must outlive
  // this object. With none, the image is the file as it is (its size rounded down to pages).
  static Expected<BaseImage, log::LogError> make(const log::File& db_file,
                                                 const std::vector<log::Transaction>& wal);

  std::uint32_t page_count() const override { return pages_; }
  // Pages past the end of the file that no transaction wrote (SQLite never writes the lock-byte
  // page at 1 GiB) read as zeros.
  Expected<void, log::LogError> read_page(std::uint32_t pgno,
                                          std::span<std::byte> out) const override;

 private:
  BaseImage(const log::File& f, std::uint32_t pages) : file_(&f), pages_(pages) {}
  const log::File* file_;
  std::uint32_t pages_ = 0;
  std::unordered_map<std::uint32_t, std::span<const std::byte>> overlay_;  // newest image
};

}  // namespace quire::sidecar
