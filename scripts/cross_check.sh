#!/usr/bin/env bash
# Cross-target check: the core and the bindings compile for the phones' CPU/OS targets.
#
#   aarch64-linux-android  — `cargo check` with Debian's aarch64 C cross compiler standing in for
#                            the NDK's clang (it compiles the bundled SQLite and ring's C/asm;
#                            nothing is linked, so no Android sysroot is needed for a check).
#   aarch64-apple-ios      — tried only with FIELDCAP_CROSS_IOS=1: without Apple's SDK the C parts
#                            cannot be compiled, so this is expected to fail on Linux.
#
# Needs: rustup (targets are added here) and gcc-aarch64-linux-gnu (scripts/install_binding_tools.sh).
# Prints one line per target; exit status 0 only if every attempted required target passed.
set -euo pipefail
cd "$(dirname "$0")/.."

status=0
check_target() { # target, cc, ar
    local target="$1" cc="$2" ar="$3" var
    var="$(echo "$target" | tr '-' '_')"
    if ! rustup target list --installed | grep -qx "$target"; then
        rustup target add "$target" || { echo "cross-check $target: rustup could not add the target"; return 1; }
    fi
    if ! command -v "$cc" >/dev/null 2>&1; then
        echo "cross-check $target: C cross compiler $cc not found"; return 1
    fi
    if env "CC_$var=$cc" "AR_$var=$ar" "CARGO_TARGET_$(echo "$var" | tr a-z A-Z)_LINKER=$cc" \
        cargo check -p fieldcap-core -p fieldcap-ffi --target "$target"; then
        echo "cross-check $target: ok (cargo check of fieldcap-core and fieldcap-ffi)"
    else
        echo "cross-check $target: FAILED"; return 1
    fi
}

check_target aarch64-linux-android aarch64-linux-gnu-gcc aarch64-linux-gnu-ar || status=1
if [ "${FIELDCAP_CROSS_IOS:-0}" = 1 ]; then
    check_target aarch64-apple-ios "${CC_IOS:-clang}" "${AR_IOS:-llvm-ar}" || echo "(aarch64-apple-ios needs Apple's SDK; not counted)"
fi
exit $status
