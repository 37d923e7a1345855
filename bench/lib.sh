# lib.sh — helpers shared by the bench/*.sh scripts (sourced, POSIX sh).
#
# x CMD...     log CMD to $OP_BENCH_CMDLOG (the report's "exact commands"),
#              then run it in the foreground
# xbg CMD...   the same, in the background: $! is CMD's own pid
# note TEXT    log TEXT verbatim (commands run in a loop, pipelines)
# free_port, wait_for SECONDS CMD..., ratio A B
# stop_pids PID...   kill each (empty arguments vanish), then reap each
# Without OP_BENCH_CMDLOG nothing is logged.

note() {
    [ -n "${OP_BENCH_CMDLOG:-}" ] || return 0
    printf '%s\n' "$*" >>"$OP_BENCH_CMDLOG"
}
# The arguments as a shell would need them: plain words as they are, the
# rest (empty, spaces, quotes, $...) in single quotes.
quote() {
    _q=
    for _a in "$@"; do
        case $_a in
        '' | *[!A-Za-z0-9_./:=,@%+-]*)
            _a="'$(printf '%s' "$_a" | sed "s/'/'\\\\''/g")'" ;;
        esac
        _q="$_q${_q:+ }$_a"
    done
    printf '%s' "$_q"
}
x() {
    note "$(quote "$@")"
    "$@"
}
xbg() {
    note "$(quote "$@") &"
    "$@" &
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() { # seconds command...
    _n=$(($1 * 10))
    shift
    while ! "$@" >/dev/null 2>&1; do
        _n=$((_n - 1))
        [ $_n -gt 0 ] || { echo "bench: timed out waiting for: $*" >&2; return 1; }
        sleep 0.1
    done
}

stop_pids() {
    for _p in "$@"; do kill "$_p" 2>/dev/null || true; done
    for _p in "$@"; do wait "$_p" 2>/dev/null || true; done
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }

# The dev broker: starts it in the background (pid in $broker_pid), waits
# for its first stdout line and puts the bootstrap address in $brokers.
# usage: start_devbroker WORKDIR ARGS...
start_devbroker() {
    _w=$1
    shift
    note "$(quote "${OP_BIN:-bin}/orderpulse-devbroker" "$@") > broker.out &"
    "${OP_BIN:-bin}/orderpulse-devbroker" "$@" >"$_w/broker.out" 2>"$_w/broker.err" &
    broker_pid=$!
    note "brokers=\$(head -1 broker.out)    # when it is there"
    _n=100
    while ! [ -s "$_w/broker.out" ]; do
        _n=$((_n - 1))
        [ $_n -gt 0 ] || { echo "bench: the dev broker did not start" >&2; cat "$_w/broker.err" >&2; return 1; }
        sleep 0.1
    done
    brokers=$(head -1 "$_w/broker.out")
}
