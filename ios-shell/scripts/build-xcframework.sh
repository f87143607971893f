#!/usr/bin/env bash
# Builds FieldcapCoreFFI.xcframework (static libfieldcap_ffi.a for device and simulators) and
# (re)generates the Swift bindings into ios-shell/FieldcapCore/Generated.
# Needs macOS with Xcode and `rustup target add aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios`.
# Not runnable on the project's Linux build machines (no Xcode, no Swift compiler); see ../README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=ios-shell/build
GEN=ios-shell/FieldcapCore/Generated
for t in aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios; do
    cargo build -p fieldcap-ffi --release --target "$t"
done
# Swift bindings (and the C header + modulemap) from the built library, same bindgen as Kotlin/Python.
cargo build -p uniffi-bindgen --release
rm -rf "$GEN" && mkdir -p "$GEN"
target/release/uniffi-bindgen generate --no-format --config bindings/uniffi-bindgen/crate-roots.toml \
    --library target/aarch64-apple-ios/release/libfieldcap_ffi.a --language swift --out-dir "$GEN"
rm -rf "$OUT" && mkdir -p "$OUT/headers" "$OUT/sim"
cp "$GEN/FieldcapCoreFFI.h" "$OUT/headers/"
cp "$GEN/FieldcapCoreFFI.modulemap" "$OUT/headers/module.modulemap"
lipo -create target/aarch64-apple-ios-sim/release/libfieldcap_ffi.a target/x86_64-apple-ios/release/libfieldcap_ffi.a \
    -output "$OUT/sim/libfieldcap_ffi.a"
xcodebuild -create-xcframework \
    -library target/aarch64-apple-ios/release/libfieldcap_ffi.a -headers "$OUT/headers" \
    -library "$OUT/sim/libfieldcap_ffi.a" -headers "$OUT/headers" \
    -output "$OUT/FieldcapCoreFFI.xcframework"
echo "built $OUT/FieldcapCoreFFI.xcframework; Swift sources in $GEN"
