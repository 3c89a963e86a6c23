// Seeded orthogonal rotation of a matrix along its rows (the input dimension of
// a layer), applied before quantisation: real weight matrices often have a few
// outlier columns that set every row's scale; mixing columns spreads them out
// and the quantiser's levels are spent evenly (docs/format.md, "Rotation").
//
//   forward:  y = x · D · H        inverse:  x = y · H · D
//
// D = diag(s_j), random signs from the seed; H = block diagonal of normalised
// Sylvester-Hadamard matrices of `block` columns (a power of two dividing cols).
// H is symmetric and orthogonal, so the inverse needs no transpose.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "quantize.hpp"

namespace wvc {

// Largest power of two that divides cols (1 when cols is odd).
uint32_t rotation_block(size_t cols);

// s_j = +1 or -1 for j in [0, cols): the top bit of the j-th output of
// splitmix64 seeded with `seed` (1 -> -1).
std::vector<float> rotation_signs(size_t cols, uint64_t seed);

// dst (rows x cols float32) = src (any float dtype) rotated forward.
void rotate_forward(const MatrixView& src, float* dst, uint32_t block, uint64_t seed, int threads);

// Undo the rotation in place on a float32 matrix.
void rotate_inverse(float* data, size_t rows, size_t cols, uint32_t block, uint64_t seed, int threads);

}  // namespace wvc
