"""The model: a small multilayer perceptron stored as plain numpy arrays, and its labels.

A model directory holds two files, the way the original tutorial shipped ResNet_152.model
with synset.txt:

- digits.npz: the weights, written by train.py. Arrays `weights_0`, `biases_0`, ...
  `weights_N`, `biases_N` (ReLU between layers, softmax at the end), `format` and `features`.
  Read with allow_pickle=False: a model file can never run code.
- labels.txt: one label per line; line i names class i.

Inference needs numpy only.
"""

import hashlib
import os
from dataclasses import dataclass

import numpy as np

FORMAT = "digits-mlp/1"
MODEL_FILE = "digits.npz"
LABELS_FILE = "labels.txt"


class ModelError(Exception):
    """The model directory is missing, incomplete or inconsistent."""


@dataclass(frozen=True)
class Prediction:
    label: str
    probability: float


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Model:
    """A loaded model: layers, labels and the sha256 of the files they came from."""

    def __init__(self, layers, labels, features, model_sha256="", labels_sha256="", path=""):
        self.layers = [(np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64)) for w, b in layers]
        self.labels = list(labels)
        self.features = int(features)
        self.model_sha256 = model_sha256
        self.labels_sha256 = labels_sha256
        self.path = path
        self._check()

    def _check(self):
        if not self.layers:
            raise ModelError("the model has no layers")
        width = self.features
        for index, (weights, biases) in enumerate(self.layers):
            if weights.ndim != 2 or weights.shape[0] != width or biases.shape != (weights.shape[1],):
                raise ModelError(
                    f"layer {index} has weights {weights.shape} and biases {biases.shape}; "
                    f"expected ({width}, n) and (n,)"
                )
            width = weights.shape[1]
        if width != len(self.labels):
            raise ModelError(f"the model has {width} classes but the labels file names {len(self.labels)}")

    @property
    def classes(self) -> int:
        return len(self.labels)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities for a batch of feature rows (shape (n, features))."""
        activations = np.atleast_2d(np.asarray(features, dtype=np.float64))
        if activations.shape[1] != self.features:
            raise ValueError(f"expected {self.features} features, got {activations.shape[1]}")
        last = len(self.layers) - 1
        for index, (weights, biases) in enumerate(self.layers):
            activations = activations @ weights + biases
            if index < last:
                activations = np.maximum(activations, 0.0)
        shifted = activations - activations.max(axis=1, keepdims=True)
        exponentials = np.exp(shifted)
        return exponentials / exponentials.sum(axis=1, keepdims=True)

    def top(self, features: np.ndarray, count: int = 3) -> list:
        """The `count` most likely labels for each row, most likely first."""
        results = []
        for row in self.probabilities(features):
            order = np.argsort(-row, kind="stable")[:count]
            results.append([Prediction(self.labels[i], float(row[i])) for i in order])
        return results


def save_model(directory: str, layers, labels, features: int) -> None:
    """Writes digits.npz and labels.txt into `directory` (used by train.py)."""
    arrays = {"format": np.array(FORMAT), "features": np.array(features)}
    for index, (weights, biases) in enumerate(layers):
        arrays[f"weights_{index}"] = np.asarray(weights, dtype=np.float32)
        arrays[f"biases_{index}"] = np.asarray(biases, dtype=np.float32)
    os.makedirs(directory, exist_ok=True)
    model_path = os.path.join(directory, MODEL_FILE)
    labels_path = os.path.join(directory, LABELS_FILE)
    # Write beside the target and rename, so a reader never sees half a model.
    with open(model_path + ".tmp", "wb") as file:
        np.savez(file, **arrays)
    with open(labels_path + ".tmp", "w", encoding="utf-8") as file:
        file.write("".join(f"{label}\n" for label in labels))
    os.replace(model_path + ".tmp", model_path)
    os.replace(labels_path + ".tmp", labels_path)


def load_model(directory: str, model_file: str = MODEL_FILE, labels_file: str = LABELS_FILE) -> Model:
    """Loads a model directory; every problem is a ModelError that says what is wrong."""
    model_path = os.path.join(directory, model_file)
    labels_path = os.path.join(directory, labels_file)
    if not os.path.isdir(directory):
        raise ModelError(f"model directory {directory!r} does not exist")
    for path in (model_path, labels_path):
        if not os.path.isfile(path):
            raise ModelError(f"{path!r} is missing; expected {model_file} and {labels_file} in {directory!r}")
    try:
        with np.load(model_path, allow_pickle=False) as arrays:
            model_format = str(arrays["format"]) if "format" in arrays else ""
            if model_format != FORMAT:
                raise ModelError(f"{model_path!r} has format {model_format!r}; expected {FORMAT!r}")
            count = sum(1 for name in arrays.files if name.startswith("weights_"))
            layers = [(arrays[f"weights_{i}"], arrays[f"biases_{i}"]) for i in range(count)]
            features = int(arrays["features"])
    except ModelError:
        raise
    except (OSError, ValueError, KeyError) as error:
        raise ModelError(f"{model_path!r} is not a readable model file: {error}") from error
    with open(labels_path, encoding="utf-8") as file:
        labels = [line.strip() for line in file if line.strip()]
    return Model(
        layers,
        labels,
        features,
        model_sha256=sha256_file(model_path),
        labels_sha256=sha256_file(labels_path),
        path=model_path,
    )
