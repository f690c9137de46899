// Everything `quire serve` can be told, with the defaults a production user would pick.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "auth/key_set.h"
#include "engine/database.h"
#include "protocol/limits.h"
#include "server/backup_service.h"

namespace quire::server {

struct Config {
  std::string data_dir = "./data";
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 8080;
  // I/O threads, each running its own event loop; connections are spread over them and stay on
  // one. Reads run on the thread of the connection that sent them. 0 = one per core.
  unsigned threads = 0;
  // A keep-alive connection with no request for this long is closed.
  std::chrono::seconds idle_connection_timeout{60};
  // The longest a client may take to send one request's headers and body.
  std::chrono::seconds request_read_timeout{30};
  protocol::Limits limits;
  // Requests to HOST.<namespace_domain> address namespace HOST (empty: route by header only).
  std::string namespace_domain;
  // Databases kept open at once; the least recently used idle one closes past this.
  std::size_t max_open_databases = 256;
  bool replication_log = true;
  engine::DatabaseOptions database;
  // Public keys that verify client JWTs (--auth-jwt-key-file, SQLD_AUTH_JWT_KEY). Null: no
  // authentication (every request has full access), allowed only on a loopback address unless
  // `insecure`. A namespace's own jwt_key replaces these for that namespace.
  std::shared_ptr<const auth::KeySet> auth_keys;
  // The admin API's listener (docs/admin-api.md); an empty host: no admin API.
  std::string admin_listen_host;
  std::uint16_t admin_listen_port = 0;
  // Admin requests must carry `Authorization: Basic KEY` or `Bearer KEY`. Empty: none needed,
  // and then the admin listener must be on a loopback address unless `insecure`.
  std::string admin_auth_key;
  // Allows setups that are unsafe on a network, such as an admin API without a key on a
  // non-loopback address (--insecure).
  bool insecure = false;
  // Set: this server is a read replica of the primary at this URL (http://host:port,
  // --primary-url). Its namespaces are the primary's; reads run here, writes are forwarded.
  std::string primary_url;
  // The replica's token for the primary's replication API (--primary-auth-token).
  std::string primary_auth_token;
  // Continuous backup of every namespace (--backup-url and friends); an empty url: off.
  BackupServiceOptions backup;
};

}  // namespace quire::server
