#!/usr/bin/env bash
# Make sure Debian's chromium, and a font with Chinese glyphs, are installed for the console's
# browser tests (tests/browser/): Playwright drives /usr/bin/chromium, never a browser it
# downloads itself; the console is zh-CN first, and its screenshots need the glyphs.
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
if ! fc-list :lang=zh 2>/dev/null | grep -q .; then
  missing+=(fonts-wqy-microhei)
fi
[ "${#missing[@]}" -eq 0 ] && exit 0
"$(dirname "$0")/apt-install.sh" "for the browser tests" "${missing[@]}"
[ -x /usr/bin/chromium ] || { echo "/usr/bin/chromium still missing after install" >&2; exit 1; }
