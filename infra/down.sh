#!/usr/bin/env bash
# Remove what infra/deploy.sh created (`make down`), leaving the host as deploy found it:
#   1. `faas-cli remove` of the three functions (or `docker service rm` when the gateway is
#      already gone);
#   2. `docker stack rm alerts`, `mqtt`, `data` and `func`, waiting until their services,
#      containers and networks are gone;
#   3. removes the Docker secrets deploy created (infra/.swarm-state says which) and the node
#      label it added, and puts back the dispatcher heartbeat deploy shortened;
#   4. `docker swarm leave --force` only if deploy ran `docker swarm init`.
#
# Kept unless --purge: the named volumes (data_redis-data: the readings; data_grafana-data;
# mqtt_mosquitto-data; alerts_alertmanager-data: silences) and infra/.secrets/ (the next
# deploy reuses the values: Grafana keeps the admin password it was first started with in its
# volume).
# --purge removes the volumes on every node: a volume lives on the engine of the node that ran
# its task, so on a swarm of several nodes a one-shot job (PURGE_IMAGE, an image with the
# docker CLI every node can pull; default docker:28.2.2-cli) removes them on each node and
# says what it removed where. A node it cannot reach is named with the command to run there,
# infra/.secrets/ is kept, and down.sh exits 1.
#
#   infra/down.sh [--purge]
set -euo pipefail

# shellcheck source=infra/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
WAIT_SECONDS="${DOWN_WAIT_SECONDS:-180}"
STACKS=(alerts mqtt data func)
VOLUMES=(data_redis-data data_grafana-data mqtt_mosquitto-data alerts_alertmanager-data)
PURGE=0
PURGE_FAILED=0
LEFTOVER=0
PURGE_JOB="anomalias-purge"
PURGE_IMAGE="${PURGE_IMAGE:-docker:28.2.2-cli}"
# Run by the job on each node, against that node's engine: removes each volume given, waiting
# while a container of the stack that is still stopping holds it.
# shellcheck disable=SC2016  # expanded by the job's shell, not here
PURGE_SCRIPT='status=0
for v in "$@"; do
  end=$(( $(date +%s) + WAIT ))
  while docker volume inspect "$v" >/dev/null 2>&1; do
    if docker volume rm "$v" >/dev/null 2>&1; then echo "$NODE: removed $v"; break; fi
    if [ "$(date +%s)" -ge "$end" ]; then echo "$NODE: $v is still in use"; status=1; break; fi
    sleep 2
  done
done
exit $status'


for arg in "$@"; do
    case "$arg" in
        --purge) PURGE=1 ;;
        -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$arg' (try --help)" ;;
    esac
done


# Retries a command until it succeeds or the time is up (for removals that race with
# containers still stopping).
retry() {
    local deadline=$((SECONDS + WAIT_SECONDS))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -ge "$deadline" ] && return 1
        sleep 2
    done
}

remove_functions() {
    local removed=0
    if command -v faas-cli >/dev/null 2>&1 \
        && curl -fsS -m 5 -o /dev/null "$GATEWAY_URL/healthz" 2>/dev/null; then
        say "faas-cli remove (stack.yml)"
        if (cd "$ROOT" && faas-cli remove -f stack.yml --gateway "$GATEWAY_URL"); then
            removed=1
        else
            warn "faas-cli remove failed; removing the function services directly"
        fi
    fi
    # Also the fallback when the gateway is gone: only our functions, only OpenFaaS services.
    local fn
    for fn in "${FUNCTIONS[@]}"; do
        if [ "$(docker service inspect --format '{{ index .Spec.Labels "com.openfaas.function" }}' "$fn" 2>/dev/null)" = "$fn" ]; then
            [ "$removed" = 1 ] || say "docker service rm $fn"
            docker service rm "$fn" >/dev/null 2>&1 || true
        fi
    done
}

stack_exists() {
    docker stack ls --format '{{.Name}}' | grep -qx "$1"
}

stack_gone() {
    local stack="$1"
    [ -z "$(docker service ls -q --filter "label=com.docker.stack.namespace=$stack")" ] \
        && [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$stack")" ] \
        && [ -z "$(docker network ls -q --filter "label=com.docker.stack.namespace=$stack")" ]
}

functions_gone() {
    local fn
    for fn in "${FUNCTIONS[@]}"; do
        docker service inspect "$fn" >/dev/null 2>&1 && return 1
        [ -n "$(docker ps -aq --filter "label=com.docker.swarm.service.name=$fn")" ] && return 1
    done
    return 0
}

remove_stacks() {
    local stack
    for stack in "${STACKS[@]}"; do
        if stack_exists "$stack"; then
            say "docker stack rm $stack"
            docker stack rm "$stack" >/dev/null
        fi
    done
    say "waiting for the functions, stacks and networks to go (up to ${WAIT_SECONDS}s)"
    retry functions_gone || warn "function services still present"
    for stack in "${STACKS[@]}"; do
        if ! retry stack_gone "$stack"; then
            warn "stack $stack still has services, containers or networks"
            LEFTOVER=1
        fi
    done
}

remove_secrets() {
    local name
    for name in "${SECRETS[@]}"; do
        [ "$(state_get "secret.$name")" = "created" ] || continue
        if docker secret inspect "$name" >/dev/null 2>&1; then
            say "docker secret rm $name"
            if ! retry docker secret rm "$name"; then
                warn "secret $name is still in use; run infra/down.sh again later"
                LEFTOVER=1
            fi
        fi
    done
}

remove_node_label() {
    local node
    node="$(state_get node_labelled)"
    [ -n "$node" ] || return 0
    if docker node inspect "$node" >/dev/null 2>&1; then
        say "removing node label $NODE_LABEL"
        docker node update --label-rm "$NODE_LABEL" "$node" >/dev/null 2>&1 \
            || warn "could not remove label $NODE_LABEL from node $node"
    fi
}

remove_volumes_here() {
    local volume
    for volume in "${VOLUMES[@]}"; do
        if docker volume inspect "$volume" >/dev/null 2>&1; then
            say "docker volume rm $volume"
            if ! retry docker volume rm "$volume"; then
                warn "volume $volume is still in use"
                return 1
            fi
        fi
    done
}

# The nodes a global job runs a task on: ready and active (not down, not drained).
job_nodes() {
    docker node ls --format '{{.Hostname}} {{.Status}} {{.Availability}}' \
        | awk '$2 == "Ready" && $3 == "Active" { print $1 }'
}

# True once each node named in $1 has a task of the purge job that ended.
purge_job_ended() {
    local tasks node
    tasks="$(docker service ps "$PURGE_JOB" --format '{{.Node}}|{{.CurrentState}}' 2>/dev/null)" || return 1
    for node in $1; do
        printf '%s\n' "$tasks" | grep -qE "^$node\|(Complete|Failed|Rejected|Shutdown|Orphaned)" || return 1
    done
}

# The job: one task on every node that takes tasks (global-job: Docker Engine 20.10+).
# Adds the nodes whose volumes are not known to be gone to MISSED.
remove_volumes_on_every_node() {
    local nodes node tasks line state
    nodes="$(docker node ls --format '{{.Hostname}}')"
    docker service rm "$PURGE_JOB" >/dev/null 2>&1 || true   # left by an interrupted run
    say "removing the volumes on every node: one-shot service $PURGE_JOB ($PURGE_IMAGE)"
    if ! docker service create --detach --name "$PURGE_JOB" --mode global-job \
            --restart-condition none --label anomalias.managed=true \
            --env 'NODE={{.Node.Hostname}}' --env "WAIT=$WAIT_SECONDS" \
            --mount type=bind,source=/var/run/docker.sock,target=/var/run/docker.sock \
            "$PURGE_IMAGE" sh -c "$PURGE_SCRIPT" purge "${VOLUMES[@]}" >/dev/null; then
        warn "could not create the service $PURGE_JOB (Docker Engine 20.10 or newer runs jobs)"
        MISSED="$nodes"
        return
    fi
    retry purge_job_ended "$(job_nodes)" || warn "the purge job did not end in ${WAIT_SECONDS}s"
    docker service logs --raw "$PURGE_JOB" 2>/dev/null | sort | while IFS= read -r line; do
        say "$line"
    done
    tasks="$(docker service ps "$PURGE_JOB" --format '{{.Node}}|{{.CurrentState}}|{{.Error}}' 2>/dev/null || true)"
    for node in $nodes; do
        line="$(printf '%s\n' "$tasks" | grep -m1 "^$node|" || true)"
        state="$(printf '%s' "$line" | cut -d'|' -f2 | cut -d' ' -f1)"
        if [ "$state" = Complete ]; then
            say "node $node: no volume of the stack left"
        else
            warn "node $node: ${state:-no task ran there (down, drained or unreachable)} $(printf '%s' "$line" | cut -d'|' -f3-)"
            MISSED="${MISSED:+$MISSED$'\n'}$node"
        fi
    done
    docker service rm "$PURGE_JOB" >/dev/null 2>&1 || true
}

purge() {
    MISSED=""
    if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" = active ] \
        && [ "$(docker info --format '{{.Swarm.Nodes}}')" -gt 1 ]; then
        remove_volumes_on_every_node
    else
        remove_volumes_here || MISSED="this engine"
    fi
    if [ -n "$MISSED" ]; then
        warn "the volumes are not gone everywhere. On each node named here run:"
        local node
        while IFS= read -r node; do
            printf '  on %s: docker volume rm %s\n' "$node" "${VOLUMES[*]}" >&2
        done <<< "$MISSED"
        warn "${SECRETS_DIR#"$ROOT"/} kept: Grafana's volume holds its admin password (run make down ARGS=--purge again when done)"
        PURGE_FAILED=1
        return
    fi
    say "removing ${SECRETS_DIR#"$ROOT"/}"
    rm -rf "$SECRETS_DIR"
}

restore_heartbeat() {
    local was
    was="$(state_get dispatcher_heartbeat_was)"
    [ -n "$was" ] || return 0
    say "docker swarm update --dispatcher-heartbeat $was (as deploy found it)"
    docker swarm update --dispatcher-heartbeat "$was" >/dev/null \
        || warn "could not set the dispatcher heartbeat back to $was"
}

main() {
    command -v docker >/dev/null 2>&1 || die "docker is not installed"
    docker info >/dev/null 2>&1 || die "cannot reach the Docker engine"

    local node_state
    node_state="$(docker info --format '{{.Swarm.LocalNodeState}}')"
    if [ "$node_state" != "active" ]; then
        say "this engine is in no swarm: nothing deployed to remove"
    else
        remove_functions
        remove_stacks
        remove_secrets
        if [ "$(state_get swarm_initialised)" != "1" ]; then
            remove_node_label
            restore_heartbeat
        fi
    fi

    if [ "$PURGE" = 1 ]; then
        purge
    fi

    if [ "$node_state" = "active" ] && [ "$(state_get swarm_initialised)" = "1" ]; then
        say "docker swarm leave --force (deploy created this swarm)"
        docker swarm leave --force >/dev/null
    elif [ "$LEFTOVER" = 1 ]; then
        say "some resources are still being removed: ${STATE_FILE#"$ROOT"/} kept for the next run"
        return "$PURGE_FAILED"
    fi
    rm -f "$STATE_FILE"
    if [ "$PURGE_FAILED" = 1 ]; then
        return 1
    fi
    say "done"
}

main
