// What a replica's pull loop writes into: the replica's database (or a test's page file). The
// puller hands it whole transactions and whole snapshots; the sink makes each one durable and
// visible atomically, and remembers where it stands across restarts.
//
// Frame numbers here are quire's log frames (docs/formats/replication-log.md): 1-based, 0 means
// "nothing applied". libSQL's wire `frame_no` is one less (replication-protocol.md §7); the puller
// converts.
//
// Thread model: every method is called from the puller's thread only, one at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "common/expected.h"
#include "log/transaction.h"

namespace quire::replication {

// Where a replica stands: the primary log it follows and the last commit frame it applied.
struct ReplicaPosition {
  std::string log_id;  // the primary's log id (a UUID); empty when the replica has none yet
  std::uint64_t frame = 0;
};

class ReplicaSink {
 public:
  virtual ~ReplicaSink() = default;

  // Read once when the puller starts; afterwards the puller tracks the position itself.
  // A replica with frames but no log id is of unknown origin and is re-bootstrapped from a
  // snapshot.
  virtual ReplicaPosition position() = 0;

  // The replica is empty (frame 0) and starts following `log_id` from its first frame. Must be
  // remembered with the frames that follow.
  virtual Expected<void, std::string> on_new_log_id(const std::string& log_id) = 0;

  // One whole transaction whose commit frame is `commit_frame`: write every page
  // ((pgno-1)*4096), set the database size to txn.db_size pages, then make it visible, all or
  // nothing. txn.commit_time_us is the primary's commit time when the frame carried one, else
  // the time the puller received it. An error makes the puller retry from position() later, so
  // a failed apply must leave the previous state intact.
  virtual Expected<void, std::string> apply(const log::Transaction& txn,
                                            std::uint64_t commit_frame) = 0;

  // A full image of the primary's database as of commit frame `frame` of log `log_id`, which
  // replaces the replica's content: begin_snapshot, then every page 1..db_size once (in any
  // order), then end_snapshot. Only end_snapshot makes it visible; until then the old content
  // must stay. abort_snapshot discards a snapshot begun but not ended (the puller then retries).
  virtual Expected<void, std::string> begin_snapshot(const std::string& log_id, std::uint64_t frame,
                                                     std::uint32_t db_size) = 0;
  virtual Expected<void, std::string> snapshot_page(std::uint32_t pgno,
                                                    std::span<const std::byte> page) = 0;
  virtual Expected<void, std::string> end_snapshot() = 0;
  virtual void abort_snapshot() = 0;
};

}  // namespace quire::replication
