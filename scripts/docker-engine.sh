#!/usr/bin/env bash
# Make a Docker engine answer on this machine, idempotently.
#
# Usage: scripts/docker-engine.sh [--gvisor]
#
# * If `docker info` already answers (and, with --gvisor, the runsc runtime is
#   registered), do nothing.
# * Otherwise install docker.io from Debian when dockerd is missing, start
#   `dockerd --bridge=none --iptables=false --ip6tables=false` in the background
#   (no systemd needed; log in /var/log/sluice-dockerd.log) and wait up to 60 s.
# * --gvisor also installs runsc and registers it in /etc/docker/daemon.json with
#   --platform=ptrace --network=none --host-uds=all --oci-seccomp, then reloads dockerd
#   (SIGHUP). An existing runsc entry missing one of these flags is updated the same way.
#
# No bridge and no NAT: every sandbox runs with --network none (see
# docs/sandboxes-docker.md). Must run as root. Exits non-zero with the log tail
# if the engine does not come up.
set -euo pipefail

LOG=/var/log/sluice-dockerd.log
DAEMON_JSON=/etc/docker/daemon.json
WAIT_S=60
GVISOR=0

for arg in "$@"; do
  case "$arg" in
    --gvisor) GVISOR=1 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "docker-engine.sh: unknown argument $arg (expected --gvisor)" >&2; exit 2 ;;
  esac
done

say() { echo "docker-engine: $*" >&2; }

engine_up() { docker info >/dev/null 2>&1; }
# Registered, and with every flag we need (an older entry may lack --oci-seccomp).
runsc_registered() {
  docker info --format '{{json .Runtimes}}' 2>/dev/null | python3 -c '
import json, sys
runsc = json.load(sys.stdin).get("runsc") or {}
sys.exit(0 if "--oci-seccomp" in (runsc.get("runtimeArgs") or []) else 1)'
}

if engine_up && { [ "$GVISOR" = 0 ] || runsc_registered; }; then
  say "engine already answering"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  say "must run as root to install or start dockerd"
  exit 1
fi

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2
}

if ! command -v dockerd >/dev/null 2>&1; then
  say "installing docker.io"
  # docker.io pulls containerd + runc; the client may already be another build,
  # which is fine: the engine API is versioned.
  apt_install docker.io
fi

if [ "$GVISOR" = 1 ] && ! command -v runsc >/dev/null 2>&1; then
  say "installing runsc (gVisor)"
  apt_install runsc
fi

# daemon.json: keep whatever is there, add the runsc runtime when asked.
# Written with python3 (always present on Debian) so existing keys survive.
mkdir -p /etc/docker
python3 - "$DAEMON_JSON" "$GVISOR" <<'PY'
import json, os, sys
path, gvisor = sys.argv[1], sys.argv[2] == "1"
try:
    with open(path) as f:
        config = json.load(f)
except FileNotFoundError:
    config = {}
before = json.dumps(config, sort_keys=True)
if gvisor:
    runsc = "/usr/bin/runsc"
    for candidate in ("/usr/bin/runsc", "/usr/local/bin/runsc", "/usr/sbin/runsc"):
        if os.path.exists(candidate):
            runsc = candidate
            break
    config.setdefault("runtimes", {})["runsc"] = {
        "path": runsc,
        # --network=none: without it runsc refuses to start in the root netns.
        # --host-uds=all: lets the host connect to sockets the sandbox creates.
        # --oci-seccomp: apply the container's seccomp profile (Docker's default) inside
        # the sandbox too; without it a guest can unshare(CLONE_NEWUSER) and more.
        "runtimeArgs": ["--platform=ptrace", "--network=none", "--host-uds=all", "--oci-seccomp"],
    }
if json.dumps(config, sort_keys=True) != before or not os.path.exists(path):
    with open(path, "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    print("docker-engine: wrote " + path, file=sys.stderr)
PY

if engine_up; then
  # Running, but runsc was missing from its runtimes or lacked a flag: reload the config.
  say "reloading dockerd to pick up $DAEMON_JSON"
  if [ -f /var/run/docker.pid ]; then
    kill -HUP "$(cat /var/run/docker.pid)"
  else
    say "dockerd is running but /var/run/docker.pid is missing: send it SIGHUP by hand"
    exit 1
  fi
else
  # A stale pid file from a dead daemon blocks a new start.
  if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    rm -f /var/run/docker.pid
  fi
  say "starting dockerd (log: $LOG)"
  setsid nohup dockerd --bridge=none --iptables=false --ip6tables=false >>"$LOG" 2>&1 </dev/null &
fi

for _ in $(seq 1 "$WAIT_S"); do
  if engine_up && { [ "$GVISOR" = 0 ] || runsc_registered; }; then
    say "engine up ($(docker info --format '{{.ServerVersion}} {{.Driver}} runtimes: {{range $k, $v := .Runtimes}}{{$k}} {{end}}'))"
    exit 0
  fi
  sleep 1
done

say "dockerd did not answer within ${WAIT_S} s; last lines of $LOG:"
tail -n 30 "$LOG" >&2 || true
exit 1
