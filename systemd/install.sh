#!/usr/bin/env bash
# Install handoffd as a systemd service (Debian 12 / systemd >= 252). Idempotent: run it again
# after `git pull` to upgrade; files that did not change are left alone.
#
#   sudo systemd/install.sh              install or upgrade
#   systemd/install.sh --dry-run         print what would be done, change nothing
#   sudo systemd/install.sh --enable     ... and enable + start the service
#
# What it does:
#   /etc/systemd/system/handoffd.service     the unit (Type=notify, watchdog, hardening)
#   /usr/lib/sysusers.d/handoffd.conf        system user/group handoffd (+ render, video)
#   /usr/lib/tmpfiles.d/handoffd.conf        /var/lib/handoffd, /etc/handoffd, /etc/credstore
#   /etc/handoffd/config.yaml                a starting config, only if there is none
#   /opt/handoffd/venv                       a virtualenv with handoffd from this checkout
#                                            (onnxruntime-gpu when an NVIDIA GPU is present)
# Secrets go to /etc/credstore (root, 0600), read by the unit's LoadCredential=:
#   /etc/credstore/handoffd.cloud-api-key        the key; config: cloud target
#                                                api_key_credential: cloud-api-key
#   /etc/credstore/handoffd.ledger-signing-key   Ed25519 PKCS#8 PEM (openssl genpkey
#                                                -algorithm ed25519); absent: handoffd creates
#                                                one in /var/lib/handoffd on first start
#
# Options for packaging and tests: --root DIR installs into another root (implies --skip-venv
# unless --venv is given, never touches the running systemd); --skip-venv leaves the venv alone.
set -euo pipefail

SOURCE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
UNIT_DIR=/etc/systemd/system
SYSUSERS_DIR=/usr/lib/sysusers.d
TMPFILES_DIR=/usr/lib/tmpfiles.d
CONFIG_DIR=/etc/handoffd
VENV=/opt/handoffd/venv
PYTHON=${PYTHON:-}

ROOT=/
DRY_RUN=0
SKIP_VENV=0
FORCE_VENV=0
ENABLE=0
CHANGED=0

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --root) ROOT=${2:?--root needs a directory}; shift ;;
    --root=*) ROOT=${1#--root=} ;;
    --skip-venv) SKIP_VENV=1 ;;
    --venv) FORCE_VENV=1 ;;
    --enable) ENABLE=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

ROOT=${ROOT%/}
if [[ -n "$ROOT" && $FORCE_VENV -eq 0 ]]; then SKIP_VENV=1; fi
if [[ -n "$ROOT" && $ENABLE -eq 1 ]]; then
  echo "install.sh: --enable only works on the running system, not with --root" >&2; exit 2
fi
if [[ $DRY_RUN -eq 0 && $EUID -ne 0 ]]; then
  echo "install.sh: run as root (sudo $0 $*), or try --dry-run" >&2; exit 1
fi

say() { echo "handoffd-install: $*"; }
run() {
  if [[ $DRY_RUN -eq 1 ]]; then say "would run: $*"; else say "run: $*"; "$@"; fi
}

# install_file SRC DEST MODE: copy when missing or different
install_file() {
  local src=$1 dest=$ROOT$2 mode=$3
  if [[ -f "$dest" ]] && cmp -s "$src" "$dest"; then
    say "unchanged: $2"; return
  fi
  CHANGED=1
  if [[ $DRY_RUN -eq 1 ]]; then say "would install: $2 (mode $mode)"; return; fi
  install -D -m "$mode" "$src" "$dest"
  say "installed: $2"
}

root_args=()
[[ -n "$ROOT" ]] && root_args=(--root="$ROOT")

# 1. unit, sysusers, tmpfiles
install_file "$SOURCE_DIR/systemd/handoffd.service" "$UNIT_DIR/handoffd.service" 0644
install_file "$SOURCE_DIR/systemd/handoffd.sysusers.conf" "$SYSUSERS_DIR/handoffd.conf" 0644
install_file "$SOURCE_DIR/systemd/handoffd.tmpfiles.conf" "$TMPFILES_DIR/handoffd.conf" 0644

# 2. user, group and directories (both tools are idempotent)
if [[ -n "$ROOT" && $DRY_RUN -eq 0 ]]; then mkdir -p "$ROOT/etc"; fi
run systemd-sysusers "${root_args[@]}" "$ROOT$SYSUSERS_DIR/handoffd.conf"
run systemd-tmpfiles --create "${root_args[@]}" "$ROOT$TMPFILES_DIR/handoffd.conf"

# 3. a starting config, never overwriting the administrator's
config=$ROOT$CONFIG_DIR/config.yaml
if [[ -e "$config" ]]; then
  say "kept: $CONFIG_DIR/config.yaml (exists)"
elif [[ $DRY_RUN -eq 1 ]]; then
  say "would create: $CONFIG_DIR/config.yaml (root:handoffd 0640)"; CHANGED=1
else
  tmp=$(mktemp)
  cat > "$tmp" <<'YAML'
# handoffd configuration. Every key is optional; see the README for all of them.
# Policies live in /etc/handoffd/policies; secrets in /etc/credstore (LoadCredential=).
# `systemctl reload handoffd` re-reads policies; other changes need a restart.
# A cloud target reads its key from the unit's credential, e.g.:
#   cloud:
#     targets:
#       openai:
#         api_key_credential: cloud-api-key
log:
  level: info
  format: json
YAML
  # the group as the target root knows it (numeric: the host may not have it under --root)
  gid=$(awk -F: '$1 == "handoffd" { print $3 }' "$ROOT/etc/group" 2>/dev/null || true)
  install -D -m 0640 -o 0 -g "${gid:-0}" "$tmp" "$config"
  rm -f "$tmp"
  say "created: $CONFIG_DIR/config.yaml"; CHANGED=1
fi

# 4. the virtualenv
if [[ $SKIP_VENV -eq 1 ]]; then
  say "skipped: $VENV (--skip-venv)"
else
  if [[ -z "$PYTHON" ]]; then
    PYTHON=$(command -v python3.11 || command -v python3 || true)
  fi
  if [[ -z "$PYTHON" ]]; then echo "install.sh: python3 (>= 3.11) not found" >&2; exit 1; fi
  if [[ ! -x "$ROOT$VENV/bin/python" ]]; then
    run "$PYTHON" -m venv "$ROOT$VENV"
  else
    say "exists: $VENV"
  fi
  run "$ROOT$VENV/bin/python" -m pip install --quiet --upgrade pip
  run "$ROOT$VENV/bin/python" -m pip install --quiet --upgrade "$SOURCE_DIR"
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    say "NVIDIA GPU found: using onnxruntime-gpu"
    run "$ROOT$VENV/bin/python" -m pip uninstall --quiet -y onnxruntime
    run "$ROOT$VENV/bin/python" -m pip install --quiet onnxruntime-gpu
  fi
  CHANGED=1
fi

# 5. tell the running systemd (not when installing into another root)
if [[ -z "$ROOT" && -d /run/systemd/system ]]; then
  run systemctl daemon-reload
  if [[ $ENABLE -eq 1 ]]; then run systemctl enable --now handoffd.service; fi
elif [[ -z "$ROOT" ]]; then
  say "systemd is not running here: skipped daemon-reload"
fi

if [[ $CHANGED -eq 0 ]]; then say "nothing to do: already installed"; fi
if [[ -z "$ROOT" && $ENABLE -eq 0 ]]; then
  say "next: put secrets in /etc/credstore (chmod 600), then: systemctl enable --now handoffd"
fi
