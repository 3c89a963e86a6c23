// Bit-level float helpers shared by the kernels (inline so loops vectorise).
#pragma once

#include <cstdint>
#include <cstring>

namespace wvc {

template <typename To, typename From>
inline To bits_as(From v) {
    static_assert(sizeof(To) == sizeof(From), "size mismatch");
    To out;
    std::memcpy(&out, &v, sizeof(To));
    return out;
}

// IEEE half -> float: move exponent and mantissa into float position and rescale
// by 2^112 (exact for normal and subnormal halves); Inf/NaN get the float
// all-ones exponent.
inline float half_bits_to_float(uint16_t h) {
    uint32_t sign = uint32_t(h & 0x8000u) << 16;
    uint32_t em = h & 0x7fffu;
    uint32_t scaled = bits_as<uint32_t>(bits_as<float>(em << 13) * 0x1.0p112f);
    uint32_t special = 0u - uint32_t(em >= 0x7c00u);  // all ones for Inf/NaN; no branch
    uint32_t mag = (scaled & ~special) | (((em << 13) | 0x7f800000u) & special);
    return bits_as<float>(mag | sign);
}

inline float bfloat16_bits_to_float(uint16_t b) { return bits_as<float>(uint32_t(b) << 16); }

// Element loaders, one per input dtype, all producing float.
struct LoadF32 {
    using T = float;
    static float at(const T* p, size_t i) { return p[i]; }
};
struct LoadF16 {
    using T = uint16_t;
    static float at(const T* p, size_t i) { return half_bits_to_float(p[i]); }
};
struct LoadBF16 {
    using T = uint16_t;
    static float at(const T* p, size_t i) { return bfloat16_bits_to_float(p[i]); }
};
struct LoadI8 {
    using T = int8_t;
    static float at(const T* p, size_t i) { return float(p[i]); }
};

}  // namespace wvc
