// CRC-32C (Castagnoli), the checksum of every replication-log record and file header. Uses the
// SSE4.2 instruction when the CPU has it (checked at run time; three interleaved streams on long
// inputs), a slicing-by-8 table loop otherwise; both give equal results.
#pragma once

#include <cstddef>
#include <cstdint>

namespace quire::log {

// Continues a CRC-32C whose result so far is `crc` over `n` more bytes: crc32c(0, a‖b) ==
// crc32c(crc32c(0, a), b). crc32c(0, "123456789") == 0xE3069283.
std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t n);

// The portable implementation, exposed so tests can compare it with the hardware one.
std::uint32_t crc32c_portable(std::uint32_t crc, const void* data, std::size_t n);

}  // namespace quire::log
