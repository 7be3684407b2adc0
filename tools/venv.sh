#!/usr/bin/env bash
# Make (once) the virtual environment for one Blender version and print its python.
#   tools/venv.sh 4.2|5.0|5.3 [dev]
# Each holds Blender as a Python module (PyPI's bpy) and pytest; "dev" adds the lint/type/SDK tools.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:?usage: tools/venv.sh 4.2|5.0|5.3 [dev]}
case "$version" in
  # 4.2 gets the HTTP stack Blender 4.2 itself bundles (its build's versions.cmake): the oldest urllib3 we
  # must bound bodies under (1.26 inflates gzip before a caller can count bytes).
  4.2) bpy="bpy==4.2.23"; python=python3.11; bundled=("requests==2.27.1" "urllib3==1.26.8" "idna==3.3"
                                                     "charset-normalizer==2.0.10") ;;
  5.0) bpy="bpy==5.0.1";  python=python3.11 ;;
  5.3) bpy="bpy==5.3.0";  python=python3.13 ;;
  *) echo "unknown Blender version $version (known: 4.2 5.0 5.3)" >&2; exit 2 ;;
esac
# pyenv installs every Python here but its shims answer only for the selected one: find the binary itself.
if ! "$python" -c pass 2>/dev/null; then
  found=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"${python#python}"*/bin/"$python" 2>/dev/null | tail -n 1 || true)
  [ -n "$found" ] || { echo "$python is needed for Blender $version and was not found" >&2; exit 1; }
  python=$found
fi
# Pinned, so a run next year checks what it checks today (CONTRIBUTING.md: how to move a pin).
packages=("$bpy" "pytest==9.2.0" "pytest-randomly==5.1.0" "pytest-timeout==2.4.0" ${bundled[@]+"${bundled[@]}"})
if [ "${2:-}" = dev ]; then
  packages+=("runware-sdk==1.8.0" "mypy==2.4.1" "ruff==0.17.6" "fake-bpy-module-${version}==20260730")
fi
venv=.venv/blender-$version
want="${packages[*]}"
# One stamp per package set, so "dev" and plain runs don't undo each other.
stamp="$venv/.installed-$(echo "$want" | cksum | cut -d' ' -f1)"
if [ ! -f "$stamp" ]; then
  echo "Setting up $venv ($want)…" >&2
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${packages[@]}" >"$venv/pip.log" 2>&1
  then
    grep -v "^WARNING: Location" "$venv/pip.log" >&2; exit 1
  fi
  "$venv/bin/python" -c "import bpy, pytest" >/dev/null  # fail here, not in the middle of a test run
  touch "$stamp"
fi
echo "$venv/bin/python"
