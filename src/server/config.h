// Everything `quire serve` can be told, with the defaults a production user would pick.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "engine/database.h"
#include "protocol/limits.h"

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
  engine::DatabaseOptions database;
};

}  // namespace quire::server
