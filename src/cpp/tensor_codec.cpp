#include "tensor_codec.hpp"

namespace wvc {

EncodedMatrix encode_matrix(const HevcEncoder& encoder, const MatrixView& src,
                            const QuantParams& params, uint32_t max_frame_side) {
    params.validate(src.rows);
    EncodedMatrix out;
    out.layout = make_layout(src.rows, src.cols, max_frame_side, kMinFrameSide);
    const FrameLayout& layout = out.layout;
    out.stream = encoder.encode(layout.frame_w, layout.frame_h, layout.frame_count(),
                                [&](uint32_t index, uint8_t* plane, ptrdiff_t stride) {
                                    const auto t = layout.tile(index);
                                    quantize_block_to_plane(src, params, t.r0, t.c0, t.h, t.w,
                                                            plane, stride);
                                    pad_frame(plane, stride, t.h, t.w, layout.frame_h,
                                              layout.frame_w);
                                });
    return out;
}

void decode_matrix(HevcDecoder& decoder, const uint8_t* stream, size_t size,
                   const FrameLayout& layout, const QuantParams& params, void* dst,
                   OutType out_type) {
    layout.validate();
    params.validate(layout.rows);
    decoder.decode(stream, size, layout.frame_w, layout.frame_h, layout.frame_count(),
                   [&](uint32_t index, const uint8_t* plane, ptrdiff_t stride) {
                       const auto t = layout.tile(index);
                       plane_block_to_output(plane, stride, t.h, t.w, params, t.r0, t.c0, dst,
                                             out_type, layout.cols);
                   });
}

}  // namespace wvc
