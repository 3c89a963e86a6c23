#include "layout.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

namespace wvc {

namespace {
uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }
}  // namespace

FrameLayout::Tile FrameLayout::tile(uint32_t index) const {
    const uint32_t gy = index / grid_cols(), gx = index % grid_cols();
    Tile t;
    t.r0 = size_t(gy) * tile_h;
    t.c0 = size_t(gx) * tile_w;
    t.h = size_t(std::min<uint64_t>(tile_h, rows - t.r0));
    t.w = size_t(std::min<uint64_t>(tile_w, cols - t.c0));
    return t;
}

void FrameLayout::validate() const {
    auto fail = [this](const char* what) {
        throw std::invalid_argument(std::string("invalid frame layout (") + what + ") for " +
                                    std::to_string(rows) + "x" + std::to_string(cols) +
                                    " matrix: tile " + std::to_string(tile_h) + "x" +
                                    std::to_string(tile_w) + ", frame " +
                                    std::to_string(frame_h) + "x" + std::to_string(frame_w));
    };
    if (rows == 0 || cols == 0) fail("empty matrix");
    if (tile_h == 0 || tile_w == 0) fail("empty tile");
    if (frame_h < tile_h || frame_w < tile_w) fail("frame smaller than tile");
    if (frame_h > kMaxFrameSide || frame_w > kMaxFrameSide) fail("frame too large");
    if (frame_h < kMinFrameSide || frame_w < kMinFrameSide) fail("frame too small");
    if (ceil_div(rows, tile_h) > 0xffffu || ceil_div(cols, tile_w) > 0xffffu) fail("too many tiles");
}

FrameLayout make_layout(uint64_t rows, uint64_t cols, uint32_t max_frame_side, uint32_t min_side) {
    if (rows == 0 || cols == 0) throw std::invalid_argument("cannot lay out an empty matrix");
    if (max_frame_side < min_side || max_frame_side > kMaxFrameSide)
        throw std::invalid_argument("max_frame_side must be in " + std::to_string(min_side) + ".." +
                                    std::to_string(kMaxFrameSide) + ", got " +
                                    std::to_string(max_frame_side));
    FrameLayout layout;
    layout.rows = rows;
    layout.cols = cols;
    layout.tile_h = uint32_t(ceil_div(rows, ceil_div(rows, max_frame_side)));
    layout.tile_w = uint32_t(ceil_div(cols, ceil_div(cols, max_frame_side)));
    layout.frame_h = std::max(layout.tile_h, min_side);
    layout.frame_w = std::max(layout.tile_w, min_side);
    layout.validate();
    return layout;
}

void pad_frame(uint8_t* plane, ptrdiff_t stride, size_t h, size_t w, size_t frame_h,
               size_t frame_w) {
    if (w < frame_w) {
        for (size_t r = 0; r < h; ++r) {
            uint8_t* row = plane + ptrdiff_t(r) * stride;
            std::memset(row + w, row[w - 1], frame_w - w);
        }
    }
    for (size_t r = h; r < frame_h; ++r)
        std::memcpy(plane + ptrdiff_t(r) * stride, plane + ptrdiff_t(h - 1) * stride, frame_w);
}

}  // namespace wvc
