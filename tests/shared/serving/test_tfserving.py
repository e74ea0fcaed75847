"""TFServingClient against the local TF Serving stub (real HTTP), and the stub's answers
against TF Serving's documented REST behaviour."""

import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from infra.bench.tfserving_standin import TFServingStub, running_tfserving
from shared.config import REPO_ROOT, load_settings
from shared.services import build_detector
from shared.serving import ServingError, ServingUnavailable
from shared.serving.description import load_description
from shared.serving.engine import EmbeddedModel
from shared.serving.tfserving import TFServingClient
from tests.shared.serving.bundle import write_small_autoencoder

TIMEOUT_S = 0.5


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("models") / "modelo"
    write_small_autoencoder(base / "1", seed=1)  # older than the newest two: not served
    write_small_autoencoder(base / "2", seed=2)
    write_small_autoencoder(base / "3", seed=3)  # the highest: `latest`
    return base


@pytest.fixture(scope="module")
def engine(model_dir) -> EmbeddedModel:
    return EmbeddedModel.load(model_dir / "3", load_description(model_dir / "3"))


@pytest.fixture(scope="module")
def stub(model_dir):
    with TFServingStub(model_dir, "modelo") as running:
        yield running


@pytest.fixture(autouse=True)
def healthy(stub):
    stub.fault, stub.state = "none", "AVAILABLE"


@pytest.fixture
def client(stub):
    client = TFServingClient(stub.base_url, "modelo", timeout_s=TIMEOUT_S)
    yield client
    client.close()


def windows(count: int, seed: int = 0) -> np.ndarray:
    """Smooth temperature-like windows: a level in 0..110 plus a small random walk."""
    rng = np.random.default_rng(seed)
    walk = rng.uniform(0, 110, (count, 1)) + np.cumsum(rng.normal(0, 1, (count, 10)), axis=1)
    return walk[:, :, np.newaxis].astype(np.float32)


def post(stub: TFServingStub, path: str, body: bytes | str) -> tuple[int, dict]:
    response = requests.post(stub.base_url + path, data=body, timeout=5)
    assert response.headers["Content-Type"] == "application/json"
    return response.status_code, response.json()


def refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket closes


# --- the client against the stub --------------------------------------------------------

def test_predictions_equal_the_embedded_engine(client, engine):
    x = windows(7)
    predictions = client.predict(x)
    assert client.name == "tfserving"
    assert predictions.dtype == np.float64 and predictions.shape == (7, 10, 1)
    # TF Serving writes float32 as the shortest text that reads back to the same float32.
    np.testing.assert_array_equal(predictions.astype(np.float32), engine.predict(x).astype(np.float32))


@pytest.mark.parametrize("model_path, version", [("", "3"), ("3", "3"), ("2", "2"), ("1", "1")])
def test_the_functions_ask_tf_serving_for_the_version_whose_description_they_apply(
        stub, model_dir, model_path, version):
    """MODEL_PATH's version (its highest, for a base folder) is the one asked for by number.
    The stub, like TF Serving with models.config's `latest { num_versions: 2 }`, serves the
    newest two (3 and 2), each with its own weights; a function built with version 1 gets a
    404 instead of another version's output judged by version 1's rule."""
    settings = load_settings({"SERVING_HOST": stub.base_url.removeprefix("http://"),
                              "MODEL_PATH": str(model_dir / model_path), "WINDOW_SIZE": "10"})
    predictor = build_detector(settings).predictor
    assert predictor.predict_url == f"{stub.base_url}/v1/models/modelo/versions/{version}:predict"
    x = windows(2)
    if version != "1":
        own = EmbeddedModel.load(model_dir / version, load_description(model_dir / version))
        np.testing.assert_array_equal(predictor.predict(x).astype(np.float32),
                                      own.predict(x).astype(np.float32))
        assert model_status(stub.base_url, f"/v1/models/modelo/versions/{version}")[0] == 200
    else:
        with pytest.raises(ServingError, match=r"Specific\(modelo, 1\)") as raised:
            predictor.predict(x)
        assert raised.value.status == 404
        code, body = model_status(stub.base_url, "/v1/models/modelo/versions/1")
        assert code == 404 and "Could not find version 1" in body["error"]


def test_a_version_must_be_a_number():
    with pytest.raises(ValueError, match="version"):
        TFServingClient("http://tfserving:8501", "modelo", 1.0, version="latest")


def test_requests_reuse_one_keep_alive_connection(client, stub):
    stub.client_ports.clear()
    for seed in range(5):
        client.predict(windows(1, seed))
    assert len(stub.client_ports) == 1


def model_status(base_url: str, path: str = "/v1/models/modelo") -> tuple[int, dict]:
    """The stand-in's answer to TF Serving's model status call (what the healthcheck reads)."""
    answer = requests.get(base_url + path, timeout=TIMEOUT_S)
    return answer.status_code, answer.json()


def states(body: dict) -> list[tuple[str, str, str]]:
    return [(v["version"], v["state"], v["status"]["error_code"]) for v in body["model_version_status"]]


def test_status_says_available_only_when_a_version_is(stub):
    code, body = model_status(stub.base_url)
    assert code == 200 and states(body) == [("3", "AVAILABLE", "OK"), ("2", "AVAILABLE", "OK")]
    stub.state = "LOADING"
    assert states(model_status(stub.base_url)[1])[0][1] == "LOADING"


def test_unknown_model_is_a_serving_error_with_the_servers_message(stub):
    client = TFServingClient(stub.base_url, "nope", timeout_s=TIMEOUT_S)
    with pytest.raises(ServingError, match=r"Servable not found for request: Latest\(nope\)") as raised:
        client.predict(windows(1))
    assert raised.value.status == 404
    code, body = model_status(stub.base_url, "/v1/models/nope")
    assert code == 404 and "Could not find any versions of model nope" in body["error"]


def test_a_rejected_shape_is_a_serving_error_with_the_servers_message(client):
    with pytest.raises(ServingError, match=r"input shape \[1,5,1\] does not match") as raised:
        client.predict(np.ones((1, 5, 1), np.float32))
    assert raised.value.status == 400


def test_loading_model_does_not_serve_predictions(client, stub):
    stub.state = "LOADING"
    with pytest.raises(ServingError, match="Servable not found"):
        client.predict(windows(1))


def test_non_finite_inputs_are_refused_before_sending():
    client = TFServingClient(f"http://127.0.0.1:{refused_port()}", "modelo", timeout_s=TIMEOUT_S)
    x = windows(2)
    x[1, 4, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):  # not ServingUnavailable: nothing was sent
        client.predict(x)
    with pytest.raises(ValueError, match="finite"):
        client.predict(np.full((1, 10, 1), np.inf, np.float32))


@pytest.mark.parametrize("fault", ["unavailable", "close"])
def test_server_faults_are_unavailable(client, stub, fault):
    stub.fault = fault
    with pytest.raises(ServingUnavailable) as raised:
        client.predict(windows(1))
    if fault == "unavailable":
        assert "503" in str(raised.value) and "fault mode" in str(raised.value)


def test_a_hanging_server_times_out_as_unavailable(client, stub):
    stub.fault = "hang"
    started = time.monotonic()
    with pytest.raises(ServingUnavailable, match="did not answer"):
        client.predict(windows(1))
    assert time.monotonic() - started < TIMEOUT_S + 1.0


def test_connection_refused_is_unavailable():
    client = TFServingClient(f"http://127.0.0.1:{refused_port()}", "modelo", timeout_s=TIMEOUT_S)
    with pytest.raises(ServingUnavailable):
        client.predict(windows(1))


def test_the_client_recovers_after_a_fault(client, stub, engine):
    stub.fault = "close"
    with pytest.raises(ServingUnavailable):
        client.predict(windows(1))
    stub.fault = "none"
    x = windows(1, seed=9)
    np.testing.assert_array_equal(client.predict(x).astype(np.float32), engine.predict(x).astype(np.float32))


class FakeSession:
    """Answers every request with one canned response (for codes the stub never sends)."""

    def __init__(self, status: int, body: bytes) -> None:
        self.status, self.body = status, body

    def request(self, method, url, **kwargs) -> requests.Response:
        response = requests.Response()
        response.status_code, response._content, response.url = self.status, self.body, url
        return response


@pytest.mark.parametrize("status, body, error", [
    (400, b'{"error": "JSON Parse error: Invalid value. at offset: 0"}', ServingError),
    (404, b'{"error": "Servable not found for request: Latest(modelo)"}', ServingError),
    (403, b'{"error": "permission denied here"}', ServingError),
    (429, b'{"error": "resource exhausted here"}', ServingUnavailable),
    (500, b'{"error": "internal error here"}', ServingUnavailable),
    (503, b'{"error": "unavailable here"}', ServingUnavailable),
    (504, b'{"error": "deadline exceeded here"}', ServingUnavailable),
    (502, b"<html>bad gateway from a proxy</html>", ServingUnavailable),
])
def test_status_codes_map_to_exceptions_with_the_message(status, body, error):
    client = TFServingClient("http://tfserving:8501", "modelo", 1.0, session=FakeSession(status, body))
    with pytest.raises(error) as raised:
        client.predict(windows(1))
    message = json.loads(body)["error"] if body.startswith(b"{") else body.decode()
    assert message in str(raised.value) and str(status) in str(raised.value)


@pytest.mark.parametrize("body", [b"not json", b'{"outputs": [1.0]}', b'{"predictions": [[1.0], [2.0]]}',
                                  b'{"predictions": [[1.0], [2.0, 3.0]]}'])
def test_a_malformed_success_is_a_serving_error(body):
    client = TFServingClient("http://tfserving:8501", "modelo", 1.0, session=FakeSession(200, body))
    with pytest.raises(ServingError):
        client.predict(windows(1))


# --- the stub answers as TF Serving documents ---------------------------------------------

def test_status_json_has_tf_servings_shape(stub):
    response = requests.get(f"{stub.base_url}/v1/models/modelo", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"model_version_status": [
        {"version": "3", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}},
        {"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    response = requests.get(f"{stub.base_url}/v1/models/modelo/versions/7", timeout=5)
    assert (response.status_code, response.json()) == (
        404, {"error": "Could not find version 7 of model modelo"})


@pytest.mark.parametrize("body, message", [
    (b"{not json", "JSON Parse error: "),
    (b"", "JSON Parse error: The document is empty"),
    (b'{"instances": [[[1.0]]], "inputs": [[[1.0]]]}',
     "expecting only one of 'inputs' or 'instances' keys"),
    (b'{"signature_name": "serving_default"}', "Missing 'inputs' or 'instances' key"),
    (b'{"instances": []}', "No values in 'instances' array"),
    (b'{"instances": [[[1.0]], [[1.0], [2.0]]]}',
     "Failed to process element: 1 of 'instances' list. "
     "Error: INVALID_ARGUMENT: Expecting tensor size: 1 but got: 2"),
    (b'{"instances": [[[1.0], [2.0]], [[1.0, 2.0]]]}', "Expecting shape [2,1] but got: [1,2]"),
    (b'{"instances": [[["a"]]]}', 'JSON Value: "a" Type: String is not of expected type: float'),
    (b'{"instances": [{"x": [[1.0]]}]}', "JSON object: does not have named input: x"),
    (b'{"signature_name": "other", "instances": [[[1.0]]]}', 'Serving signature name: "other" not found'),
    (b'{"instances": [[[1.0]]]}', "does not match the signature's [-1,10,1]"),
])
def test_bad_predict_requests_answer_400_with_tf_servings_message(stub, body, message):
    status, payload = post(stub, "/v1/models/modelo:predict", body)
    assert status == 400 and message in payload["error"]


def test_unknown_servables_answer_404(stub):
    x = json.dumps({"instances": windows(1).tolist()})
    assert post(stub, "/v1/models/nope:predict", x) == (
        404, {"error": "Servable not found for request: Latest(nope)"})
    assert post(stub, "/v1/models/modelo/versions/9:predict", x) == (
        404, {"error": "Servable not found for request: Specific(modelo, 9)"})


def test_row_and_columnar_requests(stub, engine):
    x = windows(2)
    status, rows = post(stub, "/v1/models/modelo/versions/3:predict", json.dumps({"instances": x.tolist()}))
    assert status == 200 and list(rows) == ["predictions"]
    status, columns = post(stub, "/V1/Models/modelo:predict", json.dumps({"inputs": x.tolist()}))
    assert status == 200 and list(columns) == ["outputs"]  # paths match case-insensitively
    expected = engine.predict(x).astype(np.float32)
    np.testing.assert_array_equal(np.float32(rows["predictions"]), expected)
    np.testing.assert_array_equal(np.float32(columns["outputs"]), expected)


def test_floats_are_written_as_tf_serving_writes_them(stub):
    body = json.dumps({"instances": windows(3).tolist()})
    text = requests.post(f"{stub.base_url}/v1/models/modelo:predict", data=body, timeout=5).text
    numbers = re.findall(r"-?\d[-+0-9.eE]*", text)
    assert len(numbers) == 30
    for number in numbers:  # at most 9 significant digits (float's max_digits10), never bare ints
        mantissa = number.lower().split("e")[0].lstrip("-").replace(".", "").lstrip("0")
        assert len(mantissa) <= 9 and ("." in number or "e" in number), number


def test_running_tfserving_yields_a_working_base_url(model_dir):
    with running_tfserving(model_dir) as base_url:
        assert states(model_status(base_url)[1])[0] == ("3", "AVAILABLE", "OK")


def test_runs_as_a_module_for_benchmarks(model_dir):
    command = [sys.executable, "-m", "infra.bench.tfserving_standin", "--model-dir", str(model_dir),
               "--port", "0"]
    with subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True) as process:
        try:
            line = process.stdout.readline()
            base_url = line.rsplit(" ", 1)[-1].strip()
            assert base_url.startswith("http://127.0.0.1:"), line
            assert [v for v, _, _ in states(model_status(base_url)[1])] == ["3", "2"]
        finally:
            process.terminate()  # Popen's exit closes the pipe and waits


# --- where the stand-in follows TF Serving 2.20 rather than the request's strictest reading ---

def test_a_number_beyond_float32_is_infinity_as_tf_serving_reads_it(stub):
    """json_tensor.cc AddValueToTensor, DT_FLOAT: GetFloat(), no precision check."""
    x = windows(1).tolist()
    x[0][3][0] = 1e39
    status, payload = post(stub, "/v1/models/modelo:predict", json.dumps({"instances": x}))
    assert status == 200 and "predictions" in payload
    x[0][3][0] = 16_777_217  # an integer float32 cannot hold exactly: read all the same
    assert post(stub, "/v1/models/modelo:predict", json.dumps({"instances": x}))[0] == 200


def test_a_longer_window_is_judged_by_its_first_steps_a_shorter_one_refused(stub, engine):
    x = windows(1)
    longer = np.concatenate([x, windows(1, seed=9)], axis=1)  # (1, 20, 1)
    status, payload = post(stub, "/v1/models/modelo:predict", json.dumps({"instances": longer.tolist()}))
    assert status == 200
    np.testing.assert_array_equal(np.float32(payload["predictions"]), engine.predict(x).astype(np.float32))
    for bad in (x[:, :5], np.concatenate([x, x], axis=2)):
        assert post(stub, "/v1/models/modelo:predict", json.dumps({"instances": bad.tolist()}))[0] == 400


def test_the_client_refuses_a_window_of_the_wrong_shape_before_sending():
    client = TFServingClient(f"http://127.0.0.1:{refused_port()}", "modelo", TIMEOUT_S, window=10)
    for shape in ((1, 20, 1), (1, 5, 1), (2, 10, 2), (10, 1), (0, 10, 1)):
        with pytest.raises(ValueError, match="shape"):  # not ServingUnavailable: nothing was sent
            client.predict(np.ones(shape, np.float32))


def test_idle_connections_are_closed_by_the_server_and_the_client_carries_on(model_dir, engine):
    with TFServingStub(model_dir, "modelo", idle_timeout_s=0.2) as stub:
        client = TFServingClient(stub.base_url, "modelo", TIMEOUT_S, window=10)
        x = windows(1)
        client.predict(x)
        deadline = time.monotonic() + 10
        while stub.idle_closed == 0 and time.monotonic() < deadline:  # wait for the server's close
            time.sleep(0.05)
        assert stub.idle_closed == 1
        np.testing.assert_array_equal(client.predict(x).astype(np.float32),
                                      engine.predict(x).astype(np.float32))
        assert len(stub.client_ports) == 2  # a new connection after the close


def test_a_connection_broken_under_a_predict_is_retried_once(client, stub, engine):
    """The race the idle close allows: the request went out on a connection the server was
    closing. A predict has no side effects: it is sent once more, on a new connection."""
    x = windows(1)
    client.predict(x)  # a pooled keep-alive connection
    stub.drop_next = 1
    np.testing.assert_array_equal(client.predict(x).astype(np.float32),
                                  engine.predict(x).astype(np.float32))
    stub.drop_next = 2  # broken twice: unavailable, not a loop
    with pytest.raises(ServingUnavailable):
        client.predict(x)
    stub.drop_next = 0
