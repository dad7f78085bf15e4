#!/usr/bin/env python3
"""Generate the kernel conformance fixtures from a llama.cpp build (the oracle).

For every block format in FORMATS this records, on one shared deterministic f32
input, what ggml does:

* the quantized bytes (ggml_quantize_chunk, which is what llama-quantize calls;
  imatrix NULL for the formats that need none, an all-ones imatrix for the
  i-quants that cannot be made without one; quantize_row_*_ref for the
  activation-only formats Q8_1 and Q8_K, which ggml_quantize_chunk rejects);
* ggml's dequantization of those bytes (type_traits->to_float);
* one ggml CPU dot product per row against the shared activations, quantized
  to the format's vec_dot_type with the CPU backend's from_float (exactly what
  ggml's matmul feeds to vec_dot);
* for every activation format (each vec_dot_type), the CPU backend's run-time
  from_float applied to the shared input: on x86 it rounds Q8_0 / Q8_1 half to
  even with scale 127/amax (ggml-cpu/arch/x86/quants.c), unlike the reference
  quantizer llama-quantize uses for weights, and hearth's matmul must match it.

Usage: gen_kernel_fixtures.py [--llama-cpp DIR] [--build NAME] [--out DIR]
Needs numpy and the shared libraries of a llama.cpp build
(DIR/NAME/bin/libggml-base.so, libggml-cpu.so; NAME defaults to build-noamx, a
build without AMX, whose CPU backend runs on machines without AMX tiles). See
README.md for the format.
"""

import argparse
import ctypes as C
import json
import os
import sys

import numpy as np

N_PER_ROW = 256
N_ROWS = 32
SEED = 20240917

# ggml_type ids (ggml.h, enum ggml_type).
GGML = {
    "f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8,
    "q8_1": 9, "q2_K": 10, "q3_K": 11, "q4_K": 12, "q5_K": 13, "q6_K": 14,
    "q8_K": 15, "iq2_xxs": 16, "iq2_xs": 17, "iq3_xxs": 18, "iq1_s": 19,
    "iq4_nl": 20, "iq3_s": 21, "iq2_s": 22, "iq4_xs": 23, "iq1_m": 29, "bf16": 30,
    "mxfp4": 39,
}
ID_TO_NAME = {v: k for k, v in GGML.items()}

# (name, how ggml quantizes it)
#   chunk:   ggml_quantize_chunk without an importance matrix (llama-quantize's path)
#   ref:     the exported quantize_row_<name>_ref (formats ggml_quantize_chunk rejects)
#   imatrix: ggml_quantize_chunk with an all-ones importance matrix
FORMATS = [
    ("f16", "chunk"), ("bf16", "chunk"),
    ("q4_0", "chunk"), ("q4_1", "chunk"), ("q5_0", "chunk"), ("q5_1", "chunk"),
    ("q8_0", "chunk"), ("q8_1", "ref"),
    ("q2_K", "chunk"), ("q3_K", "chunk"), ("q4_K", "chunk"), ("q5_K", "chunk"),
    ("q6_K", "chunk"), ("q8_K", "ref"),
    ("iq4_nl", "chunk"), ("iq4_xs", "chunk"),
    ("iq2_xxs", "imatrix"), ("iq2_xs", "imatrix"), ("iq2_s", "imatrix"),
    ("iq3_xxs", "imatrix"), ("iq3_s", "imatrix"), ("iq1_s", "imatrix"),
    ("iq1_m", "imatrix"),
    ("mxfp4", "chunk"),
]

# Bytes per block and elements per block (ggml-common.h), to size buffers.
BLOCK = {
    "f32": (1, 4), "f16": (1, 2), "bf16": (1, 2),
    "q4_0": (32, 18), "q4_1": (32, 20), "q5_0": (32, 22), "q5_1": (32, 24),
    "q8_0": (32, 34), "q8_1": (32, 36),
    "q2_K": (256, 84), "q3_K": (256, 110), "q4_K": (256, 144), "q5_K": (256, 176),
    "q6_K": (256, 210), "q8_K": (256, 292),
    "iq2_xxs": (256, 66), "iq2_xs": (256, 74), "iq2_s": (256, 82),
    "iq3_xxs": (256, 98), "iq3_s": (256, 110), "iq1_s": (256, 50), "iq1_m": (256, 56),
    "iq4_nl": (32, 18), "iq4_xs": (256, 136), "mxfp4": (32, 17),
}

TO_FLOAT = C.CFUNCTYPE(None, C.c_void_p, C.c_void_p, C.c_int64)
FROM_FLOAT = C.CFUNCTYPE(None, C.c_void_p, C.c_void_p, C.c_int64)
VEC_DOT = C.CFUNCTYPE(None, C.c_int, C.c_void_p, C.c_size_t, C.c_void_p, C.c_size_t,
                      C.c_void_p, C.c_size_t, C.c_int)


class TypeTraits(C.Structure):
    """struct ggml_type_traits (ggml.h)."""
    _fields_ = [
        ("type_name", C.c_char_p),
        ("blck_size", C.c_int64),
        ("blck_size_interleave", C.c_int64),
        ("type_size", C.c_size_t),
        ("is_quantized", C.c_bool),
        ("to_float", C.c_void_p),
        ("from_float_ref", C.c_void_p),
    ]


class TypeTraitsCpu(C.Structure):
    """struct ggml_type_traits_cpu (ggml-cpu.h)."""
    _fields_ = [
        ("from_float", C.c_void_p),
        ("vec_dot", C.c_void_p),
        ("vec_dot_type", C.c_int),
        ("nrows", C.c_int64),
    ]


def row_bytes(name, n):
    bs, ts = BLOCK[name]
    assert n % bs == 0
    return n // bs * ts


def make_input(rng):
    """N_ROWS rows of N_PER_ROW floats; each row stresses one corner of the quantizers."""
    n = N_PER_ROW
    rows = []
    g = lambda s=1.0: rng.standard_normal(n).astype(np.float32) * np.float32(s)
    # 0-3: plain distributions
    rows.append(g())
    rows.append(rng.uniform(-1, 1, n).astype(np.float32))
    rows.append(g(0.02))
    rows.append(rng.uniform(0, 3, n).astype(np.float32))
    # 4: heavy outliers: 3% of elements scaled by 60
    r = g(); m = rng.random(n) < 0.03; r[m] *= 60; rows.append(r)
    # 5: one huge outlier per 32-block
    r = g(); r[rng.integers(0, 32) :: 32] *= 200; rows.append(r)
    # 6: all-zero 32-blocks interleaved with gaussian ones
    r = g(); r.reshape(8, 32)[::2] = 0; rows.append(r)
    # 7: an all-zero super-block
    rows.append(np.zeros(n, np.float32))
    # 8: tiny values (f16 scales become subnormal)
    rows.append(g(1e-6))
    # 9: f32 subnormals (1/d overflows to inf in the quantizers)
    rows.append(g(1e-40))
    # 10: a constant row, and 11: constant per 32-block with varying constants
    rows.append(np.full(n, 0.375, np.float32))
    rows.append(np.repeat(rng.uniform(-2, 2, 8).astype(np.float32), 32))
    # 12: negative-only, 13: positive-only
    rows.append(-np.abs(g()))
    rows.append(np.abs(g()))
    # 14: large magnitudes (scales near the top of the f16 range)
    rows.append(g(3e5))
    # 15: a different scale for every 32-block (1e-3 .. 1e2)
    r = g(); r *= np.repeat(10 ** rng.uniform(-3, 2, 8), 32).astype(np.float32); rows.append(r)
    # 16: heavy-tailed (student-t with 2 degrees of freedom)
    rows.append(rng.standard_t(2, n).astype(np.float32))
    # 17: sparse (90% zeros)
    r = g(); r[rng.random(n) < 0.9] = 0; rows.append(r)
    # 18: values on a half-integer grid (rounding ties in the quantizers)
    rows.append((rng.integers(-16, 17, n) * 0.5).astype(np.float32))
    # 19: a single non-zero value per 32-block
    r = np.zeros(n, np.float32); r[5::32] = rng.standard_normal(8); rows.append(r)
    # 20: a block whose max and min have equal magnitude and opposite sign
    r = g(); r[0::32] = 4.0; r[1::32] = -4.0; rows.append(r)
    # 21-31: more gaussian / uniform / laplace rows at assorted scales
    for s in [0.1, 0.5, 2.0, 10.0]:
        rows.append(g(s))
    for s in [0.05, 5.0]:
        rows.append(rng.uniform(-s, s, n).astype(np.float32))
    for s in [0.02, 1.0]:
        rows.append(rng.laplace(0, s, n).astype(np.float32))
    rows.append(g() + np.float32(3.0))
    rows.append(g() - np.float32(5.0))
    rows.append(np.sin(np.arange(n, dtype=np.float32) * np.float32(0.3)))
    x = np.stack(rows).astype(np.float32)
    assert x.shape == (N_ROWS, N_PER_ROW), x.shape
    return x


class Ggml:
    def __init__(self, root, build):
        bindir = os.path.join(root, build, "bin")
        self.base = C.CDLL(os.path.join(bindir, "libggml-base.so"), mode=C.RTLD_GLOBAL)
        self.cpu = C.CDLL(os.path.join(bindir, "libggml-cpu.so"), mode=C.RTLD_GLOBAL)
        self.base.ggml_get_type_traits.restype = C.POINTER(TypeTraits)
        self.base.ggml_get_type_traits.argtypes = [C.c_int]
        self.cpu.ggml_get_type_traits_cpu.restype = C.POINTER(TypeTraitsCpu)
        self.cpu.ggml_get_type_traits_cpu.argtypes = [C.c_int]
        self.base.ggml_quantize_chunk.restype = C.c_size_t
        self.base.ggml_quantize_chunk.argtypes = [C.c_int, C.c_void_p, C.c_void_p, C.c_int64,
                                                  C.c_int64, C.c_int64, C.c_void_p]
        self.base.ggml_quantize_init.argtypes = [C.c_int]
        self.cpu.ggml_cpu_init()

    def traits(self, name):
        return self.base.ggml_get_type_traits(GGML[name]).contents

    def traits_cpu(self, name):
        return self.cpu.ggml_get_type_traits_cpu(GGML[name]).contents

    def quantize(self, name, how, x):
        nrows, n = x.shape
        out = np.zeros(nrows * row_bytes(name, n), np.uint8)
        if how == "ref":
            f = FROM_FLOAT(self.traits(name).from_float_ref or
                           C.cast(getattr(self.base, f"quantize_row_{name}_ref"), C.c_void_p).value)
            f(x.ctypes.data, out.ctypes.data, x.size)
            return out
        imatrix = None
        if how == "imatrix":
            self.base.ggml_quantize_init(GGML[name])
            ones = np.ones(n, np.float32)
            imatrix = ones.ctypes.data
        written = self.base.ggml_quantize_chunk(GGML[name], x.ctypes.data, out.ctypes.data,
                                                0, nrows, n, imatrix)
        assert written == out.size, (name, written, out.size)
        return out

    def dequantize(self, name, q, n):
        ptr = self.traits(name).to_float
        if not ptr and hasattr(self.base, f"dequantize_row_{name}"):
            ptr = C.cast(getattr(self.base, f"dequantize_row_{name}"), C.c_void_p).value
        if not ptr:
            return None
        y = np.zeros(n, np.float32)
        TO_FLOAT(ptr)(q.ctypes.data, y.ctypes.data, n)
        return y

    def quantize_activations(self, name, a):
        """What ggml's matmul does to the activations: the CPU backend's from_float."""
        nrows, n = a.shape
        out = np.zeros(nrows * row_bytes(name, n), np.uint8)
        f = FROM_FLOAT(self.traits_cpu(name).from_float)
        rb = row_bytes(name, n)
        for r in range(nrows):
            f(a[r].ctypes.data, out[r * rb:].ctypes.data, n)
        return out

    def vec_dot(self, name, q, qy, vec_dot_type, n, nrows):
        f = self.traits_cpu(name).vec_dot
        if not f:
            return None
        f = VEC_DOT(f)
        rbx, rby = row_bytes(name, n), row_bytes(vec_dot_type, n)
        s = np.zeros(1, np.float32)
        dots = []
        for r in range(nrows):
            f(n, s.ctypes.data, 0, q[r * rbx:].ctypes.data, 0, qy[r * rby:].ctypes.data, 0, 1)
            dots.append(s[0])
        return dots


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--llama-cpp", default="/tmp/ref/llama.cpp")
    ap.add_argument("--build", default="build-noamx")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "crates", "kernels",
                                                   "tests", "fixtures", "kernels"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    ggml = Ggml(args.llama_cpp, args.build)
    rng = np.random.default_rng(SEED)
    x = make_input(rng)
    act = (rng.standard_normal((N_ROWS, N_PER_ROW)) * 0.7).astype(np.float32)

    def save(fname, arr):
        with open(os.path.join(args.out, fname), "wb") as f:
            f.write(np.ascontiguousarray(arr).tobytes())
        return fname

    index = {
        "generator": "tools/reference/gen_kernel_fixtures.py",
        "seed": SEED,
        "n_per_row": N_PER_ROW,
        "n_rows": N_ROWS,
        "input": save("input.f32", x),
        "activations": save("activations.f32", act),
        "activation_quants": {},
        "activation_from_float": {},
        "formats": [],
    }
    for name, how in FORMATS:
        vdt = ID_TO_NAME.get(ggml.traits_cpu(name).vec_dot_type)
        q = ggml.quantize(name, how, x)
        deq = ggml.dequantize(name, q, x.size)
        entry = {"type": name, "quantizer": how, "quant": save(f"{name}.bin", q),
                 "dequant": None, "vec_dot_type": None, "dots": None}
        if deq is not None:
            entry["dequant"] = save(f"{name}.dequant.f32", deq)
        if ggml.traits_cpu(name).vec_dot:
            if vdt not in index["activation_quants"]:
                qa = ggml.quantize_activations(vdt, act)
                index["activation_quants"][vdt] = save(f"activations.{vdt}.bin", qa)
            qy = np.fromfile(os.path.join(args.out, index["activation_quants"][vdt]), np.uint8)
            entry["vec_dot_type"] = vdt
            dots = ggml.vec_dot(name, q, qy, vdt, N_PER_ROW, N_ROWS)
            entry["dots"] = save(f"{name}.dots.f32", np.array(dots, np.float32))
        index["formats"].append(entry)
        print(f"{name:8} {how:8} {q.size:6} bytes  dequant={deq is not None}  "
              f"vec_dot_type={entry['vec_dot_type']}", file=sys.stderr)
    for vdt in index["activation_quants"]:
        qx = ggml.quantize_activations(vdt, x)
        index["activation_from_float"][vdt] = save(f"{vdt}.from_float.bin", qx)
    with open(os.path.join(args.out, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
