"""What FP16 does to a model's answers, per depth path, before any Jetson is at hand.

Runs each path graph of two tinv ONNX exports of the same model over a labelled IDX data set
with ONNX Runtime (CPU): the FP16 export (`tinv-run export-onnx --out FP16`: FP16 weight inputs
fed from weights.f16.bin, FP16 arithmetic, LayerNorm in f32 — the graphs `tinv-run build` gives
TensorRT) and the f32 export (`--baked`). Prints, per path, the accuracy of each, how many
predictions differ, and the FP16 logits' error relative to the largest |logit| of the image.

ONNX Runtime's FP16 kernels are not TensorRT's (TensorRT chooses its own kernels and may keep
more in FP16), so this estimates FP16's effect; `tinv-run selftest` measures the engines.

Usage:
  fp16_accuracy.py --fp16 DIR --baked DIR --images IDX --labels IDX
                   [--threads N] [--limit N] [--predictions OUT.json]

IDX files may be gzipped. Images are [N, H, W] (one channel) or [N, H, W, C] (channels
interleaved, as tinv reads them); pixels go in as value / 255, as tinv gives them to the
graphs. --predictions writes {"labels": [...], "paths": {"2": {"f32": [...], "fp16": [...]}}}.
"""
import argparse
import gzip
import json
import os
import sys

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "onnx"))
from run_ort import load_blob  # noqa: E402  (the parity tests' reader of weights.tsv)


def read_idx(path):
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 8:
        sys.exit(f"error: {path}: not an IDX file of unsigned bytes")
    rank = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank)]
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * rank)
    if data.size != int(np.prod(dims)):
        sys.exit(f"error: {path}: {data.size} bytes of data, dimensions {dims}")
    return data.reshape(dims)


def paths(folder):
    found = sorted(
        int(f[5:-5]) for f in os.listdir(folder) if f.startswith("path.") and f.endswith(".onnx")
    )
    if not found:
        sys.exit(f"error: {folder}: no path.<depth>.onnx (run tinv-run export-onnx)")
    return found


def run(session, feeds, pixels, batch=500):
    return np.concatenate(
        [
            session.run(["logits"], dict(feeds, pixels=pixels[i : i + batch]))[0]
            for i in range(0, len(pixels), batch)
        ]
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fp16", required=True, help="folder of tinv-run export-onnx --out")
    ap.add_argument("--baked", required=True, help="folder of tinv-run export-onnx --baked --out")
    ap.add_argument("--images", required=True)
    ap.add_argument("--labels", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0, help="only the first N images")
    ap.add_argument("--predictions", help="write every prediction to this JSON file")
    a = ap.parse_args()

    images, labels = read_idx(a.images), read_idx(a.labels)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or labels.ndim != 1 or len(images) != len(labels):
        sys.exit(f"error: images {list(images.shape)} and labels {list(labels.shape)} do not pair up")
    if a.limit > 0:
        images, labels = images[: a.limit], labels[: a.limit]
    pixels = np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0

    depths = paths(a.fp16)
    if paths(a.baked) != depths:
        sys.exit(f"error: {a.fp16} and {a.baked} hold different paths")
    blob = load_blob(
        {"bin": os.path.join(a.fp16, "weights.f16.bin"), "table": os.path.join(a.fp16, "weights.tsv")}
    )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = a.threads
    cpu = ["CPUExecutionProvider"]
    out = {"labels": labels.tolist(), "paths": {}}
    print(f"{len(labels)} images, ONNX Runtime {ort.__version__} (CPU), {a.threads} thread(s)")
    print("| depth | f32 accuracy | FP16 accuracy | predictions that differ | FP16 error, median / max |")
    print("|---|---|---|---|---|")
    for d in depths:
        f32 = ort.InferenceSession(os.path.join(a.baked, f"path.{d}.onnx"), opts, providers=cpu)
        f16 = ort.InferenceSession(os.path.join(a.fp16, f"path.{d}.onnx"), opts, providers=cpu)
        weights = {i.name: blob[i.name] for i in f16.get_inputs() if i.name != "pixels"}
        l32, l16 = run(f32, {}, pixels), run(f16, weights, pixels)
        p32, p16 = l32.argmax(1), l16.argmax(1)
        err = np.abs(l16 - l32).max(1) / np.maximum(np.abs(l32).max(1), 1e-30)
        print(
            f"| {d} | {100 * (p32 == labels).mean():.2f} % | {100 * (p16 == labels).mean():.2f} % "
            f"| {int((p32 != p16).sum())} | {np.median(err):.1e} / {err.max():.1e} |"
        )
        out["paths"][str(d)] = {"f32": p32.tolist(), "fp16": p16.tolist()}
    if a.predictions:
        with open(a.predictions, "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001
        # A missing file, a weights.tsv without a tensor a graph needs, a graph ONNX Runtime
        # refuses: one line, not a traceback.
        sys.exit(f"error: {type(e).__name__}: {e}")
