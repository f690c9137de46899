// SQLite result codes as the names the wire protocols carry ("SQLITE_CONSTRAINT",
// "SQLITE_CONSTRAINT_PRIMARYKEY").
#pragma once

#include <string>

namespace quire::sqlite {

// Name of the primary code of `rc` (rc & 0xff), e.g. "SQLITE_CONSTRAINT"; "SQLITE_ERROR" for 1.
const char* primary_code_name(int rc);

// Name of the extended code, e.g. "SQLITE_CONSTRAINT_UNIQUE"; the primary name when `rc` carries
// no extended information.
const char* extended_code_name(int rc);

}  // namespace quire::sqlite
