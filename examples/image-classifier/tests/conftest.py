import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
APP_DIR = os.path.dirname(HERE)
sys.path.insert(0, APP_DIR)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """A trained model directory: TEST_MODEL_DIR when the runner trained one, else trained here."""
    given = os.environ.get("TEST_MODEL_DIR")
    if given:
        return given
    import train

    directory = str(tmp_path_factory.mktemp("model"))
    train.train(directory)
    return directory


@pytest.fixture(scope="session")
def model(model_dir):
    from classifier.model import load_model

    return load_model(model_dir)
