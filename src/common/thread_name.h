// Names the calling thread as `top -H`, `perf` and /proc/PID/task/*/comm show it. Linux keeps at
// most 15 characters; longer names are cut.
#pragma once

#include <pthread.h>

#include <string>

namespace quire {

inline void name_this_thread(const std::string& name) {
  const std::string cut = name.substr(0, 15);
  (void)pthread_setname_np(pthread_self(), cut.c_str());
}

}  // namespace quire
