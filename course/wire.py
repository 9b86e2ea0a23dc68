"""Plain data across the sandbox wall: an encoder and a decoder that cannot run code.

The grader's trusted process and its sandboxed worker (:mod:`course.sandbox`,
:mod:`course.worker`) exchange messages made only of plain values: ``None``,
booleans, integers, floats, complex numbers, strings, bytes, lists, tuples,
dicts, slices, ``Ellipsis``, ``torch.dtype``/``torch.Size``, NumPy arrays and
torch tensors, plus references to objects that stay on the other side
(:class:`Ref`).  A message is one JSON header followed by raw array buffers,
each length-prefixed on the stream.  Decoding builds values from that JSON
with a fixed table of constructors -- no pickle, no ``eval``, no import -- so
whatever the student's code writes into the pipe can at worst be a wrong
value, never code that runs in the grader.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import torch

__all__ = ["MAX_MESSAGE", "Ref", "WireError", "decode", "encode", "read_message", "write_message"]

#: Largest message accepted (bytes): a runaway worker cannot make the grader allocate more.
MAX_MESSAGE = 1 << 31
_LENGTH = struct.Struct("<Q")
_MAX_DEPTH = 64

_TORCH_DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16,
    torch.int8, torch.uint8, torch.bool, torch.complex64, torch.complex128)}
# bfloat16 has no NumPy twin: its buffer travels as int16 bits.
_NUMPY_OF = {"bfloat16": np.dtype("<i2"), "bool": np.dtype("?"), "uint8": np.dtype("u1"), "int8": np.dtype("i1")}
_NUMPY_DTYPES = ("<f8", "<f4", "<f2", "<i8", "<i4", "<i2", "|i1", "|u1", "|b1", "<c8", "<c16", "<u2", "<u4", "<u8")


class WireError(ValueError):
    """A message that is not plain data (or not well formed)."""


@dataclass(frozen=True)
class Ref:
    """A reference to an object kept by the worker: its id and a short description for messages."""

    id: int
    kind: str = "object"  # object, callable, class, module
    type: str = ""
    text: str = ""


def _np_dtype_for(tensor: torch.Tensor) -> np.dtype:
    name = str(tensor.dtype).removeprefix("torch.")
    if name not in _TORCH_DTYPES:
        raise WireError(f"tensor dtype {tensor.dtype} cannot cross the sandbox")
    return _numpy_dtype(name)


def _numpy_dtype(name: str) -> np.dtype:
    """The little-endian NumPy dtype that carries a torch dtype's bytes (bfloat16: its int16 bits)."""
    return _NUMPY_OF[name] if name in _NUMPY_OF else np.dtype(name).newbyteorder("<")


def _storage_order(t: torch.Tensor) -> list[int] | None:
    """The order of ``t``'s dimensions in memory when ``t`` is a permutation of a contiguous tensor
    (``channels_last``, a transpose) and not contiguous itself; else None (sent as a contiguous copy)."""
    if t.dim() < 2 or t.is_contiguous():
        return None
    order = sorted(range(t.dim()), key=lambda d: -t.stride(d))
    return order if t.permute(order).is_contiguous() else None


def encode(value, refer=None) -> tuple[bytes, list[bytes]]:
    """``value`` -> (JSON header, buffers).  ``refer(obj) -> Ref`` handles what is not plain (else: error)."""
    buffers: list[bytes] = []

    def go(v, depth):
        if depth > _MAX_DEPTH:
            raise WireError("value nested too deeply")
        if v is None or isinstance(v, bool | str):
            return v
        if isinstance(v, int):
            return {"$": "int", "v": str(v)} if abs(v) >= 1 << 53 else v
        if isinstance(v, float):
            return v if math.isfinite(v) else {"$": "float", "v": repr(v)}
        if isinstance(v, complex):
            return {"$": "complex", "v": [go(v.real, depth + 1), go(v.imag, depth + 1)]}
        if isinstance(v, bytes):
            buffers.append(bytes(v))
            return {"$": "bytes", "b": len(buffers) - 1}
        if isinstance(v, torch.Tensor):
            return tensor(v)
        if isinstance(v, np.ndarray) and v.dtype != object:
            array = np.ascontiguousarray(v, dtype=v.dtype.newbyteorder("<") if v.dtype.byteorder == ">" else v.dtype)
            if array.dtype.str not in _NUMPY_DTYPES:
                raise WireError(f"array dtype {v.dtype} cannot cross the sandbox")
            buffers.append(array.tobytes())
            return {"$": "ndarray", "dtype": array.dtype.str, "shape": list(array.shape), "b": len(buffers) - 1}
        if isinstance(v, np.generic) and not isinstance(v, np.object_):
            return go(v.item(), depth)
        if isinstance(v, torch.dtype):
            return {"$": "dtype", "v": str(v).removeprefix("torch.")}
        if isinstance(v, torch.Size):
            return {"$": "size", "v": [int(d) for d in v]}
        if isinstance(v, torch.device):
            return {"$": "device", "v": str(v)}
        if isinstance(v, slice):
            return {"$": "slice", "v": [go(v.start, depth + 1), go(v.stop, depth + 1), go(v.step, depth + 1)]}
        if v is Ellipsis:
            return {"$": "ellipsis"}
        if isinstance(v, Ref):
            return {"$": "ref", "id": v.id, "kind": v.kind, "type": v.type, "text": v.text}
        if type(v) in (list, tuple):
            return {"$": type(v).__name__, "v": [go(x, depth + 1) for x in v]}
        if type(v) is dict:
            return {"$": "dict", "k": [go(k, depth + 1) for k in v], "v": [go(x, depth + 1) for x in v.values()]}
        if type(v) in (set, frozenset):
            return {"$": type(v).__name__, "v": [go(x, depth + 1) for x in v]}
        if refer is None:
            raise WireError(f"a {type(v).__name__} is not plain data")
        return go(refer(v), depth)

    def tensor(t):
        requires_grad = bool(t.requires_grad)
        t = t.detach()
        if t.is_sparse or t.layout != torch.strided:
            t = t.to_dense()
        t = t.cpu()
        order = _storage_order(t)  # a permuted layout (channels-last, a transpose) travels as such
        t = (t if order is None else t.permute(order)).contiguous()
        dtype = _np_dtype_for(t)
        data = t.view(torch.int16) if t.dtype == torch.bfloat16 else t
        buffers.append(data.numpy().astype(dtype, copy=False).tobytes())
        node = {"$": "tensor", "dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape),
                "grad": requires_grad, "b": len(buffers) - 1}
        if order is not None:
            node["perm"] = order
        return node

    header = json.dumps(go(value, 0), allow_nan=False, separators=(",", ":")).encode("utf-8")
    return header, buffers


def decode(header: bytes, buffers: list[bytes], resolve=None):
    """The value ``encode`` described; ``resolve(Ref) -> object`` turns references back (default: keep the Ref)."""
    try:
        tree = json.loads(header.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"message header is not JSON: {exc}") from None

    def buffer(node) -> bytes:
        index = node.get("b")
        if not isinstance(index, int) or not 0 <= index < len(buffers):
            raise WireError("message refers to a missing buffer")
        return buffers[index]

    def shape(node) -> tuple[int, ...]:
        dims = node.get("shape")
        if not isinstance(dims, list) or not all(isinstance(d, int) and d >= 0 for d in dims):
            raise WireError("bad shape in message")
        return tuple(dims)

    def go(node, depth):
        if depth > _MAX_DEPTH:
            raise WireError("message nested too deeply")
        if node is None or isinstance(node, bool | int | float | str):
            return node
        if isinstance(node, list):
            raise WireError("bare list in message")
        if not isinstance(node, dict) or not isinstance(node.get("$"), str):
            raise WireError("unknown node in message")
        kind = node["$"]
        if kind == "int":
            return int(str(node["v"]))
        if kind == "float":
            if node["v"] not in ("nan", "inf", "-inf"):
                raise WireError("bad float in message")
            return float(node["v"])
        if kind == "complex":
            real, imag = (go(x, depth + 1) for x in _items(node))
            return complex(real, imag)
        if kind == "bytes":
            return buffer(node)
        if kind == "tensor":
            name = node.get("dtype")
            if name not in _TORCH_DTYPES:
                raise WireError(f"tensor dtype {name!r} not allowed")
            dims, raw = shape(node), buffer(node)
            np_dtype = _numpy_dtype(name)
            if len(raw) != math.prod(dims) * np_dtype.itemsize:
                raise WireError("tensor buffer has the wrong size")
            array = np.frombuffer(raw, dtype=np_dtype).reshape(dims).copy()
            t = torch.from_numpy(array)
            if name == "bfloat16":
                t = t.view(torch.bfloat16)
            if "perm" in node:  # stored in that order: give back the tensor with its original layout
                order = node["perm"]
                if not isinstance(order, list) or sorted(order) != list(range(len(dims))):
                    raise WireError("bad dimension order in message")
                t = t.permute([order.index(d) for d in range(len(dims))])
            if node.get("grad") and (t.is_floating_point() or t.is_complex()):
                t.requires_grad_(True)
            return t
        if kind == "ndarray":
            if node.get("dtype") not in _NUMPY_DTYPES:
                raise WireError(f"array dtype {node.get('dtype')!r} not allowed")
            dims, raw, np_dtype = shape(node), buffer(node), np.dtype(node["dtype"])
            if len(raw) != math.prod(dims) * np_dtype.itemsize:
                raise WireError("array buffer has the wrong size")
            return np.frombuffer(raw, dtype=np_dtype).reshape(dims).copy()
        if kind == "dtype":
            if node.get("v") not in _TORCH_DTYPES:
                raise WireError("dtype not allowed")
            return _TORCH_DTYPES[node["v"]]
        if kind == "size":
            return torch.Size([int(d) for d in _items(node)])
        if kind == "device":
            return torch.device(str(node["v"]))
        if kind == "slice":
            return slice(*(go(x, depth + 1) for x in _items(node)))
        if kind == "ellipsis":
            return Ellipsis
        if kind == "ref":
            ref = Ref(int(node["id"]), str(node.get("kind", "object")), str(node.get("type", "")),
                      str(node.get("text", "")))
            return resolve(ref) if resolve is not None else ref
        if kind in ("list", "tuple", "set", "frozenset"):
            items = [go(x, depth + 1) for x in _items(node)]
            return {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}[kind](items)
        if kind == "dict":
            keys, values = node.get("k"), node.get("v")
            if not isinstance(keys, list) or not isinstance(values, list) or len(keys) != len(values):
                raise WireError("bad dict in message")
            return {go(k, depth + 1): go(v, depth + 1) for k, v in zip(keys, values, strict=True)}
        raise WireError(f"unknown node kind {kind!r} in message")

    try:
        return go(tree, 0)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, WireError):
            raise
        raise WireError(f"malformed message: {exc}") from None


def _items(node) -> list:
    items = node.get("v")
    if not isinstance(items, list):
        raise WireError("bad sequence in message")
    return items


def write_message(stream: BinaryIO, value, refer=None) -> None:
    """Encode ``value`` and write it: header length, header, buffer count, then each buffer with its length."""
    header, buffers = encode(value, refer)
    parts = [_LENGTH.pack(len(header)), header, _LENGTH.pack(len(buffers))]
    for buf in buffers:
        parts += [_LENGTH.pack(len(buf)), buf]
    stream.write(b"".join(parts))
    stream.flush()


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError("the other side closed the channel")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _length(stream: BinaryIO, budget: list[int]) -> int:
    (size,) = _LENGTH.unpack(_read_exact(stream, _LENGTH.size))
    budget[0] -= size
    if size > MAX_MESSAGE or budget[0] < 0:
        raise WireError(f"message larger than {MAX_MESSAGE} bytes")
    return size


def read_message(stream: BinaryIO, resolve=None):
    """Read one message written by :func:`write_message` and decode it."""
    budget = [MAX_MESSAGE]
    header = _read_exact(stream, _length(stream, budget))
    (count,) = _LENGTH.unpack(_read_exact(stream, _LENGTH.size))
    if count > 1 << 20:
        raise WireError("too many buffers in message")
    buffers = [_read_exact(stream, _length(stream, budget)) for _ in range(count)]
    return decode(header, buffers, resolve)
