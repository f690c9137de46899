#include "auth/openssl.h"

#include <openssl/err.h>

namespace quire::auth {

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  std::string out = "unknown";
  if (e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out = buf;
  }
  ERR_clear_error();
  return out;
}

}  // namespace quire::auth
