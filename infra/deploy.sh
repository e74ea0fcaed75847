#!/usr/bin/env bash
# Deploy the platform on Docker Swarm with OpenFaaS, in one command (`make deploy`):
#   1. checks every tool and version it needs before anything else: docker (engine
#      reachable, >= 20.10; the API version faas-swarm will use), faas-cli >= 0.18.0, curl, git;
#   2. `docker swarm init` when this engine is in no swarm (remembered in infra/.swarm-state,
#      so infra/down.sh leaves the swarm only if this script created it); a dispatcher
#      heartbeat of SWARM_HEARTBEAT (2s), so a dead node's tasks start elsewhere within seconds
#      (the previous period is remembered and restored by infra/down.sh);
#   3. labels this node anomalias.data=true when no node has the label (Redis, Grafana and
#      the model bind mount are pinned there);
#   4. creates the Docker secrets that are missing (basic-auth-user/-password, redis-password,
#      api-token, grafana-admin-password), values kept in infra/.secrets/ (0600, gitignored);
#   4b. builds the images we ship (the MQTT bridge, the alert forwarder, Grafana with its
#      plugin), tagged with a hash of their files, pushed when REGISTRY is set;
#      MQTT_BRIDGE_IMAGE / ALERT_FORWARDER_IMAGE / GRAFANA_IMAGE name others instead;
#   5. deploys stack `func` (OpenFaaS) then stack `data` (Redis, TF Serving, Grafana,
#      visualizer), waiting for each to converge;
#   6. `faas-cli login` and `faas-cli up` (--skip-push unless REGISTRY is set), then a
#      healthcheck on each function's own server, so a new task takes calls only once it listens;
#   7. waits until /healthz and every /function/<name> answers, deploys stacks `mqtt`
#      (Mosquitto, the MQTT bridge) and `alerts` (the operators' Alertmanager, the alert
#      forwarder), and prints the URLs (in host mode, on the nodes that run each published
#      service's task).
#
# Environment (all optional):
#   REGISTRY              image prefix for the functions (e.g. registry.example.com/anomalias);
#                         when set the images are pushed (needed on a multi-node swarm)
#   SWARM_ADVERTISE_ADDR  address for `docker swarm init` on hosts with several addresses
#   STACK_OVERRIDES       folders of stack files laid over infra/swarm/*.yml (colon-separated);
#                         kernels without IPVS: STACK_OVERRIDES=infra/swarm/no-ipvs PUBLISH_MODE=host
#   MODELS_DIR            the models directory bind-mounted into TF Serving (default models/)
#   PUBLIC_HOST           host name printed in the URLs (default 127.0.0.1; host mode prints
#                         the address of the node running each task instead)
#   SWARM_HEARTBEAT       dispatcher heartbeat to set when the swarm's is longer (default 2s;
#                         empty: leave the swarm's own)
#   DEPLOY_WAIT_SECONDS   how long to wait for each stage (default 600); a task that is
#                         rejected (e.g. "No such image") or fails 3 times stops it at once
#   FAAS_SWARM_DOCKER_API_VERSION, OPENFAAS_*_IMAGE, REDIS_IMAGE, SERVING_IMAGE,
#   GRAFANA_IMAGE, MQTT_BRIDGE_IMAGE, ALERTMANAGER_IMAGE, ALERT_FORWARDER_IMAGE,
#   VISUALIZER_IMAGE, PAGES_URL, *_PORT, PUBLISH_MODE: infra/README.md
set -euo pipefail

# shellcheck source=infra/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
SWARM_DIR="$INFRA/swarm"
PUBLIC_HOST="${PUBLIC_HOST:-127.0.0.1}"
HEARTBEAT="${SWARM_HEARTBEAT-2s}"
WAIT_SECONDS="${DEPLOY_WAIT_SECONDS:-600}"
POLL_SECONDS="${DEPLOY_POLL_SECONDS:-2}"
MIN_FAAS_CLI="0.18.0"   # the `#sha-<commit>` template pin in stack.yml
MIN_ENGINE="20.10"      # the oldest engine this was run on (infra/README.md)
FAAS_SWARM_API="1.30"   # what faas-swarm 0.9.0 was written against
FAILED_TASKS_LIMIT=3    # a service whose tasks failed this often is not coming up

export MODELS_DIR="${MODELS_DIR:-$ROOT/models}"
export PUBLIC_HOST PAGES_URL="${PAGES_URL:-http://$PUBLIC_HOST:${GATEWAY_PORT:-8080}}"


usage() {
    sed -n '2,36p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    "") ;;
    *) die "unknown argument '$1' (try --help)" ;;
esac

# --- state file: key=value lines, read without sourcing --------------------------------------

state_set() {
    local tmp
    tmp="$(mktemp "$STATE_FILE.XXXXXX")"
    if [ -f "$STATE_FILE" ]; then
        grep -v "^$1=" "$STATE_FILE" > "$tmp" || true
    fi
    printf '%s=%s\n' "$1" "$2" >> "$tmp"
    mv "$tmp" "$STATE_FILE"
}

# --- checks ------------------------------------------------------------------------------------
version_at_least() {  # version_at_least HAVE WANT: true when HAVE >= WANT (sort -V order)
    [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]
}

check_tools() {
    local missing=()
    for tool in docker faas-cli curl git sha256sum od awk sort; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        die "missing: ${missing[*]}. Install Docker Engine (>= $MIN_ENGINE; 28 and 29 work, see infra/README.md), faas-cli >= $MIN_FAAS_CLI (https://github.com/openfaas/faas-cli/releases), curl and git."
    fi
    docker info >/dev/null 2>&1 \
        || die "cannot reach the Docker engine (is dockerd running, and may this user use it?)"

    local cli_version
    cli_version="$(faas-cli version --short-version 2>/dev/null | tail -n 1 | tr -d '[:space:]' || true)"
    [[ "$cli_version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] \
        || die "cannot tell faas-cli's version (got '${cli_version:-nothing}' from faas-cli version --short-version): install a release >= $MIN_FAAS_CLI"
    version_at_least "$cli_version" "$MIN_FAAS_CLI" \
        || die "faas-cli $cli_version cannot pull the template stack.yml pins by commit (needs >= $MIN_FAAS_CLI): upgrade faas-cli (https://github.com/openfaas/faas-cli/releases)"

    local engine
    engine="$(docker version --format '{{.Server.Version}}' 2>/dev/null || true)"
    [[ "$engine" =~ ^[0-9]+\.[0-9]+ ]] || die "cannot tell the Docker engine's version (got '${engine:-nothing}')"
    version_at_least "$engine" "$MIN_ENGINE" \
        || die "Docker Engine $engine is older than $MIN_ENGINE: upgrade it (infra/README.md)"
    choose_faas_swarm_api
    say "Docker Engine $engine (faas-swarm uses API $FAAS_SWARM_DOCKER_API_VERSION), faas-cli $cli_version"
}

# faas-swarm's 2020 Docker client does no version negotiation: it speaks DOCKER_API_VERSION.
# Engines up to 28 accept its 1.30; 29 refuses anything below its minimum (1.44 in 29.0).
# Use 1.30 unless the engine's minimum is higher, then that minimum.
choose_faas_swarm_api() {
    local min max
    min="$(docker version --format '{{.Server.MinAPIVersion}}' 2>/dev/null || true)"
    max="$(docker version --format '{{.Server.APIVersion}}' 2>/dev/null || true)"
    [[ "$min" =~ ^[0-9]+\.[0-9]+$ && "$max" =~ ^[0-9]+\.[0-9]+$ ]] \
        || die "cannot read the engine's API versions (docker version: min '$min', max '$max')"
    local want="${FAAS_SWARM_DOCKER_API_VERSION:-}"
    if [ -z "$want" ]; then
        want="$FAAS_SWARM_API"
        version_at_least "$want" "$min" || want="$min"
    fi
    if ! version_at_least "$want" "$min" || ! version_at_least "$max" "$want"; then
        die "faas-swarm cannot use Docker API $want: this engine accepts $min to $max (unset FAAS_SWARM_DOCKER_API_VERSION)"
    fi
    export FAAS_SWARM_DOCKER_API_VERSION="$want"
}

check_models() {
    [ -f "$MODELS_DIR/models_config/models.config" ] \
        || die "no $MODELS_DIR/models_config/models.config: TF Serving cannot start without it (make train, or set MODELS_DIR)."
    local found=""
    for pb in "$MODELS_DIR"/modelo/*/saved_model.pb; do
        [ -f "$pb" ] && found="$pb" && break
    done
    [ -n "$found" ] \
        || die "no SavedModel under $MODELS_DIR/modelo/<version>/: TF Serving would never be healthy (make train first)."
}

# --- swarm and node label ------------------------------------------------------------------------
ensure_swarm() {
    local node_state
    node_state="$(docker info --format '{{.Swarm.LocalNodeState}}')"
    case "$node_state" in
        active) say "this engine is already in a swarm: using it" ;;
        inactive)
            say "docker swarm init"
            local args=()
            if [ -n "${SWARM_ADVERTISE_ADDR:-}" ]; then
                args+=(--advertise-addr "$SWARM_ADVERTISE_ADDR")
            fi
            docker swarm init "${args[@]}" >/dev/null \
                || die "docker swarm init failed (several addresses? set SWARM_ADVERTISE_ADDR)"
            state_set swarm_initialised 1
            ;;
        *) die "swarm state is '$node_state': fix it (docker info) before deploying" ;;
    esac
    [ "$(docker info --format '{{.Swarm.ControlAvailable}}')" = "true" ] \
        || die "this node is not a swarm manager: run infra/deploy.sh on a manager"

    local nodes
    nodes="$(docker info --format '{{.Swarm.Nodes}}')"
    if [ "${nodes:-1}" -gt 1 ] && [ -z "${REGISTRY:-}" ]; then
        die "the swarm has $nodes nodes: set REGISTRY so every node can pull the function images"
    fi
}

# Go's duration text (5s, 1m0s, 500ms, 1.5s) in whole milliseconds; fails on anything else.
duration_ms() {
    awk -v d="$1" 'BEGIN {
        if (d == "") exit 1
        while (match(d, /^[0-9.]+(ms|h|m|s)/)) {
            n = substr(d, 1, RLENGTH); d = substr(d, RLENGTH + 1)
            u = n; sub(/^[0-9.]+/, "", u); sub(/[a-z]+$/, "", n)
            t += n * (u == "h" ? 3600000 : u == "m" ? 60000 : u == "s" ? 1000 : 1)
        }
        if (d != "") exit 1
        printf "%d\n", t }'
}

# A manager marks a node down after about three missed heartbeats (5 s apart unless set:
# some 15 s), and only then starts the node's tasks elsewhere. The tasks' addresses leave the
# other nodes' DNS when their gossip gives the node up, which no setting shortens; the
# gateway's timeouts (infra/swarm/openfaas.yml) bound what a call sent there in between costs.
ensure_heartbeat() {
    [ -n "$HEARTBEAT" ] || return 0
    local current want have
    want="$(duration_ms "$HEARTBEAT")" || die "SWARM_HEARTBEAT='$HEARTBEAT' is not a duration (e.g. 2s)"
    current="$(docker info --format '{{.Swarm.Cluster.Spec.Dispatcher.HeartbeatPeriod}}')"
    have="$(duration_ms "$current")" || die "cannot read the swarm's dispatcher heartbeat (got '$current')"
    [ "$have" -gt "$want" ] || return 0
    say "docker swarm update --dispatcher-heartbeat $HEARTBEAT (was $current): a dead node is noticed within seconds"
    docker swarm update --dispatcher-heartbeat "$HEARTBEAT" >/dev/null
    # the first value deploy found is the one down.sh puts back
    [ -n "$(state_get dispatcher_heartbeat_was)" ] || state_set dispatcher_heartbeat_was "$current"
}

ensure_node_label() {
    local labelled=""
    for node in $(docker node ls -q); do
        if [ "$(docker node inspect --format "{{ index .Spec.Labels \"$NODE_LABEL\" }}" "$node")" = "true" ]; then
            labelled="$node"
            break
        fi
    done
    if [ -z "$labelled" ]; then
        local self
        self="$(docker info --format '{{.Swarm.NodeID}}')"
        say "labelling this node $NODE_LABEL=true (Redis, Grafana and TF Serving run there)"
        docker node update --label-add "$NODE_LABEL=true" "$self" >/dev/null
        state_set node_labelled "$self"
    fi
}

# --- secrets ---------------------------------------------------------------------------------------
random_secret() {
    # 32 random bytes as 64 hex characters: safe in redis.conf, URLs and shell.
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'
}

ensure_secrets() {
    mkdir -p "$SECRETS_DIR"
    chmod 700 "$SECRETS_DIR"
    [ -f "$SECRETS_DIR/.gitignore" ] || printf '*\n' > "$SECRETS_DIR/.gitignore"
    local name file
    for name in "${SECRETS[@]}"; do
        file="$SECRETS_DIR/$name"
        if docker secret inspect "$name" >/dev/null 2>&1; then
            if [ ! -s "$file" ]; then
                case "$name" in
                    basic-auth-password)
                        die "secret $name exists but $file does not: write the gateway password there (0600) or remove the secret" ;;
                    *) warn "secret $name exists (not created here) and its value is not in $file" ;;
                esac
            fi
            continue
        fi
        if [ ! -s "$file" ]; then
            if [ "$name" = "basic-auth-user" ]; then
                printf 'admin' > "$file"    # Alertmanager's webhook authenticates as admin
            else
                (umask 077; random_secret > "$file")
            fi
        fi
        chmod 600 "$file"
        docker secret create --label anomalias.managed=true "$name" "$file" >/dev/null
        state_set "secret.$name" created
        say "created secret $name (value in ${file#"$ROOT"/})"
    done
}

# --- config versions: Swarm configs are immutable, so each name carries a hash of its file --------
config_version() {
    sha256sum "$1" | cut -c1-12
}

# --- images we build: tagged with a hash of what goes in, so a change rolls the service ----------
files_version() {
    sha256sum "$@" | cut -c1-64 | sha256sum | cut -c1-12
}

build_image() {  # build_image IMAGE DOCKERFILE CONTEXT
    say "docker build $1 ($2)"
    docker build -q -t "$1" -f "$2" "$3" >/dev/null || die "building $1 failed (the build's error is above)"
    if [ -n "${REGISTRY:-}" ]; then
        docker push -q "$1" >/dev/null || die "pushing $1 to $REGISTRY failed (docker login?)"
    fi
}

# The MQTT bridge (infra/mqtt_bridge.py), the alert forwarder (infra/alert_forwarder.py) and
# Grafana with its plugin baked in, unless the caller names images of their own
# (MQTT_BRIDGE_IMAGE, ALERT_FORWARDER_IMAGE, GRAFANA_IMAGE).
build_images() {
    local prefix="${REGISTRY:-anomalias}"
    if [ -z "${MQTT_BRIDGE_IMAGE:-}" ]; then
        local bridge="$SWARM_DIR/mqtt-bridge/Dockerfile"
        MQTT_BRIDGE_IMAGE="$prefix/mqtt-bridge:$(files_version "$bridge" "$ROOT/requirements/mqtt-bridge.txt" \
            "$ROOT/shared/signing.py" "$ROOT/infra/mqtt_bridge.py")"
        build_image "$MQTT_BRIDGE_IMAGE" "$bridge" "$ROOT"
    fi
    if [ -z "${ALERT_FORWARDER_IMAGE:-}" ]; then
        local forwarder="$SWARM_DIR/alert-forwarder/Dockerfile"
        ALERT_FORWARDER_IMAGE="$prefix/alert-forwarder:$(files_version "$forwarder" \
            "$ROOT/requirements/alert-forwarder.txt" "$ROOT/shared/config.py" "$ROOT/shared/timestamps.py" \
            "$ROOT/shared/redis_connection.py" "$ROOT/shared/outbox.py" "$ROOT/infra/alert_forwarder.py" \
            "$ROOT/infra/alert_payload.py")"
        build_image "$ALERT_FORWARDER_IMAGE" "$forwarder" "$ROOT"
    fi
    if [ -z "${GRAFANA_IMAGE:-}" ]; then
        # fetches redis-datasource from grafana.com once, here; Grafana's starts need nothing
        GRAFANA_IMAGE="$prefix/grafana:$(files_version "$INFRA/grafana/Dockerfile")"
        build_image "$GRAFANA_IMAGE" "$INFRA/grafana/Dockerfile" "$INFRA/grafana"
    fi
    export MQTT_BRIDGE_IMAGE ALERT_FORWARDER_IMAGE GRAFANA_IMAGE
}

export_config_versions() {
    PROMETHEUS_CONFIG_VERSION="$(config_version "$SWARM_DIR/prometheus/prometheus.yml")"
    PROMETHEUS_RULES_VERSION="$(config_version "$SWARM_DIR/prometheus/alert.rules.yml")"
    ALERTMANAGER_CONFIG_VERSION="$(config_version "$SWARM_DIR/prometheus/alertmanager.yml")"
    REDIS_CONF_VERSION="$(config_version "$SWARM_DIR/redis/redis.conf")"
    GRAFANA_DATASOURCES_VERSION="$(config_version "$INFRA/grafana/provisioning/datasources/anomalias.yml")"
    GRAFANA_DASHBOARD_PROVIDER_VERSION="$(config_version "$INFRA/grafana/provisioning/dashboards/anomalias.yml")"
    GRAFANA_DASHBOARD_VERSION="$(config_version "$INFRA/grafana/dashboards/anomalias.json")"
    MOSQUITTO_CONF_VERSION="$(config_version "$SWARM_DIR/mosquitto/mosquitto.conf")"
    OPERATOR_ALERTMANAGER_CONFIG_VERSION="$(config_version "$INFRA/alertmanager/alertmanager.yml")"
    export PROMETHEUS_CONFIG_VERSION PROMETHEUS_RULES_VERSION ALERTMANAGER_CONFIG_VERSION \
        REDIS_CONF_VERSION GRAFANA_DATASOURCES_VERSION GRAFANA_DASHBOARD_PROVIDER_VERSION \
        GRAFANA_DASHBOARD_VERSION MOSQUITTO_CONF_VERSION OPERATOR_ALERTMANAGER_CONFIG_VERSION
}

# --- stacks --------------------------------------------------------------------------------------------
# deploy_stack STACK FILE: infra/swarm/<FILE>, then its namesake in each folder of
# STACK_OVERRIDES (colon-separated; e.g. infra/swarm/no-ipvs), later files winning.
deploy_stack() {
    local files=(-c "$SWARM_DIR/$2") dir dirs=()
    IFS=: read -r -a dirs <<< "${STACK_OVERRIDES:-}"
    for dir in "${dirs[@]}"; do
        [ -f "$dir/$2" ] && files+=(-c "$dir/$2")
    done
    docker stack deploy --prune "${files[@]}" "$1"
}

# --- waiting -----------------------------------------------------------------------------------------
# Stops the deploy as soon as a task cannot start: the newest task of a slot rejected (the
# engine refused it: no such image, a missing secret or mount, no node that fits; also
# while a start-first update keeps the old task running), or FAILED_TASKS_LIMIT failed
# tasks of a service still coming up (PENDING: their names, space-separated). Reads
# `docker stack ps STACK` or `docker service ps NAME` (newest task of each slot first).
check_tasks() {
    local kind="$1" target="$2" pending="${3:-}" tasks verdict
    tasks="$(docker "$kind" ps "$target" --no-trunc --format '{{.Name}}|{{.CurrentState}}|{{.Error}}' 2>/dev/null || true)"
    verdict="$(printf '%s\n' "$tasks" | awk -F'|' -v limit="$FAILED_TASKS_LIMIT" -v pending="$pending" '
        BEGIN { n = split(pending, names, " "); for (i = 1; i <= n; i++) judged[names[i]] = 1 }
        { service = $1; sub(/\.[^.]*$/, "", service) }
        !($1 in seen) && $2 ~ /^Rejected/ { print service "|rejected|" $3; exit }
        { seen[$1] = 1 }
        !(service in judged) { next }
        $2 ~ /^Failed/ { failed[service]++; if (!(service in error)) error[service] = $3
                         if (failed[service] >= limit) { print service "|failed " failed[service] " times|" error[service]; exit } }')"
    [ -z "$verdict" ] && return 0
    local service="${verdict%%|*}" rest="${verdict#*|}"
    local what="${rest%%|*}" error="${rest#*|}" hint
    case "$error" in
        *"No such image"*|*"not found"*|*"pull access denied"*)
            hint="the image is not on this node: build it, pull it, or point the *_IMAGE variable at one that exists (infra/README.md); on several nodes push it to REGISTRY" ;;
        *"secret"*|*"config"*) hint="a secret or config is missing: run infra/deploy.sh again, or create it (infra/README.md)" ;;
        *"no suitable node"*) hint="no node matches the service's placement (the $NODE_LABEL label, manager role) or has the memory it reserves" ;;
        *) hint="its own log says why: docker service logs $service" ;;
    esac
    die "service $service: task $what: ${error:-no error given}. $hint (docker service ps --no-trunc $service)"
}

# Ready: every service at n/n (0/0 included: a service meant to run no task) and no task
# rejected, twice POLL_SECONDS apart: right after `stack deploy` an updated service still
# shows its old tasks for a moment.
wait_stack() {
    local stack="$1" deadline=$((SECONDS + WAIT_SECONDS)) pending settled=0
    say "waiting for stack $stack (up to ${WAIT_SECONDS}s; images may be pulling)"
    while :; do
        pending="$(docker stack services "$stack" --format '{{.Name}} {{.Replicas}}' \
            | awk '{ split($2, r, "/"); if (r[1] != r[2]) print $1 " " $2 }')"
        check_tasks stack "$stack" "$(printf '%s\n' "$pending" | awk '{ printf "%s ", $1 }')"
        if [ -z "$pending" ]; then
            [ "$settled" = 1 ] && return 0
            settled=1
            sleep "$POLL_SECONDS"
            continue
        fi
        settled=0
        if [ "$SECONDS" -ge "$deadline" ]; then
            printf '%s\n' "$pending" >&2
            docker stack ps "$stack" --no-trunc --format '{{.Name}} {{.CurrentState}} {{.Error}}' \
                | head -n 20 >&2 || true
            die "stack $stack did not converge in ${WAIT_SECONDS}s (docker service logs <service> tells why)"
        fi
        sleep "$POLL_SECONDS"
    done
}

wait_http() {
    # Waits until URL answers with a status in [low, high]; prints the last status on failure.
    local what="$1" url="$2" low="$3" high="$4" deadline=$((SECONDS + WAIT_SECONDS)) code
    while :; do
        code="$(curl -s -o /dev/null -m 10 -w '%{http_code}' "$url" 2>/dev/null || true)"
        if [[ "$code" =~ ^[0-9]+$ ]] && [ "$code" -ge "$low" ] && [ "$code" -le "$high" ]; then
            say "$what answers ($code)"
            return 0
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            die "$what did not answer in ${WAIT_SECONDS}s (last status: ${code:-none}) at $url"
        fi
        sleep 3
    done
}

# The python3-http template's HEALTHCHECK sees only the watchdog's lock file, written before the
# handler's Python server listens on the template's upstream port (127.0.0.1:5000): a new task
# (a redeploy, or one replacing a dead node's) took calls and answered 500 until it did. faas-swarm
# sets no healthcheck and keeps one set on the service across `faas-cli up`; with this one Swarm
# adds a task to DNS and the load balancer only once its server accepts connections.
FUNCTION_HEALTH_CMD="python -c \"import socket; socket.create_connection(('127.0.0.1', 5000), 2)\""

ensure_function_healthchecks() {
    local fn updated=()
    for fn in "${FUNCTIONS[@]}"; do
        [ "$(docker service inspect --format '{{with .Spec.TaskTemplate.ContainerSpec.Healthcheck}}{{join .Test " "}}{{end}}' "$fn")" \
            = "CMD-SHELL $FUNCTION_HEALTH_CMD" ] && continue
        say "healthcheck on $fn: its Python server accepts connections (rolling update)"
        # every 3 s while it starts; replaced only after a minute of failures (a starved host
        # must not have working tasks killed)
        docker service update --detach --health-cmd "$FUNCTION_HEALTH_CMD" --health-interval 3s \
            --health-timeout 5s --health-retries 20 --health-start-period 60s "$fn" >/dev/null
        updated+=("$fn")
    done
    for fn in "${updated[@]}"; do
        wait_update "$fn"
    done
}

# Waits until a service's rolling update ends; a rolled back or paused one stops the deploy.
wait_update() {
    local deadline=$((SECONDS + WAIT_SECONDS)) state
    while :; do
        state="$(docker service inspect --format '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' "$1")"
        case "$state" in
            ""|completed) return 0 ;;
            rollback_*|paused) die "the update of $1 did not go through ($state): docker service ps --no-trunc $1" ;;
        esac
        [ "$SECONDS" -ge "$deadline" ] && die "the update of $1 did not end in ${WAIT_SECONDS}s ($state)"
        sleep "$POLL_SECONDS"
    done
}

wait_function() {
    # Waits until the function itself answers: its answers to ?format=json are JSON (a 401
    # for an unsigned write included), while the gateway's own (404 before faas-swarm has made the
    # service, an empty 200 when its scale-from-zero wait runs out, 502) are plain text.
    local fn="$1" url="$GATEWAY_URL/function/$1?format=json" deadline=$((SECONDS + WAIT_SECONDS)) type
    while :; do
        type="$(curl -s -o /dev/null -m 10 -w '%{content_type}' "$url" 2>/dev/null || true)"
        if [[ "$type" == application/json* ]]; then
            say "function $fn answers"
            return 0
        fi
        check_tasks service "$fn" "$fn"
        if [ "$SECONDS" -ge "$deadline" ]; then
            die "function $fn did not answer in ${WAIT_SECONDS}s (last content type: ${type:-none}) at $url"
        fi
        sleep 3
    done
}

# --- where the published ports answer ------------------------------------------------------------
# The address other nodes and clients reach a node by (a manager may report 0.0.0.0 as its
# status address: then the one it advertises to the other managers).
node_address() {
    local addr
    addr="$(docker node inspect --format '{{.Status.Addr}}' "$1" 2>/dev/null || true)"
    if [ -z "$addr" ] || [ "$addr" = "0.0.0.0" ]; then
        addr="$(docker node inspect --format '{{if .ManagerStatus}}{{.ManagerStatus.Addr}}{{end}}' "$1" 2>/dev/null || true)"
        addr="${addr%:*}"
    fi
    printf '%s' "${addr:-$1}"
}

# published_at SERVICE SCHEME PORT: with the ingress mesh any node answers (PUBLIC_HOST); in
# host mode only the nodes that run the service's tasks do, so those are printed.
published_at() {
    local service="$1" scheme="$2" port="$3" node urls=""
    if [ "${PUBLISH_MODE:-ingress}" != host ]; then
        printf '%s://%s:%s' "$scheme" "$PUBLIC_HOST" "$port"
        return
    fi
    for node in $(docker service ps "$service" --filter desired-state=running --format '{{.Node}}' 2>/dev/null | sort -u); do
        urls="${urls:+$urls, }$scheme://$(node_address "$node"):$port (node $node)"
    done
    printf '%s' "${urls:-not running (no task of $service)}"
}

# --- main -------------------------------------------------------------------------------------------------
main() {
    check_tools
    check_models
    touch "$STATE_FILE"
    ensure_swarm
    ensure_heartbeat
    ensure_node_label
    ensure_secrets
    export_config_versions
    build_images

    say "deploying stack func (OpenFaaS) from infra/swarm/openfaas.yml"
    deploy_stack func openfaas.yml
    wait_http "gateway /healthz" "$GATEWAY_URL/healthz" 200 299

    say "deploying stack data (Redis, TF Serving, Grafana, visualizer) from infra/swarm/data.yml"
    deploy_stack data data.yml
    wait_stack func
    wait_stack data

    cd "$ROOT"
    # --overwrite: a template/ left by an earlier, differently pinned pull must not win
    say "faas-cli template pull stack --overwrite (python3-http, pinned in stack.yml)"
    faas-cli template pull stack -f stack.yml --overwrite
    say "faas-cli login ($GATEWAY_URL, user admin)"
    faas-cli login --gateway "$GATEWAY_URL" --username admin --password-stdin \
        < "$SECRETS_DIR/basic-auth-password"
    if [ -n "${REGISTRY:-}" ]; then
        say "faas-cli up (build, push to $REGISTRY, deploy)"
        faas-cli up -f stack.yml --gateway "$GATEWAY_URL"
    else
        say "faas-cli up --skip-push (one-node swarm: images stay local)"
        faas-cli up -f stack.yml --gateway "$GATEWAY_URL" --skip-push
    fi

    local fn
    for fn in "${FUNCTIONS[@]}"; do
        wait_function "$fn"
    done
    ensure_function_healthchecks

    # After the functions: the bridge delivers retained messages as soon as it connects,
    # and a message that matches no function yet is dropped, not retried.
    say "deploying stack mqtt (Mosquitto, the MQTT bridge) from infra/swarm/mqtt.yml"
    deploy_stack mqtt mqtt.yml
    wait_stack mqtt

    say "deploying stack alerts (the operators' Alertmanager, the alert forwarder) from infra/swarm/alerts.yml"
    deploy_stack alerts alerts.yml
    wait_stack alerts

    local where gateway="$GATEWAY_URL"
    if [ "${PUBLISH_MODE:-ingress}" = host ]; then
        where="Published in host mode: each port answers only on the node that runs its task:"
        gateway="$(published_at func_gateway http "${GATEWAY_PORT:-8080}")"
    else
        where="On any swarm node (routing mesh) or here:"
    fi
    cat <<EOF

Deployed. $where
  OpenFaaS gateway  $gateway   (UI /ui/, functions /function/<name>)
  Grafana           $(published_at data_grafana http "${GRAFANA_PORT:-3000}")   (user admin, password in ${SECRETS_DIR#"$ROOT"/}/grafana-admin-password)
  Visualizer        $(published_at data_visualizer http "${VISUALIZER_PORT:-8081}")
  Prometheus        $(published_at func_prometheus http "${PROMETHEUS_PORT:-9090}")
  MQTT broker       $(published_at mqtt_mosquitto tcp "${MQTT_PORT:-1883}")
  Alertmanager      $(published_at alerts_operator-alertmanager http "${ALERTMANAGER_PORT:-9093}")   (operators' alerts; fill in its receiver: infra/alertmanager/alertmanager.yml)
Gateway user admin, password in ${SECRETS_DIR#"$ROOT"/}/basic-auth-password
API key for the write functions in ${SECRETS_DIR#"$ROOT"/}/api-token (sign each call: python3 -m shared.signing, see README)
Remove everything with: make down   (infra/down.sh)
EOF
}

main "$@"
