//! Checks the SDK against the committed test vectors in docs/: every valid
//! vector decodes to exactly its spelled-out fields and re-encodes byte for
//! byte; every invalid vector is refused for the stated reason.

#![expect(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use qcic_sdk::{Kind, Message};
use serde_json::Value;

fn load(name: &str) -> Vec<Value> {
    let path = qcic_testkit::workspace_root().join("docs").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str::<Vec<Value>>(&text).unwrap()
}

fn message_from_fields(f: &Value) -> Message {
    let opt_str = |k: &str| f[k].as_str().map(str::to_owned);
    Message {
        kind: Kind::from_name(f["kind"].as_str().unwrap()).unwrap(),
        job: f["job"].as_str().unwrap().to_owned(),
        // Spelt as everywhere in JSON: 16 hex digits.
        run_id: f["run_id"]
            .as_str()
            .map(|hex| u64::from_str_radix(hex, 16).unwrap()),
        seq: f["seq"].as_u64().unwrap(),
        ts_ms: f["ts_ms"].as_u64().unwrap(),
        host: f["host"].as_str().unwrap().to_owned(),
        pid: u32::try_from(f["pid"].as_u64().unwrap()).unwrap(),
        exit_code: f["exit_code"].as_i64().map(|c| i32::try_from(c).unwrap()),
        text: opt_str("text"),
        expect: f["expect"].as_str().map(|spec| {
            Box::new(
                qcic_sdk::JobSpec::parse(f["job"].as_str().unwrap(), spec)
                    .unwrap()
                    .expect,
            )
        }),
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
            decoded.expect.as_ref().map(ToString::to_string).as_deref(),
            v["fields"]["expect"].as_str(),
            "{name}: the spec string"
        );
        assert_eq!(
            hex::encode(decoded.encode()),
            hex::encode(&bytes),
            "{name}: re-encoding"
        );
        kinds_seen.insert(expected.kind);
    }
    assert_eq!(
        kinds_seen.len(),
        Kind::ALL.len(),
        "at least one vector per kind"
    );
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

/// A deterministic stand-in for the fuzzer (cargo-fuzz needs a nightly
/// toolchain this project's machines do not have): mutate every valid vector
/// a few thousand times and feed random frames. Decoding must never panic,
/// and whatever it accepts must re-encode to a frame that decodes the same.
#[test]
fn mutated_and_random_frames_never_panic_and_accepted_ones_round_trip() {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let seeds: Vec<Vec<u8>> = load("protocol-vectors.json")
        .iter()
        .map(|v| hex::decode(v["hex"].as_str().unwrap()).unwrap())
        .collect();
    let mut accepted = 0;
    for round in 0..60_000u64 {
        let mut frame = if round % 4 == 0 {
            let len = (next() % 80) as usize;
            (0..len).map(|_| next() as u8).collect()
        } else {
            seeds[(next() as usize) % seeds.len()].clone()
        };
        for _ in 0..(1 + next() % 3) {
            if frame.is_empty() {
                break;
            }
            let at = (next() as usize) % frame.len();
            match next() % 3 {
                0 => frame[at] = next() as u8,
                1 => frame.truncate(at),
                _ => frame.insert(at, next() as u8),
            }
        }
        if let Ok(msg) = Message::decode(&frame) {
            accepted += 1;
            let again = Message::decode(&msg.encode()).expect("re-encoded frame decodes");
            assert_eq!(again, msg);
        }
    }
    assert!(
        accepted > 100,
        "mutations should often stay valid ({accepted})"
    );
}
