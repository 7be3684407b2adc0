#!/usr/bin/env bash
# Make (once) the real-window stage and print its root folder: Debian's own Blender 5.2 LTS binary, Xvfb and
# ImageMagick (and Chromium, for the contact sheet) in a Debian `sid` root folder of their own (debootstrap), never
# installed onto this machine.
#   tools/stage.sh            prints the root (set up on first use, ~2 minutes, ~1.8 GB; cached by a stamp)
# It needs Linux and root (debootstrap and chroot). Where it cannot run it prints one line saying why and
# exits 3, so `make test` can say so and go on (`.ci/run` sets SAM3D_REQUIRE_WINDOW=1 and fails instead).
# Everything comes from the package registries: Debian's mirror for the root, PyPI for the one wheel Debian
# lacks (cattrs, which Blender's own extension code imports at start).
set -euo pipefail
cd "$(dirname "$0")/.."
root=${SAM3D_STAGE:-$PWD/.venv/stage}
packages=(blender xvfb xauth imagemagick chromium python3-requests python3-numpy python3-attr python3-typing-extensions)
cattrs="cattrs==26.2.1"
want="sid ${packages[*]} $cattrs"
stamp="$root/.sam3d-stage-$(echo "$want" | cksum | cut -d' ' -f1)"

unavailable() { echo "real-window stage unavailable: $*" >&2; exit 3; }
[ "$(uname -s)" = Linux ] || unavailable "it needs Linux (this is $(uname -s))"
[ "$(id -u)" = 0 ] || unavailable "it needs root (debootstrap and chroot); run make test as root to include it"
command -v unshare >/dev/null || unavailable "unshare (util-linux) is missing"

if [ ! -f "$stamp" ]; then
  echo "Setting up the real-window stage in $root (Debian sid: ${packages[*]}; $cattrs)…" >&2
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  step() { "$@" >>"$log" 2>&1 || { tail -n 20 "$log" >&2; unavailable "'$*' failed (log above)"; }; }
  if ! command -v debootstrap >/dev/null; then
    step apt-get update
    step env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap
  fi
  rm -rf "$root"
  mkdir -p "$(dirname "$root")"
  step debootstrap --variant=minbase sid "$root"
  # A mirror snapshot may carry a Release file past its Valid-Until date: its signature is still checked.
  echo 'Acquire::Check-Valid-Until "false";' >"$root/etc/apt/apt.conf.d/99sam3d-stage"
  in_root() { unshare --mount --propagation private sh -c 'mount -t proc proc "$0/proc" && exec chroot "$@"' \
                "$root" "$root" "$@"; }
  step in_root apt-get update
  step in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}"
  step in_root apt-get clean
  # cattrs from PyPI, installed by this machine's pip (pip inside the root cannot reach the index).
  python=$(basename "$(readlink -f "$root/usr/bin/python3")")
  wheels=$(mktemp -d)
  step python3 -m pip download --quiet --no-deps --dest "$wheels" "$cattrs"
  step python3 -m pip install --quiet --no-deps --no-index --target "$root/usr/local/lib/$python/dist-packages" \
    "$wheels"/*.whl
  rm -rf "$wheels"
  mkdir -p "$root/tmp/.X11-unix" && chmod 1777 "$root/tmp" "$root/tmp/.X11-unix"
  version=$(in_root blender --version 2>/dev/null | head -n 1)
  case "$version" in
    "Blender 5.2"*) ;;
    *) unavailable "Debian's blender package is '$version', not 5.2 LTS" ;;
  esac
  in_root python3 -c "import cattrs, requests, numpy" >>"$log" 2>&1 || unavailable "the root's Python lacks a module"
  echo "$version" >"$stamp"
fi
echo "$root"
