// pybind11 module pyweightvc._core: the only file of the native core that knows
// Python. Arguments are checked here (types, sizes, contiguity); the GIL is
// released around all native work.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <mutex>
#include <string>

#include "errors.hpp"
#include "level_coder.hpp"
#include "rotation.hpp"
#include "tensor_codec.hpp"

namespace py = pybind11;
using namespace wvc;

namespace {

DType to_dtype(int code) {
    if (code < 1 || code > 4) throw std::invalid_argument("unknown dtype code " + std::to_string(code));
    return DType(code);
}

// A C-contiguous 2-D array whose item size matches the dtype code.
MatrixView matrix_view(const py::array& a, int dtype_code) {
    DType dtype = to_dtype(dtype_code);
    if (a.ndim() != 2) throw std::invalid_argument("expected a 2-D array");
    if (!(a.flags() & py::array::c_style))
        throw std::invalid_argument("expected a C-contiguous array");
    if (size_t(a.itemsize()) != dtype_size(dtype))
        throw std::invalid_argument(std::string("array item size does not match dtype ") +
                                    dtype_name(dtype));
    return MatrixView{a.data(), dtype, size_t(a.shape(0)), size_t(a.shape(1))};
}

QuantParams make_params(const py::array_t<float, py::array::c_style | py::array::forcecast>& scale,
                        const py::array_t<int32_t, py::array::c_style | py::array::forcecast>& zp,
                        int bits, bool symmetric, size_t rows, bool dense = false) {
    QuantParams p;
    p.bits = bits;
    p.dense = dense;
    p.symmetric = symmetric;
    p.scale.assign(scale.data(), scale.data() + scale.size());
    p.zero_point.assign(zp.data(), zp.data() + zp.size());
    p.validate(rows);
    return p;
}

py::tuple params_to_python(const QuantParams& p) {
    py::array_t<float> scale(p.scale.size());
    py::array_t<int32_t> zp(p.zero_point.size());
    std::copy(p.scale.begin(), p.scale.end(), scale.mutable_data());
    std::copy(p.zero_point.begin(), p.zero_point.end(), zp.mutable_data());
    return py::make_tuple(scale, zp, p.symmetric);
}

void* writable_output(py::array& out, size_t rows, size_t cols, OutType type) {
    static const size_t sizes[] = {1, 4, 2, 2};
    if (out.ndim() != 2 || size_t(out.shape(0)) != rows || size_t(out.shape(1)) != cols)
        throw std::invalid_argument("output array has the wrong shape");
    if (!(out.flags() & py::array::c_style) || !out.writeable())
        throw std::invalid_argument("output array must be C-contiguous and writeable");
    if (size_t(out.itemsize()) != sizes[int(type)])
        throw std::invalid_argument("output array item size does not match the output type");
    return out.mutable_data();
}

OutType to_out_type(int code) {
    if (code < 0 || code > 3) throw std::invalid_argument("unknown output type " + std::to_string(code));
    return OutType(code);
}

class PyDecoder {
public:
    explicit PyDecoder(int threads) : decoder_(threads) {}

    void decode(const py::buffer& stream, py::tuple layout_fields,
                const py::array_t<float, py::array::c_style | py::array::forcecast>& scale,
                const py::array_t<int32_t, py::array::c_style | py::array::forcecast>& zp,
                int bits, bool symmetric, py::array& out, int out_type, bool dense) {
        FrameLayout layout;
        layout.rows = layout_fields[0].cast<uint64_t>();
        layout.cols = layout_fields[1].cast<uint64_t>();
        layout.tile_h = layout_fields[2].cast<uint32_t>();
        layout.tile_w = layout_fields[3].cast<uint32_t>();
        layout.frame_h = layout_fields[4].cast<uint32_t>();
        layout.frame_w = layout_fields[5].cast<uint32_t>();
        layout.validate();
        QuantParams params = make_params(scale, zp, bits, symmetric, layout.rows, dense);
        OutType type = to_out_type(out_type);
        void* dst = writable_output(out, layout.rows, layout.cols, type);
        py::buffer_info info = stream.request();
        const auto* data = static_cast<const uint8_t*>(info.ptr);
        size_t size = size_t(info.size) * size_t(info.itemsize);
        py::gil_scoped_release release;
        std::lock_guard<std::mutex> lock(mutex_);
        decode_matrix(decoder_, data, size, layout, params, dst, type);
    }

    int threads() const { return decoder_.threads(); }

private:
    HevcDecoder decoder_;
    std::mutex mutex_;
};

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "pyweightvc native core: quantisation kernels, x265 encoder, libde265 decoder";

    // Translators are tried newest first, so the subclasses come after the root.
    auto& root = py::register_exception<wvc::Error>(m, "WeightVCError", PyExc_RuntimeError);
    py::register_exception<EncoderError>(m, "EncoderError", root.ptr());
    py::register_exception<DecoderError>(m, "DecoderError", root.ptr());

    m.def("versions", [] {
        py::dict d;
        d["pyweightvc"] = PYWEIGHTVC_VERSION;
        d["x265"] = x265_version();
        d["libde265"] = libde265_version();
        py::dict build;
        build["x265_build"] = x265_build_info();
        build["compiler"] = PYWEIGHTVC_COMPILER;
        build["cxx_flags"] = PYWEIGHTVC_CXX_FLAGS;
        d["build"] = build;
        return d;
    });
    m.attr("MAX_FRAME_SIDE") = kMaxFrameSide;
    m.attr("MIN_FRAME_SIDE") = kMinFrameSide;
    py::list presets;
    for (int i = 0; kPresets[i]; ++i) presets.append(kPresets[i]);
    m.attr("PRESETS") = py::tuple(presets);

    m.def(
        "compute_params",
        [](const py::array& src, int dtype_code, int bits, bool symmetric, bool per_channel,
           int threads, float min_step) {
            MatrixView view = matrix_view(src, dtype_code);
            QuantParams params;
            {
                py::gil_scoped_release release;
                params = compute_params(view, QuantSpec{bits, symmetric, per_channel, min_step}, threads);
            }
            return params_to_python(params);
        },
        py::arg("src"), py::arg("dtype_code"), py::arg("bits"), py::arg("symmetric"),
        py::arg("per_channel"), py::arg("threads") = 0, py::arg("min_step") = 0.0f,
        "Scales and zero points of src (2-D); returns (scale, zero_point, symmetric).");

    m.def(
        "quantize_levels",
        [](const py::array& src, int dtype_code,
           const py::array_t<float, py::array::c_style | py::array::forcecast>& scale,
           const py::array_t<int32_t, py::array::c_style | py::array::forcecast>& zp, int bits,
           bool symmetric, int threads) {
            MatrixView view = matrix_view(src, dtype_code);
            QuantParams params = make_params(scale, zp, bits, symmetric, view.rows);
            py::array_t<int8_t> out({view.rows, view.cols});
            int8_t* dst = out.mutable_data();
            {
                py::gil_scoped_release release;
                quantize_to_levels(view, params, dst, threads);
            }
            return out;
        },
        py::arg("src"), py::arg("dtype_code"), py::arg("scale"), py::arg("zero_point"),
        py::arg("bits"), py::arg("symmetric"), py::arg("threads") = 0);

    m.def(
        "dequantize_levels",
        [](const py::array_t<int8_t, py::array::c_style>& levels,
           const py::array_t<float, py::array::c_style | py::array::forcecast>& scale,
           const py::array_t<int32_t, py::array::c_style | py::array::forcecast>& zp, int bits,
           bool symmetric, py::array& out, int out_type, int threads) {
            if (levels.ndim() != 2) throw std::invalid_argument("levels must be a 2-D int8 array");
            size_t rows = size_t(levels.shape(0)), cols = size_t(levels.shape(1));
            QuantParams params = make_params(scale, zp, bits, symmetric, rows);
            OutType type = to_out_type(out_type);
            void* dst = writable_output(out, rows, cols, type);
            const int8_t* src = levels.data();
            py::gil_scoped_release release;
            dequantize_levels(src, rows, cols, params, dst, type, threads);
        },
        py::arg("levels"), py::arg("scale"), py::arg("zero_point"), py::arg("bits"),
        py::arg("symmetric"), py::arg("out"), py::arg("out_type"), py::arg("threads") = 0);

    m.def("rotation_block", [](size_t cols) { return rotation_block(cols); }, py::arg("cols"),
          "Largest power of two dividing cols: the Hadamard block of a rotation.");
    m.def(
        "rotate_forward",
        [](const py::array& src, int dtype_code, uint32_t block, uint64_t seed, int threads) {
            MatrixView view = matrix_view(src, dtype_code);
            py::array_t<float> out({view.rows, view.cols});
            float* dst = out.mutable_data();
            {
                py::gil_scoped_release release;
                rotate_forward(view, dst, block, seed, threads);
            }
            return out;
        },
        py::arg("src"), py::arg("dtype_code"), py::arg("block"), py::arg("seed"), py::arg("threads") = 0,
        "src (2-D, any float dtype) rotated: a new float32 matrix.");
    m.def(
        "rotate_inverse",
        [](py::array_t<float, py::array::c_style>& data, uint32_t block, uint64_t seed, int threads) {
            if (data.ndim() != 2 || !data.writeable())
                throw std::invalid_argument("expected a writable 2-D float32 array");
            size_t rows = size_t(data.shape(0)), cols = size_t(data.shape(1));
            float* p = data.mutable_data();
            py::gil_scoped_release release;
            rotate_inverse(p, rows, cols, block, seed, threads);
        },
        py::arg("data"), py::arg("block"), py::arg("seed"), py::arg("threads") = 0,
        "Undo rotate_forward in place on a float32 matrix.");

    m.def(
        "encode_levels",
        [](const py::array_t<int8_t, py::array::c_style>& levels) {
            if (levels.ndim() != 2) throw std::invalid_argument("levels must be a 2-D int8 array");
            size_t rows = size_t(levels.shape(0)), cols = size_t(levels.shape(1));
            const int8_t* src = levels.data();
            std::vector<uint8_t> stream;
            {
                py::gil_scoped_release release;
                stream = encode_levels(src, rows, cols);
            }
            return py::bytes(reinterpret_cast<const char*>(stream.data()), stream.size());
        },
        py::arg("levels"), "The rans level stream of a 2-D int8 matrix (docs/format.md).");
    m.def(
        "decode_levels",
        [](const py::buffer& stream, size_t rows, size_t cols) {
            py::buffer_info info = stream.request();
            if (info.ndim != 1 || info.itemsize != 1 || (info.ndim == 1 && info.strides[0] != 1))
                throw std::invalid_argument("stream must be a contiguous bytes-like object");
            check_level_count(uint64_t(info.size), rows, cols);  // before allocating the output
            py::array_t<int8_t> out({rows, cols});
            int8_t* dst = out.mutable_data();
            const uint8_t* src = static_cast<const uint8_t*>(info.ptr);
            size_t size = size_t(info.size);
            {
                py::gil_scoped_release release;
                decode_levels(src, size, dst, rows, cols);
            }
            return out;
        },
        py::arg("stream"), py::arg("rows"), py::arg("cols"),
        "Exactly rows x cols int8 levels from a rans level stream; DecoderError when it is not one.");
    m.def("max_levels_for_bytes", &max_levels_for_bytes, py::arg("size"),
          "The most levels a rans level stream of that many bytes can hold.");

    py::class_<HevcEncoder>(m, "Encoder")
        .def(py::init([](int qp, bool lossless, const std::string& preset, int threads,
                         std::vector<std::pair<std::string, std::string>> extra) {
                 return HevcEncoder(EncoderSettings{qp, lossless, preset, threads, std::move(extra)});
             }),
             py::arg("qp"), py::arg("lossless"), py::arg("preset"), py::arg("threads"),
             py::arg("extra"))
        .def("options", &HevcEncoder::options, py::arg("frame_w"), py::arg("frame_h"))
        .def(
            "encode",
            [](const HevcEncoder& self, const py::array& src, int dtype_code,
               const py::array_t<float, py::array::c_style | py::array::forcecast>& scale,
               const py::array_t<int32_t, py::array::c_style | py::array::forcecast>& zp,
               int bits, bool symmetric, uint32_t max_frame_side, bool dense) {
                MatrixView view = matrix_view(src, dtype_code);
                QuantParams params = make_params(scale, zp, bits, symmetric, view.rows, dense);
                EncodedMatrix encoded;
                {
                    py::gil_scoped_release release;
                    encoded = encode_matrix(self, view, params, max_frame_side);
                }
                const FrameLayout& l = encoded.layout;
                return py::make_tuple(
                    py::bytes(reinterpret_cast<const char*>(encoded.stream.data()),
                              encoded.stream.size()),
                    py::make_tuple(l.tile_h, l.tile_w, l.frame_h, l.frame_w));
            },
            py::arg("src"), py::arg("dtype_code"), py::arg("scale"), py::arg("zero_point"),
            py::arg("bits"), py::arg("symmetric"), py::arg("max_frame_side"), py::arg("dense") = false,
            "Quantise src (2-D) into pictures and encode; returns (stream, (tile_h, tile_w, "
            "frame_h, frame_w)).");

    py::class_<PyDecoder>(m, "Decoder")
        .def(py::init<int>(), py::arg("threads"))
        .def_property_readonly("threads", &PyDecoder::threads)
        .def("decode", &PyDecoder::decode, py::arg("stream"), py::arg("layout"), py::arg("scale"),
             py::arg("zero_point"), py::arg("bits"), py::arg("symmetric"), py::arg("out"),
             py::arg("out_type"), py::arg("dense") = false,
             "Decode stream into out (levels or values); layout is (rows, cols, tile_h, tile_w, "
             "frame_h, frame_w).");
}
