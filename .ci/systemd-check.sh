#!/usr/bin/env bash
# Check the systemd files without a running systemd (CI runs as root on Debian 12, in a container):
#   1. systemd-analyze verify on the unit, inside a scratch root (--root) that holds the stock
#      units and a stub at the unit's ExecStart path: verify insists the binary exists, and the
#      real one only exists after install.sh built /opt/handoffd/venv
#   2. systemd-sysusers and systemd-tmpfiles applied to that scratch root
#   3. systemd-analyze security --offline=true: the exposure score, failing above 2.0
#   4. systemd/install.sh --dry-run, and a real install into a scratch root run twice (idempotent)
# Installs systemd with apt-get when systemd-analyze is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_EXPOSURE=${MAX_EXPOSURE:-2.0}
UNIT=${UNIT:-systemd/handoffd.service}

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "systemd-check: installing systemd (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi
echo "systemd-check: $(systemd-analyze --version | head -1)"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# --- 1. verify ---------------------------------------------------------------------------------
mkdir -p "$scratch/etc/systemd/system" "$scratch/usr/lib/systemd"
cp -r /usr/lib/systemd/system "$scratch/usr/lib/systemd/"
cp /etc/passwd /etc/group "$scratch/etc/"
cp "$UNIT" "$scratch/etc/systemd/system/"
# every program an Exec*= line runs (ExecStart, ExecReload, ...) gets a stub in the scratch root
mapfile -t programs < <(sed -n 's/^Exec[A-Za-z]*=[-@:+!]*\([^ ]*\).*/\1/p' "$UNIT" | sort -u)
for program in "${programs[@]}"; do
  mkdir -p "$scratch$(dirname "$program")"
  printf '#!/bin/sh\nexit 0\n' > "$scratch$program"
  chmod +x "$scratch$program"
done
verify_log="$scratch/verify.log"
if ! systemd-analyze verify --man=no --generators=no --root="$scratch" handoffd.service \
    >"$verify_log" 2>&1; then
  cat "$verify_log"
  echo "systemd-check: FAIL: systemd-analyze verify"
  exit 1
fi
# verify exits 0 on some warnings (unknown keys, bad values are only "ignoring"): fail on them too
if grep -E "handoffd\.service" "$verify_log" | grep -v "^$" >/dev/null; then
  cat "$verify_log"
  echo "systemd-check: FAIL: systemd-analyze verify printed warnings for the unit"
  exit 1
fi
echo "systemd-check: verify OK ($UNIT; ${programs[*]} stubbed in a scratch root)"

# --- 2. sysusers / tmpfiles ---------------------------------------------------------------------
systemd-sysusers --root="$scratch" - < systemd/handoffd.sysusers.conf >/dev/null 2>&1
grep -q '^handoffd:' "$scratch/etc/passwd" || { echo "systemd-check: FAIL: no handoffd user"; exit 1; }
systemd-tmpfiles --create --root="$scratch" - < systemd/handoffd.tmpfiles.conf
for d in var/lib/handoffd etc/handoffd etc/credstore; do
  [[ -d "$scratch/$d" ]] || { echo "systemd-check: FAIL: tmpfiles did not create /$d"; exit 1; }
done
echo "systemd-check: sysusers and tmpfiles OK"

# --- 3. security exposure -----------------------------------------------------------------------
threshold=$(awk -v m="$MAX_EXPOSURE" 'BEGIN { printf "%d", m * 10 }')  # --threshold is 0..100
security_log="$scratch/security.log"
set +e
systemd-analyze security --offline=true --threshold="$threshold" --no-pager "$UNIT" \
  >"$security_log" 2>&1
rc=$?
set -e
score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$security_log")
if [[ -z "$score" ]]; then
  cat "$security_log"
  echo "systemd-check: FAIL: no exposure score"
  exit 1
fi
echo "systemd-check: exposure $score (max $MAX_EXPOSURE)"
if [[ $rc -ne 0 ]] || awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s > m) }'; then
  grep '✗' "$security_log" || true
  echo "systemd-check: FAIL: exposure $score is above $MAX_EXPOSURE"
  exit 1
fi

# --- 4. install.sh ------------------------------------------------------------------------------
systemd/install.sh --dry-run >/dev/null
target="$scratch/target"
mkdir -p "$target/etc"
cp /etc/passwd /etc/group "$target/etc/"
systemd/install.sh --root "$target" >/dev/null 2>&1
second=$(systemd/install.sh --root "$target" 2>&1)
if ! grep -q "nothing to do" <<<"$second"; then
  echo "$second"
  echo "systemd-check: FAIL: a second install.sh run changed something (not idempotent)"
  exit 1
fi
echo "systemd-check: install.sh OK (dry run; installed into a scratch root; idempotent)"
echo "systemd-check: all OK"
