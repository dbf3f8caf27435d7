#!/usr/bin/env bash
# Builds libssh 0.11.5 (Debian trixie source package) under build/deps/ for one crypto backend.
# Usage: build-libssh.sh openssl|mbedtls [DEPS_DIR]
# Result: DEPS_DIR/libssh-<backend>/ with include/ and lib/ (static library, so the binary needs
# nothing at run time). Built out of tree from a private copy: configuring libssh rewrites a
# symlink inside its source directory.
set -euo pipefail

BACKEND=${1:?usage: build-libssh.sh openssl|mbedtls [DEPS_DIR]}
TOP=$(cd "$(dirname "$0")/.." && pwd)
DEPS=${2:-$TOP/build/deps}
VERSION=0.11.5
DEBVER=0.11.5-0+deb13u1
PREFIX=$DEPS/libssh-$BACKEND
PATCHES=$TOP/scripts/libssh-patches
# The stamp names the patch set too, so changing a patch rebuilds.
PATCHSUM=$(cat "$PATCHES"/*.patch 2>/dev/null | sha256sum | cut -c1-12)
STAMP=$PREFIX/.built-$DEBVER-$PATCHSUM

if [ -f "$STAMP" ]; then exit 0; fi
mkdir -p "$DEPS"

SRC=$DEPS/libssh-src-$VERSION
if [ ! -f "$SRC/CMakeLists.txt" ]; then
    dl=$DEPS/download
    mkdir -p "$dl"
    if ! ls "$dl"/libssh_"$VERSION"*.dsc >/dev/null 2>&1; then
        ( cd "$dl" && apt-get source --download-only "libssh=$DEBVER" ) || {
            echo "build-libssh: could not fetch the libssh $DEBVER source package;" \
                 "run scripts/install-deps.sh (it adds trixie's deb-src)" >&2; exit 1; }
    fi
    rm -rf "$SRC.tmp"
    dpkg-source --no-check -x "$dl"/libssh_"$DEBVER".dsc "$SRC.tmp" >/dev/null
    mv "$SRC.tmp" "$SRC"
fi

case "$BACKEND" in
    openssl) crypto=(-DWITH_MBEDTLS=OFF) ;;
    # libsodium for X25519 and Ed25519 (libssh-patches/0020)
    mbedtls) crypto=(-DWITH_MBEDTLS=ON -DWITH_SODIUM=ON) ;;
    *) echo "build-libssh: unknown backend '$BACKEND' (openssl|mbedtls)" >&2; exit 2 ;;
esac

COPY=$DEPS/libssh-src-$BACKEND
BLD=$DEPS/libssh-build-$BACKEND
rm -rf "$COPY" "$BLD" "$PREFIX"
cp -a "$SRC" "$COPY"
# Our patches (scripts/libssh-patches, each says why) go into the private copy only.
for p in "$PATCHES"/*.patch; do
    [ -f "$p" ] || continue
    patch -d "$COPY" -p1 -s --no-backup-if-mismatch < "$p" || {
        echo "build-libssh: $p does not apply" >&2; exit 1; }
done
cmake -S "$COPY" -B "$BLD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_INSTALL_PREFIX="$PREFIX" -DCMAKE_INSTALL_LIBDIR=lib \
    -DBUILD_SHARED_LIBS=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
    -DWITH_GSSAPI=OFF -DWITH_EXAMPLES=OFF -DUNIT_TESTING=OFF -DCLIENT_TESTING=OFF \
    -DWITH_SERVER=ON -DWITH_PCAP=OFF -DWITH_ZLIB=ON -DWITH_SFTP=ON -DWITH_NACL=OFF \
    "${crypto[@]}" >"$BLD.log" 2>&1 || { tail -30 "$BLD.log" >&2; exit 1; }
cmake --build "$BLD" -j"$(nproc)" >>"$BLD.log" 2>&1 || { tail -30 "$BLD.log" >&2; exit 1; }
cmake --install "$BLD" >>"$BLD.log" 2>&1 || { tail -30 "$BLD.log" >&2; exit 1; }
touch "$STAMP"
echo "build-libssh: libssh $VERSION ($BACKEND) in $PREFIX"
