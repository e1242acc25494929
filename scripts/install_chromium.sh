#!/usr/bin/env bash
# Install Debian's Chromium for the report's real-browser test (tests/test_report_browser.py).
# Idempotent: does nothing when /usr/bin/chromium exists.  Uses sudo only when not root.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  echo "chromium: already installed ($(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium))"
  exit 0
fi

APT=(env DEBIAN_FRONTEND=noninteractive apt-get)
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    APT=(sudo "${APT[@]}")
  else
    echo "error: not root and no sudo; install Chromium yourself: apt-get install -y chromium" >&2
    exit 1
  fi
fi

"${APT[@]}" update -qq
"${APT[@]}" install -y -qq chromium
/usr/bin/chromium --version
