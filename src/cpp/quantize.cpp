#include "quantize.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "float_bits.hpp"
#include "parallel.hpp"
#include "range_stats.hpp"

namespace wvc {

namespace {

template <typename Fn>
auto dispatch_dtype(DType dtype, Fn&& fn) {
    switch (dtype) {
        case DType::F32: return fn(LoadF32{});
        case DType::F16: return fn(LoadF16{});
        case DType::BF16: return fn(LoadBF16{});
        case DType::I8: return fn(LoadI8{});
    }
    throw std::invalid_argument("unsupported dtype code " + std::to_string(int(dtype)));
}

RangeStats merge(RangeStats a, const RangeStats& b) {
    a.min = std::min(a.min, b.min);
    a.max = std::max(a.max, b.max);
    a.nonfinite = a.nonfinite || b.nonfinite;
    return a;
}

template <typename L>
[[noreturn]] void throw_nonfinite(const typename L::T* p, size_t n, size_t cols) {
    for (size_t i = 0; i < n; ++i) {
        float v = L::at(p, i);
        if (!std::isfinite(v)) {
            throw std::invalid_argument(
                std::string("weights must be finite, found ") + (std::isnan(v) ? "NaN" : "Inf") +
                " at row " + std::to_string(i / cols) + ", column " + std::to_string(i % cols));
        }
    }
    throw std::invalid_argument("weights must be finite");
}

void scale_for_range(float mn, float mx, int bits, bool symmetric, float min_step, float& scale,
                     int32_t& zp) {
    const int qmax = (1 << (bits - 1)) - 1;
    if (symmetric) {
        double amax = std::max(std::fabs(double(mn)), std::fabs(double(mx)));
        scale = amax > 0 ? std::max(float(amax / qmax), min_step) : 1.0f;
        zp = 0;
    } else {
        const int qmin = -(1 << (bits - 1));
        double lo = std::min(double(mn), 0.0), hi = std::max(double(mx), 0.0);
        scale = hi > lo ? std::max(float((hi - lo) / double(qmax - qmin)), min_step) : 1.0f;
        scale = std::max(scale, FLT_MIN);  // keep 1/scale finite
        long z = qmin - long(std::nearbyint(lo / double(scale)));  // half to even, like q
        zp = int32_t(std::clamp<long>(z, qmin, qmax));
    }
    scale = std::max(scale, FLT_MIN);
}

// Round half to even for |x| < 2^22 without a libm call, so the loop
// vectorises with plain SSE2: adding 1.5 * 2^23 leaves no fraction bits and the
// FPU rounds to nearest even. Needs strict IEEE evaluation (no -ffast-math).
inline float round_half_even(float x) {
    const float magic = 12582912.0f;
    return (x + magic) - magic;
}

struct RowQuant {
    float inv_scale, lo, hi;
    int32_t zp;
    int step;
};

RowQuant row_quant(const QuantParams& params, size_t row) {
    size_t k = params.per_channel() ? row : 0;
    RowQuant rq;
    rq.inv_scale = 1.0f / params.scale[k];
    rq.zp = params.zero_point[k];
    rq.lo = float(params.qmin() - rq.zp);
    rq.hi = float(params.qmax() - rq.zp);
    rq.step = 1 << params.sample_shift();
    return rq;
}

template <typename L>
void quantize_row_to_samples(const typename L::T* src, size_t n, const RowQuant& rq,
                             uint8_t* out) {
    for (size_t c = 0; c < n; ++c) {
        float x = L::at(src, c) * rq.inv_scale;
        x = std::min(std::max(x, rq.lo), rq.hi);
        int q = int(round_half_even(x)) + rq.zp;
        out[c] = uint8_t(128 + q * rq.step);
    }
}

template <typename L>
void quantize_row_to_levels(const typename L::T* src, size_t n, const RowQuant& rq, int8_t* out) {
    for (size_t c = 0; c < n; ++c) {
        float x = L::at(src, c) * rq.inv_scale;
        x = std::min(std::max(x, rq.lo), rq.hi);
        out[c] = int8_t(int(round_half_even(x)) + rq.zp);
    }
}

template <typename OutT, typename Convert>
void levels_to_values(const int8_t* q, size_t n, float scale, int32_t zp, OutT* out,
                      Convert convert) {
    for (size_t c = 0; c < n; ++c) out[c] = convert(scale * float(int(q[c]) - zp));
}

void store_row(const int8_t* levels, size_t n, float scale, int32_t zp, void* dst, OutType out) {
    switch (out) {
        case OutType::I8Levels:
            std::memcpy(dst, levels, n);
            return;
        case OutType::F32:
            levels_to_values(levels, n, scale, zp, static_cast<float*>(dst), [](float v) { return v; });
            return;
        case OutType::F16:
            levels_to_values(levels, n, scale, zp, static_cast<uint16_t*>(dst), float_to_half);
            return;
        case OutType::BF16:
            levels_to_values(levels, n, scale, zp, static_cast<uint16_t*>(dst), float_to_bfloat16);
            return;
    }
    throw std::invalid_argument("unsupported output type");
}

size_t out_size(OutType out) {
    switch (out) {
        case OutType::I8Levels: return 1;
        case OutType::F32: return 4;
        case OutType::F16:
        case OutType::BF16: return 2;
    }
    return 0;
}

}  // namespace

const char* dtype_name(DType dtype) {
    switch (dtype) {
        case DType::F32: return "float32";
        case DType::F16: return "float16";
        case DType::BF16: return "bfloat16";
        case DType::I8: return "int8";
    }
    return "unknown";
}

size_t dtype_size(DType dtype) {
    switch (dtype) {
        case DType::F32: return 4;
        case DType::F16:
        case DType::BF16: return 2;
        case DType::I8: return 1;
    }
    return 0;
}

uint16_t float_to_half(float f) {
    // Round to nearest even, overflow to Inf, subnormals through a float addition
    // that aligns the half subnormal step (2^-24) with the float's last bit.
    uint32_t x = bits_as<uint32_t>(f);
    uint16_t sign = uint16_t((x >> 16) & 0x8000u);
    x &= 0x7fffffffu;
    if (x >= 0x7f800000u) return sign | (x > 0x7f800000u ? 0x7e00u : 0x7c00u);
    if (x >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to Inf
    if (x < 0x38800000u) {                        // below 2^-14: half subnormal or zero
        float v = bits_as<float>(x) + 0.5f;
        return sign | uint16_t(bits_as<uint32_t>(v) - bits_as<uint32_t>(0.5f));
    }
    uint32_t odd = (x >> 13) & 1u;
    x += (uint32_t(15 - 127) << 23) + 0xfffu + odd;
    return sign | uint16_t(x >> 13);
}

uint16_t float_to_bfloat16(float f) {
    uint32_t x = bits_as<uint32_t>(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 0x40u);  // quiet NaN
    x += 0x7fffu + ((x >> 16) & 1u);
    return uint16_t(x >> 16);
}

void QuantParams::validate(size_t rows) const {
    if (bits < 2 || bits > 8)
        throw std::invalid_argument("bits must be in 2..8, got " + std::to_string(bits));
    if (scale.empty() || scale.size() != zero_point.size())
        throw std::invalid_argument("scale and zero_point must be non-empty and of equal length");
    if (scale.size() != 1 && scale.size() != rows)
        throw std::invalid_argument("expected 1 scale (per tensor) or " + std::to_string(rows) +
                                    " (per channel), got " + std::to_string(scale.size()));
    for (size_t i = 0; i < scale.size(); ++i) {
        if (!(scale[i] > 0.0f) || !std::isfinite(scale[i]) || !std::isfinite(1.0f / scale[i]))
            throw std::invalid_argument("scale[" + std::to_string(i) +
                                        "] must be finite and positive with a finite inverse");
        if (zero_point[i] < qmin() || zero_point[i] > qmax())
            throw std::invalid_argument("zero_point[" + std::to_string(i) + "] = " +
                                        std::to_string(zero_point[i]) + " is outside " +
                                        std::to_string(qmin()) + ".." + std::to_string(qmax()));
    }
}

QuantParams compute_params(const MatrixView& src, const QuantSpec& spec, int threads) {
    if (spec.bits < 2 || spec.bits > 8)
        throw std::invalid_argument("bits must be in 2..8, got " + std::to_string(spec.bits));
    if (!(spec.min_step >= 0.0f) || !std::isfinite(spec.min_step))
        throw std::invalid_argument("min_step must be finite and >= 0, got " + std::to_string(spec.min_step));
    const size_t n = src.rows * src.cols;
    if (n == 0) throw std::invalid_argument("cannot quantise an empty tensor");
    QuantParams params;
    params.bits = spec.bits;
    params.symmetric = spec.symmetric;

    return dispatch_dtype(src.dtype, [&](auto loader) {
        using L = decltype(loader);
        const auto* p = static_cast<const typename L::T*>(src.data);
        if (src.dtype == DType::I8) {
            // Already quantised: keep the levels, full int8 range, scale 1.
            if (spec.bits != 8)
                throw std::invalid_argument("int8 input is taken as 8-bit levels; bits must be 8");
            params.symmetric = false;
            params.scale = {1.0f};
            params.zero_point = {0};
            return params;
        }
        const size_t rows = spec.per_channel ? src.rows : 1;
        const size_t row_len = spec.per_channel ? src.cols : n;
        std::vector<RangeStats> stats;
        if (spec.per_channel) {
            stats.resize(rows);
            parallel_for(rows, threads, std::max<size_t>(1, (1u << 16) / std::max<size_t>(1, row_len)),
                         [&](size_t b, size_t e) {
                             for (size_t r = b; r < e; ++r)
                                 stats[r] = range_stats(p, src.dtype, r * row_len, (r + 1) * row_len);
                         });
        } else {
            // One tensor-wide range, reduced from parallel chunks.
            const size_t chunk = size_t(1) << 16;
            std::vector<RangeStats> parts((n + chunk - 1) / chunk);
            parallel_for(parts.size(), threads, 4, [&](size_t b, size_t e) {
                for (size_t k = b; k < e; ++k)
                    parts[k] = range_stats(p, src.dtype, k * chunk, std::min(n, (k + 1) * chunk));
            });
            RangeStats all;
            for (const auto& s : parts) all = merge(all, s);
            stats.push_back(all);
        }
        params.scale.resize(rows);
        params.zero_point.resize(rows);
        for (size_t r = 0; r < rows; ++r) {
            if (stats[r].nonfinite) throw_nonfinite<L>(p, n, src.cols);
            scale_for_range(stats[r].min, stats[r].max, spec.bits, spec.symmetric, spec.min_step,
                            params.scale[r], params.zero_point[r]);
        }
        return params;
    });
}

void quantize_block_to_plane(const MatrixView& src, const QuantParams& params, size_t r0,
                             size_t c0, size_t h, size_t w, uint8_t* plane, ptrdiff_t stride) {
    dispatch_dtype(src.dtype, [&](auto loader) {
        using L = decltype(loader);
        const auto* p = static_cast<const typename L::T*>(src.data);
        for (size_t r = 0; r < h; ++r) {
            RowQuant rq = row_quant(params, r0 + r);
            quantize_row_to_samples<L>(p + (r0 + r) * src.cols + c0, w, rq, plane + ptrdiff_t(r) * stride);
        }
        return 0;
    });
}

void quantize_to_levels(const MatrixView& src, const QuantParams& params, int8_t* out, int threads) {
    dispatch_dtype(src.dtype, [&](auto loader) {
        using L = decltype(loader);
        const auto* p = static_cast<const typename L::T*>(src.data);
        if (src.rows == 1 || !params.per_channel()) {
            // One quantiser for all elements: split the flat range.
            const size_t n = src.rows * src.cols;
            RowQuant rq = row_quant(params, 0);
            parallel_for(n, threads, size_t(1) << 18, [&](size_t b, size_t e) {
                quantize_row_to_levels<L>(p + b, e - b, rq, out + b);
            });
        } else {
            parallel_for(src.rows, threads, std::max<size_t>(1, (1u << 18) / src.cols), [&](size_t b, size_t e) {
                for (size_t r = b; r < e; ++r)
                    quantize_row_to_levels<L>(p + r * src.cols, src.cols, row_quant(params, r),
                                              out + r * src.cols);
            });
        }
        return 0;
    });
}

void plane_block_to_output(const uint8_t* plane, ptrdiff_t stride, size_t h, size_t w,
                           const QuantParams& params, size_t r0, size_t c0, void* dst,
                           OutType out_type, size_t dst_cols) {
    const int shift = params.sample_shift();
    const int half = (1 << shift) >> 1;
    const int qmin = params.qmin(), qmax = params.qmax();
    const size_t esize = out_size(out_type);
    std::vector<int8_t> levels(w);
    for (size_t r = 0; r < h; ++r) {
        const uint8_t* s = plane + ptrdiff_t(r) * stride;
        for (size_t c = 0; c < w; ++c) {
            // Arithmetic shift of a negative int is floor division (GCC, and C++20).
            int q = (int(s[c]) - 128 + half) >> shift;
            levels[c] = int8_t(std::min(std::max(q, qmin), qmax));
        }
        size_t k = params.per_channel() ? r0 + r : 0;
        char* out = static_cast<char*>(dst) + ((r0 + r) * dst_cols + c0) * esize;
        store_row(levels.data(), w, params.scale[k], params.zero_point[k], out, out_type);
    }
}

void dequantize_levels(const int8_t* levels, size_t rows, size_t cols, const QuantParams& params,
                       void* dst, OutType out_type, int threads) {
    const size_t esize = out_size(out_type);
    if (rows == 1 || !params.per_channel()) {
        const size_t n = rows * cols;
        parallel_for(n, threads, size_t(1) << 18, [&](size_t b, size_t e) {
            store_row(levels + b, e - b, params.scale[0], params.zero_point[0],
                      static_cast<char*>(dst) + b * esize, out_type);
        });
        return;
    }
    parallel_for(rows, threads, std::max<size_t>(1, (1u << 18) / cols), [&](size_t b, size_t e) {
        for (size_t r = b; r < e; ++r)
            store_row(levels + r * cols, cols, params.scale[r], params.zero_point[r],
                      static_cast<char*>(dst) + r * cols * esize, out_type);
    });
}

}  // namespace wvc
