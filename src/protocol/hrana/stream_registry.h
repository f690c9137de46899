// The HTTP streams that outlive one request, named by batons.
//
// A baton is base64(stream id (8 bytes, big-endian) ‖ sequence (8) ‖ HMAC-SHA256(server key,
// first 16 bytes) (32)). The sequence moves on with every request, so each baton is good for
// exactly one request: a replayed or forged one is refused. Streams idle for longer than the
// limit are closed (their transaction rolled back); a tombstone remembers them for five minutes
// so their baton gets STREAM_EXPIRED rather than "invalid baton".
//
// Thread model: every member is thread-safe (one mutex). A checked-out stream belongs to the
// caller until check_in() or drop(); the sweeper never touches a checked-out stream.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <variant>

#include "protocol/hrana/stream.h"
#include "protocol/limits.h"

namespace quire::hrana {

class StreamRegistry {
 public:
  using Clock = std::chrono::steady_clock;

  struct Entry {
    Entry(std::shared_ptr<engine::Database> db, const protocol::Limits& limits, std::string client)
        : stream(std::move(db)), sqls(limits), client(std::move(client)) {}
    Stream stream;
    SqlStore sqls;
    std::string client;
    std::uint64_t id = 0;
    std::uint64_t seq = 0;
    Clock::time_point last_used;
    bool in_use = false;
  };

  // What checking out a baton can give: the stream, a request error (STREAM_EXPIRED, too many
  // streams) or a protocol error (forged, malformed or reused baton).
  using Checkout = std::variant<std::shared_ptr<Entry>, Error, ProtocolError>;

  explicit StreamRegistry(const protocol::Limits& limits);

  // With no baton: a new stream on `db` for `client` (its address). With a baton: the stream it
  // names, for exclusive use.
  Checkout check_out(const std::optional<std::string>& baton,
                     const std::shared_ptr<engine::Database>& db, const std::string& client);

  // A stream for a single request that closes it ([..., close] without a baton): it never
  // enters the registry, so it costs no lock, no random id and no baton.
  std::shared_ptr<Entry> ephemeral(const std::shared_ptr<engine::Database>& db,
                                   const std::string& client) {
    return std::make_shared<Entry>(db, limits_, client);
  }

  // Puts the stream back and returns the baton for its next request.
  std::string check_in(const std::shared_ptr<Entry>& entry);

  // Forgets the stream (after `close`, or a protocol error); its connection is released when the
  // caller lets go of `entry`.
  void drop(const std::shared_ptr<Entry>& entry);

  // Closes streams idle past the limit. Called periodically; returns how many were closed.
  std::size_t expire_idle(Clock::time_point now = Clock::now());

  std::size_t size() const;

  // True when `baton` was made by this registry (its MAC checks), whether or not its stream
  // still exists. A read replica forwards requests with batons it did not make to the primary.
  bool issued(const std::string& baton) const {
    std::uint64_t id = 0, seq = 0;
    return parse_baton(baton, id, seq);
  }

 private:
  std::string make_baton(std::uint64_t id, std::uint64_t seq) const;
  bool parse_baton(const std::string& baton, std::uint64_t& id, std::uint64_t& seq) const;

  const protocol::Limits& limits_;
  std::array<std::uint8_t, 32> key_;
  mutable std::mutex mu_;
  std::unordered_map<std::uint64_t, std::shared_ptr<Entry>> streams_;  // guarded by mu_
  std::unordered_map<std::string, std::size_t> per_client_;            // guarded by mu_
  std::map<std::uint64_t, Clock::time_point> tombstones_;              // guarded by mu_
};

}  // namespace quire::hrana
