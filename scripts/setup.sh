#!/usr/bin/env bash
# Installs everything kubeweir needs on a Debian 12 machine, idempotently:
# apt packages, kernel-header links for bcc, the Python venv, the bcc link into it,
# and the dashboard's npm packages. Safe to run again; does nothing that is done.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  python3-venv python3-dev build-essential pkg-config
  libpcap0.8 tcpdump tshark iproute2 iptables procps psmisc curl openssl ca-certificates
  dnsutils dnsmasq-base redis-server redis-tools postgresql postgresql-client
  nginx-light wrk mosquitto mosquitto-clients rabbitmq-server
  xmlsec1 libxmlsec1-dev libxml2-dev
  python3-bpfcc bpfcc-tools linux-headers-amd64
  chromium nodejs npm
)

log() { printf '[setup] %s\n' "$*" >&2; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    # nodejs/npm may come from elsewhere (NodeSource, nvm): a working binary is enough.
    case "$p" in
      nodejs) command -v node >/dev/null && continue ;;
      npm) command -v npm >/dev/null && continue ;;
    esac
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    log "missing apt packages: ${missing[*]} (run as root, or install them)"; exit 1
  fi
  log "installing apt packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  # Daemons are started by our tests in their own namespaces, not by the package scripts.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

# bcc compiles against the running kernel's headers: link Debian's headers in where the
# kernel has none of its own (see README: eBPF).
kdir="/lib/modules/$(uname -r)"
if [[ $(id -u) -eq 0 && ! -e "$kdir/build" ]]; then
  hdr=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n1 || true)
  common=$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -n1 || true)
  if [[ -n "$hdr" && -n "$common" ]]; then
    mkdir -p "$kdir"
    ln -sfn "$hdr" "$kdir/build"
    ln -sfn "$common" "$kdir/source"
    log "linked $kdir/build -> $hdr"
  fi
fi

# Python: one venv in the repository, reinstalled only when pyproject.toml changes.
PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.kubeweir-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  log "installing Python packages"
  .venv/bin/pip install -q --upgrade pip
  # pure editable install: `make native` compiles the checkout in place (setup.py)
  KUBEWEIR_NATIVE=0 .venv/bin/pip install -q -e '.[dev]'
  echo "$want" > "$stamp"
fi
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [[ -d /usr/lib/python3/dist-packages/bcc && ! -e "$site/bcc" ]]; then
  ln -s /usr/lib/python3/dist-packages/bcc "$site/bcc"
fi

# Front end: npm packages from the lock file, built when sources changed.
if [[ -f front/package.json ]]; then
  if [[ ! -d front/node_modules || front/package-lock.json -nt front/node_modules/.package-lock.json ]]; then
    log "installing npm packages"
    (cd front && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
log "ready"
