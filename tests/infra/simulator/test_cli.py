"""`python -m infra.simulator` as a user meets it: bad input, a failing target, Ctrl-C, help."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

import pytest

import infra.simulator.__main__ as simulator
from infra.local.redis_server import free_port
from infra.simulator.__main__ import main, parse_args
from infra.simulator.transport import MAX_FAILURES
from tests.support.http_server import http_server


class _NotImplemented(BaseHTTPRequestHandler):
    """Answers every call 501, as a gateway without the function would."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.calls += 1
        self.send_response(501)
        self.send_header("Content-Length", "15")
        self.end_headers()
        self.wfile.write(b"not implemented")

    def log_message(self, *args):
        pass


@pytest.fixture
def refusing():
    """A real HTTP server on a free port that refuses every reading; `.calls` counts them."""
    with http_server(_NotImplemented) as server:
        server.calls = 0
        server.url = f"http://127.0.0.1:{server.server_address[1]}"
        yield server


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("content", [None, "timestamp,value\nyesterday,20\n"])
def test_a_missing_or_malformed_csv_is_one_error_line(tmp_path, capsys, content):
    csv_path = tmp_path / "machine.csv"
    if content is not None:
        csv_path.write_text(content)
    assert main(["--csv", str(csv_path), "--no-progress"]) == 2
    err = one_error_line(capsys)
    assert err.startswith("error: ") and str(csv_path) in err


def test_a_missing_token_file_is_one_error_line(tmp_path, capsys):
    missing = tmp_path / "api-token"
    assert main(["--token-file", str(missing), "--sensors", "1", "--no-progress"]) == 2
    err = one_error_line(capsys)
    assert err.startswith("error: ") and str(missing) in err


def test_ctrl_c_ends_the_run_with_one_word(monkeypatch, tmp_path, capsys):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(simulator, "send", interrupted)
    assert main(["--sensors", "1", "--no-progress", "--report", str(tmp_path / "r.json")]) == 130
    assert capsys.readouterr().err == "interrupted\n"


@pytest.mark.parametrize("limit", ["0", "-5"])
def test_limit_must_be_at_least_one(capsys, limit):
    with pytest.raises(SystemExit) as exited:
        parse_args(["--csv", "machine.csv", "--limit", limit])
    assert exited.value.code == 2 and "--limit must be at least 1" in capsys.readouterr().err


def test_a_target_that_refuses_every_reading_stops_the_run(refusing, tmp_path, capsys):
    assert main(["--gateway", refusing.url, "--sensors", "1", "--no-progress",
                 "--report", str(tmp_path / "r.json")]) == 1
    assert refusing.calls == MAX_FAILURES
    err = one_error_line(capsys)
    assert f"refused the readings {MAX_FAILURES} times in a row" in err
    assert f"{refusing.url}/function/detectar answered 501: not implemented" in err


def test_a_run_with_nothing_accepted_fails(refusing, tmp_path, capsys):
    path = tmp_path / "r.json"
    assert main(["--gateway", refusing.url, "--via", "nuevo", "--batch", "100000", "--sensors", "1",
                 "--no-progress", "--report", str(path)]) == 1
    report = json.loads(path.read_text())
    assert refusing.calls == 1 and report["sent"]["accepted"] == 0
    assert "accepted none of the" in one_error_line(capsys)


def test_a_target_that_does_not_answer_is_named_with_the_cause(tmp_path, capsys):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert main(["--gateway", url, "--sensors", "1", "--no-progress",
                 "--report", str(tmp_path / "r.json")]) == 1
    err = one_error_line(capsys)
    assert f"did not answer {MAX_FAILURES} times in a row" in err
    assert f"{url}/function/detectar" in err and "Connection refused" in err


def test_help_shows_each_default_once(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "(default: None)" not in help_text and "(default: False)" not in help_text
    assert help_text.count("report-<run>.json") == 1
    assert "(default: 0.0)" in help_text  # a default that is a value is still shown


def test_nuevo_runs_explain_no_warm_up_and_count_in_good_grammar(stack, redis_client, tmp_path,
                                                                 capsys):
    assert main(["--gateway", stack.base, "--via", "nuevo", "--sensors", "1", "--kinds", "spike",
                 "--no-progress", "--report", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "warm-up" not in out
    assert out.startswith("1 sensor x ") and " of 1 sensor via nuevo " in out


def test_async_runs_say_their_verdicts_were_not_seen(stack, redis_client, tmp_path, capsys):
    path = tmp_path / "r.json"
    assert main(["--gateway", stack.base, "--async", "--sensors", "1", "--kinds", "spike",
                 "--warmup", "20", "--no-progress", "--report", str(path)]) == 0
    report = json.loads(path.read_text())
    assert report["run"]["verdicts_from"] == "listar"
    assert report["summary"]["judged_readings"] is None
    assert "verdicts not seen (async/MQTT)" in capsys.readouterr().out
