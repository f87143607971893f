//! `uniffi-bindgen`: generates the Kotlin, Swift and Python bindings of `fieldcap-ffi` from the
//! built library (library mode), with the same pinned uniffi version as the library itself.
//!
//! ```text
//! cargo run -p uniffi-bindgen -- generate --library target/debug/libfieldcap_ffi.so \
//!     --language kotlin --language python --out-dir target/bindings
//! ```
//! `scripts/bindings_generate.sh` wraps this.

fn main() {
    uniffi::uniffi_bindgen_main()
}
