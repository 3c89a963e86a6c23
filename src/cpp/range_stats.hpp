// Min, max and a finite check over a range of elements: the one pass over the
// weights that the scales need. Compiled on its own with flags that let GCC
// vectorise float min/max (see CMakeLists.txt).
#pragma once

#include <cfloat>
#include <cstddef>
#include <cstdint>

#include "quantize.hpp"

namespace wvc {

struct RangeStats {
    float min = FLT_MAX;
    float max = -FLT_MAX;
    bool nonfinite = false;
};

RangeStats range_stats(const void* data, DType dtype, size_t begin, size_t end);

}  // namespace wvc
