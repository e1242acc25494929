#!/usr/bin/env bash
# Install the system libLLVM that Dr.Jit's CPU backend (Mitsuba 3, white-box OIR_W) needs:
# libLLVM >= 17 (tested 19.1.7); Debian 12's default 15 makes the process abort.
# Used by `make whitebox` (and so by CI). Without root/apt it prints what to do and fails.
set -euo pipefail
if ls /usr/lib/*/libLLVM-19.so* /usr/lib/*/libLLVM.so.19* >/dev/null 2>&1; then
  echo "libLLVM 19 already installed"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo"; fi
fi
if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = "0" ] || [ -n "$SUDO" ]; }; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libllvm19
  exit 0
fi
echo "white-box backend: cannot install libLLVM 19 here (needs apt-get as root)." >&2
echo "Install libLLVM >= 17 with your package manager (Debian/Ubuntu: apt-get install libllvm19)," >&2
echo "or set DRJIT_LIBLLVM_PATH to a libLLVM.so >= 17." >&2
exit 1
