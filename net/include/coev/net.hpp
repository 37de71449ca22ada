// coev/net.hpp
// Everything in coev-net: addresses, sockets, listeners, streams, buffers, buffered streams.
#pragma once

#include <coev/net/address.hpp>
#include <coev/net/buffer.hpp>
#include <coev/net/buffered_stream.hpp>
#include <coev/net/byte_stream.hpp>
#include <coev/net/listener.hpp>
#include <coev/net/rate_limit.hpp>
#include <coev/net/socket.hpp>
#include <coev/net/stream_pair.hpp>
#include <coev/net/stream_socket.hpp>
#include <coev/net/tcp_listener.hpp>
#include <coev/net/tcp_stream.hpp>
#include <coev/net/udp_socket.hpp>
#include <coev/net/unix_stream.hpp>
