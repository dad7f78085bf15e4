#!/usr/bin/env python3
"""Writes crates/gguf/tests/fixtures/gguf_py.gguf with gguf-py's own GGUFWriter.

Our reader is tested against this file, and our writer must reproduce it byte
for byte (crates/gguf/tests/gguf_py.rs). Needs the `gguf` package: either
`pip install gguf numpy` or PYTHONPATH=/tmp/ref/llama.cpp/gguf-py (with numpy).

    python3 tools/gguf-py/make_fixture.py [OUT]
"""

import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFValueType, GGUFWriter

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else
           Path(__file__).resolve().parents[2] / "crates/gguf/tests/fixtures/gguf_py.gguf")


def main() -> None:
    w = GGUFWriter(OUT, "llama")
    w.add_custom_alignment(64)
    w.add_name("gguf-py fixture")
    w.add_uint8("test.u8", 250)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4_000_000_000)
    w.add_int32("test.i32", -2_000_000_000)
    w.add_float32("test.f32", 0.25)
    w.add_uint64("test.u64", 2**63 + 5)
    w.add_int64("test.i64", -(2**62))
    w.add_float64("test.f64", -1.5e300)
    w.add_bool("test.bool", True)
    w.add_string("test.str", "héllo ✓")
    w.add_array("test.arr_i32", [1, -2, 3])
    w.add_array("test.arr_f32", [0.5, -0.25])
    w.add_array("test.arr_str", ["a", "", "ccc"])
    w.add_array("test.arr_bool", [True, False])
    w.add_key_value("test.arr_u64", [7, 8], GGUFValueType.ARRAY, sub_type=GGUFValueType.UINT64)
    w.add_array("test.nested", [[1, 2], ["x", "y", "z"]])

    w.add_tensor("f32", np.arange(6, dtype=np.float32).reshape(2, 3))
    w.add_tensor("f16", np.array([1.0, -2.0, 0.5], dtype=np.float16))
    # One Q8_0 block given as raw bytes: f16 scale 1.0, then quants 0..31.
    q8 = np.frombuffer(bytes([0x00, 0x3C]) + bytes(range(32)), dtype=np.uint8)
    w.add_tensor("q8_0", q8.reshape(1, 34), raw_dtype=GGMLQuantizationType.Q8_0)
    w.add_tensor("i8", np.array([[-1, 2], [3, -4], [5, 6]], dtype=np.int8))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
