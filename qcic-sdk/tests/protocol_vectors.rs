//! Checks the SDK against the committed test vectors in docs/: every valid
//! vector decodes to exactly its spelled-out fields and re-encodes byte for
//! byte; every invalid vector is refused for the stated reason.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

use std::path::PathBuf;

use qcic_sdk::{Kind, Message};
use serde_json::Value;

fn load(name: &str) -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../docs")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str::<Vec<Value>>(&text).unwrap()
}

fn message_from_fields(f: &Value) -> Message {
    let opt_str = |k: &str| f[k].as_str().map(str::to_owned);
    Message {
        kind: Kind::from_name(f["kind"].as_str().unwrap()).unwrap(),
        job: f["job"].as_str().unwrap().to_owned(),
        run_id: f["run_id"].as_u64(),
        seq: f["seq"].as_u64().unwrap(),
        ts_ms: f["ts_ms"].as_u64().unwrap(),
        host: f["host"].as_str().unwrap().to_owned(),
        pid: u32::try_from(f["pid"].as_u64().unwrap()).unwrap(),
        exit_code: f["exit_code"].as_i64().map(|c| i32::try_from(c).unwrap()),
        text: opt_str("text"),
    }
}

#[test]
fn valid_vectors_decode_to_their_fields_and_reencode_exactly() {
    let vectors = load("protocol-vectors.json");
    let mut kinds_seen = std::collections::BTreeSet::new();
    for v in &vectors {
        let name = v["name"].as_str().unwrap();
        let bytes = hex::decode(v["hex"].as_str().unwrap()).unwrap();
        let expected = message_from_fields(&v["fields"]);
        let decoded = Message::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(decoded, expected, "{name}: decoded fields");
        assert_eq!(
            hex::encode(decoded.encode()),
            hex::encode(&bytes),
            "{name}: re-encoding"
        );
        kinds_seen.insert(expected.kind);
    }
    assert_eq!(kinds_seen.len(), 5, "at least one vector per kind");
}

#[test]
fn invalid_vectors_are_refused_for_their_reason() {
    for v in load("protocol-invalid-vectors.json") {
        let name = v["name"].as_str().unwrap();
        let bytes = hex::decode(v["hex"].as_str().unwrap()).unwrap();
        let err = Message::decode(&bytes).expect_err(name);
        assert_eq!(err.reason(), v["reason"].as_str().unwrap(), "{name}: {err}");
    }
}

#[test]
fn the_documented_heartbeat_size_holds() {
    let vectors = load("protocol-vectors.json");
    let heartbeat = vectors.iter().find(|v| v["name"] == "heartbeat").unwrap();
    let bytes = hex::decode(heartbeat["hex"].as_str().unwrap()).unwrap();
    // docs/PROTOCOL.md states 44 bytes for this 12-character job name.
    assert_eq!(bytes.len(), 44);
}
