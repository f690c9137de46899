#include "server/draining_stream.h"

#include <boost/asio/as_tuple.hpp>

namespace quire::server::detail {

namespace {
constexpr auto kDrainTime = std::chrono::seconds(2);
constexpr std::size_t kDrainBytes = 64u << 20;
}  // namespace

boost::asio::awaitable<void> drain_and_close(DrainingStream& stream) {
  namespace asio = boost::asio;
  boost::system::error_code ec;
  auto& socket = stream.socket();
  socket.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  stream.expires_after(kDrainTime);
  static thread_local char sink[16 * 1024];
  std::size_t drained = 0;
  while (!ec && drained < kDrainBytes) {
    std::size_t n = 0;
    std::tie(ec, n) =
        co_await stream.async_read_some(asio::buffer(sink), asio::as_tuple(asio::use_awaitable));
    drained += n;
  }
  socket.close(ec);
}

}  // namespace quire::server::detail
