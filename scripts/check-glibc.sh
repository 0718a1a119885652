#!/bin/sh
# Fails when an ELF file needs a newer glibc or libstdc++ than a Jetson on JetPack 5.1 has
# (Ubuntu 20.04: GLIBC_2.31, GLIBCXX_3.4.28, CXXABI_1.3.12). Reads the dynamic symbol table's
# version references with `objdump -T`.
#
#   scripts/check-glibc.sh FILE...          (limits: MAX_GLIBC, MAX_GLIBCXX, MAX_CXXABI)
set -eu
MAX_GLIBC=${MAX_GLIBC:-2.31}
MAX_GLIBCXX=${MAX_GLIBCXX:-3.4.28}
MAX_CXXABI=${MAX_CXXABI:-1.3.12}
[ $# -gt 0 ] || { echo "usage: $0 ELF-FILE..." >&2; exit 2; }
command -v objdump >/dev/null || { echo "error: objdump not found (apt-get install binutils)" >&2; exit 2; }

# version_le A B: true when dotted version A <= B.
version_le() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" = "$1" ]; }

status=0
for f in "$@"; do
    [ -f "$f" ] || { echo "error: $f not found" >&2; exit 2; }
    # Checked on its own: in a pipeline its failure (not an ELF file) passed as "needs nothing".
    dump=$(objdump -T "$f" 2>&1) || { echo "error: objdump -T $f: $dump" >&2; exit 2; }
    refs=$(printf '%s\n' "$dump" | grep -oE '(GLIBC|GLIBCXX|CXXABI)_[0-9.]+' | sort -u -V) || true
    worst=""
    for r in $refs; do
        name=${r%%_*}; ver=${r#*_}
        case $name in
            GLIBC) max=$MAX_GLIBC ;;
            GLIBCXX) max=$MAX_GLIBCXX ;;
            CXXABI) max=$MAX_CXXABI ;;
        esac
        if ! version_le "$ver" "$max"; then
            echo "error: $f needs $r (newer than ${name}_$max):" >&2
            # The version as a whole word, with or without objdump's parentheses (older
            # binutils print none): GLIBC_2.3 must not list GLIBC_2.3.4's symbols.
            pat=$(printf '%s' "$r" | sed 's/\./\\./g')
            printf '%s\n' "$dump" | grep -E "(^|[[:space:](])$pat([[:space:])]|\$)" | sed 's/^/    /' >&2
            status=1
        fi
        worst="$worst $r"
    done
    echo "$f: needs$worst"
done
[ $status -eq 0 ] && echo "check-glibc: all files load on glibc $MAX_GLIBC"
exit $status
