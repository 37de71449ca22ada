#!/usr/bin/env bash
# Installs what building, testing and benchmarking coev needs on Debian 12, if missing.
# Idempotent and quiet when everything is there. Uses sudo when not run as root.
set -euo pipefail

packages=(
    g++ clang pkg-config meson ninja-build cmake python3
    doctest-dev liburing-dev libboost-context-dev libssl-dev   # coev's dependencies
    libevent-dev libasio-dev                                    # benchmark peers
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root or sudo to install ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
