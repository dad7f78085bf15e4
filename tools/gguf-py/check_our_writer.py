#!/usr/bin/env python3
"""Checks files written by our GgufWriter against gguf-py.

Each file is read with gguf-py's GGUFReader, then written again with gguf-py's
GGUFWriter from what was read (same keys, types, order, tensors); the result
must equal the original byte for byte. Arrays must be non-empty (gguf-py's
writer refuses empty ones).

    cargo run -p gguf --example write_sample -- /tmp/sample.gguf
    PYTHONPATH=/tmp/ref/llama.cpp/gguf-py python3 tools/gguf-py/check_our_writer.py /tmp/sample.gguf
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter
from gguf.constants import GGML_QUANT_SIZES


def field_value(field):
    """The field's value as gguf-py's writer takes it, and its type and sub-type."""
    main = field.types[0]
    if main != GGUFValueType.ARRAY:
        return field.contents(), main, None
    if len(field.types) > 2 or field.types[1] == GGUFValueType.ARRAY:
        raise SystemExit(f"{field.name}: nested arrays are not rewritten by this check")
    return field.contents(), main, field.types[1]


def rewrite(path: Path, out: Path) -> None:
    reader = GGUFReader(path)
    arch = reader.get_field("general.architecture")
    writer = GGUFWriter(out, arch.contents() if arch else "unknown")
    if arch is None:
        # GGUFWriter adds general.architecture itself; shards after the first lack it.
        writer.remove_key("general.architecture")
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        value, vtype, sub = field_value(field)
        if name == "general.alignment":
            writer.data_alignment = value
        writer.add_key_value(name, value, vtype, sub_type=sub)
    for t in reader.tensors:
        raw = np.asarray(reader.data[t.data_offset:t.data_offset + t.n_bytes], dtype=np.uint8)
        ne = [int(d) for d in t.shape]
        block, type_size = GGML_QUANT_SIZES[t.tensor_type]
        byte_shape = list(reversed(ne[1:])) + [ne[0] // block * type_size]
        writer.add_tensor(t.name, raw.reshape(byte_shape), raw_dtype=GGMLQuantizationType(t.tensor_type))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    failed = 0
    for arg in sys.argv[1:]:
        path = Path(arg)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "rewritten.gguf"
            rewrite(path, out)
            ours, theirs = path.read_bytes(), out.read_bytes()
        if ours == theirs:
            n_tensors = len(GGUFReader(path).tensors)
            print(f"ok   {path}: {len(ours)} bytes, {n_tensors} tensors, identical to gguf-py's rewrite")
        else:
            first = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
            print(f"FAIL {path}: differs from gguf-py's rewrite at byte {first} ({len(ours)} vs {len(theirs)} bytes)")
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
