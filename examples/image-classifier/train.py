#!/usr/bin/env python3
"""Trains the digit classifier and writes a model directory (digits.npz + labels.txt).

The data is scikit-learn's digits set (1,797 handwritten digits, 8x8), which ships inside
Debian's python3-sklearn: nothing is downloaded. Every image goes through the same feature
steps the app applies to uploaded images (classifier/features.py), a multilayer perceptron is
fitted on 80% of it, and the model is written only if it classifies the held-out 20% well.

    /usr/bin/python3 train.py --output model/
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from classifier.features import FEATURES, features_from_digits_image  # noqa: E402
from classifier.model import MODEL_FILE, load_model, save_model  # noqa: E402

DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
LABELS = [f"{digit} {name}" for digit, name in enumerate(DIGIT_NAMES)]


def load_data():
    from sklearn.datasets import load_digits

    digits = load_digits()
    features = np.stack([features_from_digits_image(image) for image in digits.images])
    return features, digits.target, digits.images


def split(count: int, test_share: float, seed: int):
    """A fixed shuffled split, so the held-out images are the same on every run."""
    order = np.random.RandomState(seed).permutation(count)
    cut = int(round(count * (1 - test_share)))
    return order[:cut], order[cut:]


# The held-out images are the same whatever the training seed, so models trained with
# different seeds are scored (and canary-analysed, sample/analysis.jsonl) on the same images.
SPLIT_SEED = 0


def train(
    output: str,
    hidden: int = 64,
    seed: int = 0,
    min_accuracy: float = 0.9,
    shuffle_labels: bool = False,
    max_iter: int = 600,
) -> dict:
    from sklearn.neural_network import MLPClassifier

    features, targets, _ = load_data()
    train_rows, test_rows = split(len(targets), 0.2, SPLIT_SEED)
    fit_targets = targets[train_rows]
    if shuffle_labels:
        # A deliberately broken model for testing a quality gate: every training image gets
        # another image's label, so the model learns nothing about digits.
        fit_targets = np.random.RandomState(seed + 1).permutation(fit_targets)
    classifier = MLPClassifier(
        hidden_layer_sizes=(hidden,),
        activation="relu",
        alpha=1e-3,
        max_iter=max_iter,
        random_state=seed,
    )
    classifier.fit(features[train_rows], fit_targets)
    if list(classifier.classes_) != list(range(len(LABELS))):
        raise SystemExit(f"unexpected classes {classifier.classes_}")
    layers = list(zip(classifier.coefs_, classifier.intercepts_))
    accuracy = float(classifier.score(features[test_rows], targets[test_rows]))
    if accuracy < min_accuracy:
        raise SystemExit(f"held-out accuracy {accuracy:.3f} is below {min_accuracy}; model not written")
    save_model(output, layers, LABELS, FEATURES)
    # Check what was written the way the app reads it: numpy only, same predictions.
    model = load_model(output)
    served = model.probabilities(features[test_rows]).argmax(axis=1)
    served_accuracy = float((served == targets[test_rows]).mean())
    if abs(served_accuracy - accuracy) > 1e-6:
        raise SystemExit(f"the saved model scores {served_accuracy}, the fitted one {accuracy}")
    return {
        "model": os.path.join(output, MODEL_FILE),
        "sha256": model.model_sha256,
        "train_images": int(len(train_rows)),
        "test_images": int(len(test_rows)),
        "test_accuracy": round(accuracy, 4),
        "shuffled_labels": shuffle_labels,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", "-o", default="model", help="model directory to write")
    parser.add_argument("--hidden", type=int, default=64, help="hidden layer width")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-accuracy", type=float, default=0.9)
    parser.add_argument(
        "--shuffle-labels",
        action="store_true",
        help="train on shuffled labels: a broken model, for testing a canary analysis "
        "(with --min-accuracy 0)",
    )
    parser.add_argument("--max-iter", type=int, default=600, help="training iterations at most")
    args = parser.parse_args(argv)
    report = train(
        args.output, args.hidden, args.seed, args.min_accuracy, args.shuffle_labels, args.max_iter
    )
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
