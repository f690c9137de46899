// gRPC-Web framing: see grpc_web.h.
#include "protocol/replication/grpc_web.h"

#include <array>
#include <cctype>

namespace quire::replication {

const char* grpc_status_name(GrpcStatus status) {
  switch (status) {
    case GrpcStatus::kOk:
      return "OK";
    case GrpcStatus::kCancelled:
      return "CANCELLED";
    case GrpcStatus::kUnknown:
      return "UNKNOWN";
    case GrpcStatus::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case GrpcStatus::kDeadlineExceeded:
      return "DEADLINE_EXCEEDED";
    case GrpcStatus::kNotFound:
      return "NOT_FOUND";
    case GrpcStatus::kAlreadyExists:
      return "ALREADY_EXISTS";
    case GrpcStatus::kPermissionDenied:
      return "PERMISSION_DENIED";
    case GrpcStatus::kResourceExhausted:
      return "RESOURCE_EXHAUSTED";
    case GrpcStatus::kFailedPrecondition:
      return "FAILED_PRECONDITION";
    case GrpcStatus::kAborted:
      return "ABORTED";
    case GrpcStatus::kOutOfRange:
      return "OUT_OF_RANGE";
    case GrpcStatus::kUnimplemented:
      return "UNIMPLEMENTED";
    case GrpcStatus::kInternal:
      return "INTERNAL";
    case GrpcStatus::kUnavailable:
      return "UNAVAILABLE";
    case GrpcStatus::kDataLoss:
      return "DATA_LOSS";
    case GrpcStatus::kUnauthenticated:
      return "UNAUTHENTICATED";
  }
  return "UNKNOWN_STATUS";
}

std::span<const HeaderField> grpc_web_response_headers() {
  static constexpr std::array<HeaderField, 1> kHeaders{{{"content-type", kGrpcWebContentType}}};
  return kHeaders;
}

Expected<std::vector<GrpcWebFrame>, GrpcWebError> split_grpc_web_frames(
    std::string_view body, std::size_t max_frame_bytes) {
  std::vector<GrpcWebFrame> frames;
  std::size_t pos = 0;
  while (pos < body.size()) {
    const std::size_t left = body.size() - pos;
    if (left < kFramePrefixSize) {
      return unexpected(GrpcWebError{"gRPC-Web frame prefix truncated: " + std::to_string(left) +
                                     " of 5 bytes at offset " + std::to_string(pos)});
    }
    const auto flag = static_cast<std::uint8_t>(body[pos]);
    std::uint32_t len = 0;
    for (std::size_t i = 1; i < kFramePrefixSize; ++i) {
      len = (len << 8) | static_cast<std::uint8_t>(body[pos + i]);
    }
    if (flag & kCompressedFlagBit) {
      return unexpected(GrpcWebError{
          "compressed gRPC-Web frames are not supported (no grpc-encoding was negotiated)"});
    }
    if ((flag & ~kTrailerFrameFlag) != 0) {
      return unexpected(GrpcWebError{"unknown gRPC-Web frame flag " + std::to_string(flag)});
    }
    if (len > max_frame_bytes) {
      return unexpected(GrpcWebError{"gRPC-Web frame of " + std::to_string(len) +
                                     " bytes exceeds the limit of " +
                                     std::to_string(max_frame_bytes)});
    }
    if (len > left - kFramePrefixSize) {
      return unexpected(GrpcWebError{"gRPC-Web frame truncated: " + std::to_string(len) +
                                     " bytes announced, " +
                                     std::to_string(left - kFramePrefixSize) + " present"});
    }
    frames.push_back({flag == kTrailerFrameFlag, body.substr(pos + kFramePrefixSize, len)});
    pos += kFramePrefixSize + len;
  }
  return frames;
}

Expected<std::vector<std::string_view>, GrpcWebError> parse_grpc_web_request(
    std::string_view body, std::size_t max_message_bytes) {
  auto frames = split_grpc_web_frames(body, max_message_bytes);
  if (!frames) return unexpected(std::move(frames).error());
  std::vector<std::string_view> messages;
  messages.reserve(frames->size());
  for (const GrpcWebFrame& f : *frames) {
    if (f.trailers) return unexpected(GrpcWebError{"a request must not carry a trailer frame"});
    messages.push_back(f.payload);
  }
  return messages;
}

Expected<std::string_view, GrpcWebError> parse_unary_grpc_web_request(
    std::string_view body, std::size_t max_message_bytes) {
  auto messages = parse_grpc_web_request(body, max_message_bytes);
  if (!messages) return unexpected(std::move(messages).error());
  if (messages->size() != 1) {
    return unexpected(GrpcWebError{"a unary request must hold exactly one message, not " +
                                   std::to_string(messages->size())});
  }
  return messages->front();
}

namespace {

void append_prefix(std::string& out, std::uint8_t flag, std::size_t len) {
  // A response message longer than 4 GiB cannot be framed; callers bound batches far below it.
  const auto n = static_cast<std::uint32_t>(len);
  out.push_back(static_cast<char>(flag));
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((n >> shift) & 0xFF));
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

void append_grpc_web_data_frame(std::string& out, std::string_view message) {
  append_prefix(out, kDataFrameFlag, message.size());
  out.append(message);
}

void append_grpc_web_trailers(std::string& out, GrpcStatus status, std::string_view message) {
  std::string text = "grpc-status:" + std::to_string(static_cast<int>(status)) + "\r\n";
  if (!message.empty()) text += "grpc-message:" + percent_encode_grpc_message(message) + "\r\n";
  append_prefix(out, kTrailerFrameFlag, text.size());
  out += text;
}

std::string grpc_web_response(std::span<const std::string> messages, GrpcStatus status,
                              std::string_view message) {
  std::string out;
  std::size_t size = 64;
  for (const std::string& m : messages) size += kFramePrefixSize + m.size();
  out.reserve(size);
  for (const std::string& m : messages) append_grpc_web_data_frame(out, m);
  append_grpc_web_trailers(out, status, message);
  return out;
}

std::string grpc_web_response(std::string_view message) {
  std::string out;
  out.reserve(kFramePrefixSize + message.size() + 24);
  append_grpc_web_data_frame(out, message);
  append_grpc_web_trailers(out, GrpcStatus::kOk, {});
  return out;
}

std::string grpc_web_error(GrpcStatus status, std::string_view message) {
  std::string out;
  append_grpc_web_trailers(out, status, message);
  return out;
}

std::string percent_encode_grpc_message(std::string_view message) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(message.size());
  for (char ch : message) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c <= 0x7E && c != '%') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
  return out;
}

std::string percent_decode_grpc_message(std::string_view encoded) {
  std::string out;
  out.reserve(encoded.size());
  for (std::size_t i = 0; i < encoded.size(); ++i) {
    if (encoded[i] == '%' && i + 2 < encoded.size()) {
      const int hi = hex_value(encoded[i + 1]);
      const int lo = hex_value(encoded[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(encoded[i]);
  }
  return out;
}

Expected<GrpcTrailers, GrpcWebError> parse_grpc_web_trailers(std::string_view payload) {
  GrpcTrailers t;
  std::size_t pos = 0;
  while (pos < payload.size()) {
    std::size_t eol = payload.find("\r\n", pos);
    if (eol == std::string_view::npos) eol = payload.size();
    const std::string_view line = payload.substr(pos, eol - pos);
    pos = eol == payload.size() ? eol : eol + 2;
    if (line.empty()) continue;
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      return unexpected(GrpcWebError{"trailer line without a colon: " + std::string(line)});
    }
    std::string name(line.substr(0, colon));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
      value.remove_prefix(1);
    }
    if (name == "grpc-status") {
      int status = 0;
      if (value.empty() || value.size() > 3) {
        return unexpected(GrpcWebError{"bad grpc-status: " + std::string(value)});
      }
      for (char c : value) {
        if (c < '0' || c > '9') {
          return unexpected(GrpcWebError{"bad grpc-status: " + std::string(value)});
        }
        status = status * 10 + (c - '0');
      }
      t.status = status;
    } else if (name == "grpc-message") {
      t.message = percent_decode_grpc_message(value);
    }
  }
  return t;
}

}  // namespace quire::replication
