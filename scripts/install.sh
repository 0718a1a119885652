#!/bin/sh
# Installs the C library: PREFIX/lib/libtinv.so.X.Y.Z with links libtinv.so and its SONAME
# (libtinv.so.0.Y before 1.0), libtinv.a, PREFIX/include/tinv.h, PREFIX/lib/pkgconfig/tinv.pc,
# and the TensorRT shims (libtinv_trt8.so, ...) of a `--features tensorrt` build when present
# (found by their bare name through ldconfig, so run `ldconfig` after installing).
#
#   scripts/install.sh [--prefix DIR] [--from DIR] [--keep-debug]
#   scripts/install.sh --uninstall [--prefix DIR]
#
#   --prefix DIR   install root, an absolute path (default /usr/local); DESTDIR is prepended
#                  when set (packaging)
#   --from DIR     where the built libraries are (default $CARGO_TARGET_DIR/release, else target/release; for a Jetson build:
#                  target/aarch64-unknown-linux-gnu/release)
#   --keep-debug   install the libraries with their debug info (by default it is stripped when
#                  `strip` can read them: 7 MB to under 1 MB for libtinv.so; symbols stay)
#   --uninstall    remove every file an install puts under the prefix
#
# Build first: `cargo build --release -p tinv` (or scripts/cross-aarch64.sh). Every file is
# copied beside its place first and renamed over it only once all copies succeeded, so a
# failure leaves the previous install as it was.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=/usr/local
FROM=${CARGO_TARGET_DIR:-$ROOT/target}/release
STRIP=1
UNINSTALL=0
# Option $1 needs a non-empty value $2 (an empty --prefix would install into /lib).
needs_value() {
    [ $# -ge 2 ] && [ -n "$2" ] || { echo "error: $1 needs a value" >&2; exit 1; }
}
while [ $# -gt 0 ]; do
    case $1 in
        --prefix) needs_value "$@"; PREFIX=$2; shift 2 ;;
        --from) needs_value "$@"; FROM=$2; shift 2 ;;
        --keep-debug) STRIP=0; shift ;;
        --uninstall) UNINSTALL=1; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "error: unknown argument $1 (see --help)" >&2; exit 1 ;;
    esac
done
# tinv.pc names the prefix: a relative one would resolve against whichever directory the
# compiler runs in.
case $PREFIX in
    /*) ;;
    *) echo "error: --prefix must be an absolute path, not $PREFIX" >&2; exit 1 ;;
esac
# pkg-config splits its output at white space, reads # as a comment and ${...} as a variable,
# and the sed below reads & and | itself: such a prefix would give a tinv.pc that names other
# folders.
case $PREFIX in
    *[[:space:]\&\|\\#\$\'\"\`]*)
        echo "error: --prefix '$PREFIX' holds white space or one of & | \\ # \$ ' \" \`, which tinv.pc cannot carry" >&2
        exit 1 ;;
esac
DEST=${DESTDIR:-}$PREFIX
# The staged files' names are kept in one word-split list below.
case $DEST in
    *[[:space:]*?[]*)
        echo "error: DESTDIR + --prefix '$DEST' holds white space or * ? [" >&2
        exit 1 ;;
esac
if [ "$UNINSTALL" = 1 ]; then
    # Every generation: libtinv.so.0.1.*, libtinv.so.0.2.*, ... and their links.
    for f in "$DEST"/lib/libtinv.so "$DEST"/lib/libtinv.so.* "$DEST"/lib/libtinv.a \
        "$DEST"/lib/libtinv_trt*.so "$DEST"/include/tinv.h "$DEST"/lib/pkgconfig/tinv.pc; do
        if [ -e "$f" ] || [ -L "$f" ]; then rm -f "$f" && echo "removed $f"; fi
    done
    echo "run ldconfig if $PREFIX/lib is in the loader's cache"
    exit 0
fi
VERSION=$(sed -n 's/^#define TINV_VERSION_STRING "\(.*\)"$/\1/p' "$ROOT/include/tinv.h")
MAJOR=${VERSION%%.*}
MINOR=${VERSION#*.}
MINOR=${MINOR%%.*}
# The SONAME build.rs sets: before 1.0 every minor version is its own ABI generation.
if [ "$MAJOR" = 0 ]; then ABI=0.$MINOR; else ABI=$MAJOR; fi
[ -n "$VERSION" ] || { echo "error: no TINV_VERSION_STRING in include/tinv.h" >&2; exit 1; }
[ -f "$FROM/libtinv.so" ] || { echo "error: $FROM/libtinv.so missing (cargo build --release -p tinv)" >&2; exit 1; }
# The links must carry the SONAME the library was built with (a stale build of another version
# would leave programs looking for a name that is not installed).
if ! command -v readelf >/dev/null; then
    echo "warning: readelf not found (binutils): the library's SONAME is not checked" >&2
else
    SONAME=$(LC_ALL=C readelf -d "$FROM/libtinv.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
    [ "$SONAME" = "libtinv.so.$ABI" ] || {
        echo "error: $FROM/libtinv.so has SONAME '$SONAME', include/tinv.h (version $VERSION) wants libtinv.so.$ABI: rebuild it" >&2
        exit 1
    }
fi

# Two phases: every file is first copied beside its place (`stage`), and renamed over it
# (`commit`) only once all copies succeeded: a full disk or a missing permission half-way left a
# new library beside an old header. Renamed, not written in place: writing into an installed
# library crashes the programs that have it mapped (SIGBUS).
STAGED=""
cleanup() {
    for f in $STAGED; do rm -f "$f.tmp.$$"; done
}
trap cleanup EXIT
# dash runs no EXIT trap when a signal ends the script: exit through it.
trap 'exit 130' INT TERM HUP
# Listed before the copy, so a copy that fails half-way (a full disk) is cleaned up too.
stage() {
    STAGED="$STAGED $2"
    cp "$1" "$2.tmp.$$"
}
# A library staged without its debug info (`strip` of another architecture cannot read a
# cross-built one: then it stays as it is, and says so).
stage_lib() {
    stage "$1" "$2"
    if [ "$STRIP" = 1 ] && ! strip --strip-debug "$2.tmp.$$" 2>/dev/null; then
        echo "note: $(basename "$1") keeps its debug info (strip cannot read it)" >&2
    fi
}
commit() {
    for f in $STAGED; do mv -f "$f.tmp.$$" "$f"; done
    STAGED=""
}

mkdir -p "$DEST/lib/pkgconfig" "$DEST/include"
stage_lib "$FROM/libtinv.so" "$DEST/lib/libtinv.so.$VERSION"
[ ! -f "$FROM/libtinv.a" ] || stage_lib "$FROM/libtinv.a" "$DEST/lib/libtinv.a"
for shim in "$FROM"/libtinv_trt*.so; do
    if [ -f "$shim" ]; then stage_lib "$shim" "$DEST/lib/$(basename "$shim")"; fi
done
stage "$ROOT/include/tinv.h" "$DEST/include/tinv.h"
STAGED="$STAGED $DEST/lib/pkgconfig/tinv.pc"
sed -e "s|@PREFIX@|$PREFIX|g" -e "s|@VERSION@|$VERSION|g" "$ROOT/tinv.pc.in" >"$DEST/lib/pkgconfig/tinv.pc.tmp.$$"
# The links too: made beside and renamed over (`ln -sf` unlinks first, and a program starting
# in between would not find its library).
ln -s "libtinv.so.$VERSION" "$DEST/lib/libtinv.so.$ABI.tmp.$$"
STAGED="$STAGED $DEST/lib/libtinv.so.$ABI"
ln -s "libtinv.so.$ABI" "$DEST/lib/libtinv.so.tmp.$$"
STAGED="$STAGED $DEST/lib/libtinv.so"
commit
# Other releases of this ABI generation go: ldconfig points the SONAME at the highest-numbered
# file, which would undo the install of an older patch release over a newer one.
for old in "$DEST"/lib/libtinv.so."$ABI".*; do
    if [ -f "$old" ] && [ "$old" != "$DEST/lib/libtinv.so.$VERSION" ]; then
        rm -f "$old"
        echo "removed $old of an earlier install"
    fi
done
# A static library or TensorRT shims of an earlier install that this build lacks would be
# linked or loaded with the new library: removed, and said.
if [ ! -f "$FROM/libtinv.a" ] && [ -f "$DEST/lib/libtinv.a" ]; then
    rm -f "$DEST/lib/libtinv.a"
    echo "removed $DEST/lib/libtinv.a of an earlier install (this build has none)"
fi
for old in "$DEST"/lib/libtinv_trt*.so; do
    if [ -f "$old" ] && [ ! -f "$FROM/$(basename "$old")" ]; then
        rm -f "$old"
        echo "removed $old of an earlier install (this build has no such TensorRT shim)"
    fi
done
echo "installed tinv $VERSION into $DEST (pkg-config: $DEST/lib/pkgconfig/tinv.pc)"
