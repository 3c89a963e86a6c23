#include "hevc_encoder.hpp"

#include <x265.h>

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>

#include "errors.hpp"
#include "parallel.hpp"

namespace wvc {

const char* const kPresets[] = {"ultrafast", "superfast", "veryfast", "faster", "fast",
                                "medium",    "slow",      "slower",   "veryslow", "placebo",
                                nullptr};

namespace {

// x265 sets up shared static tables on the first open and has no log callback:
// opens and closes are serialised, and log output is silenced (and captured
// only to explain a failed open).
std::mutex& x265_global_mutex() {
    static std::mutex m;
    return m;
}

// The 8-bit encoder of libx265: a multilib build (8/10/12-bit in one library,
// as Debian's) may default to another depth; our pictures are 8-bit.
const x265_api& api() {
    static const x265_api* a = x265_api_get(8);
    if (!a) throw EncoderError("x265_api_get(8) failed: this libx265 has no 8-bit encoder");
    return *a;
}

struct ParamDeleter {
    void operator()(x265_param* p) const { api().param_free(p); }
};
struct EncoderDeleter {
    void operator()(x265_encoder* e) const {
        std::lock_guard<std::mutex> lock(x265_global_mutex());
        api().encoder_close(e);
    }
};
struct PictureDeleter {
    void operator()(x265_picture* p) const { api().picture_free(p); }
};
using ParamPtr = std::unique_ptr<x265_param, ParamDeleter>;
using EncoderPtr = std::unique_ptr<x265_encoder, EncoderDeleter>;

bool valid_preset(const std::string& name) {
    for (int i = 0; kPresets[i]; ++i)
        if (name == kPresets[i]) return true;
    return false;
}

// Runs fn with file descriptor 2 pointing at a temporary file and returns what was
// written there. Only used on the failure path, under the x265 mutex.
template <typename Fn>
std::string capture_stderr(Fn&& fn) {
    std::fflush(stderr);
    FILE* tmp = std::tmpfile();
    int saved = tmp ? dup(2) : -1;
    if (!tmp || saved < 0) {
        if (tmp) std::fclose(tmp);
        fn();
        return {};
    }
    dup2(fileno(tmp), 2);
    fn();
    std::fflush(stderr);
    dup2(saved, 2);
    close(saved);
    std::string text;
    std::rewind(tmp);
    char buf[512];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, tmp)) > 0 && text.size() < 4096) text.append(buf, n);
    std::fclose(tmp);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    return text;
}

void append_nals(std::vector<uint8_t>& out, const x265_nal* nals, uint32_t count) {
    for (uint32_t i = 0; i < count; ++i)
        out.insert(out.end(), nals[i].payload, nals[i].payload + nals[i].sizeBytes);
}

ParamPtr make_param(const EncoderSettings& s,
                    const std::vector<std::pair<std::string, std::string>>& options) {
    ParamPtr p(api().param_alloc());
    if (!p) throw EncoderError("x265_param_alloc failed (out of memory)");
    if (api().param_default_preset(p.get(), s.preset.c_str(), nullptr) < 0)
        throw std::invalid_argument("x265_param_default_preset rejected preset '" + s.preset + "'");
    for (const auto& [name, value] : options) {
        int rc = api().param_parse(p.get(), name.c_str(), value.c_str());
        if (rc == X265_PARAM_BAD_NAME)
            throw std::invalid_argument("x265_param_parse: unknown x265 option '" + name + "'");
        if (rc != 0)
            throw std::invalid_argument("x265_param_parse: bad value '" + value + "' for x265 option '" +
                                        name + "'");
    }
    return p;
}

}  // namespace

const char* x265_version() { return api().version_str; }

const char* x265_build_info() { return api().build_info_str; }

HevcEncoder::HevcEncoder(EncoderSettings settings) : settings_(std::move(settings)) {
    if (!settings_.lossless && (settings_.qp < 0 || settings_.qp > 51))
        throw std::invalid_argument("qp must be in 0..51, got " + std::to_string(settings_.qp));
    if (!valid_preset(settings_.preset)) {
        std::string allowed;
        for (int i = 0; kPresets[i]; ++i) allowed += std::string(i ? ", " : "") + kPresets[i];
        throw std::invalid_argument("unknown preset '" + settings_.preset + "'; allowed: " + allowed);
    }
    if (settings_.threads < 0 || settings_.threads > 256)
        throw std::invalid_argument("threads must be in 0..256 (0: all cores), got " +
                                    std::to_string(settings_.threads));
    make_param(settings_, options(64, 64));  // every option checked once, up front
}

std::vector<std::pair<std::string, std::string>> HevcEncoder::options(uint32_t frame_w,
                                                                      uint32_t frame_h) const {
    const int threads = resolve_threads(settings_.threads);
    std::vector<std::pair<std::string, std::string>> o = {
        {"input-res", std::to_string(frame_w) + "x" + std::to_string(frame_h)},
        {"fps", "1"},
        {"input-csp", "i400"},
        {"log-level", "none"},
        // Every picture is an intra picture at exactly the requested QP.
        {"keyint", "1"},
        {"min-keyint", "1"},
        {"bframes", "0"},
        {"ipratio", "1"},  // otherwise intra QP is lowered (QP 24 coded at 21)
        // Fidelity of the numbers matters, not how a picture looks to an eye.
        {"psy-rd", "0"},
        {"psy-rdoq", "0"},
        {"rdoq-level", "2"},
        {"deblock", "false"},
        {"sao", "false"},
        {"info", "false"},  // the info SEI costs 2-4.5 KB per stream
        // A CRC of every decoded picture (about 8 bytes a picture): the decoder
        // verifies that it reproduces the encoder's pictures bit for bit.
        {"hash", "2"},
        // pools=1 (not "none") keeps wavefronts in the bitstream, so libde265 can
        // decode with threads even when the encoder used one.
        {"pools", std::to_string(threads)},
        {"frame-threads", threads == 1 ? "1" : "0"},
    };
    // Small pictures need small coding tree units (x265 wants one CTU per side).
    const uint32_t side = std::min(frame_w, frame_h);
    if (side < 32) o.emplace_back("ctu", "16");
    else if (side < 64) o.emplace_back("ctu", "32");
    if (settings_.lossless) o.emplace_back("lossless", "true");
    else o.emplace_back("qp", std::to_string(settings_.qp));
    for (const auto& kv : settings_.extra) o.push_back(kv);
    return o;
}

std::vector<uint8_t> HevcEncoder::encode(uint32_t frame_w, uint32_t frame_h, uint32_t frames,
                                         const FrameFiller& fill) const {
    if (frames == 0) throw std::invalid_argument("nothing to encode: zero frames");
    ParamPtr param = make_param(settings_, options(frame_w, frame_h));

    EncoderPtr encoder;
    {
        std::lock_guard<std::mutex> lock(x265_global_mutex());
        encoder.reset(api().encoder_open(param.get()));
        if (!encoder) {
            param->logLevel = X265_LOG_ERROR;
            std::string log = capture_stderr([&] {
                x265_encoder* e = api().encoder_open(param.get());
                if (e) api().encoder_close(e);
            });
            throw EncoderError("x265_encoder_open failed for a " + std::to_string(frame_w) + "x" +
                               std::to_string(frame_h) + " picture" +
                               (log.empty() ? std::string() : ": " + log));
        }
    }

    std::vector<uint8_t> stream;
    x265_nal* nals = nullptr;
    uint32_t nal_count = 0;
    if (api().encoder_headers(encoder.get(), &nals, &nal_count) < 0)
        throw EncoderError("x265_encoder_headers failed");
    append_nals(stream, nals, nal_count);

    std::unique_ptr<x265_picture, PictureDeleter> picture(api().picture_alloc());
    if (!picture) throw EncoderError("x265_picture_alloc failed (out of memory)");
    api().picture_init(param.get(), picture.get());
    // One plane buffer, refilled per frame: x265 copies the picture inside
    // x265_encoder_encode, so the buffer is free again when the call returns.
    std::vector<uint8_t> plane(size_t(frame_w) * frame_h);
    picture->planes[0] = plane.data();
    picture->stride[0] = int(frame_w);
    picture->bitDepth = 8;
    picture->colorSpace = X265_CSP_I400;

    for (uint32_t i = 0; i < frames; ++i) {
        fill(i, plane.data(), ptrdiff_t(frame_w));
        picture->pts = i;
        if (api().encoder_encode(encoder.get(), &nals, &nal_count, picture.get(), nullptr) < 0)
            throw EncoderError("x265_encoder_encode failed on frame " + std::to_string(i));
        append_nals(stream, nals, nal_count);
    }
    for (;;) {  // flush the frames still in flight
        int rc = api().encoder_encode(encoder.get(), &nals, &nal_count, nullptr, nullptr);
        if (rc < 0) throw EncoderError("x265_encoder_encode failed while flushing");
        append_nals(stream, nals, nal_count);
        if (rc == 0) break;
    }
    return stream;
}

}  // namespace wvc
