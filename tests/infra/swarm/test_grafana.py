"""Grafana provisioning: datasources, dashboard provider and the dashboard's queries."""

from __future__ import annotations

import re
import shlex

import yaml

from tests.infra.stackfiles import GRAFANA_DIR, SWARM_DIR, load_json, load_yaml

WINDOW = 10

DATASOURCES = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "anomalias.yml")
                             .read_text())
PROVIDERS = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "anomalias.yml")
                           .read_text())
DASHBOARD_FILES = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))


def _datasources_by_uid() -> dict:
    return {ds["uid"]: ds for ds in DATASOURCES["datasources"]}


def _targets():
    for path in DASHBOARD_FILES:
        for panel in load_json(path)["panels"]:
            for target in panel.get("targets", []):
                yield panel, {"datasource": panel.get("datasource"), **target}


def test_datasources():
    assert DATASOURCES["apiVersion"] == 1
    by_type = {ds["type"]: ds for ds in DATASOURCES["datasources"]}
    redis = by_type["redis-datasource"]
    assert redis["url"] in ("redis:6379", "redis://redis:6379")
    assert redis["secureJsonData"]["password"] == "$__file{/run/secrets/redis-password}"
    assert redis["uid"]
    prometheus = by_type["prometheus"]
    assert prometheus["url"] == "http://prometheus:9090"
    assert prometheus["uid"]
    assert len(_datasources_by_uid()) == len(DATASOURCES["datasources"]), "uids must be unique"


def test_the_redis_password_file_is_mounted_in_grafana():
    grafana = load_yaml(SWARM_DIR / "data.yml")["services"]["grafana"]
    assert "redis-password" in grafana["secrets"]  # /run/secrets/redis-password


def test_dashboard_provider_points_at_the_mounted_dashboards():
    grafana = load_yaml(SWARM_DIR / "data.yml")["services"]["grafana"]
    paths = {p["options"]["path"].rstrip("/") for p in PROVIDERS["providers"]}
    dashboard_targets = [c["target"] for c in grafana["configs"] if c["target"].endswith(".json")]
    assert dashboard_targets
    assert all(t.rsplit("/", 1)[0] in paths for t in dashboard_targets)


def test_dashboards_are_valid_json_with_stable_uids():
    assert DASHBOARD_FILES
    for path in DASHBOARD_FILES:
        dashboard = load_json(path)
        assert dashboard["uid"] and dashboard["title"]
        assert "id" not in dashboard or dashboard["id"] is None
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids))


def test_every_query_uses_a_provisioned_datasource():
    uids = _datasources_by_uid()
    count = 0
    for panel, target in _targets():
        ds = target["datasource"]
        assert ds["uid"] in uids, f"{panel['title']}: unknown datasource uid {ds['uid']}"
        assert ds["type"] == uids[ds["uid"]]["type"]
        count += 1
    assert count


# The query model of redis-datasource 2.2.0 (pkg/types.go `queryModel`): the keys a target may
# carry; pkg/redis-time-series.go `queryTsMRange` turns them into the command.
QUERY_MODEL_KEYS = {"refId", "datasource", "type", "query", "keyName", "field", "filter", "command",
                    "aggregation", "bucket", "legend", "value", "fill", "streaming",
                    "streamingDataType", "tsGroupByLabel", "tsReducer"}
SENSOR_FILTER = "sensor=(${sensor:csv})"


# the readings, the anomaly and alert marks, and detectar's judgements (expected, the band)
KINDS = {"kind=reading", "kind=anomaly", "kind=alert", "kind=expected", "kind=lower", "kind=upper"}


def _annotation_targets():
    for path in DASHBOARD_FILES:
        for annotation in load_json(path)["annotations"]["list"]:
            yield annotation, {"datasource": annotation["datasource"], **annotation["target"]}


def _redis_targets():
    """Every query of the Redis datasource: the panels' and the annotations'."""
    panels = [(p, t) for p, t in _targets() if t["datasource"]["type"] == "redis-datasource"]
    return panels + [({"title": a["name"], "fieldConfig": None}, t) for a, t in _annotation_targets()]


def test_redis_queries_are_aggregated_mranges_of_the_selected_sensors():
    redis = _redis_targets()
    assert redis
    for panel, target in redis:
        assert set(target) <= QUERY_MODEL_KEYS, (panel["title"], set(target) - QUERY_MODEL_KEYS)
        assert target["type"] == "timeSeries", panel["title"]
        # TS.MRANGE: a filter that matches nothing is an empty answer, never an error (a
        # TS.RANGE of <sensor>/anomalies fails until the sensor's first anomaly)
        assert target["command"] == "ts.mrange", panel["title"]
        # aggregated: bounded points whatever the range (without one the plugin also sends
        # the bucket as a stray argument)
        assert target["aggregation"] in ("avg", "max", "min") and int(target["bucket"]) >= 60_000
        kind, selected = target["filter"].split(" ")
        assert kind in KINDS and selected == SENSOR_FILTER
        # legend names the frame, value names the field (the label's value): both the sensor,
        # else a lone series is called "Value"
        assert target["legend"] == "sensor" and target["value"] == "sensor"
    assert {t["filter"].split(" ")[0] for _, t in redis} == KINDS


def test_the_selected_sensors_alerts_are_annotations():
    alerts = [t for _, t in _annotation_targets() if t["filter"].startswith("kind=alert ")]
    assert alerts and all(t["aggregation"] == "max" for t in alerts)


def test_series_are_named_by_sensor():
    for panel, target in _redis_targets():
        if panel["fieldConfig"] is None:  # an annotation: no series
            continue
        names = [panel["fieldConfig"]["defaults"].get("displayName")]
        names += [prop["value"] for o in panel["fieldConfig"]["overrides"]
                  if o["matcher"] == {"id": "byFrameRefID", "options": target["refId"]}
                  for prop in o["properties"] if prop["id"] == "displayName"]
        assert names[-1] and names[-1].startswith("${__field.name}"), panel["title"]


def test_the_sensor_variable_lists_the_sensors_with_readings():
    for path in DASHBOARD_FILES:
        variables = {v["name"]: v for v in load_json(path)["templating"]["list"]}
        sensor = variables["sensor"]
        assert sensor["type"] == "query" and sensor["datasource"]["type"] == "redis-datasource"
        assert sensor["query"] == "TS.QUERYINDEX kind=reading"  # a custom command: the keys
        assert sensor["multi"] and sensor["includeAll"]
        assert re.fullmatch(sensor["regex"].strip("/"), "horno-3.a:b_1")
        assert not re.fullmatch(sensor["regex"].strip("/"), "(empty array)")  # the plugin's "none"


def mrange_args(target: dict, sensors: list[str], from_ms: int, to_ms: int) -> list:
    """What queryTsMRange sends: TS.MRANGE from to AGGREGATION a b WITHLABELS FILTER <shell split>,
    the filter with ${sensor:csv} interpolated as Grafana does (values joined by commas)."""
    filter_text = target["filter"].replace("${sensor:csv}", ",".join(sensors))
    return ["TS.MRANGE", from_ms, to_ms, "AGGREGATION", target["aggregation"], target["bucket"],
            "WITHLABELS", "FILTER", *shlex.split(filter_text)]


def test_the_dashboards_commands_against_redis_before_and_after_the_first_anomaly(api, redis_client):
    start = 1_700_000_000_000
    for i in range(WINDOW):
        for sensor in ("horno-1", "horno-2"):
            stamp = str(start + i * 300_000)
            assert api.get("nuevo", dato="70.0", sensor=sensor, timestamp=stamp).status_code == 200
    after = start + WINDOW * 300_000
    sensors = [v.decode() for v in redis_client.execute_command("TS.QUERYINDEX", "kind=reading")]
    assert sorted(sensors) == ["horno-1", "horno-2"]
    targets = {t["filter"].split(" ")[0]: t for _, t in _redis_targets()}

    def run(kind: str, chosen: list[str]) -> dict[str, list]:
        reply = redis_client.execute_command(*mrange_args(targets[kind], chosen, start, after + 600_000))
        return {dict(labels)[b"sensor"].decode(): samples for _key, labels, samples in reply}

    assert sorted(run("kind=reading", sensors)) == ["horno-1", "horno-2"]
    assert list(run("kind=reading", ["horno-2"])) == ["horno-2"]
    assert run("kind=anomaly", sensors) == {}  # no anomaly yet: empty, not an error
    assert api.json("detectar", dato="95.0", sensor="horno-1", timestamp=str(after)).json()["anomaly"]
    anomalies = run("kind=anomaly", sensors)
    assert list(anomalies) == ["horno-1"] and float(anomalies["horno-1"][0][1]) == 95.0
    assert len(run("kind=reading", ["horno-1"])["horno-1"]) <= WINDOW + 1  # one per minute at most


def test_anomalies_are_drawn_as_points():
    for path in DASHBOARD_FILES:
        for panel in load_json(path)["panels"]:
            anomaly_refs = {t["refId"] for t in panel.get("targets", [])
                            if str(t.get("filter", "")).startswith("kind=anomaly")}
            for ref in anomaly_refs:
                overrides = [o for o in panel["fieldConfig"]["overrides"]
                             if o["matcher"] == {"id": "byFrameRefID", "options": ref}]
                props = {p["id"]: p["value"] for o in overrides for p in o["properties"]}
                assert props.get("custom.drawStyle") == "points", panel["title"]


def test_function_metrics_panels():
    exprs = " ".join(t.get("expr", "") for _, t in _targets()
                     if t["datasource"]["type"] == "prometheus")
    assert "gateway_function_invocation_total" in exprs
    assert "gateway_functions_seconds" in exprs


def test_grafana_starts_offline_from_the_image_we_build():
    """No install at start; the plugin baked in outside the data volume's path."""
    grafana = load_yaml(SWARM_DIR / "data.yml")["services"]["grafana"]
    env = grafana["environment"]
    assert not any(k.startswith(("GF_INSTALL_PLUGINS", "GF_PLUGINS_PREINSTALL")) for k in env)
    dockerfile = (GRAFANA_DIR / "Dockerfile").read_text()
    plugins_dir = re.search(r"^ENV GF_PATHS_PLUGINS=(\S+)$", dockerfile, re.M)[1]
    assert re.search(r"plugins install redis-datasource 2\.2\.0", dockerfile)
    assert '--pluginsDir "$GF_PATHS_PLUGINS"' in dockerfile
    mounts = [v.split(":")[1] if isinstance(v, str) else v["target"] for v in grafana["volumes"]]
    assert "/var/lib/grafana" in mounts
    for mount in mounts:
        assert not (plugins_dir + "/").startswith(mount.rstrip("/") + "/"), "hidden by a volume"
    assert grafana["image"].startswith("anomalias/grafana:")  # ours, not grafana/grafana


def test_the_band_and_alert_queries_against_redis(redis_client, redis_server):
    """What the verdict script stores (shared/store/lua/verdict.lua) is what the panel's
    band queries and the alerts annotation find, for the selected sensor only."""
    from shared.config import load_settings
    from shared.redis_connection import connect
    from shared.store.reading_store import ReadingStore

    store = ReadingStore(connect(load_settings(redis_server.env())))
    start = 1_700_000_000_000
    for sensor in ("horno-1", "horno-2"):
        for i in range(3):
            store.record_verdict(sensor, start + i * 60_000, 95.0 if i == 2 else 70.0, i == 2,
                                 i == 2, {}, {}, (70.0, 68.0 + i, 72.0 + i))
    store.connection.close()
    targets = {t["filter"].split(" ")[0]: t for _, t in _redis_targets()}

    def run(kind: str) -> dict[str, list]:
        reply = redis_client.execute_command(*mrange_args(targets[kind], ["horno-1"], start,
                                                          start + 600_000))
        return {dict(labels)[b"sensor"].decode(): samples for _key, labels, samples in reply}

    assert [float(v) for _, v in run("kind=expected")["horno-1"]] == [70.0, 70.0, 70.0]
    assert [float(v) for _, v in run("kind=lower")["horno-1"]] == [68.0, 69.0, 70.0]
    assert [float(v) for _, v in run("kind=upper")["horno-1"]] == [72.0, 73.0, 74.0]
    alerts = run("kind=alert")
    assert list(alerts) == ["horno-1"] and [float(v) for _, v in alerts["horno-1"]] == [95.0]
