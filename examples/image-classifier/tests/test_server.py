"""The app as the container runs it: `python3 -m classifier.app`, a real socket, real HTTP."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import APP_DIR


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(env_overrides):
    env = {k: v for k, v in os.environ.items() if k not in ("MODEL_DIR", "APP_VERSION")}
    env.update(env_overrides)
    return subprocess.Popen(
        [sys.executable, "-m", "classifier.app"],
        cwd=APP_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_refuses_to_start_without_a_model(tmp_path):
    process = start({"MODEL_DIR": str(tmp_path / "nothing-here"), "PORT": str(free_port())})
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "cannot start without a model" in stderr
    assert "nothing-here" in stderr


def test_refuses_to_start_with_half_a_model(tmp_path, model_dir):
    (tmp_path / "digits.npz").write_bytes(open(os.path.join(model_dir, "digits.npz"), "rb").read())
    process = start({"MODEL_DIR": str(tmp_path), "PORT": str(free_port())})
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "labels.txt' is missing" in stderr


def get(url, data=None):
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read().decode("utf-8")


@pytest.fixture
def server(model_dir):
    port = free_port()
    process = start({"MODEL_DIR": model_dir, "PORT": str(port), "HOST": "127.0.0.1", "APP_VERSION": "2.0.0"})
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            get(base + "/health")
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"the app did not start: {process.communicate()}")
            time.sleep(0.1)
    yield base
    process.terminate()
    process.communicate(timeout=30)


def test_serves_health_version_and_score(server, model):
    status, body = get(server + "/health")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    version = json.loads(get(server + "/version")[1])
    assert version["version"] == "2.0.0"
    assert version["model"]["sha256"] == model.model_sha256
    with open(os.path.join(APP_DIR, "sample", "request.json"), "rb") as file:
        status, body = get(server + "/score", file.read())
    with open(os.path.join(APP_DIR, "sample", "expected.txt"), encoding="utf-8") as file:
        assert file.read() in body
    assert status == 200
