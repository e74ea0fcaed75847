"""Settings: the replaced system's names and defaults, validated once with clear messages."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from infra.local.redis_server import REPO_ROOT
from shared.config import ConfigError, load_settings


def test_defaults_are_the_replaced_systems():
    settings = load_settings({})
    assert settings.window_size == 10
    assert settings.model_name == "modelo"
    assert settings.threshold is None  # the model's own calibrated threshold applies
    assert settings.serving_url is None and settings.model_engine == "auto"
    assert settings.redis_nodes == (("localhost", 6379),)
    assert not settings.redis_cluster and settings.redis_wait_replicas == 0


def test_a_cluster_is_named_by_its_seed_nodes_and_waits_for_a_replica_by_default():
    settings = load_settings({"REDIS_CLUSTER": "1", "REDIS_HOST": "a:7000, b ,c:7002",
                              "REDIS_PORT": "7001"})
    assert settings.redis_cluster
    assert settings.redis_nodes == (("a", 7000), ("b", 7001), ("c", 7002))
    assert settings.redis_wait_replicas == 1
    assert load_settings({"REDIS_CLUSTER": "1", "REDIS_WAIT_REPLICAS": "0"}).redis_wait_replicas == 0


def test_serving_host_is_tf_servings_rest_port_unless_a_url_is_given():
    assert load_settings({"SERVING_HOST": "serving"}).serving_url == "http://serving:8501"
    assert load_settings({"SERVING_HOST": "tf:9000"}).serving_url == "http://tf:9000"
    assert load_settings({"SERVING_HOST": "x", "SERVING_URL": "https://m.example/"}).serving_url \
        == "https://m.example"


@pytest.mark.parametrize("text, value", [("0", 0.0), ("9.233", 9.233), ("1.5e1", 15.0)])
def test_threshold_takes_any_margin_from_zero_up(text, value):
    assert load_settings({"THRESHOLD": text}).threshold == value


def test_secrets_are_read_from_files(tmp_path):
    (tmp_path / "pw").write_text("s3cret\n")
    (tmp_path / "token").write_text("tok")
    settings = load_settings({"REDIS_PASSWORD_FILE": str(tmp_path / "pw"),
                              "API_TOKEN_FILE": str(tmp_path / "token")})
    assert (settings.redis_password, settings.api_key) == ("s3cret", "tok")
    absent = load_settings({"REDIS_PASSWORD_FILE": str(tmp_path / "none")})
    assert absent.redis_password is None


@pytest.mark.parametrize("env, message", [
    ({"WINDOW_SIZE": "diez"}, "WINDOW_SIZE='diez' is not valid"),
    ({"WINDOW_SIZE": "0"}, "WINDOW_SIZE"),
    ({"THRESHOLD": "-1"}, "THRESHOLD"),
    ({"THRESHOLD": "nan"}, "THRESHOLD"),
    ({"REDIS_PORT": "70000"}, "REDIS_PORT"),
    ({"REDIS_HOST": "a:7000,b:7001"}, "set REDIS_CLUSTER=1"),
    ({"REDIS_HOST": "a:x", "REDIS_CLUSTER": "1"}, "expected host or host:port, comma-separated"),
    ({"REDIS_CLUSTER": "yes"}, "REDIS_CLUSTER"),
    ({"REDIS_WAIT_REPLICAS": "-1"}, "REDIS_WAIT_REPLICAS"),
    ({"SERVING_TIMEOUT": "0"}, "SERVING_TIMEOUT"),
    ({"MODEL_ENGINE": "gpu"}, "MODEL_ENGINE"),
    ({"MODEL_ENGINE": "tfserving"}, "needs SERVING_HOST"),
    ({"SERVING_URL": "serving:8501"}, "SERVING_URL"),
    ({"MODEL_NAME": "../etc"}, "MODEL_NAME"),
    ({"EARLIEST_READING": "ayer"}, "EARLIEST_READING='ayer' is not valid: expected an ISO-8601 date"),
    ({"EARLIEST_READING": "1969-12-31"}, "EARLIEST_READING"),
])
def test_a_bad_value_is_named_with_what_was_expected(env, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_settings(env)


def test_the_local_stack_refuses_to_start_with_a_bad_setting(redis_server):
    result = subprocess.run(
        [sys.executable, "-m", "infra.local", "--port", "0"], cwd=REPO_ROOT, capture_output=True,
        text=True, timeout=60, env={**os.environ, **redis_server.env(), "WINDOW_SIZE": "abc"})
    assert result.returncode == 2
    assert "WINDOW_SIZE='abc' is not valid" in result.stderr
    assert "Traceback" not in result.stderr


def test_readings_are_refused_before_2000_unless_told_otherwise():
    assert load_settings({}).earliest_reading_ms == 946_684_800_000
    assert load_settings({"EARLIEST_READING": "1970-01-01"}).earliest_reading_ms == 0
