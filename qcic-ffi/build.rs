//! libqcic.so's SONAME, so programs linked against one version load only a
//! compatible one. Below 1.0 every minor version may break the ABI, so the
//! SONAME carries it (`libqcic.so.0.1`), as cargo-c does; from 1.0 on, the
//! major version alone (`libqcic.so.1`).

fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_default();
    let minor = std::env::var("CARGO_PKG_VERSION_MINOR").unwrap_or_default();
    let soversion = if major == "0" {
        format!("0.{minor}")
    } else {
        major
    };
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libqcic.so.{soversion}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
