#!/bin/sh
# Regenerate the build system. Uses the system libltdl (no private copy in the tree).
set -e
cd "$(dirname "$0")"
autoreconf --force --install --warnings=all,no-portability
