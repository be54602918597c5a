#!/usr/bin/env bash
# Make sure cargo and Debian's packaged PyO3 and sha2 crates are installed for
# bench/native_rust.py, which builds bench/rust_core offline from them (there is no crates.io
# here). Only the benchmark needs them: the node's compiled cores are mypyc's.
set -euo pipefail
missing=()
command -v cargo >/dev/null || missing+=(cargo)
ls -d /usr/share/cargo/registry/pyo3-0.17* >/dev/null 2>&1 || missing+=(librust-pyo3-dev)
ls -d /usr/share/cargo/registry/sha2-0.10* >/dev/null 2>&1 || missing+=(librust-sha2-dev)
[ "${#missing[@]}" -eq 0 ] && exit 0
"$(dirname "$0")/apt-install.sh" "for bench/native_rust.py" "${missing[@]}"
