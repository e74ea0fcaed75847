"""Grafana provisioning: datasources, dashboard provider and the dashboard's queries."""

from __future__ import annotations

import yaml

from tests.infra.stackfiles import GRAFANA_DIR, SWARM_DIR, load_json, load_yaml

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
                yield panel, {**{"datasource": panel.get("datasource")}, **target}


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


def test_redis_queries_follow_the_key_layout():
    redis = [(p, t) for p, t in _targets() if t["datasource"]["type"] == "redis-datasource"]
    assert redis
    for panel, target in redis:
        assert target["type"] == "timeSeries", panel["title"]
        assert target["command"] in ("ts.range", "ts.mrange", "ts.get", "ts.mget")
        if target["command"] == "ts.mrange":
            # Without an aggregation the plugin sends the bucket as a stray argument.
            assert target.get("aggregation") and int(target["bucket"]) > 0, panel["title"]
    filters = {t.get("filter") for _, t in redis}
    keys = {t.get("keyName") for _, t in redis}
    assert "kind=reading" in filters
    assert "kind=anomaly" in filters
    assert "mediciones" in keys
    assert any(k and k.endswith("/anomalies") for k in keys)


def test_anomalies_are_drawn_as_points():
    for path in DASHBOARD_FILES:
        for panel in load_json(path)["panels"]:
            anomaly_refs = {t["refId"] for t in panel.get("targets", [])
                            if t.get("filter") == "kind=anomaly"
                            or str(t.get("keyName", "")).endswith("/anomalies")}
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
