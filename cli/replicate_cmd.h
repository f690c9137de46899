// `quire replicate`: sidecar mode (docs/sidecar.md). Continuously backs up a database that
// another program writes with ordinary SQLite in WAL mode, to an object store, in the backup
// format `quire restore` reads.
//
//   quire replicate DB URL [--prefix NAME] [--state-dir DIR] [--interval S]
//                   [--capture-interval S] [--checkpoint-frames N] [--enable-wal]
//
// Runs until SIGINT or SIGTERM, then captures and ships everything and exits 0 (1 when the
// store still lacks frames after --shutdown-timeout: they stay in the state directory and go at
// the next start). Exit 1 when it cannot start (not WAL mode, another sidecar, bad URL), 2 on a
// usage error.
//
// Thread model: the sidecar loop runs on the command's main thread; a second thread waits for
// the stop signals.
#pragma once

#include "cli/command.h"

namespace quire::cli {

Command add_replicate_command(CLI::App& parent);

}  // namespace quire::cli
