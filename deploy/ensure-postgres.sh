#!/usr/bin/env bash
# Make sure a PostgreSQL server (initdb, pg_ctl) is installed; install Debian's package if not.
set -euo pipefail
if command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  exit 0
fi
"$(dirname "$0")/apt-install.sh" "(no PostgreSQL server found)" postgresql
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || { echo "initdb still missing after install" >&2; exit 1; }
