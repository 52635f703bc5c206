#!/usr/bin/env bash
# Installs every Debian package the build, the sandboxes and the tests need (.ci/packages),
# as root on Debian 12. Node.js and npm come from Debian unless a node with npm is already
# installed (e.g. a newer one from another repository, whose nodejs package conflicts with
# Debian's npm).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
pkgs=$(grep -v '^#' .ci/packages)
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
	pkgs=$(printf '%s\n' "$pkgs" | grep -vxE 'nodejs|npm')
fi
apt-get update -q
apt-get install -y -q --no-install-recommends $pkgs
