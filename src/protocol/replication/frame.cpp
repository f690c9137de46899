// The replication frame header: see frame.h.
#include "protocol/replication/frame.h"

#include <cassert>

namespace quire::replication {

namespace {

void store_le(char* p, std::uint64_t v, int n) {
  for (int i = 0; i < n; ++i) {
    p[i] = static_cast<char>(v & 0xFF);
    v >>= 8;
  }
}

std::uint64_t load_le(const char* p, int n) {
  std::uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<std::uint8_t>(p[i]);
  return v;
}

}  // namespace

void write_frame_header(const FrameHeader& h, char* out) {
  store_le(out, h.frame_no, 8);
  store_le(out + 8, h.checksum, 8);
  store_le(out + 16, h.page_no, 4);
  store_le(out + 20, h.size_after, 4);
}

std::string encode_frame_header(const FrameHeader& h) {
  std::string out(kFrameHeaderSize, '\0');
  write_frame_header(h, out.data());
  return out;
}

Decoded<FrameHeader> decode_frame_header(std::string_view bytes) {
  if (bytes.size() < kFrameHeaderSize) {
    return unexpected(
        DecodeError{"frame header truncated: " + std::to_string(bytes.size()) + " of 24 bytes"});
  }
  FrameHeader h;
  h.frame_no = load_le(bytes.data(), 8);
  h.checksum = load_le(bytes.data() + 8, 8);
  h.page_no = static_cast<std::uint32_t>(load_le(bytes.data() + 16, 4));
  h.size_after = static_cast<std::uint32_t>(load_le(bytes.data() + 20, 4));
  return h;
}

std::string make_frame_data(const FrameHeader& h, std::string_view page) {
  assert(page.size() == kPageSize);
  std::string out(kFrameHeaderSize, '\0');
  out.reserve(kFrameSize);
  write_frame_header(h, out.data());
  out.append(page);
  return out;
}

Decoded<FrameView> decode_frame_data(std::string_view data) {
  if (data.size() != kFrameSize) {
    return unexpected(
        DecodeError{"frame data must be 4120 bytes, not " + std::to_string(data.size())});
  }
  auto header = decode_frame_header(data);
  if (!header) return unexpected(std::move(header).error());
  return FrameView{*header, data.substr(kFrameHeaderSize)};
}

}  // namespace quire::replication
