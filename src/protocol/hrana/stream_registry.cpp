#include "protocol/hrana/stream_registry.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstring>
#include <stdexcept>
#include <vector>

#include "common/base64.h"

namespace quire::hrana {

namespace {

constexpr auto kTombstoneLifetime = std::chrono::minutes(5);
constexpr std::size_t kMacBytes = 32;

void put_be64(std::uint8_t* p, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<std::uint8_t>(v);
    v >>= 8;
  }
}

std::uint64_t get_be64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

std::uint64_t random_u64() {
  std::uint64_t v;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&v), sizeof v) != 1) {
    throw std::runtime_error("RAND_bytes failed");
  }
  return v;
}

}  // namespace

StreamRegistry::StreamRegistry(const protocol::Limits& limits) : limits_(limits) {
  if (RAND_bytes(key_.data(), static_cast<int>(key_.size())) != 1) {
    throw std::runtime_error("RAND_bytes failed");
  }
}

std::string StreamRegistry::make_baton(std::uint64_t id, std::uint64_t seq) const {
  std::uint8_t buf[16 + kMacBytes];
  put_be64(buf, id);
  put_be64(buf + 8, seq);
  unsigned int len = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()), buf, 16, buf + 16, &len);
  return base64::encode(buf, sizeof buf);
}

bool StreamRegistry::parse_baton(const std::string& baton, std::uint64_t& id,
                                 std::uint64_t& seq) const {
  auto bytes = base64::decode(baton);
  if (!bytes || bytes->size() != 16 + kMacBytes) return false;
  std::uint8_t mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()), bytes->data(), 16, mac, &len);
  if (len != kMacBytes || CRYPTO_memcmp(mac, bytes->data() + 16, kMacBytes) != 0) return false;
  id = get_be64(bytes->data());
  seq = get_be64(bytes->data() + 8);
  return true;
}

StreamRegistry::Checkout StreamRegistry::check_out(const std::optional<std::string>& baton,
                                                   const std::shared_ptr<engine::Database>& db,
                                                   const std::string& client) {
  std::lock_guard lock(mu_);
  if (!baton) {
    if (streams_.size() >= limits_.max_streams) {
      return Error{"The server has too many open streams; close streams (transactions) you no "
                   "longer use",
                   "STREAMS_EXHAUSTED", {}};
    }
    auto& count = per_client_[client];
    if (count >= limits_.max_streams_per_client) {
      return Error{"This client has too many open streams (the limit is " +
                       std::to_string(limits_.max_streams_per_client) + ")",
                   "STREAMS_EXHAUSTED", {}};
    }
    auto entry = std::make_shared<Entry>(db, limits_, client);
    do {
      entry->id = random_u64();
    } while (streams_.count(entry->id) || entry->id == 0);
    entry->seq = random_u64();
    entry->in_use = true;
    ++count;
    streams_.emplace(entry->id, entry);
    return entry;
  }
  std::uint64_t id = 0, seq = 0;
  if (!parse_baton(*baton, id, seq)) return ProtocolError{"Received an invalid baton"};
  auto it = streams_.find(id);
  if (it == streams_.end()) {
    if (tombstones_.count(id)) {
      return Error{"The stream has expired because it was idle for too long (over " +
                       std::to_string(limits_.stream_idle_timeout.count()) +
                       " ms); its transaction was rolled back",
                   "STREAM_EXPIRED", {}};
    }
    return ProtocolError{"Received an invalid baton: its stream does not exist"};
  }
  auto& entry = it->second;
  if (entry->in_use || entry->seq != seq) {
    return ProtocolError{"Received a baton that has already been used"};
  }
  entry->in_use = true;
  return entry;
}

std::string StreamRegistry::check_in(const std::shared_ptr<Entry>& entry) {
  std::lock_guard lock(mu_);
  entry->seq += 1;
  entry->last_used = Clock::now();
  entry->in_use = false;
  return make_baton(entry->id, entry->seq);
}

void StreamRegistry::drop(const std::shared_ptr<Entry>& entry) {
  if (entry->id == 0) return;  // ephemeral: never registered
  std::lock_guard lock(mu_);
  if (streams_.erase(entry->id)) {
    auto it = per_client_.find(entry->client);
    if (it != per_client_.end() && --it->second == 0) per_client_.erase(it);
  }
}

std::size_t StreamRegistry::expire_idle(Clock::time_point now) {
  std::vector<std::shared_ptr<Entry>> expired;
  {
    std::lock_guard lock(mu_);
    for (auto it = streams_.begin(); it != streams_.end();) {
      auto& e = it->second;
      if (!e->in_use && now - e->last_used > limits_.stream_idle_timeout) {
        tombstones_[e->id] = now + kTombstoneLifetime;
        auto pc = per_client_.find(e->client);
        if (pc != per_client_.end() && --pc->second == 0) per_client_.erase(pc);
        expired.push_back(std::move(e));
        it = streams_.erase(it);
      } else {
        ++it;
      }
    }
    for (auto it = tombstones_.begin(); it != tombstones_.end();) {
      it = it->second < now ? tombstones_.erase(it) : std::next(it);
    }
  }
  // Connections are released (and transactions rolled back) here, outside the lock.
  return expired.size();
}

std::size_t StreamRegistry::size() const {
  std::lock_guard lock(mu_);
  return streams_.size();
}

}  // namespace quire::hrana
