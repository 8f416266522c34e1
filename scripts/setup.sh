#!/usr/bin/env bash
# Installs and builds everything tswarm needs on a Debian 12 machine, as root; safe to run again
# (it only does what is missing or stale). Called by scripts/test.sh and scripts/demo.sh.
#   - Debian packages: iproute2, nftables, util-linux (lab), protobuf-compiler (proto check),
#     gcc/make/libc6-dev/libjson-c-dev (native/), etcd-server (benchmark anchor, etcd store
#     backend), docker-registry, busybox-static, attr and zstd (image store tests), apache2-utils
#     (htpasswd: bcrypt password files for the registries of the auth tests), runc and crun
#     (the executor's references), iputils-ping (DF pings: the overlay's MTU tests), iperf3
#     (bench/network.ts), conntrack (the VIP load balancer flushes a withdrawn task's connections),
#     dnsmasq-base (the upstream resolver of the service-discovery tests), nodejs and npm if
#     there is no Node.js at all
#   - npm packages (npm ci), the C build in native/, the TypeScript build in dist/
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: the set-up installs Debian packages and the tests create network namespaces"

packages=(iproute2 nftables util-linux protobuf-compiler gcc make libc6-dev libjson-c-dev libseccomp-dev ca-certificates etcd-server docker-registry busybox-static iputils-ping iperf3 conntrack dnsmasq-base attr zstd apache2-utils runc crun)
command -v node >/dev/null || packages+=(nodejs npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Keep packages from starting services (etcd-server would start one on port 2379): the tests
  # and benchmarks start their own, on their own ports, and stop them.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 20 ] || die "Node.js 20 or newer is needed; this machine has $(node --version)"

# npm ci when node_modules is missing or older than the lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
fi

say "building native/"
make -s -C native
say "building TypeScript (dist/)"
npx --no-install tsc -p tsconfig.build.json
node scripts/bundle-cli.mjs
chmod +x dist/cli/swarmd.js dist/cli/swarmctl.js
if [ ! -f build/images/busybox/index.json ] || [ /bin/busybox -nt build/images/busybox/index.json ]; then
  say "building the busybox image (build/images/busybox, an OCI image layout)"
  node dist/scripts/build-image.js build/images/busybox >/dev/null
fi
