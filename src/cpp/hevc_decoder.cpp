#include "hevc_decoder.hpp"

#include <libde265/de265.h>

#include <climits>
#include <stdexcept>
#include <string>

#include "errors.hpp"
#include "parallel.hpp"

namespace wvc {

namespace {

de265_decoder_context* as_ctx(void* p) { return static_cast<de265_decoder_context*>(p); }

std::string error_text(de265_error err) {
    return std::string(de265_get_error_text(err)) + " (code " + std::to_string(int(err)) + ")";
}

// Warnings that only say the decoder ran slower than it could.
bool harmless_warning(de265_error w) {
    return w == DE265_WARNING_NO_WPP_CANNOT_USE_MULTITHREADING ||
           w == DE265_WARNING_NUMBER_OF_THREADS_LIMITED_TO_MAXIMUM;
}

// Counts the suffix SEI NAL units (type 40) of an Annex B stream: our encoder
// writes one decoded-picture hash after every picture, so a stream cut short
// (which libde265 would conceal silently) lacks some.
uint32_t count_suffix_sei(const uint8_t* data, size_t size) {
    uint32_t count = 0;
    for (size_t i = 0; i + 3 < size; ++i) {
        if (data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1) {
            if (((data[i + 3] >> 1) & 0x3f) == 40) ++count;
            i += 2;
        }
    }
    return count;
}

}  // namespace

const char* libde265_version() { return de265_get_version(); }

HevcDecoder::HevcDecoder(int threads) {
    if (threads < 0 || threads > 256)
        throw std::invalid_argument("threads must be in 0..256 (0: all cores), got " +
                                    std::to_string(threads));
    threads_ = resolve_threads(threads);
    de265_set_verbosity(0);
    de265_decoder_context* ctx = de265_new_decoder();
    if (!ctx) throw DecoderError("de265_new_decoder failed");
    ctx_ = ctx;
    // A picture with a decoding error is dropped, which the frame count catches.
    de265_set_parameter_bool(ctx, DE265_DECODER_PARAM_SUPPRESS_FAULTY_PICTURES, 1);
    de265_set_parameter_bool(ctx, DE265_DECODER_PARAM_BOOL_SEI_CHECK_HASH, 1);
    if (threads_ > 1) {
        de265_error err = de265_start_worker_threads(ctx, threads_);
        if (!de265_isOK(err)) {
            de265_free_decoder(ctx);
            ctx_ = nullptr;
            throw DecoderError("de265_start_worker_threads failed: " + error_text(err));
        }
    }
}

HevcDecoder::~HevcDecoder() {
    if (ctx_) de265_free_decoder(as_ctx(ctx_));
}

void HevcDecoder::decode(const uint8_t* data, size_t size, uint32_t frame_w, uint32_t frame_h,
                         uint32_t frames, const FrameSink& sink) {
    de265_decoder_context* ctx = as_ctx(ctx_);
    de265_reset(ctx);  // forget any state of a previous (possibly failed) stream
    uint32_t received = 0;
    const uint32_t hashes = count_suffix_sei(data, size);
    if (hashes != frames)
        throw DecoderError("stream has " + std::to_string(hashes) + " picture hashes for " +
                           std::to_string(frames) + " pictures: truncated or not written by pyweightvc");

    auto check_warnings = [&] {
        for (de265_error w = de265_get_warning(ctx); w != DE265_OK; w = de265_get_warning(ctx))
            if (!harmless_warning(w))
                throw DecoderError("de265_decode reported: " + error_text(w));
    };

    auto drain = [&] {
        while (const de265_image* img = de265_peek_next_picture(ctx)) {
            if (received >= frames)
                throw DecoderError("stream holds more than the " + std::to_string(frames) +
                                   " pictures the header announces");
            const int w = de265_get_image_width(img, 0), h = de265_get_image_height(img, 0);
            if (w != int(frame_w) || h != int(frame_h))
                throw DecoderError("picture " + std::to_string(received) + " is " +
                                   std::to_string(w) + "x" + std::to_string(h) + ", expected " +
                                   std::to_string(frame_w) + "x" + std::to_string(frame_h));
            if (de265_get_chroma_format(img) != de265_chroma_mono ||
                de265_get_bits_per_pixel(img, 0) != 8)
                throw DecoderError("picture " + std::to_string(received) +
                                   " is not 8-bit monochrome");
            int stride = 0;
            const uint8_t* plane = de265_get_image_plane(img, 0, &stride);
            if (!plane || stride < w) throw DecoderError("de265_get_image_plane returned no plane");
            sink(received, plane, stride);
            ++received;
            de265_release_next_picture(ctx);
        }
    };

    // de265_push_data takes an int length: push in chunks below 2 GiB.
    const size_t chunk = size_t(1) << 30;
    for (size_t off = 0; off < size; off += chunk) {
        size_t n = std::min(chunk, size - off);
        de265_error err = de265_push_data(ctx, data + off, int(n), 0, nullptr);
        if (!de265_isOK(err)) throw DecoderError("de265_push_data failed: " + error_text(err));
    }
    de265_error err = de265_flush_data(ctx);
    if (!de265_isOK(err)) throw DecoderError("de265_flush_data failed: " + error_text(err));

    for (int more = 1; more;) {
        more = 0;
        err = de265_decode(ctx, &more);
        if (err == DE265_ERROR_IMAGE_BUFFER_FULL || err == DE265_ERROR_WAITING_FOR_INPUT_DATA) {
            check_warnings();
            drain();
            if (err == DE265_ERROR_WAITING_FOR_INPUT_DATA) break;  // all input consumed
            more = 1;
            continue;
        }
        if (!de265_isOK(err)) throw DecoderError("de265_decode failed: " + error_text(err));
        check_warnings();
        drain();
    }
    check_warnings();
    drain();
    if (received != frames)
        throw DecoderError("stream decoded to " + std::to_string(received) + " pictures, expected " +
                           std::to_string(frames));
}

}  // namespace wvc
