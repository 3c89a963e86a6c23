// RAII wrapper of the libde265 decoder for weight pictures: reads the stream's
// structure and the decoded-picture-hash SEI of every picture before libde265
// sees it, checks that every picture is 8-bit monochrome of the expected size
// and matches its hash, and hands each plane, in place, to a sink before the
// next libde265 call invalidates it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

namespace wvc {

using FrameSink = std::function<void(uint32_t index, const uint8_t* plane, ptrdiff_t stride)>;

class HevcDecoder {
public:
    explicit HevcDecoder(int threads = 0);  // 0: all cores
    ~HevcDecoder();
    HevcDecoder(const HevcDecoder&) = delete;
    HevcDecoder& operator=(const HevcDecoder&) = delete;

    // Decodes a whole Annex B stream that must hold exactly `frames` pictures of
    // frame_w x frame_h, each followed by its decoded picture hash; throws
    // DecoderError otherwise, or when a picture does not match its hash (the
    // sink has then seen only the pictures before it). Not thread-safe: one
    // stream at a time per decoder (the bindings hold a lock).
    void decode(const uint8_t* data, size_t size, uint32_t frame_w, uint32_t frame_h,
                uint32_t frames, const FrameSink& sink);

    int threads() const { return threads_; }

private:
    void* ctx_ = nullptr;  // de265_decoder_context
    int threads_ = 1;
};

const char* libde265_version();

}  // namespace wvc
