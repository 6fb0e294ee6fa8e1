//! Finds the line of a key path (`service[1].check[0].timeout`) in the TOML text, so that validation
//! issues can say where to look as well as what is wrong.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

use super::{ConfigIssue, line_column};

/// One step of a key path.
#[derive(Debug, PartialEq, Eq)]
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// Splits `service[1].check[0].timeout` into keys and indices. `None` for a malformed path.
fn segments(path: &str) -> Option<Vec<Segment<'_>>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if key.is_empty() {
            return None;
        }
        out.push(Segment::Key(key));
        while let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            out.push(Segment::Index(after[..end].parse().ok()?));
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            return None;
        }
    }
    Some(out)
}

/// The span of the deepest element of `path` present in the document.
fn span_of(root: &DeTable<'_>, path: &str) -> Option<Range<usize>> {
    let segments = segments(path)?;
    let mut table: Option<&DeTable<'_>> = Some(root);
    let mut value: Option<&DeValue<'_>> = None;
    let mut best = None;
    for segment in segments {
        let next = match (segment, table, value) {
            (Segment::Key(key), Some(t), _) => t
                .iter()
                .find(|(k, _)| k.get_ref().as_ref() == key)
                .map(|(_, v)| v),
            (Segment::Index(i), _, Some(DeValue::Array(items))) => items.get(i),
            _ => None,
        };
        let Some(next) = next else { break };
        best = Some(next.span());
        value = Some(next.get_ref());
        table = match next.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => None,
        };
    }
    best
}

/// One key or array element of the document, with where it is written.
struct Node {
    /// Key path, e.g. `service[0].check[1].qname`.
    path: String,
    /// Span of the key itself (none for array elements).
    key: Option<Range<usize>>,
    /// Span of the value (for a table opened by a header: the header).
    value: Range<usize>,
    /// Whether the value is a table opened by a `[header]` or `[[header]]` line.
    header_table: bool,
    /// What the value is, for messages (`the string "three"`, `a table`, ...).
    description: String,
}

/// Every key and array element of `table`, depth first.
fn collect(text: &str, table: &DeTable<'_>, prefix: &str, out: &mut Vec<Node>) {
    for (key, value) in table.iter() {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        push_value(text, path, Some(key.span()), value, out);
    }
}

fn push_value(
    text: &str,
    path: String,
    key: Option<Range<usize>>,
    value: &toml::Spanned<DeValue<'_>>,
    out: &mut Vec<Node>,
) {
    let span = value.span();
    let header_table = matches!(value.get_ref(), DeValue::Table(_))
        && text.get(span.clone()).is_some_and(|s| s.starts_with('['));
    out.push(Node {
        path: path.clone(),
        key,
        value: span.clone(),
        header_table,
        description: describe(text, value.get_ref(), span),
    });
    match value.get_ref() {
        DeValue::Table(t) => collect(text, t, &path, out),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                push_value(text, format!("{path}[{i}]"), None, item, out);
            }
        }
        _ => {}
    }
}

/// `the string "three"`, `the number 5`, `a list`, ... as an operator would name the value.
fn describe(text: &str, value: &DeValue<'_>, span: Range<usize>) -> String {
    let source = text.get(span).unwrap_or("").trim();
    match value {
        DeValue::String(s) => format!("the string {:?}", s.as_ref()),
        DeValue::Integer(_) | DeValue::Float(_) => format!("the number {source}"),
        DeValue::Boolean(b) => format!("the boolean {b}"),
        DeValue::Datetime(_) => format!("the date/time {source}"),
        DeValue::Array(_) => "a list".to_owned(),
        DeValue::Table(_) => "a table".to_owned(),
    }
}

/// What the document holds at a byte offset (where the TOML parser or serde reported an error).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Located {
    /// Key path of the key or value at the offset, e.g. `service[0].rise`.
    pub path: String,
    /// The value there (`the string "three"`), when the offset is on a value the parser could read.
    pub value: Option<String>,
}

/// The key path at byte `offset` of `text`, read with the TOML parser's error recovery so that it also
/// works for syntax errors. The innermost key or value whose span holds the offset wins; failing that
/// (e.g. a duplicate key, which the parser leaves out of the tree), the bare key written at the offset
/// inside the table whose header comes last before it.
pub(super) fn locate_offset(text: &str, offset: usize) -> Option<Located> {
    let (root, _errors) = DeTable::parse_recoverable(text);
    let mut nodes = Vec::new();
    collect(text, root.get_ref(), "", &mut nodes);
    let holds = |span: &Range<usize>| span.start <= offset && offset <= span.end;
    let innermost = nodes
        .iter()
        .filter_map(|node| {
            if holds(&node.value) {
                Some((node.value.len(), node, true))
            } else {
                node.key
                    .as_ref()
                    .filter(|key| holds(key))
                    .map(|key| (key.len(), node, false))
            }
        })
        .min_by_key(|(len, _, _)| *len);
    if let Some((_, node, on_value)) = innermost {
        return Some(Located {
            path: node.path.clone(),
            value: on_value.then(|| node.description.clone()),
        });
    }
    let table = nodes
        .iter()
        .filter(|node| node.header_table && node.value.start <= offset)
        .max_by_key(|node| node.value.start)
        .map(|node| node.path.as_str());
    let key: String = text
        .get(offset..)
        .unwrap_or("")
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    let path = match (table, key.is_empty()) {
        (Some(table), false) => format!("{table}.{key}"),
        (Some(table), true) => table.to_owned(),
        (None, false) => key,
        (None, true) => return None,
    };
    Some(Located { path, value: None })
}

/// Sets [`ConfigIssue::line`] of every issue whose path can be found in `text`, then sorts the issues
/// into file order.
pub(super) fn add_lines(text: &str, issues: &mut [ConfigIssue]) {
    let Ok(root) = DeTable::parse(text) else {
        return;
    };
    for issue in issues.iter_mut() {
        if let Some(span) = span_of(root.get_ref(), &issue.path) {
            issue.line = Some(line_column(text, span.start).0);
        }
    }
    // File order reads best; issues without a line (e.g. a missing [backend]) go last.
    issues.sort_by_key(|issue| issue.line.unwrap_or(usize::MAX));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_paths() {
        assert_eq!(
            segments("service[1].check[0].rcodes[2]"),
            Some(vec![
                Segment::Key("service"),
                Segment::Index(1),
                Segment::Key("check"),
                Segment::Index(0),
                Segment::Key("rcodes"),
                Segment::Index(2),
            ])
        );
        assert_eq!(
            segments("backend.kind"),
            Some(vec![Segment::Key("backend"), Segment::Key("kind")])
        );
        assert_eq!(segments("service[x]"), None);
        assert_eq!(segments("a[1]b"), None);
        assert_eq!(segments(".a"), None);
    }

    #[test]
    fn finds_keys_and_falls_back_to_the_enclosing_table() {
        let text = "[backend]\nkind = \"bird\"\n\n[[service]]\nname = \"a\"\n\n[[service]]\nname = \"b\"\nannounce = [\"x\", \"y\"]\n\n[[service.check]]\nname = \"c\"\ntimeout = \"2s\"\n";
        let root = DeTable::parse(text).expect("parse");
        let line = |path: &str| span_of(root.get_ref(), path).map(|s| line_column(text, s.start).0);
        assert_eq!(line("backend.kind"), Some(2));
        assert_eq!(line("service[1].name"), Some(8));
        assert_eq!(line("service[1].announce[1]"), Some(9));
        assert_eq!(line("service[1].check[0].timeout"), Some(13));
        let missing = line("service[1].check[0].target").expect("falls back to the check table");
        assert!((11..=13).contains(&missing), "{missing}");
        assert_eq!(line("nothing"), None);
    }

    fn path_at(text: &str, needle: &str) -> Option<Located> {
        locate_offset(text, text.find(needle).expect("needle"))
    }

    #[test]
    fn locates_keys_values_and_array_elements_at_an_offset() {
        let text = "[backend]\nkind = \"bird\"\n\n[[service]]\nname = \"a\"\n\n[[service]]\nrise = \"three\"\nannounce = [\"x\", 5]\n\n[[service.check]]\nqnme = \"c\"\n";
        assert_eq!(
            path_at(text, "\"three\""),
            Some(Located {
                path: "service[1].rise".into(),
                value: Some("the string \"three\"".into()),
            })
        );
        assert_eq!(
            path_at(text, "5]"),
            Some(Located {
                path: "service[1].announce[1]".into(),
                value: Some("the number 5".into()),
            })
        );
        assert_eq!(
            path_at(text, "qnme"),
            Some(Located {
                path: "service[1].check[0].qnme".into(),
                value: None,
            })
        );
    }

    #[test]
    fn locates_syntax_errors_and_keys_the_parser_left_out() {
        // An unquoted string: the parser recovers and still knows the key.
        let text = "[backend]\nkind = \"bird\"\nsocket = /run/bird.ctl\n";
        let located = path_at(text, "/run").expect("located");
        assert_eq!(located.path, "backend.socket");
        // A duplicate key is not in the tree: the key at the offset inside the last table header.
        let text = "[[service]]\nrise = 3\n\n[[service]]\nrise = 3\nrise = 4\n";
        let offset = text.rfind("rise").expect("second rise");
        assert_eq!(
            locate_offset(text, offset).map(|l| l.path),
            Some("service[1].rise".to_owned())
        );
    }
}
