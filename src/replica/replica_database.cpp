// ReplicaDatabase: the public face of detail::Replica (replica.h holds the protocol).
#include "replica/replica_database.h"

#include "replica/replica.h"

namespace quire::replica {

ReplicaDatabase::ReplicaDatabase(std::unique_ptr<detail::Replica> impl) : impl_(std::move(impl)) {}
ReplicaDatabase::~ReplicaDatabase() = default;

Expected<std::unique_ptr<ReplicaDatabase>, std::string> ReplicaDatabase::open(
    const std::filesystem::path& db, const ReplicaOptions& options) {
  auto impl = detail::Replica::open(db, options);
  if (!impl) return unexpected(std::move(impl).error());
  return std::unique_ptr<ReplicaDatabase>(new ReplicaDatabase(std::move(impl).value()));
}

const std::filesystem::path& ReplicaDatabase::path() const { return impl_->path(); }
const std::string& ReplicaDatabase::vfs_name() const { return impl_->vfs_name(); }
Expected<void, std::string> ReplicaDatabase::apply(const log::Transaction& txn,
                                                   std::uint64_t commit_frame) {
  return impl_->apply(txn, commit_frame);
}
std::uint64_t ReplicaDatabase::applied_frame() const { return impl_->applied_frame(); }
Expected<void, std::string> ReplicaDatabase::reset_from_snapshot(const log::PageSource& pages,
                                                                 std::uint64_t frame) {
  return impl_->reset_from_snapshot(pages, frame);
}
Expected<std::size_t, std::string> ReplicaDatabase::checkpoint() { return impl_->checkpoint(); }
ReplicaStats ReplicaDatabase::stats() const { return impl_->stats(); }

}  // namespace quire::replica
