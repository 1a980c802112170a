#!/usr/bin/env bash
# Sets up cnnzoo on a fresh machine: the Debian Fashion-MNIST package (where apt and root are there),
# a virtual environment cached outside the clone (keyed by a hash of pyproject.toml, so a fresh clone
# reuses it), and an editable install. Usage: scripts/setup.sh [--dev] [--browser]
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0; browser=0
for a in "$@"; do
  case "$a" in
    --dev) dev=1 ;;
    --browser) browser=1 ;;
    *) echo "setup.sh: unknown option $a" >&2; exit 2 ;;
  esac
done

apt_install() {  # apt_install CHECK_PATH PACKAGE...: installs the packages when CHECK_PATH is missing
  local check=$1; shift
  [ -e "$check" ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: apt-get install $*" >&2
    (apt-get install -y -q "$@" >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "$@" >/dev/null; }) \
      || echo "setup: could not install $* (continuing)" >&2
  else
    echo "setup: $* not installed and no root/apt: skipping" >&2
  fi
}
apt_install /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz dataset-fashion-mnist
[ "$browser" = 1 ] && apt_install /usr/bin/chromium chromium
# a CJK font, so the browser tests' 中文 screenshots show characters, not boxes
[ "$browser" = 1 ] && apt_install /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc fonts-wqy-zenhei

py=${PYTHON:-python3}
# Key the cached env by the dependency spec alone, so editing other parts of pyproject.toml reuses it.
hash=$("$py" -c 'import json, sys, tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]
print(json.dumps([sys.version_info[:2], p["dependencies"], p.get("optional-dependencies", {})]))' | sha256sum | cut -c1-16)
cache=${CNNZOO_VENV_CACHE:-$HOME/.cache/cnnzoo/venvs}
venv="$cache/$hash-$dev"
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
  echo "setup: creating virtual env $venv (first time: a few minutes, torch is large)" >&2
  rm -rf "$venv"; mkdir -p "$cache"
  "$py" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  extra=""; [ "$dev" = 1 ] && extra="[dev]"
  "$venv/bin/pip" install -q "torch>=2.4" "torchvision>=0.19"
  "$venv/bin/pip" install -q -e ".$extra"
  touch "$venv/.complete"
fi
# The editable install points at the clone it was made from; re-point it at this one (cheap, no deps).
"$venv/bin/pip" install -q --no-deps --no-build-isolation -e . >/dev/null
ln -sfn "$venv" .venv
echo "setup: ready (.venv -> $venv)" >&2
