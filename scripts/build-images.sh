#!/usr/bin/env bash
# Build the Python guest image sluice/python-guest:<version> from this checkout.
#
# Usage: scripts/build-images.sh [--base IMAGE]
#
# BASE defaults to the local Debian base sluice/base:bookworm (made by
# images/base/bootstrap.sh if missing), because the build machines have no
# container registry; nothing remote is tried. With a registry, pass
# --base python:3.11-slim. The build runs with --network none.
#
# The image carries the label sluice.guest-hash (sha256 of the Dockerfile and the SDK .py files), the
# same hash sandboxes/docker.py checks, so it rebuilds a stale guest image itself.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
base=sluice/base:bookworm
while [ $# -gt 0 ]; do
  case "$1" in
    --base) base="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "build-images.sh: unknown argument $1 (expected --base IMAGE)" >&2; exit 2 ;;
  esac
done

say() { echo "build-images: $*" >&2; }

docker info >/dev/null 2>&1 || { say "no Docker engine answers: run scripts/docker-engine.sh"; exit 1; }
if [ "$base" = sluice/base:bookworm ]; then
  "$root/images/base/bootstrap.sh" "$base"
fi

# The version and SDK hash come from the same code the sandbox uses.
read -r version sdk_hash < <(cd "$root" && python3 -c '
from sandboxes._docker_images import sdk_hash, sdk_version
print(sdk_version(), sdk_hash())')
tag="sluice/python-guest:${version}"

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
cp "$root/images/python/Dockerfile" "$ctx/Dockerfile"
mkdir -p "$ctx/sluice"
(cd "$root/sluice" && find . -name '*.py' -print0 | xargs -0 -I{} cp --parents {} "$ctx/sluice/")

say "building $tag from $base (sdk $sdk_hash)"
DOCKER_BUILDKIT=0 docker build --quiet --network none \
  --build-arg "BASE=$base" \
  --label "sluice=1" --label "sluice.guest-hash=$sdk_hash" \
  -t "$tag" "$ctx" >&2
say "built $tag"
echo "$tag"
