"""Runs ONNX models with ONNX Runtime (CPU) for tests/onnx_parity.rs.

Usage: run_ort.py JOBS.json

JOBS.json is a list of jobs, run in order (a job may read a file an earlier job wrote):
  {"model": "a.onnx",
   "inputs": {"pixels": "x.npy", ...},            # .npy files (float32 or float16)
   "blob": {"bin": "weights.f16.bin", "table": "weights.tsv"},   # optional: weight inputs
   "outputs": {"logits": "y.npy", ...}}           # written as float32 .npy

Weight inputs named in the blob's table are fed from the blob at their offset (dtype and shape
from the table), exactly as a device backend binds them. Every input the model declares must be
provided; extra blob entries are ignored. Prints one line per job; exits non-zero on any error.

When the `onnx` package is importable, every model is first validated by
`onnx.checker.check_model(full_check=True)` (structure, IR/opset rules and strict shape
inference); set TINV_REQUIRE_ONNX_CHECKER=1 to make its absence an error.
"""
import os
import json
import re
import sys

import numpy as np
import onnxruntime as ort


def load_blob(spec):
    raw = open(spec["bin"], "rb").read()
    table = {}
    for line in open(spec["table"]):
        if line.startswith("#") or not line.strip():
            continue
        name, dtype, shape, offset, nbytes = line.rstrip("\n").split("\t")
        assert dtype == "f16", dtype
        dims = [int(d) for d in shape.split("x")]
        count = int(np.prod(dims))
        assert count * 2 == int(nbytes), name
        arr = np.frombuffer(raw, dtype="<f2", count=count, offset=int(offset))
        table[name] = arr.reshape(dims)
    return table


def checker():
    try:
        import onnx
    except ImportError:
        if os.environ.get("TINV_REQUIRE_ONNX_CHECKER") == "1":
            raise
        print("onnx package not installed: structural check skipped")
        return None

    def check(path):
        model = onnx.load(path)
        assert model.ir_version == 8 and model.opset_import[0].version == 17, path
        onnx.checker.check_model(model, full_check=True)
        # tinv's exports carry the three documented metadata_props (src/onnx/mod.rs); the model
        # hash is 16 hex digits. (Hand-built test protos have another producer.)
        if model.producer_name == "tinv":
            meta = {p.key: p.value for p in model.metadata_props}
            assert set(meta) == {"tinv.model_hash", "tinv.ln", "tinv.weights"}, (path, meta)
            assert re.fullmatch(r"0x[0-9a-f]{16}", meta["tinv.model_hash"]), (path, meta)

    return check


def main():
    jobs = json.load(open(sys.argv[1]))
    check = checker()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    blobs = {}
    for job in jobs:
        if check is not None:
            check(job["model"])
        sess = ort.InferenceSession(job["model"], opts, providers=["CPUExecutionProvider"])
        feeds = {k: np.load(v) for k, v in job.get("inputs", {}).items()}
        if "blob" in job:
            key = job["blob"]["bin"]
            if key not in blobs:
                blobs[key] = load_blob(job["blob"])
            for i in sess.get_inputs():
                if i.name not in feeds and i.name in blobs[key]:
                    feeds[i.name] = blobs[key][i.name]
        missing = [i.name for i in sess.get_inputs() if i.name not in feeds]
        if missing:
            raise SystemExit(f"{job['model']}: no value for inputs {missing}")
        names = list(job["outputs"].keys())
        results = sess.run(names, feeds)
        for name, value in zip(names, results):
            np.save(job["outputs"][name], np.ascontiguousarray(value, dtype=np.float32))
        print(f"ok {job['model']} -> {names}" + (" (onnx.checker passed)" if check else ""))


if __name__ == "__main__":
    main()
