//! Feeds arbitrary bytes to the BIRD reply parser: it must never panic, and what it accepts must be
//! consistent (a complete reply ends with its only final line, within the input). Every complete reply
//! also goes through the export-proof parsers (`show protocols all`, `show route`, `show bfd sessions`),
//! which must not panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nsbeacon_routing::bird::exports::{
    parse_bfd_sessions, parse_protocols_all, parse_route_prefixes, quoted_symbol,
};
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
        exports(&reply);
    }
    // The streaming path the socket client uses, line by line over the whole input.
    let mut assembler = ReplyAssembler::new();
    for line in data.split(|&b| b == b'\n') {
        let _ = parse_line(line);
        match assembler.push_line(line) {
            Ok(Some(reply)) => exports(&reply),
            Ok(None) => {}
            Err(_) => assembler = ReplyAssembler::new(),
        }
    }
});

fn exports(reply: &nsbeacon_routing::bird::reply::Reply) {
    if let Some(protocols) = parse_protocols_all(reply) {
        for p in &protocols {
            let _ = p.established();
            let _ = p.session_state();
            if let Some(quoted) = quoted_symbol(&p.row.name) {
                // A name spliced into a command never carries a quote or a line break.
                assert!(!quoted[1..quoted.len() - 1].contains(['\'', '\n', '"']));
            }
        }
    }
    let _ = parse_route_prefixes(reply);
    let _ = parse_bfd_sessions(reply);
}
