#!/usr/bin/env bash
# Build the bootstrap/relay image `lilypad-p2p/relay` from the local package, offline:
# on top of `lilypad-p2p/python` (Debian's python3.11 and the libraries it loads, built from
# this host's files by `lilypad-p2p modules build`), add the venv's pinned dependencies (built
# for this host's glibc, which that image carries) and the lilypad_p2p package.
#   bash bootstrap/build-image.sh
#   docker run -d -p 4001:4001 -v lilypad-relay:/data lilypad-p2p/relay
set -euo pipefail
cd "$(dirname "$0")/.."
docker image inspect lilypad-p2p/python >/dev/null 2>&1 || .venv/bin/lilypad-p2p modules build
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp -a .venv/lib/python3.11/site-packages "$context/site-packages"
# The venv installs lilypad_p2p in editable mode (a path hook into this checkout): copy it instead.
rm -rf "$context"/site-packages/__editable__* "$context"/site-packages/lilypad_p2p*
cp -a lilypad_p2p "$context/site-packages/lilypad_p2p"
find "$context" -name __pycache__ -prune -exec rm -rf {} +
# Shared libraries the compiled extensions load (libgcc_s, libstdc++, ...), from this host.
mkdir -p "$context/hostlibs"
# (ldd fails on the odd non-ELF match; what it resolved is still printed)
{ find "$context/site-packages" -name '*.so*' -type f -exec ldd {} + 2>/dev/null || true; } \
  | awk '$3 ~ /^\/(usr\/)?lib/ {print $3}' | sort -u | xargs -r cp -L --parents -t "$context/hostlibs"
cat > "$context/Dockerfile" <<'DOCKERFILE'
FROM lilypad-p2p/python
# The module image runs jobs as nobody; the relay owns its home volume.
USER 0
COPY hostlibs/ /
COPY site-packages /opt/lilypad/site-packages
ENV PATH=/usr/bin:/bin PYTHONPATH=/opt/lilypad/site-packages LILYPAD_HOME=/data
VOLUME /data
EXPOSE 4001
ENTRYPOINT ["/usr/bin/python3.11", "-m", "lilypad_p2p.cli", "node", "--relay", "--listen", "/ip4/0.0.0.0/tcp/4001"]
DOCKERFILE
previous=$(docker image inspect -f '{{.Id}}' lilypad-p2p/relay 2>/dev/null || true)
docker build -q -t lilypad-p2p/relay "$context"
# A rebuild leaves the image it replaces untagged (390 MB); remove it, unless a container or an
# image built on it (a simnet image, which takes it along when it goes) still uses it.
if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect -f '{{.Id}}' lilypad-p2p/relay)" ]; then
  docker image rm "$previous" >/dev/null 2>&1 || true
fi
