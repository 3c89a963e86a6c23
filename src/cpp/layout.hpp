// Geometry of a matrix cut into frames (pictures of one HEVC stream).
//
// The matrix (rows x cols) is cut into a grid of equal tiles of tile_h x tile_w
// (the last row/column of tiles may be smaller). Every frame of a stream has the
// same size, frame_h x frame_w >= the tile, because the encoder needs at least
// min_side samples per side; the unused part of a frame repeats the tile's last
// row and column, which intra prediction codes almost for free.
#pragma once

#include <cstddef>
#include <cstdint>

namespace wvc {

struct FrameLayout {
    uint64_t rows = 0, cols = 0;
    uint32_t tile_h = 0, tile_w = 0;
    uint32_t frame_h = 0, frame_w = 0;

    uint32_t grid_rows() const { return uint32_t((rows + tile_h - 1) / tile_h); }
    uint32_t grid_cols() const { return uint32_t((cols + tile_w - 1) / tile_w); }
    uint32_t frame_count() const { return grid_rows() * grid_cols(); }

    struct Tile {
        size_t r0, c0, h, w;
    };
    Tile tile(uint32_t index) const;

    // Throws std::invalid_argument when the fields do not describe a valid
    // cutting of the matrix (used on layouts read from untrusted headers).
    void validate() const;
};

constexpr uint32_t kMaxFrameSide = 16384;  // libde265 stops at 65535; memory well before
constexpr uint32_t kMinFrameSide = 16;     // one 16x16 CTU

// Tiles no larger than max_frame_side per side, as equal as possible.
FrameLayout make_layout(uint64_t rows, uint64_t cols, uint32_t max_frame_side, uint32_t min_side);

// Replicate the last column of the tile into columns [w, frame_w) and the last row
// into rows [h, frame_h).
void pad_frame(uint8_t* plane, ptrdiff_t stride, size_t h, size_t w, size_t frame_h,
               size_t frame_w);

}  // namespace wvc
