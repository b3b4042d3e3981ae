#!/usr/bin/env bash
# Two mockserver instances that share one state in PostgreSQL, as two replicas behind a load balancer
# would. Usage:
#
#   ./run.sh postgresql://USER[:PASSWORD]@HOST:PORT/DATABASE [PORT_A] [PORT_B]
#
# The database must exist; the first instance to reach an empty one creates the tables and fills them
# from the fixtures. The URL goes to the instances through MOCKSERVER_STATE, not the command line, so a
# password in it does not show in `ps`. Ctrl-C (or SIGTERM) stops both; if one ends, the other is stopped.
# MOCKSERVER names the command to run (default: mockserver on the PATH); any other option of
# `mockserver serve` can be set for both as MOCKSERVER_<OPTION>.
set -euo pipefail

url=${1:?usage: $0 postgresql://USER[:PASSWORD]@HOST:PORT/DATABASE [PORT_A] [PORT_B]}
port_a=${2:-8081}
port_b=${3:-8082}
read -r -a mockserver <<<"${MOCKSERVER:-mockserver}"

pids=()
stop() {
    trap - EXIT INT TERM
    if ((${#pids[@]})); then
        kill -TERM "${pids[@]}" 2>/dev/null || true
        wait "${pids[@]}" 2>/dev/null || true
    fi
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

export MOCKSERVER_STATE=$url
for instance in a b; do
    port=$port_a
    [[ $instance == b ]] && port=$port_b
    "${mockserver[@]}" serve --port "$port" --instance "$instance" --no-watch &
    pids+=($!)
done
echo "instance a: http://127.0.0.1:$port_a  instance b: http://127.0.0.1:$port_b  (one state; Ctrl-C stops both)"
wait -n "${pids[@]}"
