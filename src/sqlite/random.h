// random() and randomblob() that a caller can make reproducible.
//
// Every connection the server opens replaces SQLite's built-in random() and randomblob() with
// these. They draw from SQLite's own generator, exactly as the built-ins do, unless a
// SeededRandom is alive on the calling thread: then they draw from it. Running the same
// statements under the same seed yields the same values, which is what lets a BEGIN CONCURRENT
// transaction be replayed at commit without a needless conflict.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <random>

namespace quire::sqlite {

// Installs the two functions on `db`. Returns an SQLite result code.
int install_random_functions(sqlite3* db);

class SeededRandom {
 public:
  explicit SeededRandom(std::uint64_t seed);
  ~SeededRandom();
  SeededRandom(const SeededRandom&) = delete;
  SeededRandom& operator=(const SeededRandom&) = delete;

 private:
  std::mt19937_64 engine_;
  std::mt19937_64* previous_;
};

}  // namespace quire::sqlite
