#!/usr/bin/env bash
# Remove what infra/deploy.sh created (`make down`), leaving the host as deploy found it:
#   1. `faas-cli remove` of the three functions (or `docker service rm` when the gateway is
#      already gone);
#   2. `docker stack rm alerts`, `mqtt`, `data` and `func`, waiting until their services,
#      containers and networks are gone;
#   3. removes the Docker secrets deploy created (infra/.swarm-state says which) and the node
#      label it added;
#   4. `docker swarm leave --force` only if deploy ran `docker swarm init`.
#
# Kept unless --purge: the named volumes (data_redis-data: the readings; data_grafana-data;
# mqtt_mosquitto-data; alerts_alertmanager-data: silences)
# and infra/.secrets/ (the next deploy reuses the values: Grafana keeps the admin password
# it was first started with in its volume).
#
#   infra/down.sh [--purge]
set -euo pipefail

# shellcheck source=infra/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
WAIT_SECONDS="${DOWN_WAIT_SECONDS:-180}"
STACKS=(alerts mqtt data func)
VOLUMES=(data_redis-data data_grafana-data mqtt_mosquitto-data alerts_alertmanager-data)
PURGE=0
LEFTOVER=0


for arg in "$@"; do
    case "$arg" in
        --purge) PURGE=1 ;;
        -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
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

purge() {
    local volume
    for volume in "${VOLUMES[@]}"; do
        if docker volume inspect "$volume" >/dev/null 2>&1; then
            say "docker volume rm $volume"
            retry docker volume rm "$volume" || warn "volume $volume is still in use"
        fi
    done
    say "removing ${SECRETS_DIR#"$ROOT"/}"
    rm -rf "$SECRETS_DIR"
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
        return 0
    fi
    rm -f "$STATE_FILE"
    say "done"
}

main
