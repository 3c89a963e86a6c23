#include "rotation.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include "float_bits.hpp"
#include "parallel.hpp"

namespace wvc {

namespace {

uint64_t splitmix64(uint64_t& state) {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void check(size_t cols, uint32_t block) {
    if (block < 2 || (block & (block - 1)) != 0 || cols % block != 0)
        throw std::invalid_argument("rotation block " + std::to_string(block) +
                                    " must be a power of two >= 2 dividing the " +
                                    std::to_string(cols) + " columns");
}

// In-place normalised fast Walsh-Hadamard transform of each block of one row.
void hadamard_row(float* row, size_t cols, uint32_t block) {
    const float norm = 1.0f / std::sqrt(float(block));
    for (size_t b0 = 0; b0 < cols; b0 += block) {
        float* x = row + b0;
        for (uint32_t h = 1; h < block; h *= 2)
            for (uint32_t i = 0; i < block; i += 2 * h)
                for (uint32_t j = i; j < i + h; ++j) {
                    float a = x[j], c = x[j + h];
                    x[j] = a + c;
                    x[j + h] = a - c;
                }
        for (uint32_t j = 0; j < block; ++j) x[j] *= norm;
    }
}

float element(const MatrixView& src, size_t i) {
    switch (src.dtype) {
        case DType::F32: return static_cast<const float*>(src.data)[i];
        case DType::F16: return half_bits_to_float(static_cast<const uint16_t*>(src.data)[i]);
        case DType::BF16: return bfloat16_bits_to_float(static_cast<const uint16_t*>(src.data)[i]);
        default: throw std::invalid_argument("only float tensors can be rotated");
    }
}

}  // namespace

uint32_t rotation_block(size_t cols) {
    if (cols == 0) return 1;
    size_t b = cols & (~cols + 1);  // lowest set bit
    return b > (size_t(1) << 31) ? uint32_t(1) << 31 : uint32_t(b);
}

std::vector<float> rotation_signs(size_t cols, uint64_t seed) {
    std::vector<float> s(cols);
    uint64_t state = seed;
    for (size_t j = 0; j < cols; ++j) s[j] = (splitmix64(state) >> 63) ? -1.0f : 1.0f;
    return s;
}

void rotate_forward(const MatrixView& src, float* dst, uint32_t block, uint64_t seed, int threads) {
    check(src.cols, block);
    if (src.dtype == DType::I8) throw std::invalid_argument("only float tensors can be rotated");
    const std::vector<float> s = rotation_signs(src.cols, seed);
    const size_t cols = src.cols;
    parallel_for(src.rows, threads, 16, [&](size_t r0, size_t r1) {
        for (size_t r = r0; r < r1; ++r) {
            float* row = dst + r * cols;
            for (size_t j = 0; j < cols; ++j) {
                float v = element(src, r * cols + j);
                if (!std::isfinite(v))
                    throw std::invalid_argument("non-finite value at flat index " + std::to_string(r * cols + j));
                row[j] = v * s[j];
            }
            hadamard_row(row, cols, block);
        }
    });
}

void rotate_inverse(float* data, size_t rows, size_t cols, uint32_t block, uint64_t seed, int threads) {
    check(cols, block);
    const std::vector<float> s = rotation_signs(cols, seed);
    parallel_for(rows, threads, 16, [&](size_t r0, size_t r1) {
        for (size_t r = r0; r < r1; ++r) {
            float* row = data + r * cols;
            hadamard_row(row, cols, block);
            for (size_t j = 0; j < cols; ++j) row[j] *= s[j];
        }
    });
}

}  // namespace wvc
