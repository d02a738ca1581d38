//! `qcic discover` on fixture crontabs: the jobs found, the crontab
//! rewritten (byte for byte as in the `.expected` fixtures), idempotent,
//! installed with a backup by `--apply`, and the rewritten lines run as
//! cron runs them, declaring their jobs to a real monitor.

#![expect(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use qcic_testkit::{Monitor, qcic_bin, wait_until, workspace_root};

fn fixture(name: &str) -> PathBuf {
    workspace_root().join("qcic-sdk/tests/fixtures").join(name)
}

fn discover(args: &[&str]) -> Output {
    Command::new(qcic_bin())
        .arg("discover")
        .args(["--qcic", "qcic"])
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

#[test]
fn a_user_crontab_is_rewritten_as_expected() {
    let out = discover(&["--file", fixture("user.crontab").to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let expected = std::fs::read_to_string(fixture("user.expected")).unwrap();
    assert_eq!(text(&out.stdout), expected);
    let table = text(&out.stderr);
    for line in [
        "etl                      30 2 * * 1-5",
        "report                   0 6 * * *            Europe/London",
        "etl-2                    0 3 * * *            Europe/London",
        "line 11: left as it is: @reboot",
        "line 13: left as it is: \"61 * * * *\" does not read as a schedule",
        "line 14: left as it is: already wrapped",
    ] {
        assert!(table.contains(line), "{line:?} not in:\n{table}");
    }
}

#[test]
fn a_system_crontab_keeps_its_user_column() {
    let out = discover(&[
        "--system",
        "--file",
        fixture("system.crontab").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let expected = std::fs::read_to_string(fixture("system.expected")).unwrap();
    assert_eq!(text(&out.stdout), expected);
    assert!(text(&out.stderr).contains("(as postgres) /usr/local/bin/vacuum-all.sh"));
}

#[test]
fn discovering_a_rewritten_crontab_changes_nothing() {
    for (expected, system) in [("user.expected", false), ("system.expected", true)] {
        let path = fixture(expected);
        let mut args = vec!["--file", path.to_str().unwrap()];
        if system {
            args.push("--system");
        }
        let out = discover(&args);
        assert!(out.status.success());
        assert_eq!(text(&out.stdout), std::fs::read_to_string(&path).unwrap());
        // No job left to wrap: the table has its header only.
        let table = text(&out.stderr);
        assert_eq!(
            table.lines().filter(|l| l.contains(" run ")).count(),
            0,
            "{table}"
        );
    }
}

#[test]
fn names_can_be_given_per_line() {
    let out = discover(&[
        "--file",
        fixture("user.crontab").to_str().unwrap(),
        "--name",
        "5=nightly-etl",
    ]);
    assert!(text(&out.stdout).contains("qcic run --job nightly-etl --cron '30 2 * * 1-5'"));
    let bad = discover(&["--file", "x", "--name", "5=bad name"]);
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains("bad name"));
}

/// `--apply` through a crontab program that keeps the table in a file (as
/// `crontab -l` and `crontab -` do): a backup of the old table, the new one
/// installed; a second `--apply` finds nothing to change and makes no backup.
#[test]
fn apply_installs_with_a_backup_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("table");
    std::fs::copy(fixture("user.crontab"), &table).unwrap();
    let fake = dir.path().join("crontab");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\ncase \"$1\" in\n  -l) cat {t} ;;\n  -) cat > {t} ;;\n  *) exit 2 ;;\nesac\n",
            t = table.display()
        ),
    )
    .unwrap();
    Command::new("chmod").arg("+x").arg(&fake).status().unwrap();
    let backup = dir.path().join("backup");
    let apply = || {
        discover(&[
            "--apply",
            "--crontab",
            fake.to_str().unwrap(),
            "--backup",
            backup.to_str().unwrap(),
        ])
    };
    let first = apply();
    assert!(first.status.success(), "{first:?}");
    assert_eq!(
        std::fs::read_to_string(&table).unwrap(),
        std::fs::read_to_string(fixture("user.expected")).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(&backup).unwrap(),
        std::fs::read_to_string(fixture("user.crontab")).unwrap()
    );
    std::fs::remove_file(&backup).unwrap();
    let second = apply();
    assert!(second.status.success());
    assert!(text(&second.stderr).contains("nothing to change"));
    assert!(!backup.exists());
}

/// A crontab that is not UTF-8 (a Latin-1 comment) is refused: rewriting
/// it, and its backup, would lose its bytes.
#[test]
fn a_crontab_that_is_not_utf8_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("table");
    std::fs::write(&table, b"# caf\xe9\n0 2 * * * /usr/local/bin/etl\n").unwrap();
    let fake = dir.path().join("crontab");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\ncase \"$1\" in\n  -l) cat {t} ;;\n  -) cat > {t} ;;\nesac\n",
            t = table.display()
        ),
    )
    .unwrap();
    Command::new("chmod").arg("+x").arg(&fake).status().unwrap();
    let out = discover(&["--apply", "--crontab", fake.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("not UTF-8"), "{out:?}");
    assert_eq!(
        std::fs::read(&table).unwrap(),
        b"# caf\xe9\n0 2 * * * /usr/local/bin/etl\n"
    );
}

/// What cron does with a command: an unescaped `%` ends it and the rest,
/// each `%` a line break, is its standard input; `\%` is a `%`.
fn run_as_cron(line: &str, env: &[(&str, &str)]) {
    // After the five schedule fields, verbatim.
    let mut rest = line;
    for _ in 0..5 {
        rest = rest.trim_start();
        rest = &rest[rest.find(char::is_whitespace).unwrap()..];
    }
    let command = rest.trim_start();
    let mut shell = String::new();
    let mut input: Option<String> = None;
    let mut chars = command.chars().peekable();
    while let Some(c) = chars.next() {
        let c = match c {
            '\\' if chars.peek() == Some(&'%') => {
                chars.next();
                '%'
            }
            '%' if input.is_none() => {
                input = Some(String::new());
                continue;
            }
            '%' => '\n',
            c => c,
        };
        input.as_mut().unwrap_or(&mut shell).push(c);
    }
    let mut child = Command::new("sh")
        .args(["-c", &shell])
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(input.unwrap_or_default().as_bytes())
        .unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success(), "{shell}");
}

/// The rewritten lines, run as cron runs them: the commands do what they
/// did (quotes, `%` input, `\%`), and each job declares itself to a real
/// monitor with its schedule and time zone.
#[test]
fn rewritten_lines_run_as_before_and_declare_their_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let crontab = dir.path().join("e2e.crontab");
    let (one, two, three) = (
        dir.path().join("one.txt"),
        dir.path().join("two.txt"),
        dir.path().join("three.txt"),
    );
    // The last job needs bash (`[[`, `&>`), as its crontab's SHELL says:
    // under sh (dash) it would do nothing.
    std::fs::write(
        &crontab,
        format!(
            "CRON_TZ=Europe/London\n0 6 * * * echo \"it's done\" > {}\n5 6 * * * cat > {}%first line%second \\% line\n\
             SHELL=/bin/bash\n7 6 * * * [[ -d / ]] && echo bash-ok &> {}\n",
            one.display(),
            two.display(),
            three.display()
        ),
    )
    .unwrap();
    let out = Command::new(qcic_bin())
        .args(["discover", "--file"])
        .arg(&crontab)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let rewritten = text(&out.stdout);
    let monitor = Monitor::start(
        "watcher-a",
        "[declare]\nallow = true\n\n[[job]]\nname = \"other\"\nevery = \"1h\"\n",
    );
    for line in rewritten.lines().filter(|l| l.contains(" run ")) {
        run_as_cron(line, &[("QCIC_ENDPOINTS", &monitor.listen)]);
    }
    assert_eq!(std::fs::read_to_string(&one).unwrap(), "it's done\n");
    assert_eq!(
        std::fs::read_to_string(&two).unwrap(),
        "first line\nsecond % line"
    );
    assert_eq!(std::fs::read_to_string(&three).unwrap(), "bash-ok\n");
    assert!(
        rewritten.contains("-- /bin/bash -c '[[ -d / ]]"),
        "{rewritten}"
    );
    let status = || {
        let out = Command::new(qcic_testkit::monitor_bin())
            .args(["status", "--control"])
            .arg(&monitor.control)
            .output()
            .unwrap();
        text(&out.stdout)
    };
    assert!(
        wait_until(qcic_testkit::WAIT, || {
            let s = status();
            s.contains("cron='0 6 * * *' timezone=Europe/London")
                && s.contains("cron='5 6 * * *' timezone=Europe/London")
                && s.contains("cron='7 6 * * *' timezone=Europe/London")
        }),
        "{}",
        status()
    );
}
