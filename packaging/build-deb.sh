#!/usr/bin/env bash
# Builds the oomguard .deb into OUTDIR (default packaging/dist) with nfpm,
# run as a Go tool from this directory's own module (packaging/go.mod), so
# the root go.mod stays small. Prints the path of the .deb.
#   packaging/build-deb.sh [OUTDIR]
# VERSION and ARCH may be set; they default to 0.1.0+git<commit> and the
# Go architecture.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
out="${1:-$here/dist}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
export PATH="$PATH:/usr/local/go/bin"

if [ -z "${VERSION:-}" ]; then
	commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
	VERSION="0.1.0+git${commit}"
fi
export VERSION
export ARCH="${ARCH:-$(go env GOARCH)}"
STAGE="$(mktemp -d)"
export STAGE
trap 'rm -rf "$STAGE"' EXIT

(cd "$root" && CGO_ENABLED=0 GOOS=linux GOARCH="$ARCH" go build -trimpath \
	-ldflags "-X github.com/oomguard/oomguard/internal/cli.Version=$VERSION" \
	-o "$STAGE/oomguard" ./cmd/oomguard)
gzip -9n -c "$root/man/man8/oomguard.8" >"$STAGE/oomguard.8.gz"
gzip -9n -c "$root/man/man5/oomguard.toml.5" >"$STAGE/oomguard.toml.5.gz"

cd "$here"
# nfpm does not expand the environment in contents: substitute here.
sed -e "s|\${STAGE}|$STAGE|g" -e "s|\${VERSION}|$VERSION|g" -e "s|\${ARCH}|$ARCH|g" nfpm.yaml >"$STAGE/nfpm.yaml"
go tool nfpm pkg --packager deb --config "$STAGE/nfpm.yaml" --target "$out" >&2
ls "$out"/oomguard_*"${VERSION}"*_"$ARCH".deb 2>/dev/null | head -1 || ls -t "$out"/*.deb | head -1
