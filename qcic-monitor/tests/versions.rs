//! One version everywhere: the workspace's `Cargo.toml`, `qcic-monitor
//! --version`, `qcic --version`, the C header's `QCIC_VERSION` and the
//! changelog's newest entry (Python's `qcic.__version__` is checked by
//! its own tests against the same file).

#![expect(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::process::Command;

fn workspace_version() -> String {
    let root = qcic_testkit::workspace_root();
    let text = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let doc: toml::Table = text.parse().unwrap();
    doc["workspace"]["package"]["version"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn first_line(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn every_part_says_the_same_version() {
    let version = workspace_version();
    assert_eq!(
        first_line(Command::new(env!("CARGO_BIN_EXE_qcic-monitor")).arg("--version")),
        format!("qcic-monitor {version}")
    );
    assert_eq!(
        first_line(Command::new(qcic_testkit::qcic_bin()).arg("--version")),
        format!("qcic {version}")
    );
    let root = qcic_testkit::workspace_root();
    let header = std::fs::read_to_string(root.join("include/qcic.h")).unwrap();
    assert!(
        header.contains(&format!("#define QCIC_VERSION \"{version}\"")),
        "include/qcic.h"
    );
    let changelog = std::fs::read_to_string(root.join("CHANGELOG.md")).unwrap();
    let newest = changelog.lines().find(|l| l.starts_with("## ")).unwrap();
    assert!(
        newest.starts_with(&format!("## {version} ")) || newest == format!("## {version}"),
        "CHANGELOG.md's newest entry is {newest:?}, the version {version}"
    );
}
