#!/usr/bin/env bash
# Install nestdb and its pinned toolchain into ./.venv on Debian 12 / Python 3.11.
# Idempotent: a second run only checks what is there.
#   bash install.sh            # system packages (needs root or sudo) + venv + GPAW
#   NESTDB_SKIP_APT=1 bash install.sh   # when the Debian packages are already installed
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3.11}
VENV=${VENV:-.venv}
GPAW_VERSION=26.7.0
GPAW_DATA_VERSION=1.2.1

if [ "${NESTDB_SKIP_APT:-0}" != 1 ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    # g++/BLAS/FFTW/libxc to build GPAW; graphviz for `snakemake --dag | dot`.
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends \
        g++ libxc-dev libopenblas-dev libfftw3-dev graphviz >/dev/null
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip==24.3.1
$PIP install -q -r requirements.txt -c requirements-lock.txt

# GPAW compiles C++ sources; without a siteconfig it calls gcc on them and fails.
if ! "$VENV/bin/python" -c "import gpaw, gpaw_data" 2>/dev/null; then
    siteconfig=$(mktemp --suffix=.py)
    printf "mpi = False\ncompiler = 'g++'\nfftw = True\nlibraries += ['fftw3', 'blas']\n" > "$siteconfig"
    GPAW_CONFIG="$siteconfig" $PIP install -q --no-cache-dir \
        "gpaw==$GPAW_VERSION" "gpaw-data==$GPAW_DATA_VERSION" -c requirements-lock.txt
    rm -f "$siteconfig"
fi
# The package (editable) and its console scripts: nestdb, nestdb-analyse.
$PIP install -q --no-deps -e .
"$VENV/bin/nestdb" --help >/dev/null
"$VENV/bin/ruff" --version >/dev/null && "$VENV/bin/snakefmt" --version >/dev/null  # style tools (pyproject.toml)
"$VENV/bin/python" -c "import nestdb, gpaw, pyace, snakemake; print('nestdb installed in $VENV')"
