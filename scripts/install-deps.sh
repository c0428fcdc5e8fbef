#!/usr/bin/env bash
# install-deps.sh - install the Debian packages mtpbench builds and tests with,
# plus any package names given as arguments (scripts/install-fuzz-deps.sh).
# Idempotent; needs root (or sudo). Skips apt when every package is present.
set -euo pipefail

# msgpack-c is libmsgpack-dev up to Debian 12 and libmsgpack-c-dev from Debian 13.
msgpack_pkg=libmsgpack-dev
if apt-cache show libmsgpack-c-dev >/dev/null 2>&1; then
  msgpack_pkg=libmsgpack-c-dev
fi
# python3-matplotlib and python3-msgpack: the plots (analysis/plots.py) of the main command, and
# the test that the quick study writes them. Open MPI: `mpirun -n N mtpbench run` and
# tests/test_mpi.c (the build works without it). python3-jsonschema: tests/test_spec_schema.sh
# validates the shipped specs against spec/experiment-spec.schema.json. python3-jinja2: chat
# templates ("chat_template", experiments/render_chat_template.py) and tests/test_chat_template.c.
packages=(build-essential cmake pkg-config libjansson-dev "$msgpack_pkg" libcmocka-dev libpcre2-dev
          python3 python3-matplotlib python3-msgpack python3-jsonschema python3-jinja2
          libopenmpi-dev openmpi-bin
          "$@")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
# Re-check the msgpack choice now that the package lists are fresh.
if ! dpkg-query -W "$msgpack_pkg" >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libmsgpack-c-dev >/dev/null ||
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libmsgpack-dev >/dev/null
fi
