"""`faas-cli invoke`, sync and --async, against the local gateway: the requests it sends."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from shared.config import REPO_ROOT
from tests.support import faas_cli
from tests.support.stack import LocalStack


def test_invoke_stores_a_bare_number_read_from_standard_input(api, redis_client):
    # echo 25.4 | faas-cli invoke nuevo -g ... --query sensor=horno-3 --query format=json
    answer = faas_cli.invoke(api.base, "nuevo", b"25.4\n",
                             query=[("sensor", "horno-3"), ("format", "json")])
    assert answer.status == 200, answer.body
    stored = json.loads(answer.body)
    assert stored["sensor"] == "horno-3" and stored["value"] == 25.4
    assert api.json("listar", sensor="horno-3").json()["total"] == 1


def test_invoke_reaches_listar_and_detectar(api, redis_client):
    faas_cli.invoke(api.base, "nuevo", b'{"dato": 70.0, "sensor": "h", "timestamp": 1700000000000}',
                    content_type="application/json")
    listed = faas_cli.invoke(api.base, "listar", method="GET",
                             query=[("sensor", "h"), ("count", "20"), ("format", "json")])
    assert listed.status == 200 and json.loads(listed.body)["total"] == 1
    judged = faas_cli.invoke(api.base, "detectar", b'{"dato": 80.5, "sensor": "h"}',
                             content_type="application/json", query=[("format", "json")])
    assert judged.status == 200, judged.body
    assert json.loads(judged.body)["value"] == 80.5
    page = faas_cli.invoke(api.base, "listar", method="GET", query=[("sensor", "h")])
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")


def test_invoke_async_is_queued_and_stored(api, redis_client):
    answer = faas_cli.invoke(api.base, "nuevo", b"21.5\n", asynchronous=True,
                             query=[("sensor", "cola")])
    assert answer.status == 202 and answer.body == b""  # "Function submitted asynchronously."
    assert api.wait_total("cola", 1)["total"] == 1


def test_a_failed_async_call_reaches_its_callback(api, redis_client, callback):
    # faas-cli invoke nuevo --async -H "X-Callback-Url: ..." < bad: 202 at once, the 400 later
    answer = faas_cli.invoke(api.base, "nuevo", b"caliente\n", asynchronous=True,
                             headers={"X-Callback-Url": callback.url}, query=[("sensor", "cola")])
    assert answer.status == 202
    headers, sent = callback.received.get(timeout=5)
    assert headers["X-Function-Status"] == "400" and headers["X-Function-Name"] == "nuevo"
    assert b"not valid JSON" in sent  # the reason, in the format the call asked for
    assert api.json("listar", sensor="cola").json()["total"] == 0


def test_a_namespace_other_than_openfaas_fn_is_not_found(api):
    other = api.http.post(f"{api.base}/function/nuevo.dev", data=b"1", timeout=10)
    assert other.status_code == 404
    queued = api.http.post(f"{api.base}/async-function/nuevo.dev", data=b"1", timeout=10)
    assert queued.status_code == 404


# --- with an API key, each write signed by `python3 -m shared.signing` (README) ------------
KEY = "k3y-of-the-faas-cli-tests"


@pytest.fixture(scope="module")
def keyed(redis_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("faas-cli")
    (folder / "api-token").write_text(KEY + "\n")
    with LocalStack(redis_server, folder, env={"API_TOKEN_FILE": str(folder / "api-token")}) as stack:
        stack.key_file = folder / "api-token"
        yield stack


def signed_header(key_file, function: str, body: bytes, *query: str) -> dict[str, str]:
    """--header "$(echo ... | python3 -m shared.signing --key-file F [--query k=v] FUNCTION)" """
    args = [arg for q in query for arg in ("--query", q)]
    run = subprocess.run([sys.executable, "-m", "shared.signing", "--key-file", str(key_file),
                          *args, function], input=body, capture_output=True, check=True,
                         cwd=REPO_ROOT)
    name, _, value = run.stdout.decode().strip().partition(": ")  # faas-cli splits "Key: Value"
    return {name: value}


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_invoke_with_the_signature_the_readme_shows(keyed, redis_client, asynchronous):
    body = b"25.4\n"
    refused = faas_cli.invoke(keyed.base, "nuevo", body, query=[("sensor", "horno-3")])
    assert refused.status == 401
    headers = signed_header(keyed.key_file, "nuevo", body, "sensor=horno-3")
    answer = faas_cli.invoke(keyed.base, "nuevo", body, query=[("sensor", "horno-3")],
                             headers=headers, asynchronous=asynchronous)
    assert answer.status == (202 if asynchronous else 200), answer.body
    assert keyed.wait_total("horno-3", 1)["total"] == 1
    judged = faas_cli.invoke(keyed.base, "detectar", b"30\n", query=[("sensor", "horno-3")],
                             headers=signed_header(keyed.key_file, "detectar", b"30\n", "sensor=horno-3"))
    assert judged.status == 200, judged.body
