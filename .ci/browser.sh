#!/usr/bin/env bash
# Debian's chromium and chromium-driver, for tests/test_report_browser.py (the pipeline
# report in a real headless browser). Installed with apt-get only when missing; quiet, and
# safe to run any number of times. The apt log is printed only if the install fails.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! { $SUDO apt-get update -qq \
       && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
     } >"$log" 2>&1; then
  cat "$log" >&2
  echo "browser.sh: could not install chromium and chromium-driver (log above)" >&2
  exit 1
fi
if ! { command -v chromium && command -v chromedriver; } >/dev/null 2>&1; then
  echo "browser.sh: apt-get installed chromium and chromium-driver, but chromium or chromedriver is not" \
       "on PATH" >&2
  exit 1
fi
