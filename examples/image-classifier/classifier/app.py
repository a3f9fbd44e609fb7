"""The HTTP API: POST /score, GET /health, GET /version.

Run it with `python3 -m classifier.app`. Settings come from the environment:

- MODEL_DIR (default /app/model): the directory holding digits.npz and labels.txt. The app
  loads it before listening and exits with status 2 and a clear message when it cannot.
- PORT (default 5000), HOST (default 0.0.0.0), THREADS (default 4).
- APP_VERSION: reported by /version (defaults to classifier.__version__).
"""

import base64
import binascii
import os
import sys

from flask import Flask, jsonify, request

from . import __version__
from .features import ImageError, features_from_bytes
from .model import Model, ModelError, load_model

DEFAULT_MODEL_DIR = "/app/model"
# One request carries at most this many images, and at most this many bytes.
MAX_IMAGES = 32
MAX_REQUEST_BYTES = 8 * 1024 * 1024
TOP = 3


class RequestError(ValueError):
    pass


def _images_from(body) -> list:
    """The base64 images of a request: {"images": [b64, ...]} or {"image": b64}."""
    if not isinstance(body, dict):
        raise RequestError('expected a JSON object such as {"images": ["<base64 PNG or JPEG>"]}')
    if "images" in body:
        images = body["images"]
        if not isinstance(images, list) or not images:
            raise RequestError('"images" must be a non-empty list of base64 strings')
    elif "image" in body:
        images = [body["image"]]
    else:
        raise RequestError('expected "images" (a list of base64 strings) or "image"')
    if len(images) > MAX_IMAGES:
        raise RequestError(f"{len(images)} images in one request; at most {MAX_IMAGES} are accepted")
    decoded = []
    for index, text in enumerate(images):
        if not isinstance(text, str):
            raise RequestError(f"image {index} is not a string")
        # Accept data URLs as browsers produce them: data:image/png;base64,....
        if text.startswith("data:") and "," in text:
            text = text.split(",", 1)[1]
        try:
            decoded.append(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError) as error:
            raise RequestError(f"image {index} is not valid base64 ({error})") from error
    return decoded


def create_app(model: Model, version: str = __version__) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    # Compact, ordered JSON: what clients and the smoke test's substring match see.
    app.json.compact = True
    app.json.sort_keys = False

    @app.get("/health")
    def health():
        return jsonify(status="ok")

    @app.get("/version")
    def version_info():
        return jsonify(
            version=version,
            model={
                "file": os.path.basename(model.path),
                "sha256": model.model_sha256,
                "labels_sha256": model.labels_sha256,
                "classes": model.classes,
            },
        )

    @app.post("/score")
    def score():
        if request.content_length is not None and request.content_length > MAX_REQUEST_BYTES:
            # Checked before parsing: get_json(silent=True) would turn the 413 into "not JSON".
            return too_large(None)
        body = request.get_json(silent=True)
        if body is None:
            return error_response(400, "the request body must be JSON (Content-Type: application/json)")
        try:
            images = _images_from(body)
            rows = []
            for index, data in enumerate(images):
                try:
                    rows.append(features_from_bytes(data))
                except ImageError as error:
                    raise RequestError(f"image {index}: {error}") from error
        except RequestError as error:
            return error_response(400, str(error))
        results = []
        for predictions in model.top(rows, TOP):
            results.append(
                {
                    "label": predictions[0].label,
                    "probability": round(predictions[0].probability, 6),
                    "top": [
                        {"label": p.label, "probability": round(p.probability, 6)}
                        for p in predictions
                    ],
                }
            )
        return jsonify(results=results, model_sha256=model.model_sha256)

    @app.errorhandler(413)
    def too_large(_error):
        return error_response(413, f"the request is larger than {MAX_REQUEST_BYTES} bytes")

    @app.errorhandler(404)
    def not_found(_error):
        return error_response(404, "not found; the API is POST /score, GET /health, GET /version")

    @app.errorhandler(405)
    def not_allowed(_error):
        return error_response(405, "method not allowed")

    return app


def error_response(status: int, message: str):
    response = jsonify(error=message)
    response.status_code = status
    return response


def serve(app: Flask, host: str, port: int, threads: int) -> None:
    """Serves with waitress when the image has it (python3-waitress), else werkzeug's server."""
    try:
        from waitress import serve as waitress_serve
    except ImportError:
        waitress_serve = None
    if waitress_serve is not None:
        print(f"serving on http://{host}:{port} with waitress ({threads} threads)", flush=True)
        waitress_serve(app, host=host, port=port, threads=threads, ident="image-classifier")
        return
    # werkzeug's threaded server is not built for production traffic; it is the fallback for a
    # base image without python3-waitress, and enough for a smoke test.
    from werkzeug.serving import run_simple

    print(f"serving on http://{host}:{port} with werkzeug (threaded)", flush=True)
    run_simple(host, port, app, threaded=True)


def main() -> int:
    model_dir = os.environ.get("MODEL_DIR") or DEFAULT_MODEL_DIR
    try:
        model = load_model(model_dir)
    except ModelError as error:
        print(
            f"image-classifier: cannot start without a model: {error}. "
            f"Set MODEL_DIR to a directory with digits.npz and labels.txt (train.py writes them).",
            file=sys.stderr,
        )
        return 2
    version = os.environ.get("APP_VERSION") or __version__
    print(
        f"image-classifier {version}: model {model.path} sha256 {model.model_sha256}, "
        f"{model.classes} classes",
        flush=True,
    )
    try:
        port = int(os.environ.get("PORT", "5000"))
        threads = int(os.environ.get("THREADS", "4"))
    except ValueError as error:
        print(f"image-classifier: PORT and THREADS must be integers ({error})", file=sys.stderr)
        return 2
    serve(create_app(model, version), os.environ.get("HOST", "0.0.0.0"), port, threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
