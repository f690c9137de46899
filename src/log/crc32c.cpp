#include "log/crc32c.h"

#include <array>
#include <cstring>

namespace quire::log {

namespace {

constexpr std::uint32_t kPolynomial = 0x82F63B78;  // 0x1EDC6F41 bit-reversed

// tables[k][b]: the CRC of byte b followed by k zero bytes (slicing by 8).
struct Tables {
  std::array<std::array<std::uint32_t, 256>, 8> t{};
  Tables() {
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int j = 0; j < 8; ++j) c = (c & 1) ? (c >> 1) ^ kPolynomial : c >> 1;
      t[0][i] = c;
    }
    for (int k = 1; k < 8; ++k) {
      for (int i = 0; i < 256; ++i) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xff];
    }
  }
};

const Tables& tables() {
  static const Tables instance;
  return instance;
}

#if defined(__x86_64__)
// The crc32 instruction takes three cycles but a new one can start every cycle, so one chain
// of them runs at a third of the speed the CPU allows. Long inputs are therefore cut into
// blocks of three stripes, each stripe's CRC computed as its own chain (the three interleave),
// and the three merged: CRC-32C without the initial and final inversion is linear, so the
// register after a‖b‖c is shift(reg(a), |b|+|c|) ^ shift(reg(b), |c|) ^ reg(c), where reg(x)
// starts from 0 for b and c and shift(r, k) is r advanced over k zero bytes, itself linear in r
// and so a lookup in four 256-entry tables. A page (4096 bytes) is one block plus 16 bytes.
constexpr std::size_t kStripe = 1360;  // a multiple of 8; 3 * 1360 = 4080

// The register advanced over `bytes` zero bytes, for any starting register, as byte tables.
struct ShiftTables {
  std::array<std::array<std::uint32_t, 256>, 4> t{};
  explicit ShiftTables(std::size_t bytes) {
    const auto& byte_table = tables().t[0];
    std::array<std::uint32_t, 32> basis{};  // the image of each single-bit register
    for (int bit = 0; bit < 32; ++bit) {
      std::uint32_t c = std::uint32_t{1} << bit;
      for (std::size_t i = 0; i < bytes; ++i) c = (c >> 8) ^ byte_table[c & 0xff];
      basis[bit] = c;
    }
    for (int k = 0; k < 4; ++k) {
      for (int b = 0; b < 256; ++b) {
        std::uint32_t v = 0;
        for (int j = 0; j < 8; ++j) {
          if (b & (1 << j)) v ^= basis[8 * k + j];
        }
        t[k][b] = v;
      }
    }
  }
  std::uint32_t apply(std::uint32_t c) const {
    return t[0][c & 0xff] ^ t[1][(c >> 8) & 0xff] ^ t[2][(c >> 16) & 0xff] ^ t[3][c >> 24];
  }
};

const ShiftTables& shift_one_stripe() {
  static const ShiftTables instance(kStripe);
  return instance;
}
const ShiftTables& shift_two_stripes() {
  static const ShiftTables instance(2 * kStripe);
  return instance;
}

inline std::uint64_t load64(const unsigned char* p) {
  std::uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}

__attribute__((target("sse4.2"))) std::uint32_t crc32c_sse42(std::uint32_t crc, const void* data,
                                                             std::size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  std::uint64_t c = ~crc & 0xffffffffu;
  if (n >= 3 * kStripe) {
    const ShiftTables& by_one = shift_one_stripe();
    const ShiftTables& by_two = shift_two_stripes();
    while (n >= 3 * kStripe) {
      std::uint64_t c1 = 0, c2 = 0;
      for (std::size_t i = 0; i < kStripe; i += 8) {
        c = __builtin_ia32_crc32di(c, load64(p + i));
        c1 = __builtin_ia32_crc32di(c1, load64(p + kStripe + i));
        c2 = __builtin_ia32_crc32di(c2, load64(p + 2 * kStripe + i));
      }
      c = by_two.apply(static_cast<std::uint32_t>(c)) ^
          by_one.apply(static_cast<std::uint32_t>(c1)) ^ static_cast<std::uint32_t>(c2);
      p += 3 * kStripe;
      n -= 3 * kStripe;
    }
  }
  while (n >= 8) {
    c = __builtin_ia32_crc32di(c, load64(p));
    p += 8;
    n -= 8;
  }
  auto c32 = static_cast<std::uint32_t>(c);
  while (n-- > 0) c32 = __builtin_ia32_crc32qi(c32, *p++);
  return ~c32;
}

bool have_sse42() {
  static const bool yes = __builtin_cpu_supports("sse4.2");
  return yes;
}
#endif

}  // namespace

std::uint32_t crc32c_portable(std::uint32_t crc, const void* data, std::size_t n) {
  const auto& t = tables().t;
  const auto* p = static_cast<const unsigned char*>(data);
  std::uint32_t c = ~crc;
  while (n >= 8) {
    // Little-endian load, so the byte order matches the bytewise loop below on any host.
    std::uint64_t w = 0;
    for (int i = 7; i >= 0; --i) w = (w << 8) | p[i];
    w ^= c;
    c = t[7][w & 0xff] ^ t[6][(w >> 8) & 0xff] ^ t[5][(w >> 16) & 0xff] ^ t[4][(w >> 24) & 0xff] ^
        t[3][(w >> 32) & 0xff] ^ t[2][(w >> 40) & 0xff] ^ t[1][(w >> 48) & 0xff] ^ t[0][w >> 56];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) c = (c >> 8) ^ t[0][(c ^ *p++) & 0xff];
  return ~c;
}

std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t n) {
#if defined(__x86_64__)
  if (have_sse42()) return crc32c_sse42(crc, data, n);
#endif
  return crc32c_portable(crc, data, n);
}

}  // namespace quire::log
