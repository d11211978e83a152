#!/usr/bin/env bash
# Build the local Debian base image sluice/base:bookworm, if it is not there yet.
#
# There is no container registry on the build machines, so `FROM python:3.11-slim`
# cannot be pulled. Instead: mmdebstrap a minimal bookworm root (essential packages
# + python3-minimal + python3-msgpack) from the Debian package mirror, then import
# the tarball as an image. About 25 s and 180 MB. Needs root (mmdebstrap) and a
# running engine (scripts/docker-engine.sh).
#
# Usage: images/base/bootstrap.sh [IMAGE]   (default sluice/base:bookworm)
# Env:   MIRROR=URL  use this Debian mirror instead of mmdebstrap's default.
set -euo pipefail

IMAGE="${1:-sluice/base:bookworm}"
SUITE=bookworm

say() { echo "bootstrap: $*" >&2; }

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  say "$IMAGE already present"
  exit 0
fi

if ! command -v mmdebstrap >/dev/null 2>&1; then
  say "installing mmdebstrap"
  DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mmdebstrap >&2
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

mirror=()
if [ -n "${MIRROR:-}" ]; then mirror=("$MIRROR"); fi

say "mmdebstrap $SUITE -> $IMAGE"
# --variant=essential: only Essential:yes packages (no apt, no init); the image is a
# runtime for the guest shim, nothing else. --include: the shim's only needs.
mmdebstrap --quiet --variant=essential --include=python3-minimal,python3-msgpack \
  "$SUITE" "$work/rootfs.tar" "${mirror[@]}" >&2

docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  "$work/rootfs.tar" "$IMAGE" >&2
say "built $IMAGE ($(docker image inspect --format '{{.Size}}' "$IMAGE") bytes)"
