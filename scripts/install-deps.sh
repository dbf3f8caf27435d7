#!/usr/bin/env bash
# Installs what building and testing sshmux needs on Debian 12 (as root, or via sudo).
# Idempotent: does nothing when everything is already there.
set -euo pipefail

PKGS=(build-essential cmake pkg-config ninja-build
      libuv1-dev libjansson-dev libssl-dev libmbedtls-dev zlib1g-dev libcmocka-dev
      # X25519/Ed25519 in both builds of libssh (scripts/libssh-patches/0010, 0011, 0020)
      libsodium-dev
      # ClusterShell group files and Ansible's YAML inventories (core/config/groups*.c)
      libyaml-dev
      openssh-server openssh-client dpkg-dev xz-utils patch
      pdsh procps iproute2 python3
      # SOCKS clients for the -D / reverse -R tests (tests/integration/test_socks.py)
      curl
      # exec --sudo against a real sudo with throwaway sudoers rules (tests/integration/test_sudo.py)
      sudo
      # a second SSH/SFTP server for interop tests (tests/lib/asyncsshd.py, run by /usr/bin/python3)
      python3-asyncssh
      # fuzzers (tests/fuzz): clang-14 only recommends its sanitizer and libFuzzer runtimes, so
      # they are named; llvm brings llvm-symbolizer for readable sanitizer reports.
      clang libclang-rt-14-dev llvm
      # sshmux docker (tests/integration/test_docker.py, bench/docker.py): a private Docker
      # daemon (tests/lib/dockerd.py) with its containerd and runc (docker.io depends on both),
      # the docker CLI at /usr/bin/docker on both ends of the SSH connection, and a static
      # busybox from which the tests build their one-layer image (no registry is reachable)
      docker.io busybox-static
      # @group oracles (tests/integration/test_groups.py): ClusterShell's nodeset, Ansible's
      # ansible-inventory (ansible-core alone, without recommends: 8 packages, about 20 MB;
      # the "ansible" package adds every collection, hundreds of MB), genders' nodeattr
      clustershell ansible-core genders)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "install-deps: not root and no sudo; install these yourself: ${PKGS[*]}" >&2
        exit 0
    fi
fi

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# libssh >= 0.11 is not in Debian 12: its source comes from trixie's deb-src (scripts/build-libssh.sh).
SRC_LIST=/etc/apt/sources.list.d/sshmux-trixie-src.sources
need_src=0
if [ ! -f "$SRC_LIST" ]; then
    need_src=1
    $SUDO tee "$SRC_LIST" >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

if [ ${#missing[@]} -gt 0 ] || [ $need_src -eq 1 ] || [ ! -d /var/lib/apt/lists ] \
   || ! ls /var/lib/apt/lists/*trixie*Sources* >/dev/null 2>&1; then
    $SUDO apt-get update -q
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
