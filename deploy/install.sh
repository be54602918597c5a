#!/usr/bin/env bash
# Install creditnode as a systemd service, from this checkout (run as root):
#
#   sudo deploy/install.sh
#
# - user and group `creditnode` (system account, no login shell);
# - /opt/creditnode/.venv from requirements-runtime.lock (no development tools), then the
#   package itself without dependencies;
# - /var/lib/creditnode, the node home (the unit's StateDirectory; made now so that `init`
#   can run before the first start);
# - /etc/systemd/system/creditnode.service and /etc/logrotate.d/creditnode.
#
# It never creates or changes a node home and never starts the service: the next steps are
# printed at the end. Run it again to upgrade; the home is left alone.
# PREFIX, STATE_DIR, UNIT_DIR, LOGROTATE_DIR and PYTHON may be set to install elsewhere.
set -euo pipefail

PREFIX=${PREFIX:-/opt/creditnode}
STATE_DIR=${STATE_DIR:-/var/lib/creditnode}
UNIT_DIR=${UNIT_DIR:-/etc/systemd/system}
LOGROTATE_DIR=${LOGROTATE_DIR:-/etc/logrotate.d}
PYTHON=${PYTHON:-python3}
SERVICE_USER=creditnode
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() { echo "error: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root: sudo $0"
command -v "$PYTHON" >/dev/null || die "$PYTHON not found (Python 3.11 or later is needed)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "$PYTHON is older than 3.11"
# The runtime lock must be the one generated from requirements.lock as checked in.
"$PYTHON" "$SRC/deploy/runtime-lock.py" --check \
  || die "requirements-runtime.lock is stale: run python3 deploy/runtime-lock.py first"

if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
  useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
    --shell /usr/sbin/nologin --comment "creditnode node" "$SERVICE_USER"
  echo "created user $SERVICE_USER"
fi

install -d -m 0755 "$PREFIX"
[ -x "$PREFIX/.venv/bin/python" ] || "$PYTHON" -m venv "$PREFIX/.venv"
pip=("$PREFIX/.venv/bin/python" -m pip --quiet --disable-pip-version-check)
"${pip[@]}" install --require-virtualenv -r "$SRC/requirements-runtime.lock"
"${pip[@]}" install --require-virtualenv --no-deps "$SRC"
"$PREFIX/.venv/bin/creditnode" --help >/dev/null || die "the installed creditnode does not run"
echo "installed creditnode into $PREFIX/.venv"

install -d -o "$SERVICE_USER" -g "$SERVICE_USER" -m 0700 "$STATE_DIR"
# The unit names /opt/creditnode and /var/lib/creditnode: written with the paths chosen here.
install -d -m 0755 "$UNIT_DIR"
sed -e "s#/opt/creditnode#$PREFIX#g" -e "s#/var/lib/creditnode#$STATE_DIR#g" \
  "$SRC/deploy/creditnode.service" > "$UNIT_DIR/creditnode.service"
chmod 0644 "$UNIT_DIR/creditnode.service"
if [ -d "$LOGROTATE_DIR" ]; then
  install -m 0644 "$SRC/deploy/creditnode.logrotate" "$LOGROTATE_DIR/creditnode"
fi
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
fi

cat <<NEXT
Installed. Next, as the service user:

  sudo -u $SERVICE_USER $PREFIX/.venv/bin/creditnode init --home $STATE_DIR --name NAME \\
      --region CODE --ca /path/to/federation-ca --listen 0.0.0.0:7443 --advertise HOST:7443
  sudo systemctl enable --now creditnode
  systemctl status creditnode           # "serving on HOST:PORT" once ready
  sudo systemctl reload creditnode      # after editing agreements or rotating keys
  journalctl -u creditnode -f
NEXT
