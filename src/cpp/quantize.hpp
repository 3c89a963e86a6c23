// Quantisation kernels: float weights <-> integer levels <-> 8-bit picture samples.
//
// A tensor is seen as a row-major matrix (rows x cols); "per channel" means one
// scale per row (axis 0, the output channels).
//
// Integer levels q of a b-bit quantiser (2 <= b <= 8):
//   symmetric:  q in [-(2^(b-1) - 1), 2^(b-1) - 1], zero point 0, scale = max|w| / qmax
//   asymmetric: q in [-2^(b-1), 2^(b-1) - 1], zero point z chosen so that 0.0 is exact
//   with QuantSpec::min_step > 0 the scale is max(that scale, min_step)
//   q = clamp(rint(w * (1 / scale)) + z, qmin, qmax)   (rint: round half to even)
//   w' = scale * (q - z)
// Picture samples are offset binary with the levels spread over the 8-bit range,
// so that small codec errors do not move a sample to a neighbouring level:
//   sample = 128 + q * 2^(8-b)          (for b = 8: sample = q XOR 0x80)
//   q      = clamp(floor((sample - 128) / 2^(8-b) + 1/2), qmin, qmax)
// "Dense" samples (lossless coding, where no codec error needs absorbing) keep
// the levels packed instead, sample = 128 + q: neighbouring samples then differ
// by level differences, not 2^(8-b) times them, and cost far fewer bits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace wvc {

enum class DType : uint8_t { F32 = 1, F16 = 2, BF16 = 3, I8 = 4 };

const char* dtype_name(DType dtype);
size_t dtype_size(DType dtype);

struct QuantSpec {
    int bits = 8;
    bool symmetric = true;
    bool per_channel = false;
    // Smallest scale (quantisation step) a tensor or row may get: max-abs scales
    // finer than it are raised to it, so narrow channels share one absolute step
    // instead of each spreading its levels over its own range. 0: plain max-abs.
    float min_step = 0.0f;
};

// Parameters of one quantiser: one entry per tensor, or one per row.
struct QuantParams {
    int bits = 8;
    bool symmetric = true;
    bool dense = false;  // samples 128 + q instead of 128 + q * 2^(8-bits)
    std::vector<float> scale;
    std::vector<int32_t> zero_point;

    int qmin() const { return symmetric ? -((1 << (bits - 1)) - 1) : -(1 << (bits - 1)); }
    int qmax() const { return (1 << (bits - 1)) - 1; }
    bool per_channel() const { return scale.size() > 1; }
    int sample_shift() const { return dense ? 0 : 8 - bits; }
    // Checks the invariants (bit width, finite positive scales, zero points in
    // range, one entry or `rows` entries); throws std::invalid_argument.
    void validate(size_t rows) const;
};

// A read-only view of a row-major matrix of any supported dtype.
struct MatrixView {
    const void* data = nullptr;
    DType dtype = DType::F32;
    size_t rows = 0;
    size_t cols = 0;
};

// Scan the weights once: finite check, then scales and zero points.
// Throws std::invalid_argument on NaN or Inf (naming the first bad index).
// An int8 matrix is "already quantised": scale 1, zero point 0, levels kept as is
// (bits must be 8 and symmetric; -128 is rejected since it has no symmetric level).
QuantParams compute_params(const MatrixView& src, const QuantSpec& spec, int threads);

// Quantise the block [r0, r0+h) x [c0, c0+w) of src into picture samples at
// `plane` (row stride `stride` bytes). The block is written as it is, the rest of
// the plane is not touched.
void quantize_block_to_plane(const MatrixView& src, const QuantParams& params, size_t r0,
                             size_t c0, size_t h, size_t w, uint8_t* plane, ptrdiff_t stride);

// Quantise the whole matrix to integer levels (int8), for the user-facing quantize().
void quantize_to_levels(const MatrixView& src, const QuantParams& params, int8_t* out, int threads);

// Picture samples of the block back to levels, or to dequantised values, written
// into the destination matrix (row length dst_cols) at (r0, c0).
enum class OutType : uint8_t { I8Levels = 0, F32 = 1, F16 = 2, BF16 = 3 };
void plane_block_to_output(const uint8_t* plane, ptrdiff_t stride, size_t h, size_t w,
                           const QuantParams& params, size_t r0, size_t c0, void* dst,
                           OutType out_type, size_t dst_cols);

// Levels (int8 matrix) to values; the user-facing dequantize().
void dequantize_levels(const int8_t* levels, size_t rows, size_t cols, const QuantParams& params,
                       void* dst, OutType out_type, int threads);

// Scalar conversions to the 16-bit output types (round to nearest even).
uint16_t float_to_half(float f);
uint16_t float_to_bfloat16(float f);

}  // namespace wvc
