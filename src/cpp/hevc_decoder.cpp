#include "hevc_decoder.hpp"

#include <libde265/de265.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "errors.hpp"
#include "parallel.hpp"

namespace wvc {

namespace {

de265_decoder_context* as_ctx(void* p) { return static_cast<de265_decoder_context*>(p); }

std::string error_text(de265_error err) {
    return std::string(de265_get_error_text(err)) + " (code " + std::to_string(int(err)) + ")";
}

std::string hex(uint64_t v, int digits) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%0*llx", digits, static_cast<unsigned long long>(v));
    return buf;
}

// Warnings that only say the decoder ran slower than it could.
bool harmless_warning(de265_error w) {
    return w == DE265_WARNING_NO_WPP_CANNOT_USE_MULTITHREADING ||
           w == DE265_WARNING_NUMBER_OF_THREADS_LIMITED_TO_MAXIMUM;
}

[[noreturn]] void reject(const std::string& what) {
    throw DecoderError("invalid HEVC stream: " + what);
}

// ---------------------------------------------------------------------------
// Decoded picture hashes (H.265 D.3.19), computed over the whole decoded luma
// plane: pic_width_in_luma_samples x pic_height_in_luma_samples, before the
// conformance window crops it (x265 hashes its padded picture; libde265 checks
// the uncropped plane too). 8-bit samples only.

enum HashType : uint8_t { kHashMD5 = 0, kHashCRC = 1, kHashChecksum = 2 };
const char* const kHashNames[] = {"MD5", "CRC", "checksum"};
const size_t kHashSizes[] = {16, 2, 4};

// CRC-16, polynomial 0x1021, most significant bit first. The standard defines
// it bit by bit from 0xFFFF over the samples followed by two zero bytes; the
// table form without the trailing zero bytes gives the same value when started
// from 0x1D0F (0xFFFF shifted through 16 zero bits). Slicing by 8 bytes.
struct Crc16Tables {
    uint16_t t[8][256];
    Crc16Tables() {
        for (int b = 0; b < 256; ++b) {
            uint16_t c = uint16_t(b << 8);
            for (int k = 0; k < 8; ++k) c = uint16_t((c & 0x8000) ? (c << 1) ^ 0x1021 : c << 1);
            t[0][b] = c;
        }
        for (int s = 1; s < 8; ++s)
            for (int b = 0; b < 256; ++b) {
                uint16_t prev = t[s - 1][b];
                t[s][b] = uint16_t((prev << 8) ^ t[0][prev >> 8]);
            }
    }
};

const Crc16Tables& crc16_tables() {
    static const Crc16Tables tables;
    return tables;
}

uint16_t crc16_update(uint16_t crc, const uint8_t* p, size_t n) {
    const auto& t = crc16_tables().t;
    while (n >= 8) {
        // The 16 bits of state enter as if XORed into the first two bytes.
        crc = uint16_t(t[7][p[0] ^ (crc >> 8)] ^ t[6][p[1] ^ (crc & 0xff)] ^ t[5][p[2]] ^
                       t[4][p[3]] ^ t[3][p[4]] ^ t[2][p[5]] ^ t[1][p[6]] ^ t[0][p[7]]);
        p += 8;
        n -= 8;
    }
    while (n--) crc = uint16_t((crc << 8) ^ t[0][((crc >> 8) ^ *p++) & 0xff]);
    return crc;
}

uint16_t picture_crc(const uint8_t* plane, ptrdiff_t stride, int w, int h) {
    uint16_t crc = 0x1D0F;
    for (int y = 0; y < h; ++y) crc = crc16_update(crc, plane + ptrdiff_t(y) * stride, size_t(w));
    return crc;
}

uint32_t picture_checksum(const uint8_t* plane, ptrdiff_t stride, int w, int h) {
    uint32_t sum = 0;
    for (int y = 0; y < h; ++y) {
        const uint8_t* row = plane + ptrdiff_t(y) * stride;
        const uint32_t ymask = uint32_t((y & 0xff) ^ (y >> 8));
        for (int x = 0; x < w; ++x) sum += uint32_t(row[x]) ^ (uint32_t((x & 0xff) ^ (x >> 8)) ^ ymask);
    }
    return sum;
}

// MD5 (RFC 1321).
class Md5 {
public:
    void update(const uint8_t* p, size_t n) {
        length_ += n;
        if (fill_) {
            size_t take = std::min(n, size_t(64) - fill_);
            std::memcpy(buf_ + fill_, p, take);
            fill_ += take;
            p += take;
            n -= take;
            if (fill_ < 64) return;
            block(buf_);
            fill_ = 0;
        }
        for (; n >= 64; p += 64, n -= 64) block(p);
        std::memcpy(buf_, p, n);
        fill_ = n;
    }
    void finish(uint8_t out[16]) {
        const uint64_t bits = length_ * 8;
        const uint8_t pad = 0x80;
        update(&pad, 1);
        const uint8_t zero = 0;
        while (fill_ != 56) update(&zero, 1);
        uint8_t len[8];
        for (int i = 0; i < 8; ++i) len[i] = uint8_t(bits >> (8 * i));
        update(len, 8);
        for (int i = 0; i < 4; ++i)
            for (int j = 0; j < 4; ++j) out[4 * i + j] = uint8_t(s_[i] >> (8 * j));
    }

private:
    static uint32_t rotl(uint32_t x, int c) { return (x << c) | (x >> (32 - c)); }
    static const uint32_t* constants() {
        struct K {
            uint32_t k[64];
            K() {
                for (int i = 0; i < 64; ++i) k[i] = uint32_t(std::floor(std::fabs(std::sin(double(i + 1))) * 4294967296.0));
            }
        };
        static const K table;
        return table.k;
    }
    void block(const uint8_t* p) {
        static const int shifts[4][4] = {{7, 12, 17, 22}, {5, 9, 14, 20}, {4, 11, 16, 23}, {6, 10, 15, 21}};
        const uint32_t* k = constants();
        uint32_t m[16];
        for (int i = 0; i < 16; ++i)
            m[i] = uint32_t(p[4 * i]) | uint32_t(p[4 * i + 1]) << 8 | uint32_t(p[4 * i + 2]) << 16 |
                   uint32_t(p[4 * i + 3]) << 24;
        uint32_t a = s_[0], b = s_[1], c = s_[2], d = s_[3];
        for (int i = 0; i < 64; ++i) {
            uint32_t f;
            int g;
            switch (i / 16) {
                case 0: f = (b & c) | (~b & d); g = i; break;
                case 1: f = (d & b) | (~d & c); g = (5 * i + 1) % 16; break;
                case 2: f = b ^ c ^ d; g = (3 * i + 5) % 16; break;
                default: f = c ^ (b | ~d); g = (7 * i) % 16; break;
            }
            f += a + k[i] + m[g];
            a = d;
            d = c;
            c = b;
            b += rotl(f, shifts[i / 16][i % 4]);
        }
        s_[0] += a;
        s_[1] += b;
        s_[2] += c;
        s_[3] += d;
    }
    uint32_t s_[4] = {0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u};
    uint8_t buf_[64];
    size_t fill_ = 0;
    uint64_t length_ = 0;
};

// ---------------------------------------------------------------------------
// The Annex B stream, read before libde265 sees it: NAL units, the parameter
// sets they depend on, and the decoded-picture-hash SEI of every picture.

struct Nal {
    const uint8_t* data;  // from the two-byte NAL unit header, emulation prevention bytes included
    size_t size;
    int type;
};

enum NalType {
    kVps = 32, kSps = 33, kPps = 34, kAud = 35, kEos = 36, kEob = 37, kFd = 38,
    kPrefixSei = 39, kSuffixSei = 40,
};

bool is_vcl(int t) { return (t >= 0 && t <= 9) || (t >= 16 && t <= 21); }

// The stream's NAL units. Start codes are 00 00 01; zero bytes before the first
// one and at the end of a NAL unit (trailing_zero_8bits, the zero_byte of a
// four-byte start code) belong to no NAL unit. Anything else before the first
// start code is rejected.
std::vector<Nal> split_nals(const uint8_t* p, size_t n) {
    std::vector<size_t> starts;  // first byte after each start code
    for (size_t k = 0; k + 2 < n; ++k) {
        if (p[k + 2] > 1) { k += 2; continue; }  // no start code begins at k, k+1 or k+2
        if (p[k] == 0 && p[k + 1] == 0 && p[k + 2] == 1) {
            starts.push_back(k + 3);
            k += 2;
        }
    }
    if (starts.empty()) reject("no start code");
    for (size_t k = 0; k + 3 < starts[0]; ++k)
        if (p[k] != 0) reject("data before the first start code");
    std::vector<Nal> nals;
    nals.reserve(starts.size());
    for (size_t i = 0; i < starts.size(); ++i) {
        size_t begin = starts[i], end = i + 1 < starts.size() ? starts[i + 1] - 3 : n;
        while (end > begin && p[end - 1] == 0) --end;
        if (end - begin < 2) reject("NAL unit " + std::to_string(i) + " is empty");
        if (end - begin > size_t(INT_MAX)) reject("NAL unit " + std::to_string(i) + " exceeds 2 GiB");
        const uint8_t* d = p + begin;
        if (d[0] & 0x80) reject("NAL unit " + std::to_string(i) + " has forbidden_zero_bit set");
        if ((((d[0] & 1) << 5) | (d[1] >> 3)) != 0)
            reject("NAL unit " + std::to_string(i) + " is not of layer 0");
        if ((d[1] & 7) == 0) reject("NAL unit " + std::to_string(i) + " has nuh_temporal_id_plus1 0");
        nals.push_back(Nal{d, end - begin, (d[0] >> 1) & 0x3f});
    }
    return nals;
}

// The RBSP of a NAL unit (emulation prevention bytes removed), at most `limit` bytes.
std::vector<uint8_t> rbsp(const Nal& nal, size_t limit = SIZE_MAX) {
    std::vector<uint8_t> out;
    out.reserve(std::min(nal.size, limit));
    int zeros = 0;
    for (size_t i = 2; i < nal.size && out.size() < limit; ++i) {
        uint8_t b = nal.data[i];
        if (zeros >= 2 && b == 3) {
            zeros = 0;
            continue;
        }
        zeros = b == 0 ? zeros + 1 : 0;
        out.push_back(b);
    }
    return out;
}

class BitReader {
public:
    BitReader(const std::vector<uint8_t>& d, const char* what) : d_(d), what_(what) {}
    uint32_t u(int bits) {
        if (pos_ + size_t(bits) > d_.size() * 8) reject(std::string(what_) + " ends too early");
        uint32_t v = 0;
        for (int i = 0; i < bits; ++i, ++pos_) v = (v << 1) | ((d_[pos_ >> 3] >> (7 - (pos_ & 7))) & 1);
        return v;
    }
    void skip(int bits) {
        for (; bits > 24; bits -= 24) u(24);
        u(bits);
    }
    // ue(v); like libde265, at most 20 leading zero bits.
    uint32_t ue() {
        int zeros = 0;
        while (u(1) == 0)
            if (++zeros > 20) reject(std::string(what_) + " has an oversized Exp-Golomb code");
        return zeros ? (1u << zeros) - 1 + u(zeros) : 0;
    }

private:
    const std::vector<uint8_t>& d_;
    const char* what_;
    size_t pos_ = 0;
};

// The leading SPS fields, read exactly as libde265 reads them. Besides the
// format checks (8-bit monochrome), this rejects every SPS that libde265's
// seq_parameter_set::compute_derived_values would reject: it reports those
// with an unconditional fprintf to stderr ("SPS error: ..."), which no
// verbosity setting or log callback of libde265 1.0.x silences.
int check_sps(const Nal& nal) {
    const std::vector<uint8_t> d = rbsp(nal);
    BitReader br(d, "SPS");
    br.u(4);  // sps_video_parameter_set_id
    const int max_sub_layers = int(br.u(3)) + 1;
    if (max_sub_layers > 7) reject("SPS with 8 sub-layers");
    br.u(1);  // sps_temporal_id_nesting_flag
    // profile_tier_level(1, max_sub_layers - 1)
    br.skip(88);  // general profile
    br.u(8);      // general_level_idc
    bool profile_present[8] = {}, level_present[8] = {};
    for (int i = 0; i < max_sub_layers - 1; ++i) {
        profile_present[i] = br.u(1);
        level_present[i] = br.u(1);
    }
    if (max_sub_layers > 1)
        for (int i = max_sub_layers - 1; i < 8; ++i) br.u(2);
    for (int i = 0; i < max_sub_layers - 1; ++i) {
        if (profile_present[i]) br.skip(88);
        if (level_present[i]) br.u(8);
    }
    const uint32_t sps_id = br.ue();
    if (sps_id >= 16) reject("SPS id " + std::to_string(sps_id) + " out of range");
    const uint32_t chroma_format_idc = br.ue();
    if (chroma_format_idc != 0) reject("SPS is not monochrome (chroma_format_idc " + std::to_string(chroma_format_idc) + ")");
    const uint32_t width = br.ue(), height = br.ue();
    if (width == 0 || height == 0 || width > 65535 || height > 65535)
        reject("SPS picture size " + std::to_string(width) + "x" + std::to_string(height));
    if (br.u(1)) {  // conformance_window_flag (monochrome: offsets in samples)
        uint32_t left = br.ue(), right = br.ue(), top = br.ue(), bottom = br.ue();
        if (uint64_t(left) + right >= width || uint64_t(top) + bottom >= height)
            reject("SPS conformance window larger than the picture");
    }
    const uint32_t depth_luma = br.ue() + 8, depth_chroma = br.ue() + 8;
    if (depth_luma != 8) reject("SPS bit depth " + std::to_string(depth_luma) + ", not 8");
    if (depth_chroma > 16) reject("SPS chroma bit depth " + std::to_string(depth_chroma));
    if (br.ue() + 4 > 16) reject("SPS log2_max_pic_order_cnt_lsb out of range");
    const bool ordering_for_all = br.u(1);
    for (int i = ordering_for_all ? 0 : max_sub_layers - 1; i < max_sub_layers; ++i) {
        br.ue();  // sps_max_dec_pic_buffering_minus1
        br.ue();  // sps_max_num_reorder_pics
        br.ue();  // sps_max_latency_increase_plus1
    }
    const uint32_t min_cb = br.ue() + 3, ctb = min_cb + br.ue();
    const uint32_t min_tb = br.ue() + 2, max_tb = min_tb + br.ue();
    const uint32_t depth_inter = br.ue(), depth_intra = br.ue();
    if (min_cb > 6 || ctb > 6 || min_tb > 5 || max_tb > 5 || min_tb > min_cb ||
        max_tb > std::min<uint32_t>(ctb, 5) || depth_inter > ctb - min_tb ||
        depth_intra > ctb - min_tb || width % (1u << min_cb) || height % (1u << min_cb))
        reject("SPS block sizes out of range");
    return int(sps_id);
}

struct PictureHash {
    bool present = false;
    uint8_t type = 0;
    uint8_t value[16] = {};
};

// What the decoder checks the decoded pictures against: one hash per picture,
// pictures in decoding order.
struct StreamIndex {
    std::vector<Nal> nals;
    std::vector<PictureHash> pictures;
};

StreamIndex index_stream(const uint8_t* data, size_t size) {
    StreamIndex s;
    s.nals = split_nals(data, size);
    bool sps_seen[16] = {};
    int pps_sps[64];
    std::fill(std::begin(pps_sps), std::end(pps_sps), -1);
    for (size_t i = 0; i < s.nals.size(); ++i) {
        const Nal& nal = s.nals[i];
        const int t = nal.type;
        if (t == kSps) {
            sps_seen[check_sps(nal)] = true;
        } else if (t == kPps) {
            const std::vector<uint8_t> d = rbsp(nal, 16);
            BitReader br(d, "PPS");
            const uint32_t pps_id = br.ue(), sps_id = br.ue();
            if (pps_id >= 64 || sps_id >= 16 || !sps_seen[sps_id])
                reject("PPS " + std::to_string(pps_id) + " refers to SPS " + std::to_string(sps_id) +
                       ", which the stream does not define before it");
            pps_sps[pps_id] = int(sps_id);
        } else if (is_vcl(t)) {
            const std::vector<uint8_t> d = rbsp(nal, 16);
            BitReader br(d, "slice header");
            const bool first_in_picture = br.u(1);
            if (t >= 16) br.u(1);  // no_output_of_prior_pics_flag
            const uint32_t pps_id = br.ue();
            if (pps_id >= 64 || pps_sps[pps_id] < 0)
                reject("slice refers to PPS " + std::to_string(pps_id) +
                       ", which the stream does not define before it");
            if (first_in_picture) s.pictures.emplace_back();
            else if (s.pictures.empty()) reject("the first slice does not start a picture");
        } else if (t == kPrefixSei || t == kSuffixSei) {
            const std::vector<uint8_t> d = rbsp(nal);
            size_t pos = 0;
            // sei_message()s until the rbsp_trailing_bits byte
            while (pos < d.size() && !(pos + 1 == d.size() && d[pos] == 0x80)) {
                auto read_varlen = [&] {
                    size_t v = 0;
                    for (;;) {
                        if (pos >= d.size()) reject("truncated SEI message");
                        uint8_t b = d[pos++];
                        v += b;
                        if (b != 0xff) return v;
                    }
                };
                const size_t payload_type = read_varlen(), payload_size = read_varlen();
                if (payload_size > d.size() - pos) reject("truncated SEI message");
                if (payload_type == 132) {  // decoded_picture_hash
                    if (t != kSuffixSei) reject("decoded picture hash in a prefix SEI");
                    if (s.pictures.empty()) reject("decoded picture hash before the first picture");
                    PictureHash& h = s.pictures.back();
                    if (h.present)
                        reject("picture " + std::to_string(s.pictures.size() - 1) + " has two hashes");
                    const uint8_t type = payload_size ? d[pos] : 0xff;
                    // one component: the pictures are monochrome
                    if (type > kHashChecksum || payload_size != 1 + kHashSizes[type])
                        reject("malformed decoded picture hash of picture " +
                               std::to_string(s.pictures.size() - 1));
                    h.present = true;
                    h.type = type;
                    std::memcpy(h.value, &d[pos + 1], kHashSizes[type]);
                }
                pos += payload_size;
            }
        } else if (!(t == kVps || t == kAud || t == kEos || t == kEob || t == kFd)) {
            reject("NAL unit " + std::to_string(i) + " has reserved type " + std::to_string(t));
        }
    }
    return s;
}

// ---------------------------------------------------------------------------
// Picture buffers: allocated here and zero-filled, so that a part of a picture
// libde265 leaves unwritten (a corrupted or missing slice) holds zeros instead
// of whatever the heap held before; the hash check rejects such a picture, and
// nothing uninitialised can reach an output either way. The block also records
// the uncropped geometry the picture hash needs.

struct PlaneBlock {
    void* raw;
    uint8_t* pixels;  // sample (0, 0) of the uncropped picture
    int stride, width, height, crop_left, crop_top, crop_right, crop_bottom;
};

const de265_image_allocation& default_allocation() {
    return *de265_get_default_image_allocation_functions();
}

int get_zeroed_buffer(de265_decoder_context* ctx, de265_image_spec* spec, de265_image* img,
                      void* userdata) {
    // Every SPS libde265 can see was checked to be 8-bit monochrome; anything
    // else keeps libde265's own allocation and is rejected when it comes out.
    if (spec->format != de265_image_format_mono8 || spec->width <= 0 || spec->height <= 0)
        return default_allocation().get_buffer(ctx, spec, img, userdata);
    const size_t align = 64;
    const size_t stride = (size_t(spec->width) + align - 1) / align * align;
    // libde265's SIMD code may read a few bytes past the last row.
    const size_t bytes = stride * size_t(spec->height) + align;
    if (stride > size_t(INT_MAX)) return 0;
    auto* block = new (std::nothrow) PlaneBlock;
    if (!block) return 0;
    block->raw = std::aligned_alloc(align, bytes);
    if (!block->raw) {
        delete block;
        return 0;
    }
    std::memset(block->raw, 0, bytes);
    block->pixels = static_cast<uint8_t*>(block->raw);
    block->stride = int(stride);
    block->width = spec->width;
    block->height = spec->height;
    block->crop_left = spec->crop_left;
    block->crop_top = spec->crop_top;
    block->crop_right = spec->crop_right;
    block->crop_bottom = spec->crop_bottom;
    de265_set_image_plane(img, 0, block->pixels, block->stride, block);
    de265_set_image_plane(img, 1, nullptr, 0, nullptr);
    de265_set_image_plane(img, 2, nullptr, 0, nullptr);
    return 1;
}

void release_zeroed_buffer(de265_decoder_context* ctx, de265_image* img, void* userdata) {
    auto* block = static_cast<PlaneBlock*>(de265_get_image_plane_user_data(img, 0));
    if (!block) {
        default_allocation().release_buffer(ctx, img, userdata);
        return;
    }
    std::free(block->raw);
    delete block;
}

de265_image_allocation zeroed_allocation = {get_zeroed_buffer, release_zeroed_buffer};

// Checks picture `index` against its hash; throws DecoderError on a mismatch.
void verify_picture(uint32_t index, const PlaneBlock& b, const PictureHash& h) {
    const std::string pic = "picture " + std::to_string(index);
    std::string expected, actual;
    switch (h.type) {
        case kHashCRC: {
            const uint16_t want = uint16_t(h.value[0] << 8 | h.value[1]);
            const uint16_t got = picture_crc(b.pixels, b.stride, b.width, b.height);
            if (got == want) return;
            expected = hex(want, 4), actual = hex(got, 4);
            break;
        }
        case kHashChecksum: {
            const uint32_t want = uint32_t(h.value[0]) << 24 | uint32_t(h.value[1]) << 16 |
                                  uint32_t(h.value[2]) << 8 | h.value[3];
            const uint32_t got = picture_checksum(b.pixels, b.stride, b.width, b.height);
            if (got == want) return;
            expected = hex(want, 8), actual = hex(got, 8);
            break;
        }
        default: {
            Md5 md5;
            for (int y = 0; y < b.height; ++y)
                md5.update(b.pixels + ptrdiff_t(y) * b.stride, size_t(b.width));
            uint8_t got[16];
            md5.finish(got);
            if (std::memcmp(got, h.value, 16) == 0) return;
            for (int i = 0; i < 16; ++i) expected += hex(h.value[i], 2).substr(2), actual += hex(got[i], 2).substr(2);
        }
    }
    throw DecoderError(pic + " fails its decoded picture hash (" + kHashNames[h.type] +
                       " checksum mismatch: the stream says " + expected + ", the decoded picture gives " +
                       actual + "): corrupted stream");
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
    // The picture hashes are checked here, for every picture (libde265's own
    // check reports a mismatch for the last picture of a stream only).
    de265_set_parameter_bool(ctx, DE265_DECODER_PARAM_BOOL_SEI_CHECK_HASH, 0);
    de265_set_image_allocation_functions(ctx, &zeroed_allocation, nullptr);
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

    // Every picture must carry its hash: a stream cut short, or pictures
    // dropped, added or reordered, fail here or at the hash check.
    const StreamIndex stream = index_stream(data, size);
    size_t hashes = 0;
    for (const PictureHash& h : stream.pictures) hashes += h.present;
    if (hashes != frames)
        throw DecoderError("stream has " + std::to_string(hashes) + " picture hashes for " +
                           std::to_string(frames) + " pictures: truncated or not written by pyweightvc");
    for (size_t i = 0; i < stream.pictures.size(); ++i)
        if (!stream.pictures[i].present)
            throw DecoderError("picture " + std::to_string(i) + " has no decoded picture hash");
    if (stream.pictures.size() != frames)
        throw DecoderError("stream holds " + std::to_string(stream.pictures.size()) +
                           " pictures, the header announces " + std::to_string(frames));

    uint32_t received = 0;
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
            const auto* block = static_cast<const PlaneBlock*>(de265_get_image_plane_user_data(img, 0));
            if (de265_get_chroma_format(img) != de265_chroma_mono ||
                de265_get_bits_per_pixel(img, 0) != 8 || !block)
                throw DecoderError("picture " + std::to_string(received) +
                                   " is not 8-bit monochrome");
            int stride = 0;
            const uint8_t* plane = de265_get_image_plane(img, 0, &stride);
            if (!plane || stride != block->stride ||
                plane != block->pixels + ptrdiff_t(block->crop_top) * stride + block->crop_left ||
                w != block->width - block->crop_left - block->crop_right ||
                h != block->height - block->crop_top - block->crop_bottom)
                throw DecoderError("de265_get_image_plane returned an unexpected plane");
            verify_picture(received, *block, stream.pictures[received]);
            sink(received, plane, stride);
            ++received;
            de265_release_next_picture(ctx);
        }
    };

    // Repeated parameter sets (x265 sends VPS, SPS and PPS before every picture)
    // are pushed once: identical bytes set identical state.
    const Nal* last_pushed[3] = {nullptr, nullptr, nullptr};
    for (const Nal& nal : stream.nals) {
        if (nal.type >= kVps && nal.type <= kPps) {
            const Nal*& last = last_pushed[nal.type - kVps];
            if (last && last->size == nal.size && std::memcmp(last->data, nal.data, nal.size) == 0)
                continue;
            last = &nal;
        }
        de265_error err = de265_push_NAL(ctx, nal.data, int(nal.size), 0, nullptr);
        if (!de265_isOK(err)) throw DecoderError("de265_push_NAL failed: " + error_text(err));
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
