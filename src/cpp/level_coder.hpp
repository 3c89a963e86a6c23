// Lossless coder of int8 levels (the .wvc int8 storage, coder "rans"): a static
// rANS code with one symbol table per class of rows, rows grouped by their mean
// magnitude. Rows of unequal spread (embeddings, LSTM gates, wide classifiers)
// then each get statistics close to their own; one class is the order-0 code.
// Stream layout: docs/format.md, *The rans coder*.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace wvc {

constexpr int kMaxLevelClasses = 16;
constexpr int kLevelProbBits = 14;  // symbol frequencies sum to 1 << kLevelProbBits
// no symbol may take more than 255/256 of a table: every decoded level then costs
// at least ~0.0045 bits, which bounds how many levels a stream can produce
constexpr uint32_t kMaxLevelFreq = (1u << kLevelProbBits) - (1u << kLevelProbBits) / 256;

// The most levels a stream of `bytes` bytes can decode to (checked before any
// allocation by readers of untrusted files).
uint64_t max_levels_for_bytes(uint64_t bytes);
// Throws DecoderError when rows x cols levels are more than that.
void check_level_count(uint64_t bytes, size_t rows, size_t cols);

// Codes a rows x cols matrix of levels (row-major); picks the number of row
// classes (1, 2, 4, 8 or 16) whose estimated size is smallest.
std::vector<uint8_t> encode_levels(const int8_t* levels, size_t rows, size_t cols);

// Decodes exactly rows x cols levels into `out`; throws DecoderError when the
// stream is malformed, too short, too long, or does not end where it began.
void decode_levels(const uint8_t* data, size_t size, int8_t* out, size_t rows, size_t cols);

}  // namespace wvc
