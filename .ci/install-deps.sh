#!/usr/bin/env bash
# Installs every Debian package the build, the sandboxes and the tests need (.ci/packages),
# as root on Debian 12. Node.js and npm come from Debian unless a node with npm is already
# installed (e.g. a newer one from another repository, whose nodejs package conflicts with
# Debian's npm).
#   .ci/install-deps.sh          everything (build, run, every test tier)
#   .ci/install-deps.sh --run    only what building and running sbxd needs (no MariaDB,
#                                Docker, clang or test tools)
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
if [ "${1:-}" = --run ]; then
	pkgs=$(sed '/^# --- tests only/q' .ci/packages | grep -v '^#')
else
	pkgs=$(grep -v '^#' .ci/packages)
fi
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
	pkgs=$(printf '%s\n' "$pkgs" | grep -vxE 'nodejs|npm')
fi
apt-get update -q
apt-get install -y -q --no-install-recommends $pkgs
