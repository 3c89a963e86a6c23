#include "level_coder.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>
#include <string>

#include "errors.hpp"

namespace wvc {

namespace {

constexpr uint32_t kProbScale = 1u << kLevelProbBits;
constexpr uint32_t kStateLow = 1u << 16;  // the state lives in [2^16, 2^32)
constexpr int kSymbols = 256;             // int8 levels, stored as level + 128

using Counts = std::array<uint64_t, kSymbols>;

struct Table {
    int lo = 0, hi = -1;  // symbol range (level + 128) with a frequency entry
    std::array<uint32_t, kSymbols> freq{};
    std::array<uint32_t, kSymbols> cum{};
};

// Frequencies summing to kProbScale, every present symbol at least 1, none above
// kMaxLevelFreq (a dominant symbol gives the excess to a neighbour).
Table normalise(const Counts& counts) {
    Table t;
    uint64_t total = 0;
    for (int s = 0; s < kSymbols; ++s) {
        if (!counts[s]) continue;
        if (t.hi < 0) t.lo = s;
        t.hi = s;
        total += counts[s];
    }
    if (!total) {  // an empty matrix still gets a valid table
        t.lo = t.hi = 128;
        t.freq[128] = kProbScale;
        total = 1;
    } else {
        for (int s = t.lo; s <= t.hi; ++s)
            if (counts[s]) t.freq[s] = std::max<uint32_t>(1, uint32_t(counts[s] * kProbScale / total));
    }
    int64_t diff = int64_t(kProbScale) - std::accumulate(t.freq.begin(), t.freq.end(), int64_t(0));
    while (diff != 0) {  // rounding: the largest frequencies absorb it (they lose least)
        int big = int(std::max_element(t.freq.begin(), t.freq.end()) - t.freq.begin());
        if (diff > 0) {
            t.freq[big] += uint32_t(diff);
            diff = 0;
        } else {
            uint32_t take = uint32_t(std::min<int64_t>(-diff, t.freq[big] - 1));
            t.freq[big] -= take;
            diff += take;
        }
    }
    int big = int(std::max_element(t.freq.begin(), t.freq.end()) - t.freq.begin());
    if (t.freq[big] > kMaxLevelFreq) {
        int other = big + 1 < kSymbols ? big + 1 : big - 1;
        t.freq[other] += t.freq[big] - kMaxLevelFreq;
        t.freq[big] = kMaxLevelFreq;
        t.lo = std::min(t.lo, other);
        t.hi = std::max(t.hi, other);
    }
    uint32_t c = 0;
    for (int s = 0; s < kSymbols; ++s) {
        t.cum[s] = c;
        c += t.freq[s];
    }
    return t;
}

double code_bits(const Counts& counts) {
    uint64_t total = std::accumulate(counts.begin(), counts.end(), uint64_t(0));
    double bits = 0;
    int lo = kSymbols, hi = -1;
    for (int s = 0; s < kSymbols; ++s) {
        if (!counts[s]) continue;
        bits += double(counts[s]) * std::log2(double(total) / double(counts[s]));
        lo = std::min(lo, s);
        hi = std::max(hi, s);
    }
    return bits + 8.0 * (2 + 1.5 * std::max(0, hi - lo + 1));  // the table, roughly
}

// Row order by mean magnitude; a row's class is its rank * classes / rows.
std::vector<uint8_t> row_classes(const std::vector<size_t>& order, size_t classes) {
    std::vector<uint8_t> cls(order.size());
    for (size_t rank = 0; rank < order.size(); ++rank) cls[order[rank]] = uint8_t(rank * classes / order.size());
    return cls;
}

void put_varint(std::vector<uint8_t>& out, uint32_t v) {
    while (v >= 0x80) {
        out.push_back(uint8_t(v | 0x80));
        v >>= 7;
    }
    out.push_back(uint8_t(v));
}

struct Reader {
    const uint8_t* p;
    const uint8_t* end;
    uint8_t byte(const char* what) {
        if (p == end) throw DecoderError(std::string("level stream ends inside ") + what);
        return *p++;
    }
    uint32_t varint(const char* what) {
        uint32_t v = 0;
        for (int shift = 0; shift < 21; shift += 7) {
            uint8_t b = byte(what);
            v |= uint32_t(b & 0x7f) << shift;
            if (!(b & 0x80)) return v;
        }
        throw DecoderError(std::string("level stream: over-long number in ") + what);
    }
};

}  // namespace

uint64_t max_levels_for_bytes(uint64_t bytes) {
    // ~0.0045 bits a level at least, 16 bits a word read, 32 bits of initial state
    return (bytes + 4) * 2048;
}

void check_level_count(uint64_t bytes, size_t rows, size_t cols) {
    if (cols && rows > max_levels_for_bytes(bytes) / cols)  // divided: rows x cols may overflow
        throw DecoderError("level stream of " + std::to_string(bytes) + " bytes cannot hold " + std::to_string(rows) + " x " +
                           std::to_string(cols) + " levels");
}

std::vector<uint8_t> encode_levels(const int8_t* levels, size_t rows, size_t cols) {
    std::vector<uint64_t> magnitude(rows, 0);
    for (size_t r = 0; r < rows; ++r)
        for (size_t c = 0; c < cols; ++c) magnitude[r] += uint64_t(std::abs(int(levels[r * cols + c])));
    std::vector<size_t> order(rows);
    std::iota(order.begin(), order.end(), size_t(0));
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return magnitude[a] < magnitude[b]; });

    // the class count with the smallest estimated size (class ids cost 4 bits a row)
    // (its histograms are the tables' counts: class k holds the ranks k * rows / classes onwards)
    size_t best_classes = 1;
    double best_bits = INFINITY;
    std::vector<Counts> best_counts;
    for (size_t classes = 1; classes <= size_t(kMaxLevelClasses) && classes <= std::max<size_t>(rows, 1); classes *= 2) {
        std::vector<Counts> counts(classes, Counts{});
        for (size_t rank = 0; rank < rows; ++rank) {
            const int8_t* row = levels + order[rank] * cols;
            Counts& h = counts[rank * classes / rows];
            for (size_t c = 0; c < cols; ++c) ++h[uint8_t(row[c] + 128)];
        }
        double bits = classes > 1 ? 4.0 * double(rows) : 0.0;
        for (const Counts& h : counts) bits += code_bits(h);
        if (bits < best_bits) best_bits = bits, best_classes = classes, best_counts = std::move(counts);
    }

    std::vector<uint8_t> cls = best_classes > 1 ? row_classes(order, best_classes) : std::vector<uint8_t>(rows, 0);
    std::vector<Table> tables;
    for (const Counts& h : best_counts) tables.push_back(normalise(h));

    std::vector<uint8_t> out;
    out.push_back(uint8_t(best_classes));
    if (best_classes > 1)
        for (size_t r = 0; r < rows; r += 2)
            out.push_back(uint8_t(cls[r] | (r + 1 < rows ? cls[r + 1] << 4 : 0)));
    for (const Table& t : tables) {
        out.push_back(uint8_t(t.lo));
        out.push_back(uint8_t(t.hi));
        for (int s = t.lo; s <= t.hi; ++s) put_varint(out, t.freq[s]);
    }

    // rANS codes backwards: the last level first, so the decoder reads forwards.
    // Two states take the levels in turn (even and odd positions): the decoder's two
    // chains of dependent arithmetic then overlap.
    std::vector<uint16_t> words;
    words.reserve(rows * cols / 3 + 16);
    uint64_t state[2] = {kStateLow, kStateLow};
    for (size_t r = rows; r-- > 0;) {
        const Table& t = tables[cls[r]];
        for (size_t c = cols; c-- > 0;) {
            size_t i = r * cols + c;
            uint64_t& x = state[i & 1];
            uint8_t s = uint8_t(levels[i] + 128);
            uint64_t f = t.freq[s];
            uint64_t x_max = ((uint64_t(kStateLow) >> kLevelProbBits) << 16) * f;
            while (x >= x_max) {
                words.push_back(uint16_t(x & 0xffff));
                x >>= 16;
            }
            x = ((x / f) << kLevelProbBits) + (x % f) + t.cum[s];
        }
    }
    for (uint64_t x : state)
        for (int i = 0; i < 4; ++i) out.push_back(uint8_t(x >> (8 * i)));
    for (size_t i = words.size(); i-- > 0;) {
        out.push_back(uint8_t(words[i]));
        out.push_back(uint8_t(words[i] >> 8));
    }
    return out;
}

void decode_levels(const uint8_t* data, size_t size, int8_t* out, size_t rows, size_t cols) {
    check_level_count(size, rows, cols);
    Reader in{data, data + size};
    size_t classes = in.byte("the class count");
    if (classes < 1 || classes > size_t(kMaxLevelClasses))
        throw DecoderError("level stream: class count " + std::to_string(classes) + " is not 1.." +
                           std::to_string(kMaxLevelClasses));
    std::vector<uint8_t> cls(rows, 0);
    if (classes > 1)
        for (size_t r = 0; r < rows; r += 2) {
            uint8_t b = in.byte("the row classes");
            cls[r] = b & 0x0f;
            if (r + 1 < rows) cls[r + 1] = b >> 4;
            if (cls[r] >= classes || (r + 1 < rows && cls[r + 1] >= classes))
                throw DecoderError("level stream: a row class is not below the class count");
        }
    std::vector<Table> tables(classes);
    std::vector<std::vector<uint8_t>> slot_symbol(classes, std::vector<uint8_t>(kProbScale));
    for (size_t k = 0; k < classes; ++k) {
        Table& t = tables[k];
        t.lo = in.byte("a table");
        t.hi = in.byte("a table");
        if (t.lo > t.hi) throw DecoderError("level stream: a table's symbol range is empty");
        uint32_t sum = 0;
        for (int s = t.lo; s <= t.hi; ++s) {
            uint32_t f = in.varint("a table");
            if (f > kMaxLevelFreq)
                throw DecoderError("level stream: a frequency above " + std::to_string(kMaxLevelFreq));
            t.cum[s] = sum;
            t.freq[s] = f;
            sum += f;
            if (sum > kProbScale) break;
            std::fill(slot_symbol[k].begin() + t.cum[s], slot_symbol[k].begin() + sum, uint8_t(s));
        }
        if (sum != kProbScale)
            throw DecoderError("level stream: a table's frequencies do not sum to " + std::to_string(kProbScale));
    }
    uint32_t state[2] = {0, 0};
    for (uint32_t& x : state) {
        for (int i = 0; i < 4; ++i) x |= uint32_t(in.byte("the states")) << (8 * i);
        if (x < kStateLow) throw DecoderError("level stream: initial state out of range");
    }
    if ((in.end - in.p) % 2) throw DecoderError("level stream: an odd number of word bytes");
    const uint8_t* p = in.p;
    uint32_t even = state[0], odd = state[1];  // locals: the two chains stay in registers
    for (size_t r = 0; r < rows; ++r) {
        const Table& t = tables[cls[r]];
        const uint8_t* symbol = slot_symbol[cls[r]].data();
        int8_t* row = out + r * cols;
        auto step = [&](uint32_t& x, int8_t& level) {
            uint32_t slot = x & (kProbScale - 1);
            uint8_t s = symbol[slot];
            level = int8_t(int(s) - 128);
            x = t.freq[s] * (x >> kLevelProbBits) + slot - t.cum[s];
            if (x < kStateLow) {
                if (in.end - p < 2) throw DecoderError("level stream ends before its last level");
                x = (x << 16) | uint32_t(p[0]) | uint32_t(p[1]) << 8;
                p += 2;
            }
        };
        size_t c = 0;
        if (cols && ((r * cols) & 1)) step(odd, row[c++]);  // a row that starts at an odd position
        for (; c + 1 < cols; c += 2) {
            step(even, row[c]);
            step(odd, row[c + 1]);
        }
        if (c < cols) step(even, row[c]);
    }
    state[0] = even;
    state[1] = odd;
    if (p != in.end) throw DecoderError("level stream: " + std::to_string(in.end - p) + " bytes after the last level");
    if (state[0] != kStateLow || state[1] != kStateLow)
        throw DecoderError("level stream does not end in its initial states (corrupt)");
}

}  // namespace wvc
