#!/usr/bin/env bash
# apt-install.sh WHY PACKAGE...: install Debian's PACKAGEs (as root, or through sudo), saying
# why on stderr. The ensure-*.sh scripts call it for what they find missing.
set -euo pipefail
why=$1
shift
echo "installing Debian's $* $why" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
