// One matrix through the whole native path: quantise straight into picture
// planes, encode; decode, dequantise straight out of the decoded planes.
#pragma once

#include <cstdint>
#include <vector>

#include "hevc_decoder.hpp"
#include "hevc_encoder.hpp"
#include "layout.hpp"
#include "quantize.hpp"

namespace wvc {

struct EncodedMatrix {
    FrameLayout layout;
    std::vector<uint8_t> stream;  // Annex B HEVC, layout.frame_count() pictures
};

// Quantises src with `params` tile by tile into the encoder's picture buffer and
// codes the tiles as frames no larger than max_frame_side.
EncodedMatrix encode_matrix(const HevcEncoder& encoder, const MatrixView& src,
                            const QuantParams& params, uint32_t max_frame_side);

// Decodes `stream` and writes levels or dequantised values (out_type) into dst, a
// row-major layout.rows x layout.cols matrix.
void decode_matrix(HevcDecoder& decoder, const uint8_t* stream, size_t size,
                   const FrameLayout& layout, const QuantParams& params, void* dst,
                   OutType out_type);

}  // namespace wvc
