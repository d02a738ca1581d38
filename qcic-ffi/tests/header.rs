//! `include/qcic.h` is an artifact: generated here by the pinned cbindgen,
//! committed, and checked for drift. To regenerate after changing the ABI:
//!
//! ```sh
//! QCIC_BLESS=1 cargo test -p qcic-ffi --test header
//! ```

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

use std::path::PathBuf;

fn generate() -> String {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    let [major, minor, patch] = [
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_PATCH"),
    ];
    // The version defines come from Cargo.toml, so they cannot drift from it.
    config.after_includes = Some(format!(
        "\n#define QCIC_VERSION \"{version}\"\n#define QCIC_VERSION_MAJOR {major}\n#define QCIC_VERSION_MINOR {minor}\n#define QCIC_VERSION_PATCH {patch}\n"
    ));
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen")
        .write(&mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn the_committed_header_is_what_cbindgen_generates() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../include/qcic.h");
    let fresh = generate();
    if std::env::var_os("QCIC_BLESS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "include/qcic.h is out of date with qcic-ffi; regenerate it with\n    QCIC_BLESS=1 cargo test -p qcic-ffi --test header\n"
    );
}
