import base64
import hashlib
import json
import os

import pytest

from classifier import __version__
from classifier.app import MAX_IMAGES, MAX_REQUEST_BYTES, create_app
from helpers import encode, stroke_image

from conftest import APP_DIR

SAMPLE_DIR = os.path.join(APP_DIR, "sample")


@pytest.fixture
def app(model):
    return create_app(model, "9.9.9-test")


@pytest.fixture
def client(app):
    return app.test_client()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def test_health(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_version_reports_app_version_and_model_digest(client, model_dir):
    body = client.get("/version").get_json()
    with open(os.path.join(model_dir, "digits.npz"), "rb") as file:
        digest = hashlib.sha256(file.read()).hexdigest()
    assert body["version"] == "9.9.9-test"
    assert body["model"]["sha256"] == digest
    assert body["model"]["file"] == "digits.npz"
    assert body["model"]["classes"] == 10


def test_version_defaults_to_the_package_version(model):
    app = create_app(model)
    body = app.test_client().get("/version").get_json()
    assert body["version"] == __version__


def test_the_committed_sample_request_gets_the_expected_answer(client):
    with open(os.path.join(SAMPLE_DIR, "request.json"), "rb") as file:
        request_body = file.read()
    with open(os.path.join(SAMPLE_DIR, "expected.txt"), encoding="utf-8") as file:
        expected = file.read()
    response = client.post("/score", data=request_body, content_type="application/json")
    assert response.status_code == 200
    # The smoke test matches this text in the raw body, so check the raw body too.
    assert expected in response.get_data(as_text=True)
    [result] = response.get_json()["results"]
    assert len(result["top"]) == 3
    assert result["top"][0] == {"label": result["label"], "probability": result["probability"]}
    probabilities = [entry["probability"] for entry in result["top"]]
    assert probabilities == sorted(probabilities, reverse=True)
    assert result["probability"] > 0.9


def test_score_classifies_each_image_of_a_batch(client, model):
    with open(os.path.join(SAMPLE_DIR, "digit.png"), "rb") as file:
        seven = file.read()
    one = encode(stroke_image(size=(60, 80), box=(20, 5, 40, 75)))
    response = client.post("/score", json={"images": [b64(seven), "data:image/png;base64," + b64(one)]})
    assert response.status_code == 200
    body = response.get_json()
    assert [result["label"] for result in body["results"]] == ["7 seven", "1 one"]
    assert body["model_sha256"] == model.model_sha256


def test_a_single_image_field_is_accepted(client):
    with open(os.path.join(SAMPLE_DIR, "digit.png"), "rb") as file:
        response = client.post("/score", json={"image": b64(file.read())})
    assert response.status_code == 200
    assert response.get_json()["results"][0]["label"] == "7 seven"


@pytest.mark.parametrize(
    "body, message",
    [
        ({"images": []}, "non-empty list"),
        ({"images": "abc"}, "non-empty list"),
        ({"pictures": ["x"]}, 'expected "images"'),
        (["not", "an", "object"], "JSON object"),
        ({"images": [42]}, "image 0 is not a string"),
        ({"images": ["%%%not base64"]}, "image 0 is not valid base64"),
        ({"images": [b64(b"plain text")]}, "image 0: not a PNG or JPEG"),
        ({"images": [b64(encode(stroke_image(paper=255, ink=255)))]}, "image 0: the image shows no digit"),
        ({"images": [b64(b"x")] * (MAX_IMAGES + 1)}, f"at most {MAX_IMAGES}"),
    ],
)
def test_bad_requests_get_a_400_that_says_why(client, body, message):
    response = client.post("/score", json=body)
    assert response.status_code == 400
    assert message in response.get_json()["error"]


def test_a_body_that_is_not_json_is_a_400(client):
    response = client.post("/score", data=b"hello", content_type="text/plain")
    assert response.status_code == 400
    assert "must be JSON" in response.get_json()["error"]


def test_an_oversized_request_is_a_413(client):
    body = json.dumps({"images": ["A" * MAX_REQUEST_BYTES]})
    response = client.post("/score", data=body, content_type="application/json")
    assert response.status_code == 413
    assert "larger than" in response.get_json()["error"]


def test_unknown_paths_and_methods_answer_json(client):
    assert client.get("/nope").status_code == 404
    assert "POST /score" in client.get("/nope").get_json()["error"]
    assert client.get("/score").status_code == 405
