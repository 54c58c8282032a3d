#!/usr/bin/env bash
# Install the Debian packages of bindep.txt's "test" profile (real RDP servers and tools the tests
# use). Idempotent: does nothing when every package is already installed. Needs root for apt-get;
# without root it lists what is missing and fails, so nothing half-works silently.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
mapfile -t wanted < <(awk '!/^#/ && /platform:dpkg/ && /test/ {print $1}' "$here/bindep.txt")
missing=()
for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "system packages: all ${#wanted[@]} present"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "system packages missing (${missing[*]}) and this is not a Debian system: install them by hand" >&2
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "system packages missing: ${missing[*]}" >&2
    echo "run as root, or: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
fi
echo "system packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# xrdp's postinst does not start a daemon without systemd; nothing listens afterwards.
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "system packages: installed ${#missing[@]}"
