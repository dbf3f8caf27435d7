#!/bin/sh
# Checks that the library's layers depend only downwards, in both headers and symbols:
#   1. no file includes a header by a relative path ("../x.h" would slip past the include
#      directories CMake gives each layer, which are what make a wrong #include fail to build);
#   2. every symbol an object file of layer N uses from the library is defined in layer N or
#      below (nm on the objects of a build directory), so there is no cycle between layers.
# Usage: scripts/check-layers.sh BUILD_DIR     (e.g. build/openssl). Exit 0 when clean.
set -eu
build=${1:?usage: check-layers.sh BUILD_DIR}
top=$(cd "$(dirname "$0")/.." && pwd)
# Bottom first: the order of CMakeLists.txt's sshmux_layer() calls.
layers="base loop config trust ssh apps transports engine"
fail=0

if grep -rnE '#include "\.\./' "$top/core" "$top/loop" "$top/transports" "$top/cmd"; then
    echo "check-layers: relative includes (above) bypass the layers' include directories" >&2
    fail=1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rank=0
for layer in $layers; do
    dir="$build/CMakeFiles/smx_$layer.dir"
    [ -d "$dir" ] || { echo "check-layers: $dir missing (build first)" >&2; exit 2; }
    find "$dir" -name '*.o' > "$tmp/$layer.objs"
    # defined: symbol rank layer
    xargs nm -g --defined-only < "$tmp/$layer.objs" | awk -v r=$rank -v l=$layer \
        'NF == 3 && $2 ~ /[TDBRC]/ { print $3, r, l }' >> "$tmp/defined"
    rank=$((rank + 1))
done

rank=0
for layer in $layers; do
    while read -r obj; do
        nm -u "$obj" | awk '{ print $2 }' | while read -r sym; do
            awk -v s="$sym" -v r=$rank -v o="${obj#$build/CMakeFiles/}" \
                '$1 == s && $2 > r { printf "%s uses %s from the layer above (%s)\n", o, s, $3 }' \
                "$tmp/defined"
        done
    done < "$tmp/$layer.objs"
    rank=$((rank + 1))
done > "$tmp/violations"

if [ -s "$tmp/violations" ]; then
    cat "$tmp/violations" >&2
    fail=1
fi
[ $fail -eq 0 ] && echo "check-layers: $layers: every dependency points down"
exit $fail
