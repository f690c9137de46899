// A TCP stream whose WebSocket teardown lets the client read our close frame.
//
// When a WebSocket ends (a close handshake, or a protocol error such as a message over the
// limit), Beast tears the TCP connection down. Its stock teardown stops draining at the first
// read that would block (beast issue 1373), so a client still uploading gets a reset and loses
// the close frame we sent. This stream's teardown stops sending, then reads and discards until
// the client closes, for at most kDrainTime and kDrainBytes, and only then closes the socket.
#pragma once

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket/teardown.hpp>

#include <chrono>

namespace quire::server {

class DrainingStream : public boost::beast::tcp_stream {
 public:
  explicit DrainingStream(boost::beast::tcp_stream&& s) : boost::beast::tcp_stream(std::move(s)) {}
  DrainingStream(DrainingStream&&) = default;
};

namespace detail {
boost::asio::awaitable<void> drain_and_close(DrainingStream& stream);
}  // namespace detail

// Found by argument-dependent lookup in preference to Beast's overload for tcp_stream.
template <class TeardownHandler>
void async_teardown(boost::beast::role_type, DrainingStream& stream, TeardownHandler&& handler) {
  boost::asio::co_spawn(
      stream.get_executor(), detail::drain_and_close(stream),
      [h = std::forward<TeardownHandler>(handler)](std::exception_ptr) mutable {
        std::move(h)(boost::beast::error_code{});
      });
}

inline void teardown(boost::beast::role_type, DrainingStream& stream,
                     boost::beast::error_code& ec) {
  stream.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
  stream.socket().close(ec);
}

}  // namespace quire::server
