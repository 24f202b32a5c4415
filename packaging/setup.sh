#!/usr/bin/env bash
# Fetches the packaging tools module (nfpm) so that build-deb.sh and the
# packaging test work offline. Called by scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")"
command -v go >/dev/null 2>&1 || export PATH="$PATH:/usr/local/go/bin"
go mod download
