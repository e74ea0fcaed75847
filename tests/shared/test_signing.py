"""Per-call signatures: what verifies, what does not, and the command faas-cli users run."""

from __future__ import annotations

import subprocess
import sys

import pytest

from shared import signing
from shared.config import REPO_ROOT

KEY = b"0123456789abcdef"
HOUR_MS = 3_600_000


def test_a_signature_verifies_for_exactly_its_call():
    query = [("sensor", "horno 3"), ("format", "json")]
    made = signing.sign(KEY, "nuevo", query, b"25.4\n", now_ms=1_000_000)
    value = made.header_value()
    ok = signing.verify(value, KEY, "nuevo", list(reversed(query)), b"25.4\n", HOUR_MS, now_ms=1_000_000)
    assert ok == made  # the query's order does not matter, its content does
    for function, pairs, body in (("detectar", query, b"25.4\n"), ("nuevo", query[:1], b"25.4\n"),
                                  ("nuevo", query, b"25.4"), ("nuevo", [*query, ("x", "")], b"25.4\n")):
        with pytest.raises(signing.SignatureError, match="does not match"):
            signing.verify(value, KEY, function, pairs, body, HOUR_MS, now_ms=1_000_000)
    with pytest.raises(signing.SignatureError, match="does not match"):
        signing.verify(value, b"another key", "nuevo", query, b"25.4\n", HOUR_MS, now_ms=1_000_000)


def test_age_and_clock_skew_bound_a_signature():
    value = signing.sign(KEY, "nuevo", [], b"", now_ms=10 * HOUR_MS).header_value()
    signing.verify(value, KEY, "nuevo", [], b"", HOUR_MS, now_ms=11 * HOUR_MS)
    with pytest.raises(signing.SignatureError, match="older than 3600 s"):
        signing.verify(value, KEY, "nuevo", [], b"", HOUR_MS, now_ms=11 * HOUR_MS + 1)
    signing.verify(value, KEY, "nuevo", [], b"", HOUR_MS, now_ms=10 * HOUR_MS - signing.FUTURE_SKEW_MS)
    with pytest.raises(signing.SignatureError, match="future"):
        signing.verify(value, KEY, "nuevo", [], b"", HOUR_MS,
                       now_ms=10 * HOUR_MS - signing.FUTURE_SKEW_MS - 1)


@pytest.mark.parametrize("value", [None, "", "t=1", "t=x,n=abcdefgh,v1=" + "0" * 64,
                                   "t=1,n=short,v1=" + "0" * 64, "t=1,n=abcdefgh,v1=00"])
def test_a_missing_or_malformed_header_is_refused(value):
    with pytest.raises(signing.SignatureError):
        signing.verify(value, KEY, "nuevo", [], b"", HOUR_MS)


def test_each_signature_has_its_own_nonce():
    assert signing.sign(KEY, "nuevo", [], b"").nonce != signing.sign(KEY, "nuevo", [], b"").nonce


@pytest.mark.parametrize("path, name", [("/function/nuevo", "nuevo"),
                                        ("/function/nuevo.openfaas-fn", "nuevo"),
                                        ("/async-function/detectar.openfaas-fn/x", "detectar")])
def test_the_function_is_read_from_the_path(path, name):
    assert signing.function_of(path) == name


def test_the_command_prints_a_header_that_verifies(tmp_path):
    key_file = tmp_path / "api-token"
    key_file.write_text("k3y\n")
    run = subprocess.run([sys.executable, "-m", "shared.signing", "--key-file", str(key_file),
                          "--query", "sensor=horno-3", "--query", "format=json", "nuevo"],
                         input=b"25.4\n", capture_output=True, cwd=REPO_ROOT, check=True)
    name, _, value = run.stdout.decode().strip().partition(": ")
    assert name == signing.HEADER
    signing.verify(value, b"k3y", "nuevo", [("format", "json"), ("sensor", "horno-3")],
                   b"25.4\n", HOUR_MS)
    missing = subprocess.run([sys.executable, "-m", "shared.signing", "--key-file",
                              str(tmp_path / "none"), "nuevo"], input=b"", capture_output=True,
                             cwd=REPO_ROOT)
    assert missing.returncode == 2 and b"cannot read the key file" in missing.stderr
    assert b"Traceback" not in missing.stderr
