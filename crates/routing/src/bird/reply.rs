//! BIRD control-socket replies: a pure parser from bytes to typed lines and complete replies.
//!
//! BIRD answers every command with one or more `\n`-terminated lines:
//!
//! * `DDDD-text`: a line with a 4-digit code, more lines follow;
//! * `DDDD text`: the **last** line of the reply;
//! * ` text`: a continuation line, carrying the code of the previous numbered line;
//! * `+text`: a spontaneous printout (only after the client asked for `echo`), not part of any reply.
//!
//! The outcome of a command is decided from the codes' classes ([`CodeClass`]), never from BIRD's English
//! text: BIRD 3 rewords messages, the codes stay. Everything here is pure and never panics on any input (it
//! is property-tested and fuzzed), so a garbage-spewing socket yields a [`ReplyError`], not a crash.

use std::fmt;

/// Longest line accepted from BIRD, newline excluded. BIRD's own lines are far shorter; the bound keeps a
/// misbehaving peer from growing our buffer without limit.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Largest complete reply accepted (all lines together). `show protocols` on a router with thousands of
/// protocols stays well below it.
pub const MAX_REPLY_BYTES: usize = 8 * 1024 * 1024;

/// A BIRD reply code, `0000`..=`9999`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplyCode(u16);

impl ReplyCode {
    /// `0000`: end of output / OK.
    pub const OK: ReplyCode = ReplyCode(0);
    /// `0001`: the greeting BIRD sends on connect (`0001 BIRD 2.0.12 ready.`).
    pub const WELCOME: ReplyCode = ReplyCode(1);
    /// `0008`: the protocol was already disabled (`disable` is a no-op).
    pub const ALREADY_DISABLED: ReplyCode = ReplyCode(8);
    /// `0009`: the protocol has been disabled.
    pub const DISABLED: ReplyCode = ReplyCode(9);
    /// `0010`: the protocol was already enabled (`enable` is a no-op).
    pub const ALREADY_ENABLED: ReplyCode = ReplyCode(10);
    /// `0011`: the protocol has been enabled.
    pub const ENABLED: ReplyCode = ReplyCode(11);
    /// `0003`: `configure` finished reconfiguring.
    pub const RECONFIGURED: ReplyCode = ReplyCode(3);
    /// `0004`: `configure` started a reconfiguration that waits for protocols to stop (BIRD 3 words it
    /// differently; the code is what counts).
    pub const RECONFIGURATION_IN_PROGRESS: ReplyCode = ReplyCode(4);
    /// `0013`: the final line of `show status`.
    pub const STATUS_REPORT: ReplyCode = ReplyCode(13);
    /// `1000`: the BIRD version row of `show status` (`BIRD 2.0.12`).
    pub const VERSION: ReplyCode = ReplyCode(1000);
    /// `1002`: one row of the `show protocols` table.
    pub const PROTOCOL_ROW: ReplyCode = ReplyCode(1002);
    /// `1006`: the details of a protocol (`show protocols all`), continuation lines included.
    pub const PROTOCOL_DETAILS: ReplyCode = ReplyCode(1006);
    /// `1007`: the route list of `show route` (table heading and routes).
    pub const ROUTE_LIST: ReplyCode = ReplyCode(1007);
    /// `1020`: the session table of `show bfd sessions`.
    pub const BFD_SESSIONS: ReplyCode = ReplyCode(1020);
    /// `2002`: the heading of the `show protocols` table.
    pub const PROTOCOL_HEADING: ReplyCode = ReplyCode(2002);
    /// `8001`: `show route` for a network the table does not have.
    pub const NETWORK_NOT_FOUND: ReplyCode = ReplyCode(8001);
    /// `8003`: a quoted protocol pattern matched no protocol.
    pub const NO_PROTOCOLS_MATCH: ReplyCode = ReplyCode(8003);

    /// Builds a code from its numeric value; `None` above 9999.
    pub fn new(value: u16) -> Option<ReplyCode> {
        (value <= 9999).then_some(ReplyCode(value))
    }

    /// The numeric value, e.g. 9 for `0009`.
    pub fn value(self) -> u16 {
        self.0
    }

    /// What kind of line this is, from the code's first digit (BIRD's `doc/reply_codes`).
    pub fn class(self) -> CodeClass {
        match self.0 / 1000 {
            0 => CodeClass::Success,
            1 => CodeClass::TableEntry,
            2 => CodeClass::TableHeading,
            8 => CodeClass::RuntimeError,
            9 => CodeClass::ParseError,
            // `self.0 <= 9999`, so the first digit fits in a u8.
            other => CodeClass::Unknown(u8::try_from(other).unwrap_or(u8::MAX)),
        }
    }
}

impl fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.0)
    }
}

/// The class of a reply code, by its first digit. Decisions are made on this, never on message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodeClass {
    /// `0xxx`: the action completed.
    Success,
    /// `1xxx`: a table entry (data row).
    TableEntry,
    /// `2xxx`: a table heading.
    TableHeading,
    /// `8xxx`: a run-time error (e.g. `8003 No protocols match`).
    RuntimeError,
    /// `9xxx`: a parse error (e.g. `9001 syntax error`).
    ParseError,
    /// A first digit BIRD 2 does not use (3–7); carries the digit.
    Unknown(u8),
}

impl CodeClass {
    /// Whether lines of this class mean the command failed (or was answered in a way we do not know).
    pub fn is_error(self) -> bool {
        !matches!(
            self,
            CodeClass::Success | CodeClass::TableEntry | CodeClass::TableHeading
        )
    }
}

/// How a line relates to the reply it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineKind {
    /// `DDDD text`: the last line of the reply.
    Last,
    /// `DDDD-text`: more lines follow.
    More,
    /// ` text`: continues the previous numbered line (same code); more lines follow.
    Continuation,
    /// `+text`: a spontaneous printout, outside any reply.
    Spontaneous,
}

/// One line as it appears on the wire, before continuation lines are given their code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLine {
    /// The 4-digit code; `None` for continuation and spontaneous lines.
    pub code: Option<ReplyCode>,
    /// How the line relates to its reply.
    pub kind: LineKind,
    /// The text after the code and separator (or after the leading space / `+`), newline removed.
    /// Invalid UTF-8 is replaced (U+FFFD): the text is for humans and never drives decisions.
    pub text: String,
}

/// One line of a complete reply, with continuation lines carrying the code they continue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyLine {
    /// The line's code (for a continuation line, the code of the numbered line it continues).
    pub code: ReplyCode,
    /// Last, more or continuation (never spontaneous: those are not part of a reply).
    pub kind: LineKind,
    /// The line's text, without code, separator or newline.
    pub text: String,
}

/// A complete reply to one command: every line up to and including the first `DDDD ` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    lines: Vec<ReplyLine>,
}

impl Reply {
    /// All lines, in order; never empty, and the last one has kind [`LineKind::Last`].
    pub fn lines(&self) -> &[ReplyLine] {
        &self.lines
    }

    /// The reply's last line (the `DDDD ` line that ended it).
    pub fn last(&self) -> &ReplyLine {
        // Invariant: a Reply is only built by `ReplyAssembler` with at least its final line.
        &self.lines[self.lines.len() - 1]
    }

    /// The first line whose code class means failure (8xxx, 9xxx, unknown classes), if any.
    pub fn first_error(&self) -> Option<&ReplyLine> {
        self.lines.iter().find(|l| l.code.class().is_error())
    }

    /// Lines carrying `code` (continuation lines included), e.g. every `1002` protocol row.
    pub fn lines_with_code(&self, code: ReplyCode) -> impl Iterator<Item = &ReplyLine> {
        self.lines.iter().filter(move |l| l.code == code)
    }

    /// Whether any line carries `code`.
    pub fn has_code(&self, code: ReplyCode) -> bool {
        self.lines.iter().any(|l| l.code == code)
    }
}

impl fmt::Display for Reply {
    /// The reply in BIRD's wire format (continuations shown as such), for error messages and logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in self.lines.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            match line.kind {
                LineKind::Last => write!(f, "{} {}", line.code, line.text)?,
                LineKind::More => write!(f, "{}-{}", line.code, line.text)?,
                LineKind::Continuation | LineKind::Spontaneous => write!(f, " {}", line.text)?,
            }
        }
        Ok(())
    }
}

/// Why bytes could not be read as BIRD reply lines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// A line matches none of BIRD's line shapes (`DDDD-`, `DDDD `, ` `, `+`).
    #[error(
        "malformed reply line {line:?}: expected 4 digits then '-' or ' ', or a leading ' ' or '+'"
    )]
    MalformedLine {
        /// The offending line (lossily decoded, truncated to 80 characters).
        line: String,
    },
    /// A continuation line came before any numbered line, so it has no code to continue.
    #[error("continuation line {line:?} before any numbered line")]
    OrphanContinuation {
        /// The offending line (lossily decoded, truncated to 80 characters).
        line: String,
    },
    /// A line longer than [`MAX_LINE_BYTES`].
    #[error("reply line longer than {max} bytes")]
    LineTooLong {
        /// The limit.
        max: usize,
    },
    /// A reply longer than [`MAX_REPLY_BYTES`].
    #[error("reply longer than {max} bytes")]
    ReplyTooLong {
        /// The limit.
        max: usize,
    },
}

fn excerpt(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).chars().take(80).collect()
}

/// Parses one line (without its trailing `\n`; a trailing `\r` is kept as text).
pub fn parse_line(line: &[u8]) -> Result<RawLine, ReplyError> {
    if line.len() > MAX_LINE_BYTES {
        return Err(ReplyError::LineTooLong {
            max: MAX_LINE_BYTES,
        });
    }
    match line.first() {
        Some(b' ') => Ok(RawLine {
            code: None,
            kind: LineKind::Continuation,
            text: String::from_utf8_lossy(&line[1..]).into_owned(),
        }),
        Some(b'+') => Ok(RawLine {
            code: None,
            kind: LineKind::Spontaneous,
            text: String::from_utf8_lossy(&line[1..]).into_owned(),
        }),
        _ => {
            let malformed = || ReplyError::MalformedLine {
                line: excerpt(line),
            };
            let (head, rest) = line.split_at_checked(4).ok_or_else(malformed)?;
            if !head.iter().all(u8::is_ascii_digit) {
                return Err(malformed());
            }
            let value = head
                .iter()
                .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
            let code = ReplyCode::new(value).ok_or_else(malformed)?;
            let kind = match rest.first() {
                Some(b' ') => LineKind::Last,
                Some(b'-') => LineKind::More,
                _ => return Err(malformed()),
            };
            Ok(RawLine {
                code: Some(code),
                kind,
                text: String::from_utf8_lossy(&rest[1..]).into_owned(),
            })
        }
    }
}

/// Builds replies line by line: feed it lines as they arrive, it hands back the reply once the final
/// `DDDD ` line is in. Used by the socket client and by [`parse_reply`].
#[derive(Debug, Default)]
pub struct ReplyAssembler {
    lines: Vec<ReplyLine>,
    bytes: usize,
    last_code: Option<ReplyCode>,
}

impl ReplyAssembler {
    /// An assembler with no lines yet.
    pub fn new() -> ReplyAssembler {
        ReplyAssembler::default()
    }

    /// Whether some lines of an unfinished reply have been fed.
    pub fn is_partial(&self) -> bool {
        !self.lines.is_empty()
    }

    /// Feeds one line (without `\n`). Returns the complete reply when `line` ended it; spontaneous (`+`)
    /// lines are skipped. After an error the assembler must not be reused for this stream.
    pub fn push_line(&mut self, line: &[u8]) -> Result<Option<Reply>, ReplyError> {
        self.bytes = self.bytes.saturating_add(line.len() + 1);
        if self.bytes > MAX_REPLY_BYTES {
            return Err(ReplyError::ReplyTooLong {
                max: MAX_REPLY_BYTES,
            });
        }
        let raw = parse_line(line)?;
        let code = match (raw.kind, raw.code) {
            (LineKind::Spontaneous, _) => return Ok(None),
            (_, Some(code)) => code,
            (_, None) => self
                .last_code
                .ok_or_else(|| ReplyError::OrphanContinuation {
                    line: excerpt(line),
                })?,
        };
        self.last_code = Some(code);
        self.lines.push(ReplyLine {
            code,
            kind: raw.kind,
            text: raw.text,
        });
        if raw.kind == LineKind::Last {
            let lines = std::mem::take(&mut self.lines);
            self.bytes = 0;
            self.last_code = None;
            return Ok(Some(Reply { lines }));
        }
        Ok(None)
    }
}

/// Parses the first complete reply at the start of `buf`.
///
/// Returns `Ok(None)` when `buf` does not yet hold a complete reply (read more and call again), or
/// `Ok(Some((reply, consumed)))` where `consumed` is the number of bytes the reply took (the rest belongs
/// to whatever follows). Never panics, whatever the bytes.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, ReplyError> {
    let mut assembler = ReplyAssembler::new();
    let mut start = 0;
    while let Some(pos) = buf[start..].iter().position(|&b| b == b'\n') {
        let line = &buf[start..start + pos];
        start += pos + 1;
        if let Some(reply) = assembler.push_line(line)? {
            return Ok(Some((reply, start)));
        }
    }
    if buf.len() - start > MAX_LINE_BYTES {
        return Err(ReplyError::LineTooLong {
            max: MAX_LINE_BYTES,
        });
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_recorded_show_protocols() {
        let bytes = b"2002-Name       Proto      Table      State  Since         Info\n\
1002-device1    Device     ---        up     15:49:31.284  \n \
anycast_dns Static     master4    up     15:50:22.941  \n \
upstream   BGP        ---        up     15:49:35.300  Established   \n0000 \n";
        let (reply, used) = parse_reply(bytes).expect("valid").expect("complete");
        assert_eq!(used, bytes.len());
        assert_eq!(reply.lines().len(), 5);
        let rows: Vec<_> = reply.lines_with_code(ReplyCode::PROTOCOL_ROW).collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1].kind, LineKind::Continuation);
        assert!(rows[1].text.starts_with("anycast_dns Static"));
        assert_eq!(reply.last().code, ReplyCode::OK);
        assert_eq!(reply.last().text, "");
        assert!(reply.first_error().is_none());
    }

    #[test]
    fn errors_are_classified_by_code() {
        let (reply, _) = parse_reply(b"9001 syntax error, unexpected CF_SYM_UNDEFINED\n")
            .expect("valid")
            .expect("complete");
        let err = reply.first_error().expect("an error line");
        assert_eq!(err.code.value(), 9001);
        assert_eq!(err.code.class(), CodeClass::ParseError);
        let (reply, _) = parse_reply(b"8003 No protocols match\n")
            .expect("valid")
            .expect("complete");
        assert_eq!(reply.last().code, ReplyCode::NO_PROTOCOLS_MATCH);
        assert_eq!(reply.last().code.class(), CodeClass::RuntimeError);
        assert_eq!(
            ReplyCode::new(4321).map(ReplyCode::class),
            Some(CodeClass::Unknown(4))
        );
        assert!(CodeClass::Unknown(4).is_error());
    }

    #[test]
    fn reply_ends_at_first_final_line_and_reports_consumed_bytes() {
        let bytes = b"0009-p: disabled\n0000 \n0008-p: already disabled\n0000 \n";
        let (first, used) = parse_reply(bytes).expect("valid").expect("complete");
        assert!(first.has_code(ReplyCode::DISABLED));
        let (second, used2) = parse_reply(&bytes[used..])
            .expect("valid")
            .expect("complete");
        assert!(second.has_code(ReplyCode::ALREADY_DISABLED));
        assert_eq!(used + used2, bytes.len());
    }

    #[test]
    fn incomplete_input_asks_for_more() {
        assert_eq!(parse_reply(b""), Ok(None));
        assert_eq!(parse_reply(b"0009-p: disabled\n"), Ok(None));
        assert_eq!(parse_reply(b"0009-p: disabled\n0000 "), Ok(None));
    }

    #[test]
    fn spontaneous_lines_are_skipped() {
        let (reply, _) = parse_reply(b"+log line\n0013 Daemon is up and running\n")
            .expect("valid")
            .expect("complete");
        assert_eq!(reply.lines().len(), 1);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(matches!(
            parse_reply(b"HTTP/1.1 200 OK\n"),
            Err(ReplyError::MalformedLine { .. })
        ));
        assert!(matches!(
            parse_reply(b"12\n"),
            Err(ReplyError::MalformedLine { .. })
        ));
        assert!(matches!(
            parse_reply(b"0001Xhello\n"),
            Err(ReplyError::MalformedLine { .. })
        ));
        assert!(matches!(
            parse_reply(b" orphan\n0000 \n"),
            Err(ReplyError::OrphanContinuation { .. })
        ));
        let long = vec![b'0'; MAX_LINE_BYTES + 2];
        assert_eq!(
            parse_reply(&long),
            Err(ReplyError::LineTooLong {
                max: MAX_LINE_BYTES
            })
        );
    }

    #[test]
    fn display_round_trips_the_wire_format() {
        let bytes = b"1000-BIRD 2.0.12\n1011-Router ID is 192.0.2.2\n Hostname is vm\n0013 Daemon is up and running\n";
        let (reply, _) = parse_reply(bytes).expect("valid").expect("complete");
        assert_eq!(format!("{reply}\n").as_bytes(), bytes);
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse_reply(&bytes);
            for line in bytes.split(|&b| b == b'\n') {
                let _ = parse_line(line);
            }
        }

        #[test]
        fn never_panics_on_reply_shaped_bytes(
            lines in proptest::collection::vec("([0-9]{0,5}[- +]?|[ +])[ -~\\x80-\\xff]{0,20}", 0..20)
        ) {
            let joined = lines.join("\n");
            if let Ok(Some((reply, used))) = parse_reply(joined.as_bytes()) {
                prop_assert!(used <= joined.len());
                prop_assert_eq!(reply.last().kind, LineKind::Last);
                prop_assert!(reply.lines()[..reply.lines().len() - 1].iter().all(|l| l.kind != LineKind::Last));
            }
        }

        #[test]
        fn well_formed_replies_parse_back(
            body in proptest::collection::vec((0u16..=9999, "[ -~]{0,30}", any::<bool>()), 0..10),
            last in (0u16..=9999, "[ -~]{0,30}"),
        ) {
            let mut wire = Vec::new();
            for (code, text, continuation) in &body {
                if *continuation && !wire.is_empty() {
                    wire.extend_from_slice(format!(" {text}\n").as_bytes());
                } else {
                    wire.extend_from_slice(format!("{code:04}-{text}\n").as_bytes());
                }
            }
            wire.extend_from_slice(format!("{:04} {}\n", last.0, last.1).as_bytes());
            let (reply, used) = parse_reply(&wire).expect("valid").expect("complete");
            prop_assert_eq!(used, wire.len());
            prop_assert_eq!(reply.lines().len(), body.len() + 1);
            prop_assert_eq!(reply.last().code.value(), last.0);
            prop_assert_eq!(&reply.last().text, &last.1);
        }
    }
}
