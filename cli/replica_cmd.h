// `quire replica pull`: copies a primary's database over libSQL's replication protocol into a
// file, as a replica bootstraps: a snapshot when the primary's log no longer holds every frame,
// then every transaction up to the primary's last commit. For seeding a replica, taking a
// consistent copy of a live namespace, and measuring catch-up speed.
//
//   quire replica pull --primary-url http://HOST:PORT [--namespace NS] [--auth-token JWT]
//                      -o FILE [--timeout SECONDS]
//
// The file appears (renamed from FILE.tmp) only once the copy is complete and synced; it is
// then a plain SQLite database (WAL mode, no -wal) as of the frame printed. Exit 0 on success,
// 1 when the primary refuses or cannot be reached within the timeout, 2 on a usage error.
//
// Thread model: the command's main thread waits while the puller's thread copies.
#pragma once

#include "cli/command.h"

namespace quire::cli {

Command add_replica_command(CLI::App& parent);

}  // namespace quire::cli
