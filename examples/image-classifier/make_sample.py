#!/usr/bin/env python3
"""Writes the smoke test's sample request from a real handwritten digit.

Takes a held-out image of the digit (one train.py never fitted on), draws it as a dark-on-white
PNG the way a scanned or drawn digit looks, and writes:

- sample/digit.png        the image itself
- sample/request.json     {"images": ["<base64 PNG>"]}, the body of POST /score
- sample/expected.txt     the text a correct answer contains: "label":"<label>"
- sample/analysis.jsonl  held-out digits as canary-analysis samples, one JSON object a line:
                         {"id": ..., "request": {"images": [...]}, "expected": "<label>"}
                         (deploy-aks's analysis-requests; 16x16 PNGs keep the file small)

It checks the sample against a trained model first (--model), so the files it writes are an
answer that model really gives.

    /usr/bin/python3 make_sample.py --model model/ --digit 7
"""

import argparse
import base64
import io
import json
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from classifier.features import features_from_bytes  # noqa: E402
from classifier.model import load_model  # noqa: E402
from train import LABELS, SPLIT_SEED, load_data, split  # noqa: E402

SIZE = 64
ANALYSIS_SIZE = 16


def digit_png(image: np.ndarray, size: int = SIZE) -> bytes:
    """An 8x8 digits image (ink 0..16) as a size x size dark-on-white PNG."""
    paper = 255 - np.asarray(image, dtype=np.float64) / 16.0 * 255
    small = Image.fromarray(paper.clip(0, 255).astype(np.uint8), mode="L")
    large = small.resize((size, size), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    large.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a model directory written by train.py")
    parser.add_argument("--digit", type=int, default=7)
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "sample"))
    parser.add_argument(
        "--analysis-count",
        type=int,
        default=200,
        help="held-out digits written to analysis.jsonl (0 writes none)",
    )
    args = parser.parse_args(argv)

    model = load_model(args.model)
    _, targets, images = load_data()
    _, test_rows = split(len(targets), 0.2, SPLIT_SEED)
    for row in test_rows:
        if targets[row] != args.digit:
            continue
        png = digit_png(images[row])
        best = model.top(features_from_bytes(png), 1)[0][0]
        if best.label == LABELS[args.digit] and best.probability >= 0.9:
            break
    else:
        raise SystemExit(f"no held-out {args.digit} is classified confidently by {args.model}")

    os.makedirs(args.output, exist_ok=True)
    with open(os.path.join(args.output, "digit.png"), "wb") as file:
        file.write(png)
    with open(os.path.join(args.output, "request.json"), "w", encoding="utf-8") as file:
        # Indented as prettier formats JSON, so `npm run lint` accepts the file as written.
        json.dump({"images": [base64.b64encode(png).decode("ascii")]}, file, indent=2)
        file.write("\n")
    with open(os.path.join(args.output, "expected.txt"), "w", encoding="utf-8") as file:
        # No trailing newline: the smoke test looks for this exact text in the response.
        file.write(f'"label":"{best.label}"')
    print(f"digits image {row}: {best.label} ({best.probability:.3f}); wrote {args.output}")
    if args.analysis_count > 0:
        write_analysis(os.path.join(args.output, "analysis.jsonl"), args.analysis_count)
    return 0


def write_analysis(path: str, count: int) -> None:
    """The first `count` held-out digits, every one (not only those a model gets right), with
    the label the data set gives it: the samples a canary analysis sends to both versions."""
    _, targets, images = load_data()
    _, test_rows = split(len(targets), 0.2, SPLIT_SEED)
    rows = test_rows[:count]
    with open(path, "w", encoding="utf-8") as file:
        for row in rows:
            png = digit_png(images[row], ANALYSIS_SIZE)
            sample = {
                "id": f"digits-{int(row)}",
                "request": {"images": [base64.b64encode(png).decode("ascii")]},
                "expected": LABELS[int(targets[row])],
            }
            file.write(json.dumps(sample, separators=(",", ":")) + "\n")
    print(f"{len(rows)} analysis samples (held-out digits, {ANALYSIS_SIZE}x{ANALYSIS_SIZE}); wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
