"""ONNX models in, ONNX models out.

    from pyweightvc import onnx as wvc_onnx
    wvc_onnx.compress("model.onnx", "model.wvc")               # or qp=24: matrices through HEVC
    model = wvc_onnx.decompress("model.wvc", format="float")   # or "qdq"

The weights the policy quantises (graph initializers and the tensors of Constant
nodes: MatMul/Gemm matrices as the policy says — exact levels at DEFAULT_SNR_DB by
default, through HEVC with a QP or target —, Conv kernels as int8 levels; the W and
R weights of LSTM, GRU and RNN nodes as matrices of directions x gate rows, one
scale per row, their biases as vectors)
go into the .wvc file as usual; everything else — the graph with its nodes,
attributes, opsets, metadata and the tensors stored raw — is kept verbatim as a
serialised ModelProto whose extracted tensors have their data cleared, so the
model is rebuilt exactly but for the quantised weights.

``format="qdq"`` keeps the quantised weights 8-bit inside the model: each becomes
an int8 initializer with its scale and zero point feeding a DequantizeLinear node
whose output has the original name, which ONNX Runtime runs as is. A rotated
weight (``Policy(rotate=...)``) goes out as floats: its levels would need rotated
inputs.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .container import WvcFile, load_json, safe_open, save_file
from .errors import ContainerError, InputError
from .policy import Policy

MODEL_KEY = "__onnx_model__"
CONSTANT_PREFIX = "__constant__:"
# LSTM / GRU / RNN keep W and R as [directions, gates x hidden, inputs]: as one
# matrix per row of gates x hidden they get a scale per output row instead of one
# per direction (ddddocr's LSTM at 8 bits: 19.5-26.9 dB per direction, 38.5-42.0 dB
# per row); their bias B, [directions, 2 x gates x hidden], is a vector
_RECURRENT_OPS = ("LSTM", "GRU", "RNN")
_FLOAT_TYPES: dict[int, str] = {TensorProto.FLOAT: "float32", TensorProto.FLOAT16: "float16", TensorProto.BFLOAT16: "bfloat16"}
_TWO_GB = 2**31 - 1


def load(model_or_path: Any) -> onnx.ModelProto:
    """An ONNX model from a path (external data read too) or as given; ValueError if not ONNX."""
    if isinstance(model_or_path, onnx.ModelProto):
        return model_or_path
    path = os.fspath(model_or_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return onnx.load(path)  # external data (a side file) is read too
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ValueError(f"{path}: not an ONNX model ({type(exc).__name__}: {exc})") from None


def _check_references(model: onnx.ModelProto) -> None:
    """Every node input must be a graph input, an initializer or a node output."""
    graph = model.graph
    known = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    for node in graph.node:
        missing = [i for i in node.input if i not in known]
        if missing:
            raise ValueError(
                f"node {node.name or node.op_type!r} ({node.op_type}) uses {missing}, "
                "which no graph input, initializer or earlier node provides"
            )
        known.update(node.output)


def _strip(t: TensorProto) -> None:
    """Clear a tensor's data in place, keeping name, type and dims."""
    for field in ("raw_data", "float_data", "int32_data", "int64_data", "double_data", "uint64_data", "string_data", "external_data"):
        t.ClearField(field)
    t.data_location = TensorProto.DEFAULT


def _to_array(t: TensorProto) -> np.ndarray:
    arr = numpy_helper.to_array(t)
    if t.data_type == TensorProto.BFLOAT16 and arr.dtype.name != "bfloat16":
        raise TypeError(f"tensor {t.name!r}: this onnx cannot give bfloat16 as numpy (install ml_dtypes)")
    return np.ascontiguousarray(arr)


def extract(model_or_path: Any, policy: Policy) -> tuple[dict, list, onnx.ModelProto]:
    """The tensors :func:`compress` stores: the weights the policy quantises (their
    data cleared in the graph) and the graph itself under MODEL_KEY; with the list of
    where each goes back, and the stripped graph."""
    model = onnx.ModelProto()
    model.CopyFrom(load(model_or_path))
    _check_references(model)
    tensors: dict = {}
    places = []  # (container key, "initializer" | "constant" | "recurrent", initializer or node-output name)
    weights, biases = _recurrent_inputs(model)

    def take(key: str, t: TensorProto, kind: str, where: str) -> None:
        if t.data_type not in _FLOAT_TYPES:
            return
        shape = tuple(t.dims)
        if kind == "initializer" and where in weights and len(shape) == 3:
            kind, shape = "recurrent", (shape[0] * shape[1], shape[2])
        elif kind == "initializer" and where in biases:
            shape = (int(np.prod(shape)),)  # planned as the vector it is
        plan = policy.plan(key, _FLOAT_TYPES[t.data_type], shape)
        if plan.storage == "raw":
            return
        tensors[key] = _to_array(t).reshape(shape) if kind == "recurrent" else _to_array(t)
        places.append((key, kind, where))
        _strip(t)

    names = {t.name for t in model.graph.initializer}
    if MODEL_KEY in names or any(n.startswith(CONSTANT_PREFIX) for n in names):
        raise ValueError(f"initializer names {MODEL_KEY!r} and {CONSTANT_PREFIX}* are reserved")
    for t in model.graph.initializer:
        take(t.name, t, "initializer", t.name)
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR:
                    take(CONSTANT_PREFIX + node.output[0], attr.t, "constant", node.output[0])
    tensors[MODEL_KEY] = np.frombuffer(model.SerializeToString(), dtype=np.uint8)
    return tensors, places, model


def _recurrent_inputs(model: onnx.ModelProto) -> tuple[set[str], set[str]]:
    """Names of the W and R inputs, and of the B inputs, of the graph's recurrent nodes."""
    weights: set[str] = set()
    biases: set[str] = set()
    for node in model.graph.node:
        if node.op_type in _RECURRENT_OPS and node.domain in ("", "ai.onnx"):
            weights.update(n for n in node.input[1:3] if n)
            biases.update(n for n in node.input[3:4] if n)
    return weights - biases, biases - weights


def places_metadata(places: list) -> dict:
    """The __metadata__ entry that says where each extracted tensor goes back."""
    return {"onnx_tensors": json.dumps(places)}


def compress(
    model_or_path: Any,
    path: str,
    qp: Optional[int] = None,
    policy: Optional[Policy] = None,
    metadata: Optional[dict] = None,
    **options: Any,
) -> dict:
    """Compress an ONNX model (path or ModelProto) into a .wvc file; returns its header.
    Options: threads, and progress(name, elements) called as the weights are done
    (those left in the graph at the end, in one call): :func:`float_elements` in all."""
    policy = policy or Policy(qp)
    tensors, places, model = extract(model_or_path, policy)
    meta = {**places_metadata(places), **(metadata or {})}
    progress = options.pop("progress", None)
    kept = float_elements(model)  # the float weights left in the graph, stored as they are

    def each(name: str, elements: int) -> None:
        if progress and name != MODEL_KEY:
            progress(name, elements)

    header = save_file(tensors, path, policy=policy, metadata=meta, progress=each, **options)
    if progress and kept:
        progress(MODEL_KEY, kept)
    return header


def float_elements(model: onnx.ModelProto) -> int:
    """Elements of the float initializers and Constant-node tensors: the weights
    :func:`compress` reports progress in."""
    total = sum(int(np.prod(t.dims)) for t in model.graph.initializer if t.data_type in _FLOAT_TYPES)
    for node in model.graph.node:
        if node.op_type == "Constant":
            total += sum(
                int(np.prod(a.t.dims))
                for a in node.attribute
                if a.name == "value" and a.type == onnx.AttributeProto.TENSOR and a.t.data_type in _FLOAT_TYPES
            )
    return total


def _float_tensor(name: str, arr: np.ndarray, data_type: int) -> TensorProto:
    if data_type == TensorProto.BFLOAT16:
        bits = arr.astype(np.float32).view(np.uint32)
        bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)  # round to nearest even
        t = helper.make_tensor(name, data_type, arr.shape, bits.tobytes(), raw=True)
        return t
    np_types: dict[int, type] = {TensorProto.FLOAT: np.float32, TensorProto.FLOAT16: np.float16}
    np_type = np_types[data_type]
    return numpy_helper.from_array(arr.astype(np_type, copy=False), name)


def _skeleton(f: WvcFile) -> onnx.ModelProto:
    """The stored ModelProto (tensor data cleared); ContainerError if it is not one."""
    e = f.entry(MODEL_KEY)
    if e["storage"] != "raw" or e["dtype"] != "uint8" or len(e["shape"]) != 1:
        raise ContainerError(f"tensor {MODEL_KEY!r}: expected raw uint8 bytes, found {e['storage']} {e['dtype']} {e['shape']}")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(f.get_tensor(MODEL_KEY).tobytes())
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ContainerError(f"tensor {MODEL_KEY!r} is not a serialised ONNX model ({type(exc).__name__}: {exc})") from None
    return model


def _places(f: WvcFile, inits: dict, consts: dict, format: str) -> list:
    """__metadata__["onnx_tensors"], checked against the file and the model: each
    [key, "initializer" | "constant", name] names a stored tensor and a float tensor
    of the model with its shape."""
    places = load_json(f.metadata().get("onnx_tensors", "[]"))
    if not isinstance(places, list):
        raise ContainerError("onnx_tensors is not a list")
    if len({(p[1], p[2]) for p in places if isinstance(p, list) and len(p) == 3 and all(isinstance(q, str) for q in p)}) != len(places):
        raise ContainerError("onnx_tensors: a tensor of the model is listed twice, or a place is malformed")
    for place in places:
        if (
            not isinstance(place, list)
            or len(place) != 3
            or not all(isinstance(p, str) for p in place)
            or place[1] not in ("initializer", "constant", "recurrent")
        ):
            raise ContainerError(f"onnx_tensors: bad place {place!r}")
        key, kind, where = place
        if key not in f.keys() or key == MODEL_KEY:
            raise ContainerError(f"onnx_tensors: no tensor {key!r} in the file")
        if kind == "constant":
            attrs = [a for a in consts[where].attribute if a.name == "value"] if where in consts else []
            t = attrs[0].t if attrs and attrs[0].type == onnx.AttributeProto.TENSOR else None
        else:
            t = inits.get(where)
        if t is None or t.data_type not in _FLOAT_TYPES:
            raise ContainerError(f"onnx_tensors: the model has no float {kind} {where!r} for tensor {key!r}")
        e = f.entry(key)
        dims = list(t.dims)
        if kind == "recurrent":  # stored as [directions x rows, columns]
            if len(dims) != 3:
                raise ContainerError(f"tensor {key!r}: the model's recurrent weight {where!r} has shape {dims}, not 3-D")
            dims = [dims[0] * dims[1], dims[2]]
        if dims != e["shape"]:
            raise ContainerError(f"tensor {key!r}: shape {e['shape']}, the model's {kind} {where!r} has {dims}")
        if format == "qdq" and kind != "constant" and e["storage"] == "raw":
            raise ContainerError(f"tensor {key!r} is stored raw: not a quantised weight")
    return places


def decompress(path: str, format: str = "float") -> onnx.ModelProto:
    """Rebuild the ONNX model from a .wvc file written by :func:`compress`.

    format="float": the quantised weights decoded to their float dtype.
    format="qdq": quantised initializers stay int8 behind DequantizeLinear nodes
    (float32 weights; models below opset 13 are converted to 13 first);
    Constant-node tensors are decoded to floats.
    """
    if format not in ("float", "qdq"):
        raise ValueError(f"format must be 'float' or 'qdq', got {format!r}")
    with safe_open(path) as f:
        if MODEL_KEY not in f.keys():
            raise InputError(f"{path}: not a .wvc file made from an ONNX model")
        model = _skeleton(f)
        inits = {t.name: t for t in model.graph.initializer}
        consts = {n.output[0]: n for n in model.graph.node if n.op_type == "Constant" and n.output}
        places = _places(f, inits, consts, format)
        return rebuild(model, places, f.get_tensor, f.get_int8, format)


def rebuild(
    model: onnx.ModelProto,
    places: list,
    get_tensor: Callable[[str], np.ndarray],
    get_int8: Optional[Callable[[str], Any]] = None,
    format: str = "float",
) -> onnx.ModelProto:
    """The model from its stripped graph (changed in place) and its extracted tensors
    (get_tensor(key) -> decoded values; get_int8(key) -> levels and scales, for
    format="qdq"); places as extract gives them or decompress has checked them."""
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if format == "qdq" and opset < 13:
        # per-axis DequantizeLinear needs opset 13: convert the graph (the
        # converter rewrites ops whose signature changed, e.g. Squeeze, Split)
        from onnx import version_converter

        try:
            model = version_converter.convert_version(model, 13)
        except Exception as exc:
            raise InputError(f"qdq export needs opset >= 13 and converting from opset {opset} failed: {exc}") from None
        opset = 13
    inits = {t.name: t for t in model.graph.initializer}
    consts = {n.output[0]: n for n in model.graph.node if n.op_type == "Constant" and n.output}
    dq_nodes = []
    for key, kind, where in places:
        if kind == "constant":
            attr = next(a for a in consts[where].attribute if a.name == "value")
            attr.t.CopyFrom(_float_tensor(attr.t.name, get_tensor(key), attr.t.data_type))
            continue
        t = inits[where]
        dims = tuple(t.dims)
        if format == "float":
            t.CopyFrom(_float_tensor(t.name, get_tensor(key).reshape(dims), t.data_type))
            continue
        if t.data_type != TensorProto.FLOAT:
            raise InputError(f"qdq export needs float32 weights (tensor {where!r} is {_FLOAT_TYPES[t.data_type]})")
        if get_int8 is None:
            raise ValueError('format="qdq" needs the tensors\' integer levels (get_int8)')
        qt = get_int8(key)
        if qt.rotation is not None:  # rotated levels need rotated inputs: this weight goes out as floats
            t.CopyFrom(_float_tensor(t.name, get_tensor(key).reshape(dims), t.data_type))
            continue
        per_channel = qt.scale.size > 1
        q_name, s_name, z_name = f"{where}_quantized", f"{where}_scale", f"{where}_zero_point"
        t.CopyFrom(numpy_helper.from_array(qt.levels, q_name))
        scale = qt.scale if per_channel else qt.scale.reshape(())
        zero = qt.zero_point.astype(np.int8) if per_channel else qt.zero_point.astype(np.int8).reshape(())
        model.graph.initializer.extend([numpy_helper.from_array(scale.astype(np.float32), s_name), numpy_helper.from_array(zero, z_name)])
        # a recurrent weight's levels are its 2-D view: dequantised per row, then reshaped
        out = f"{where}_rows" if kind == "recurrent" else where
        node = helper.make_node("DequantizeLinear", [q_name, s_name, z_name], [out], name=f"{where}_dequantize")
        if per_channel:
            node.attribute.append(helper.make_attribute("axis", 0))
        dq_nodes.append(node)
        if kind == "recurrent":
            shape_name = f"{where}_shape"
            model.graph.initializer.append(numpy_helper.from_array(np.array(dims, np.int64), shape_name))
            dq_nodes.append(helper.make_node("Reshape", [out, shape_name], [where], name=f"{where}_reshape"))
    if dq_nodes:
        nodes = dq_nodes + list(model.graph.node)
        model.graph.ClearField("node")
        model.graph.node.extend(nodes)
    return model


def save(model: onnx.ModelProto, path: str, data_location: Optional[str] = None) -> None:
    """Write a model, with its weights in a side file (default: PATH.data beside it)
    when it exceeds protobuf's 2 GB."""
    if model.ByteSize() > _TWO_GB:
        onnx.save_model(
            model,
            path,
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=data_location or os.path.basename(path) + ".data",
        )
    else:
        onnx.save_model(model, path)
