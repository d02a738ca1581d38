//! Property tests of the codec (run by the normal test command; the
//! coverage-guided fuzzer lives in fuzz/).

use proptest::prelude::*;
use qcic_sdk::message::{MAX_FRAME_LEN, truncate_text};
use qcic_sdk::{Kind, Message};

fn kind() -> impl Strategy<Value = Kind> {
    prop::sample::select(Kind::ALL.to_vec())
}

prop_compose! {
    fn message()(
        kind in kind(),
        job in "[A-Za-z0-9._-]{1,128}",
        run_id in any::<Option<u64>>(),
        seq in any::<u64>(),
        ts_ms in any::<u64>(),
        host in "\\PC{0,60}",
        pid in any::<u32>(),
        exit_code in any::<Option<i32>>(),
        text in proptest::option::of("\\PC{0,400}"),
    ) -> Message {
        Message {
            kind, job, run_id, seq, ts_ms, host, pid, exit_code,
            text: text.map(|t| truncate_text(&t).to_owned()),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_valid_message_round_trips(msg in message()) {
        let frame = msg.encode();
        prop_assert!(frame.len() <= MAX_FRAME_LEN);
        let decoded = Message::decode(&frame).unwrap();
        prop_assert_eq!(&decoded, &msg);
        prop_assert_eq!(decoded.encode(), frame);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_what_decodes_is_canonical_after_one_round(
        bytes in prop::collection::vec(any::<u8>(), 0..300)
    ) {
        if let Ok(msg) = Message::decode(&bytes) {
            let frame = msg.encode();
            prop_assert_eq!(Message::decode(&frame).unwrap(), msg);
        }
    }

    #[test]
    fn a_valid_frame_with_one_byte_changed_never_panics(msg in message(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut frame = msg.encode();
        let i = at.index(frame.len());
        frame[i] = byte;
        if let Ok(decoded) = Message::decode(&frame) {
            prop_assert_eq!(Message::decode(&decoded.encode()).unwrap(), decoded);
        }
    }
}
