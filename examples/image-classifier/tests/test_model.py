import os

import numpy as np
import pytest

import make_sample
import train
from classifier.features import features_from_bytes
from classifier.model import (
    LABELS_FILE,
    MODEL_FILE,
    Model,
    ModelError,
    load_model,
    save_model,
    sha256_file,
)


def tiny_layers():
    return [(np.eye(2), np.zeros(2)), (np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), np.zeros(3))]


def test_probabilities_are_a_softmax_over_a_relu_network():
    model = Model(tiny_layers(), ["a", "b", "c"], features=2)
    probabilities = model.probabilities(np.array([[1.0, -5.0]]))
    # Hidden layer: relu([1, -5]) = [1, 0]; logits [2, 0, 0].
    expected = np.exp([2.0, 0.0, 0.0]) / np.exp([2.0, 0.0, 0.0]).sum()
    np.testing.assert_allclose(probabilities[0], expected)


def test_top_orders_labels_by_probability():
    model = Model(tiny_layers(), ["a", "b", "c"], features=2)
    [ranked] = model.top(np.array([0.0, 3.0]), 3)
    assert [p.label for p in ranked] == ["b", "a", "c"]
    assert ranked[0].probability > ranked[1].probability >= ranked[2].probability
    assert sum(p.probability for p in ranked) == pytest.approx(1.0)


def test_inconsistent_shapes_are_refused():
    with pytest.raises(ModelError, match="3 classes but the labels file names 2"):
        Model(tiny_layers(), ["a", "b"], features=2)
    with pytest.raises(ModelError, match="layer 0"):
        Model(tiny_layers(), ["a", "b", "c"], features=4)


def test_saved_model_loads_with_its_digest(tmp_path):
    save_model(str(tmp_path), tiny_layers(), ["a", "b", "c"], 2)
    model = load_model(str(tmp_path))
    assert model.labels == ["a", "b", "c"]
    assert model.model_sha256 == sha256_file(str(tmp_path / MODEL_FILE))
    assert model.labels_sha256 == sha256_file(str(tmp_path / LABELS_FILE))
    assert sorted(os.listdir(tmp_path)) == sorted([LABELS_FILE, MODEL_FILE])


def test_missing_model_directory_and_files_are_named(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_model(str(tmp_path / "absent"))
    with pytest.raises(ModelError, match="digits.npz' is missing"):
        load_model(str(tmp_path))
    save_model(str(tmp_path), tiny_layers(), ["a", "b", "c"], 2)
    os.remove(tmp_path / LABELS_FILE)
    with pytest.raises(ModelError, match="labels.txt' is missing"):
        load_model(str(tmp_path))


def test_a_file_that_is_not_a_model_is_refused(tmp_path):
    (tmp_path / MODEL_FILE).write_bytes(b"garbage")
    (tmp_path / LABELS_FILE).write_text("a\n")
    with pytest.raises(ModelError, match="not a readable model file"):
        load_model(str(tmp_path))
    np.savez(tmp_path / MODEL_FILE, format=np.array("something-else/9"))
    with pytest.raises(ModelError, match="format 'something-else/9'"):
        load_model(str(tmp_path))


def test_pickled_arrays_are_never_loaded(tmp_path):
    np.savez(
        tmp_path / MODEL_FILE,
        format=np.array("digits-mlp/1"),
        features=np.array(2),
        weights_0=np.array([object()], dtype=object),
        biases_0=np.zeros(3),
    )
    (tmp_path / LABELS_FILE).write_text("a\nb\nc\n")
    with pytest.raises(ModelError, match="not a readable model file"):
        load_model(str(tmp_path))


def test_trained_model_classifies_held_out_digits_sent_as_png(model):
    """The whole scoring path on images train.py never saw: PNG bytes in, labels out."""
    _, targets, images = train.load_data()
    _, test_rows = train.split(len(targets), 0.2, 0)
    rows = np.stack([features_from_bytes(make_sample.digit_png(images[i])) for i in test_rows])
    predicted = [ranked[0].label for ranked in model.top(rows, 1)]
    expected = [train.LABELS[targets[i]] for i in test_rows]
    accuracy = np.mean([p == e for p, e in zip(predicted, expected)])
    assert accuracy >= 0.9, f"held-out accuracy through PNG is {accuracy:.3f}"


def test_model_file_has_the_documented_arrays(model_dir):
    with np.load(os.path.join(model_dir, MODEL_FILE), allow_pickle=False) as arrays:
        assert sorted(arrays.files) == [
            "biases_0",
            "biases_1",
            "features",
            "format",
            "weights_0",
            "weights_1",
        ]
        assert arrays["weights_0"].shape == (64, 64)
        assert arrays["weights_1"].shape == (64, 10)
    with open(os.path.join(model_dir, LABELS_FILE), encoding="utf-8") as labels:
        assert labels.read().splitlines() == train.LABELS
