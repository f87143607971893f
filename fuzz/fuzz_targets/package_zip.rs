//! `fieldcap verify PACKAGE.zip`: the archive is extracted (`server::package::zip::unzip_into`,
//! refusing escaping names and bad CRCs) into a scratch folder, then verified.
#![no_main]
use fieldcap_fuzz::files;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = files::scratch();
    let (zip, out) = (dir.path().join("p.zip"), dir.path().join("out"));
    std::fs::write(&zip, data).expect("writing the archive");
    std::fs::create_dir(&out).expect("making the extraction folder");
    if fieldcap_server::package::zip::unzip_into(&zip, &out).is_ok() {
        // Nothing lands outside the extraction folder.
        for entry in std::fs::read_dir(dir.path()).expect("listing the scratch folder").flatten() {
            let name = entry.file_name();
            assert!(name == "p.zip" || name == "out", "the archive wrote {name:?} outside its folder");
        }
        let report = fieldcap_package::package::verify_package(&out);
        assert!(!report.checks.is_empty());
    }
});
