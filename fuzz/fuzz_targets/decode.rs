//! Decodes arbitrary bytes as a qcic frame. Whatever decodes must re-encode
//! to a frame that decodes to the same message (and, being canonical, to
//! itself on a second round).
#![no_main]

use libfuzzer_sys::fuzz_target;
use qcic_sdk::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = Message::decode(data) {
        let frame = msg.encode();
        let again = Message::decode(&frame).expect("a re-encoded message decodes");
        assert_eq!(again, msg);
        assert_eq!(again.encode(), frame, "canonical encoding is stable");
    }
});
