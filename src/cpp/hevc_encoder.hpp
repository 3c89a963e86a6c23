// RAII wrapper of the x265 encoder for weight pictures: 8-bit monochrome (4:0:0),
// every picture intra, constant QP or lossless, no info SEI, fixed parameters so
// the same pictures and settings give the same bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace wvc {

struct EncoderSettings {
    int qp = 24;                  // 0..51, ignored when lossless
    bool lossless = false;
    std::string preset;           // an x265 preset name (kPresets); no default: the caller chooses
    int threads = 0;              // 0: all cores
    // Extra x265 options (name, value) applied after ours, e.g. {"rdoq-level", "1"}.
    std::vector<std::pair<std::string, std::string>> extra;
};

// Fills picture `index` (frame_h rows of frame_w samples, row stride `stride`).
using FrameFiller = std::function<void(uint32_t index, uint8_t* plane, ptrdiff_t stride)>;

class HevcEncoder {
public:
    // Validates every setting against x265 (throws std::invalid_argument).
    explicit HevcEncoder(EncoderSettings settings);

    // Encodes `frames` pictures of frame_w x frame_h into one Annex B stream.
    // Thread-safe: each call opens its own x265 encoder.
    std::vector<uint8_t> encode(uint32_t frame_w, uint32_t frame_h, uint32_t frames,
                                const FrameFiller& fill) const;

    const EncoderSettings& settings() const { return settings_; }

    // The x265 options this encoder sets, in order (for the record and tests).
    std::vector<std::pair<std::string, std::string>> options(uint32_t frame_w, uint32_t frame_h) const;

private:
    EncoderSettings settings_;
};

const char* x265_version();
const char* x265_build_info();
extern const char* const kPresets[];

}  // namespace wvc
