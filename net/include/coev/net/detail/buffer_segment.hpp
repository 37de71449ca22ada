// coev/net/detail/buffer_segment.hpp
// What a buffer is made of, visible so that the buffer's fast paths can be inline.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <sys/types.h>

namespace coev::net {
namespace detail {

enum class storage_kind : std::uint8_t { owned, reference, file };

struct storage {
    std::uint32_t refs = 1;
    storage_kind kind = storage_kind::owned;
    std::uint8_t size_class = 0;  // owned: index into the block pool, or no_class
    std::size_t cap = 0;          // owned: bytes of data[]; file: bytes materialised
    std::byte* base = nullptr;    // owned: data[]; reference: the user's bytes; file: a copy
    std::function<void()> release;  // reference
    int fd = -1;                  // file
    off_t file_offset = 0;        // file: where segment offset 0 lies in the file
};

struct segment {
    segment* next = nullptr;
    storage* st = nullptr;
    std::size_t off = 0;  // first byte, relative to st->base (or to st->file_offset)
    std::size_t len = 0;
};

/// Bytes a segment can still take at its end: only an owned block nobody else shares.
inline std::size_t room(const segment* g) noexcept {
    if (!g || g->st->kind != storage_kind::owned || g->st->refs != 1) return 0;
    return g->st->cap - g->off - g->len;
}

}  // namespace detail
}  // namespace coev::net
