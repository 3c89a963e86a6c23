// A minimal fork-join loop over [0, n): the kernels here are memory-bound and
// short, so plain std::thread per call is enough (no pool to keep alive).
#pragma once

#include <algorithm>
#include <cstddef>
#include <exception>
#include <thread>
#include <vector>

namespace wvc {

inline int resolve_threads(int threads) {
    if (threads > 0) return threads;
    unsigned hw = std::thread::hardware_concurrency();
    return hw ? static_cast<int>(hw) : 1;
}

// Calls fn(begin, end) on contiguous chunks; chunks smaller than min_chunk are not
// worth a thread. Exceptions from workers are rethrown in the caller.
template <typename Fn>
void parallel_for(size_t n, int threads, size_t min_chunk, Fn&& fn) {
    size_t workers = static_cast<size_t>(resolve_threads(threads));
    workers = std::min(workers, std::max<size_t>(1, n / std::max<size_t>(1, min_chunk)));
    if (workers <= 1) {
        fn(size_t{0}, n);
        return;
    }
    std::vector<std::thread> pool;
    std::vector<std::exception_ptr> errors(workers);
    size_t chunk = (n + workers - 1) / workers;
    for (size_t t = 0; t < workers; ++t) {
        size_t b = t * chunk, e = std::min(n, b + chunk);
        if (b >= e) break;
        pool.emplace_back([&, t, b, e] {
            try {
                fn(b, e);
            } catch (...) {
                errors[t] = std::current_exception();
            }
        });
    }
    for (auto& th : pool) th.join();
    for (auto& err : errors)
        if (err) std::rethrow_exception(err);
}

}  // namespace wvc
