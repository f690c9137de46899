#include "sqlite/random.h"

#include <cstring>
#include <limits>

namespace quire::sqlite {

namespace {

thread_local std::mt19937_64* seeded = nullptr;

void fill(void* out, int n) {
  if (!seeded) {
    sqlite3_randomness(n, out);
    return;
  }
  auto* p = static_cast<unsigned char*>(out);
  while (n > 0) {
    const std::uint64_t word = (*seeded)();
    const int take = n < 8 ? n : 8;
    std::memcpy(p, &word, static_cast<std::size_t>(take));
    p += take;
    n -= take;
  }
}

void random_function(sqlite3_context* ctx, int, sqlite3_value**) {
  std::int64_t r;
  fill(&r, sizeof r);
  // As SQLite's own: never the one value whose negation overflows.
  if (r == std::numeric_limits<std::int64_t>::min()) r = 0;
  sqlite3_result_int64(ctx, r);
}

void randomblob_function(sqlite3_context* ctx, int, sqlite3_value** argv) {
  sqlite3_int64 n = sqlite3_value_int64(argv[0]);
  if (n < 1) n = 1;
  if (n > sqlite3_limit(sqlite3_context_db_handle(ctx), SQLITE_LIMIT_LENGTH, -1)) {
    sqlite3_result_error_toobig(ctx);
    return;
  }
  void* blob = sqlite3_malloc64(static_cast<sqlite3_uint64>(n));
  if (!blob) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  fill(blob, static_cast<int>(n));
  sqlite3_result_blob64(ctx, blob, static_cast<sqlite3_uint64>(n), sqlite3_free);
}

}  // namespace

int install_random_functions(sqlite3* db) {
  int rc = sqlite3_create_function_v2(db, "random", 0, SQLITE_UTF8 | SQLITE_INNOCUOUS, nullptr,
                                      random_function, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return rc;
  return sqlite3_create_function_v2(db, "randomblob", 1, SQLITE_UTF8 | SQLITE_INNOCUOUS, nullptr,
                                    randomblob_function, nullptr, nullptr, nullptr);
}

SeededRandom::SeededRandom(std::uint64_t seed) : engine_(seed), previous_(seeded) { seeded = &engine_; }

SeededRandom::~SeededRandom() { seeded = previous_; }

}  // namespace quire::sqlite
