# Shared by infra/deploy.sh and infra/down.sh (sourced, not run): names, paths, messages.
# shellcheck shell=bash disable=SC2034  # the variables are used by the sourcing scripts

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INFRA="$ROOT/infra"
SECRETS_DIR="${ANOMALIAS_SECRETS_DIR:-$INFRA/.secrets}"     # overridable for tests
STATE_FILE="${ANOMALIAS_STATE_FILE:-$INFRA/.swarm-state}"
GATEWAY_URL="${OPENFAAS_URL:-http://127.0.0.1:${GATEWAY_PORT:-8080}}"
NODE_LABEL="anomalias.data"
SECRETS=(basic-auth-user basic-auth-password redis-password api-token grafana-admin-password)

say()  { printf '==> %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die()  { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# The functions faas-cli deploys are the keys of stack.yml's `functions:` block (its names
# indented by two spaces), read from there so that a function added there is also waited
# for and removed. Block-style YAML only, as stack.yml is written.
stack_functions() {
    sed -n '/^functions:/,/^[^[:space:]#]/ s/^  \([A-Za-z0-9][A-Za-z0-9_-]*\):.*/\1/p' "$1"
}
mapfile -t FUNCTIONS < <(stack_functions "$ROOT/stack.yml")
[ "${#FUNCTIONS[@]}" -gt 0 ] || die "$ROOT/stack.yml declares no functions"

# The state file holds key=value lines (what deploy created); read without sourcing it.
state_get() {
    [ -f "$STATE_FILE" ] || return 0
    sed -n "s/^$1=//p" "$STATE_FILE" | tail -n 1
}
