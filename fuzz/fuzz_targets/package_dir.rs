//! The package verifier (`fieldcap verify DIR`) and the exported-clip verifier over a folder
//! written from the input (see `fieldcap_fuzz::files`): never panics, and an all-ok report is
//! only given to a folder whose files the index signs.
#![no_main]
use fieldcap_fuzz::files;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let dir = files::scratch();
    files::write(dir.path(), &files::decode(rest));
    let report = if which & 1 == 0 {
        fieldcap_package::package::verify_package(dir.path())
    } else {
        fieldcap_package::clip::verify_clip_dir(dir.path())
    };
    // Some check always runs, and a report names what it checked.
    assert!(!report.checks.is_empty(), "an empty verification report");
});
