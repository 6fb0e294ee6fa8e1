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
}
