//! Stage 1 errors in operator terms: a TOML syntax error, an unknown key or a value of the wrong type
//! becomes a message with the key path and a hint, like the validation issues of stage 2
//! (`service[0].rise: expected a whole number, got the string "three" (hint: ...)`).
//!
//! serde and the TOML parser only describe the problem in their own words (`invalid type: string
//! "three", expected i64`). Their message formats are stable (serde's `invalid type: X, expected Y` and
//! `unknown field `x`, expected one of ...`); anything that does not match them is passed on as it is,
//! so a format change costs a hint, never the error itself.

use super::locate::{Located, locate_offset};

/// Keys whose values are durations written as strings with a unit (`"2s"`, `"500ms"`).
const DURATION_KEYS: [&str; 10] = [
    "interval",
    "confirm_interval",
    "confirm_timeout",
    "timeout",
    "jitter",
    "slow_after",
    "half_life",
    "max_hold_down",
    "graceful_drain",
    "reconcile_interval",
];

/// Keys that hold lists of tables, written as repeated `[[header]]` sections.
const TABLE_LIST_KEYS: [&str; 2] = ["service", "check"];

/// Where to look up every key and its type.
const REFERENCE_HINT: &str = "deploy/nsbeacon.example.toml (installed as \
     /usr/share/doc/nsbeacon/nsbeacon.example.toml) shows every key with its type";

/// A stage 1 error, explained.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Explained {
    /// Key path of the problem, when it could be found.
    pub path: Option<String>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

/// Explains the error `message` that the TOML parser or serde reported at byte `offset` of `text`.
pub(super) fn explain(text: &str, offset: Option<usize>, message: &str) -> Explained {
    let located = offset.and_then(|offset| locate_offset(text, offset));
    let (message, hint) = if let Some(rest) = message.strip_prefix("invalid type: ") {
        wrong_type(rest, located.as_ref())
    } else if let Some(rest) = message.strip_prefix("unknown field `") {
        unknown_key(rest, located.as_ref())
    } else {
        (message.to_owned(), syntax_hint(message, located.as_ref()))
    };
    Explained {
        path: located.map(|l| l.path),
        message,
        hint,
    }
}

/// The key a path ends in (`service[0].announce[1]` -> `announce`).
fn last_key(path: &str) -> &str {
    let last = path.rsplit('.').next().unwrap_or(path);
    last.split('[').next().unwrap_or(last)
}

/// `key = ` when the path ends in a key, nothing for an array element: the start of a hint's example.
fn assignment(path: &str) -> String {
    if path.ends_with(']') {
        String::new()
    } else {
        format!("{} = ", last_key(path))
    }
}

/// The header that opens the table at `path` (`service[0].check` -> `service.check`).
fn header(path: &str) -> String {
    path.split('.')
        .map(|part| part.split('[').next().unwrap_or(part))
        .collect::<Vec<_>>()
        .join(".")
}

/// serde's `invalid type: <got>, expected <want>` (the prefix already removed).
fn wrong_type(rest: &str, located: Option<&Located>) -> (String, String) {
    let Some((got_serde, want_serde)) = rest.rsplit_once(", expected ") else {
        return (format!("invalid type: {rest}"), REFERENCE_HINT.to_owned());
    };
    let got = located
        .and_then(|l| l.value.clone())
        .unwrap_or_else(|| got_serde.to_owned());
    let path = located.map_or("", |l| l.path.as_str());
    let key = last_key(path);
    let set = assignment(path);
    let (want, hint) = match want_serde {
        "i64" | "u64" | "i32" | "u32" | "u16" | "usize" => {
            let unquoted = got
                .strip_prefix("the string \"")
                .and_then(|s| s.strip_suffix('"'))
                .and_then(|s| s.trim().parse::<i64>().ok());
            let hint = match unquoted {
                Some(n) => format!("remove the quotes: {set}{n}"),
                None if got.starts_with("the number ") => {
                    format!("write a whole number, e.g. {set}3")
                }
                None => format!("write a whole number without quotes, e.g. {set}3"),
            };
            ("a whole number", hint)
        }
        "a string" => {
            let hint = if DURATION_KEYS.contains(&key) {
                let example = got
                    .strip_prefix("the number ")
                    .filter(|n| n.parse::<u64>().is_ok())
                    .map_or_else(|| "2s".to_owned(), |n| format!("{n}s"));
                format!(
                    "durations are strings with a unit: {set}\"{example}\" (or \"500ms\", \"1m\")"
                )
            } else if let Some(n) = got.strip_prefix("the number ") {
                format!("put the value in double quotes: {set}\"{n}\"")
            } else {
                format!("put the value in double quotes: {set}\"...\"")
            };
            ("a string", hint)
        }
        "a boolean" => (
            "true or false",
            format!("write {set}true or {set}false, without quotes"),
        ),
        "a sequence" if got == "a table" || TABLE_LIST_KEYS.contains(&key) => (
            "a list of tables",
            format!(
                "write [[{}]] with double brackets: each [[{0}]] header adds one entry",
                header(path)
            ),
        ),
        "a sequence" => (
            "a list",
            format!("write the values in brackets, e.g. {set}[\"a\", \"b\"]"),
        ),
        want if want.starts_with("struct ") || want == "a map" => (
            "a table",
            format!(
                "`{key}` is a table: write its keys under a [{}] header",
                header(path)
            ),
        ),
        want => {
            return (
                format!("expected {want}, got {got}"),
                REFERENCE_HINT.to_owned(),
            );
        }
    };
    (format!("expected {want}, got {got}"), hint)
}

/// serde's ``unknown field `x`, expected one of `a`, `b` `` (the prefix up to the first backtick
/// already removed).
fn unknown_key(rest: &str, located: Option<&Located>) -> (String, String) {
    let (serde_key, expected) = rest.split_once('`').unwrap_or((rest, ""));
    let key = located.map_or(serde_key, |l| last_key(&l.path));
    let allowed: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let message = if allowed.is_empty() {
        format!("unknown key `{key}`: this table takes no keys")
    } else {
        format!(
            "unknown key `{key}`; the keys allowed here are {}",
            allowed.join(", ")
        )
    };
    let misplaced = located.and_then(|l| misplaced_hint(&l.path, key));
    let hint = match (misplaced, closest(key, &allowed)) {
        (Some(hint), _) => hint,
        (None, Some(near)) => format!("did you mean `{near}`?"),
        (None, None) => format!("remove it or fix its spelling; {REFERENCE_HINT}"),
    };
    (message, hint)
}

/// The keys serde accepts for the table type `T`, read from the error it gives for a key no table has.
fn keys_of<T: serde::de::DeserializeOwned>() -> Vec<String> {
    let Err(error) = toml::from_str::<T>("\"\" = 0") else {
        return Vec::new();
    };
    error
        .message()
        .split('`')
        .skip(3)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// TOML's classic trap: every key below a `[header]` belongs to that table, so a service key written
/// after `[[service.check]]` (or a top-level key after any header) lands in the wrong table. When the
/// unknown key is valid one level up, say so.
fn misplaced_hint(path: &str, key: &str) -> Option<String> {
    let table = path.rsplit_once('.').map_or("", |(table, _)| table);
    let in_check = table.starts_with("service[") && table.contains(".check[");
    if in_check && keys_of::<super::raw::RawService>().iter().any(|k| k == key) {
        return Some(format!(
            "`{key}` is a key of [[service]], but below a [[service.check]] header it belongs to the \
             check: move it above the service's first [[service.check]]"
        ));
    }
    if !table.is_empty() && keys_of::<super::raw::RawConfig>().iter().any(|k| k == key) {
        return Some(format!(
            "`{key}` is a top-level key, but below the [{}] header it belongs to that table: move it \
             above the first [table] header of the file",
            header(table)
        ));
    }
    None
}

/// The allowed key nearest to a misspelt one, if it is near enough to be a typo: at most one edit for
/// short keys, two for keys of five characters or more (a swap of two letters counts as one edit).
fn closest<'a>(key: &str, allowed: &[&'a str]) -> Option<&'a str> {
    let limit = if key.chars().count() >= 5 { 2 } else { 1 };
    allowed
        .iter()
        .map(|candidate| (edit_distance(key, candidate), *candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // rows[i][j]: distance between a[..i] and b[..j].
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

/// A hint for an error of the TOML parser itself (the file is not valid TOML).
fn syntax_hint(message: &str, located: Option<&Located>) -> String {
    let set = located.map_or_else(String::new, |l| assignment(&l.path));
    if message.contains("must be quoted") {
        format!("put string values in double quotes, e.g. {set}\"...\"")
    } else if message.contains("duplicate key") {
        "each key may be set once per table: remove one of them. A repeated [[table]] header (double \
         brackets) adds another entry to a list"
            .to_owned()
    } else if message.contains("string") {
        "close the string with a double quote on the same line (use \"\"\" for multi-line strings)"
            .to_owned()
    } else {
        format!("this is not valid TOML (see https://toml.io); {REFERENCE_HINT}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explain_at(text: &str, needle: &str, message: &str) -> Explained {
        explain(text, text.find(needle), message)
    }

    #[test]
    fn a_string_for_a_number_gets_path_and_hint() {
        let text = "[[service]]\nname = \"a\"\nrise = \"three\"\nfall = \"5\"\n";
        let e = explain_at(
            text,
            "\"three\"",
            "invalid type: string \"three\", expected i64",
        );
        assert_eq!(e.path.as_deref(), Some("service[0].rise"));
        assert_eq!(
            e.message,
            "expected a whole number, got the string \"three\""
        );
        assert_eq!(e.hint, "write a whole number without quotes, e.g. rise = 3");
        let e = explain_at(text, "\"5\"", "invalid type: string \"5\", expected i64");
        assert_eq!(e.path.as_deref(), Some("service[0].fall"));
        assert_eq!(e.hint, "remove the quotes: fall = 5");
    }

    #[test]
    fn a_number_for_a_string_or_duration_gets_quotes_and_a_unit() {
        let text = "[backend]\nsocket = 5\ntimeout = 2\n";
        let e = explain_at(text, "5", "invalid type: integer `5`, expected a string");
        assert_eq!(e.path.as_deref(), Some("backend.socket"));
        assert_eq!(e.message, "expected a string, got the number 5");
        assert_eq!(e.hint, "put the value in double quotes: socket = \"5\"");
        let e = explain_at(text, "2", "invalid type: integer `2`, expected a string");
        assert_eq!(e.path.as_deref(), Some("backend.timeout"));
        assert!(e.hint.contains("timeout = \"2s\""), "{}", e.hint);
    }

    #[test]
    fn a_single_table_for_a_list_of_tables_suggests_double_brackets() {
        let text = "[[service]]\nname = \"a\"\n\n[service.check]\nname = \"c\"\n";
        let e = explain_at(
            text,
            "[service.check]",
            "invalid type: map, expected a sequence",
        );
        assert_eq!(e.path.as_deref(), Some("service[0].check"));
        assert_eq!(e.message, "expected a list of tables, got a table");
        assert!(e.hint.starts_with("write [[service.check]]"), "{}", e.hint);
        let text = "service = \"dns\"\n";
        let e = explain_at(
            text,
            "\"dns\"",
            "invalid type: string \"dns\", expected a sequence",
        );
        assert_eq!(e.path.as_deref(), Some("service"));
        assert_eq!(
            e.message,
            "expected a list of tables, got the string \"dns\""
        );
        assert!(e.hint.starts_with("write [[service]]"), "{}", e.hint);
    }

    #[test]
    fn unknown_keys_list_the_allowed_ones_and_suggest_the_nearest() {
        let text = "[backend]\nkind = \"bird\"\nsokcet = \"/x\"\n";
        let e = explain_at(
            text,
            "sokcet",
            "unknown field `sokcet`, expected one of `kind`, `socket`, `vtysh`",
        );
        assert_eq!(e.path.as_deref(), Some("backend.sokcet"));
        assert_eq!(
            e.message,
            "unknown key `sokcet`; the keys allowed here are kind, socket, vtysh"
        );
        assert_eq!(e.hint, "did you mean `socket`?");
        let e = explain_at(
            text,
            "sokcet",
            "unknown field `sokcet`, expected `kind` or `vrf`",
        );
        assert!(
            e.hint.starts_with("remove it or fix its spelling"),
            "{}",
            e.hint
        );
    }

    #[test]
    fn keys_written_below_the_wrong_header_are_explained() {
        let text = "state_dir = \"/x\"\n[[service]]\nname = \"a\"\n\n[[service.check]]\nname = \"c\"\nrise = 2\n\n[http]\nlisten = \"127.0.0.1:1\"\non_shutdown = \"keep\"\n";
        let e = explain_at(
            text,
            "rise",
            "unknown field `rise`, expected one of `name`, `type`",
        );
        assert_eq!(e.path.as_deref(), Some("service[0].check[0].rise"));
        assert!(
            e.hint.starts_with("`rise` is a key of [[service]]"),
            "{}",
            e.hint
        );
        let e = explain_at(
            text,
            "on_shutdown",
            "unknown field `on_shutdown`, expected `listen`",
        );
        assert_eq!(e.path.as_deref(), Some("http.on_shutdown"));
        assert!(
            e.hint
                .starts_with("`on_shutdown` is a top-level key, but below the [http] header"),
            "{}",
            e.hint
        );
        assert!(keys_of::<super::super::raw::RawService>().contains(&"rise".to_owned()));
    }

    #[test]
    fn typo_distance_counts_swaps_as_one_edit() {
        assert_eq!(edit_distance("sokcet", "socket"), 1);
        assert_eq!(edit_distance("timout", "timeout"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(closest("qnme", &["name", "qname", "qtype"]), Some("qname"));
        assert_eq!(closest("xyz", &["name", "qname"]), None);
    }

    #[test]
    fn syntax_errors_keep_the_parser_message_and_gain_path_and_hint() {
        let text = "[backend]\nkind = \"bird\"\nsocket = /run/bird.ctl\n";
        let e = explain_at(
            text,
            "/run",
            "string values must be quoted, expected literal string",
        );
        assert_eq!(e.path.as_deref(), Some("backend.socket"));
        assert_eq!(
            e.message,
            "string values must be quoted, expected literal string"
        );
        assert_eq!(
            e.hint,
            "put string values in double quotes, e.g. socket = \"...\""
        );
    }

    #[test]
    fn unknown_formats_pass_through() {
        let e = explain("", None, "something new");
        assert_eq!(e.path, None);
        assert_eq!(e.message, "something new");
        assert!(e.hint.contains("toml.io"), "{}", e.hint);
    }
}
