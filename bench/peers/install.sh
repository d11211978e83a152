#!/usr/bin/env bash
# Install the peer engines for `make bench-peers`, away from the project's .venv:
#   .cache/peers/venv  Python packages pinned in bench/peers/requirements.txt
#   .cache/peers/npm   @restatedev/restate-server (the npm package ships the binary)
#   redis-server       Debian's package (apt-get)
# Idempotent: a part already installed at the pinned version is left alone. A part that
# cannot be installed is reported and skipped; the benchmark then records why.
set -u
cd "$(dirname "$0")/../.."
DIR="${BENCH_PEERS_DIR:-.cache/peers}"
PY="${PY:-python3}"
RESTATE_VERSION=1.7.12
mkdir -p "$DIR"

stamp="$DIR/venv/.installed-$(cat bench/peers/requirements.txt bench/peers/constraints.txt | cksum | cut -d' ' -f1)"
if [ ! -e "$stamp" ]; then
  echo "bench-peers: installing the peers' Python packages into $DIR/venv"
  if "$PY" -m venv "$DIR/venv" && "$DIR/venv/bin/pip" install -q --upgrade pip \
     && "$DIR/venv/bin/pip" install -q -r bench/peers/requirements.txt -c bench/peers/constraints.txt; then
    rm -f "$DIR"/venv/.installed-* && touch "$stamp"
  else
    echo "bench-peers: could not install the peers' Python packages (see above)" >&2
  fi
fi

server="$DIR/npm/node_modules/@restatedev/restate-server-linux-x64/bin/restate-server"
if [ ! -x "$server" ] || ! "$server" --version 2>/dev/null | grep -q "$RESTATE_VERSION"; then
  if command -v npm >/dev/null; then
    echo "bench-peers: installing @restatedev/restate-server@$RESTATE_VERSION into $DIR/npm"
    # --ignore-scripts: the package's only install script is a telemetry ping.
    npm install --silent --no-audit --no-fund --ignore-scripts --prefix "$DIR/npm" \
      "@restatedev/restate-server@$RESTATE_VERSION" || echo "bench-peers: npm install failed" >&2
  else
    echo "bench-peers: npm is not installed: Restate will be reported n/a" >&2
  fi
fi

if ! command -v redis-server >/dev/null; then
  echo "bench-peers: installing redis-server (Debian)"
  { apt-get update -q && apt-get install -y -q redis-server; } >/dev/null || echo "bench-peers: apt-get redis-server failed" >&2
fi
exit 0
