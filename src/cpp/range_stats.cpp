// Built with -ffinite-math-only -fno-signed-zeros so that `v < m ? v : m`
// becomes a vector min. The finite check therefore must not use float
// comparisons (the compiler may assume them away): it tests the exponent bits.
#include "range_stats.hpp"

#include <stdexcept>

#include "float_bits.hpp"

namespace wvc {

namespace {

template <typename L>
RangeStats stats(const typename L::T* p, size_t b, size_t e) {
    float mn = FLT_MAX, mx = -FLT_MAX;
    uint32_t bad = 0;
    for (size_t i = b; i < e; ++i) {
        float v = L::at(p, i);
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
        bad |= uint32_t((bits_as<uint32_t>(v) & 0x7f800000u) == 0x7f800000u);
    }
    return {mn, mx, bad != 0};
}

}  // namespace

RangeStats range_stats(const void* data, DType dtype, size_t begin, size_t end) {
    switch (dtype) {
        case DType::F32: return stats<LoadF32>(static_cast<const float*>(data), begin, end);
        case DType::F16: return stats<LoadF16>(static_cast<const uint16_t*>(data), begin, end);
        case DType::BF16: return stats<LoadBF16>(static_cast<const uint16_t*>(data), begin, end);
        case DType::I8: return stats<LoadI8>(static_cast<const int8_t*>(data), begin, end);
    }
    throw std::invalid_argument("unsupported dtype");
}

}  // namespace wvc
