//! Property tests of the codec (run by the normal test command; the
//! coverage-guided fuzzer lives in fuzz/).

use proptest::prelude::*;
use qcic_sdk::message::{MAX_FRAME_LEN, truncate_text};
use qcic_sdk::{Expectations, Kind, Message, Schedule};
use std::time::Duration;

fn kind() -> impl Strategy<Value = Kind> {
    prop::sample::select(Kind::ALL.to_vec())
}

fn duration() -> impl Strategy<Value = Duration> {
    (0..=qcic_sdk::declare::MAX_DURATION.as_millis() as u64).prop_map(Duration::from_millis)
}

fn schedule() -> impl Strategy<Value = Schedule> {
    prop_oneof![
        (1..=qcic_sdk::declare::MAX_DURATION.as_millis() as u64)
            .prop_map(|ms| Schedule::Every(Duration::from_millis(ms))),
        (
            "[ -~]{1,128}",
            proptest::option::of("[A-Za-z0-9/_+-]{1,64}")
        )
            .prop_map(|(expr, timezone)| Schedule::Cron { expr, timezone }),
    ]
}

prop_compose! {
    fn expectations()(
        schedule in schedule(),
        durations in prop::array::uniform5(proptest::option::of(duration())),
        counts in prop::array::uniform2(proptest::option::of(1u32..=1000)),
        notify in prop::collection::vec("[A-Za-z0-9._-]{1,64}", 0..=8),
        slow in proptest::option::of(1001u32..=qcic_sdk::declare::MAX_SLOW_AFTER_PERMILLE),
        depends_on in prop::collection::btree_set("[A-Za-z0-9._-]{1,32}", 0..=4),
        after in proptest::option::of("[A-Za-z0-9._-]{1,32}"),
    ) -> Expectations {
        let [grace, start_within, max_runtime, stall_after, min_runtime] = durations;
        Expectations {
            schedule, grace, start_within, max_runtime, stall_after, min_runtime,
            alert_after_failures: counts[0],
            recover_after_successes: counts[1],
            slow_after_permille: slow,
            notify,
            depends_on: depends_on.into_iter().collect(),
            // `after` needs `start_within`.
            after: after.filter(|_| start_within.is_some()),
        }
    }
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
        expect in expectations(),
    ) -> Message {
        Message {
            kind, job, run_id, seq, ts_ms, host, pid, exit_code,
            text: text.map(|t| truncate_text(&t).to_owned()),
            expect: (kind == Kind::Declare).then(|| Box::new(expect)),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_spec_string_reads_back_the_same(expect in expectations()) {
        let text = expect.to_string();
        let read = qcic_sdk::JobSpec::parse("j", &text).unwrap();
        prop_assert_eq!(read.expect, expect, "{}", text);
    }

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
