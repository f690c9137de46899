// Checkpoints one database's WAL. SQLite's own auto-checkpoint is off on every
// connection (the replication log must see each frame before a checkpoint may overwrite it), so
// commits report the WAL size here through the WAL hook and a job on the shared BackgroundPool
// runs a PASSIVE checkpoint on the checkpointer's own connection (opened when first needed),
// never blocking readers or the writer.
//
// A writer that never pauses outruns a background checkpoint (the WAL can start over from its
// beginning only once every frame is backfilled), so once the WAL holds four times the threshold
// the committing writer checkpoints inline, in its WAL hook, before it takes more work: the
// writer pays for the checkpoint it made necessary, and the WAL stays bounded under any write
// load (see Database::on_wal_commit).
//
// Thread model: notify() from any thread (it only takes a mutex); runs on the connection are
// serialised by a mutex.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>

#include "engine/write_gate.h"
#include "sqlite/connection.h"

namespace quire::engine {

class Checkpointer {
 public:
  using ConnectionFactory =
      std::function<Expected<std::unique_ptr<sqlite::Connection>, sqlite::Error>()>;

  // `before` runs before every checkpoint this class starts (the log's capture); false: no
  // checkpoint now.
  Checkpointer(ConnectionFactory open, int threshold_frames, std::function<bool()> before = {});
  ~Checkpointer();  // stops

  // Called after each commit with the number of frames in the WAL.
  void notify(int wal_frames);

  // Runs a checkpoint on the checkpointer's connection, now, from the calling thread. RESTART
  // and TRUNCATE start the WAL over themselves, so they first take `gate` (when given, and
  // unless it is closed): a writer whose commit was not captured yet still holds the gate, and
  // its frames must not be thrown away before the log took them.
  Expected<void, sqlite::Error> run(int mode, WriteGate* gate = nullptr);

  // Runs a PASSIVE checkpoint on `conn` (a writer's, from its WAL hook), first waiting for a
  // background checkpoint in progress: SQLite runs one checkpoint at a time and would answer
  // SQLITE_BUSY, and the writer must not go on growing the WAL meanwhile.
  void run_inline(sqlite3* conn, const char* schema);

  // Waits for a background checkpoint in progress; later notifications are ignored.
  void stop();

 private:
  ConnectionFactory open_;
  std::function<bool()> before_;
  std::unique_ptr<sqlite::Connection> conn_;  // guarded by run_mu_
  const int threshold_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool pending_ = false;  // guarded by mu_: a background checkpoint is queued or running
  // WAL frames when the last checkpoint ran. Under a steady writer a checkpoint rarely catches
  // up completely (the writer appends while it copies), and every checkpoint syncs the WAL and
  // the database file: so the next background one waits until the WAL grew by half a threshold
  // (or started over), instead of running after every commit and flushing the disk each time.
  std::atomic<int> last_log_{0};
  bool stop_ = false;  // guarded by mu_
  std::mutex run_mu_;  // serialises use of conn_
};

}  // namespace quire::engine
