// `quire db`: manage the namespaces (databases) of a running server through its admin API
// (`quire serve --admin-listen HOST:PORT`).
//
//   quire db create NAME [--from-dump FILE.sql] [--max-db-size SIZE] [--txn-timeout SECONDS]
//   quire db list
//   quire db delete NAME [--yes]
//   quire db fork FROM TO
//   quire db config NAME [--set key=value ...]
//   quire db stats NAME
//   quire db checkpoint NAME
//
// Every subcommand takes --admin-url (QUIRE_ADMIN_URL), --admin-auth-key
// (QUIRE_ADMIN_AUTH_KEY, sent as `Authorization: Bearer KEY`) and --json (print the server's
// JSON instead of tables). Exit codes: 0 done, 1 the server refused or could not be reached
// (its "error" message on stderr), 2 a usage error.
//
// Thread model: runs on the main thread of the command.
#pragma once

#include <boost/json/value.hpp>
#include <string>

#include "cli/command.h"
#include "common/expected.h"

namespace quire::cli {

Command add_db_command(CLI::App& parent);

// The human form of GET /v1/namespaces: a table of NAME, SIZE, LAST ACCESS, OPEN, or
// "no namespaces". The error says how the answer was not the expected shape.
Expected<std::string, std::string> render_namespace_list(const boost::json::value& reply);

// The human form of a JSON object answer (config, stats): one "key  value" line per member,
// in the server's order; strings bare, null as "-", byte counts (max_db_size,
// storage_bytes_used, *_bytes) followed by their size in KiB/MiB/...
std::string render_object(const boost::json::object& object);

}  // namespace quire::cli
