//! Feeds arbitrary bytes to the BIRD reply parser: it must never panic, and what it accepts must be
//! consistent (a complete reply ends with its only final line, within the input).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nsbeacon_routing::bird::reply::{LineKind, ReplyAssembler, parse_line, parse_reply};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((reply, used))) = parse_reply(data) {
        assert!(used <= data.len());
        assert_eq!(data[used - 1], b'\n');
        let lines = reply.lines();
        assert_eq!(lines.last().map(|l| l.kind), Some(LineKind::Last));
        assert!(
            lines[..lines.len() - 1]
                .iter()
                .all(|l| l.kind != LineKind::Last)
        );
        let _ = reply.first_error();
        let _ = reply.to_string();
    }
    // The streaming path the socket client uses, line by line over the whole input.
    let mut assembler = ReplyAssembler::new();
    for line in data.split(|&b| b == b'\n') {
        let _ = parse_line(line);
        if assembler.push_line(line).is_err() {
            assembler = ReplyAssembler::new();
        }
    }
});
