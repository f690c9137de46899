#include "sidecar/base_image.h"

#include <cstring>

namespace quire::sidecar {

Expected<BaseImage, log::LogError> BaseImage::make(const log::File& db_file,
                                                   const std::vector<log::Transaction>& wal) {
  std::uint32_t pages = 0;
  if (wal.empty()) {
    auto size = db_file.size();
    if (!size) return unexpected(std::move(size).error());
    pages = static_cast<std::uint32_t>(static_cast<std::uint64_t>(*size) / log::kPageSize);
  } else {
    pages = wal.back().db_size;
  }
  BaseImage image(db_file, pages);
  for (const auto& txn : wal) {
    for (std::size_t i = 0; i < txn.page_count(); ++i) image.overlay_[txn.pgnos[i]] = txn.page(i);
  }
  return image;
}

Expected<void, log::LogError> BaseImage::read_page(std::uint32_t pgno,
                                                   std::span<std::byte> out) const {
  assert(pgno >= 1 && pgno <= pages_ && out.size() == log::kPageSize);
  if (auto it = overlay_.find(pgno); it != overlay_.end()) {
    std::memcpy(out.data(), it->second.data(), log::kPageSize);
    return {};
  }
  auto got = file_->read_at(out.data(), log::kPageSize,
                            static_cast<off_t>(std::uint64_t{pgno - 1} * log::kPageSize));
  if (!got) return unexpected(std::move(got).error());
  if (*got < log::kPageSize) std::memset(out.data() + *got, 0, log::kPageSize - *got);
  return {};
}

}  // namespace quire::sidecar
