//! qcic-bench: every figure of docs/BENCHMARKS.md in one run, each set
//! against the machine's own limit measured in the same run.
//!
//! ```text
//! cargo bench -p qcic-monitor --bench qcic-bench -- --full     # the published run (~10 min)
//! cargo bench -p qcic-monitor --bench qcic-bench -- --quick    # smoke test, < 1 min; asserts nothing about speed
//! cargo bench -p qcic-monitor --bench qcic-bench -- --full --only ingest,memory
//! cargo bench -p qcic-monitor --bench qcic-bench -- --full --only takeover  # the farm figure
//! cargo bench -p qcic-monitor --bench qcic-bench -- --full --only poisoned  # a failing notification beside a fresh one
//! cargo bench -p qcic-monitor --bench qcic-bench -- --full --only idle_connections  # memory per idle ingest connection
//! ```
//!
//! Prints a table and writes the same figures as JSON (`--json PATH`,
//! default `target/qcic-bench.json`). The watcher runs as a child process
//! (this program re-run as `serve`), on a generated configuration, so a
//! million jobs need no million-line TOML file; senders are child processes
//! too (`send`). Everything talks over tcp loopback.
//!
//! Parts: `harness` (helpers), `serve` and `send` (the two child modes and
//! the orchestrator's handles on them), `figures` (one function a figure);
//! here, the command line and the run.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a benchmark: a panic is the report, and figures are floats"
)]

mod figures;
mod harness;
mod send;
mod serve;

use std::path::Path;
use std::time::Instant;

use serde_json::json;

use figures::{
    Plan, declarations, detection, idle_connections, ingest, memory, poisoned, sender_cost,
    startup, takeover, wire,
};
use harness::{Opts, wall_ns};
use qcic_testkit::workspace_root;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve::serve(&Opts::parse(&args[1..])),
        Some("send") => send::send(&Opts::parse(&args[1..])),
        _ => orchestrate(&args),
    }
}

fn orchestrate(args: &[String]) {
    let quick = !args.iter().any(|a| a == "--full");
    let json_path = args
        .iter()
        .position(|a| a == "--json")
        .and_then(|i| args.get(i + 1))
        // Relative to the workspace root: cargo runs benches in the
        // package's directory, which is not where the command was typed.
        .map_or_else(
            || workspace_root().join("target/qcic-bench.json"),
            |p| workspace_root().join(p),
        );
    let plan = if quick {
        Plan {
            quick,
            runs: 1,
            messages: 40_000,
            big_jobs: 10_000,
            detect_jobs: 500,
            detect_rounds: 1,
            email_jobs: 20,
            calls: 20_000,
        }
    } else {
        Plan {
            quick,
            runs: 3,
            messages: 2_000_000,
            big_jobs: 1_000_000,
            detect_jobs: 10_000,
            detect_rounds: 3,
            email_jobs: 1000,
            calls: 1_000_000,
        }
    };
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!(
        "qcic-bench {} on {cpus} CPUs, Linux {}{}",
        if quick {
            "--quick (smoke test: figures are not meaningful)"
        } else {
            "--full"
        },
        kernel.trim(),
        if cfg!(debug_assertions) {
            ", DEBUG BUILD"
        } else {
            ""
        }
    );
    // `--only ingest,memory` runs a subset (for working on one figure).
    let only: Option<Vec<&str>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|list| list.split(',').collect());
    let wanted = |name: &str| only.as_ref().is_none_or(|l| l.contains(&name));
    let started = Instant::now();
    let mut out = Vec::new();
    if wanted("ingest") {
        ingest(&plan, &mut out);
    }
    if wanted("sender") {
        sender_cost(&plan, &mut out);
    }
    if wanted("detection") {
        detection(&plan, &mut out);
    }
    if wanted("memory") {
        memory(&plan, &mut out);
    }
    if wanted("wire") {
        wire(&mut out);
    }
    if wanted("startup") {
        startup(&plan, &mut out);
    }
    if wanted("takeover") {
        takeover(&plan, &mut out);
    }
    if wanted("poisoned") {
        poisoned(&plan, &mut out);
    }
    if wanted("idle_connections") {
        idle_connections(&plan, &mut out);
    }
    if wanted("declarations") {
        declarations(&plan, &mut out);
    }
    let doc = json!({"mode": if plan.quick { "quick" } else { "full" }, "cpus": cpus,
        "kernel": kernel.trim(), "unix_time": wall_ns() / 1_000_000_000,
        "seconds": started.elapsed().as_secs_f64(), "figures": out});
    if let Some(dir) = json_path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(&json_path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    println!(
        "\n{:.0} s; figures written to {}",
        started.elapsed().as_secs_f64(),
        display(&json_path)
    );
}

fn display(p: &Path) -> String {
    p.display().to_string()
}
