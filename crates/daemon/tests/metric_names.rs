//! Every metric name the README, the Prometheus rules (and their unit tests) and the Grafana dashboard
//! mention must be a family nsbeacon registers: a renamed metric otherwise leaves a silent alert, an
//! empty panel or a wrong table behind.

use std::path::{Path, PathBuf};

use nsbeacon::metrics::Metrics;

/// Names that look like metrics but are not: the Ansible variable for `[http] listen`.
const NOT_METRICS: &[&str] = &["nsbeacon_http_listen"];

/// Suffixes Prometheus adds to a histogram's series.
const HISTOGRAM_SUFFIXES: &[&str] = &["_bucket", "_sum", "_count"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `nsbeacon_[a-z_]+` name in `text`, except parts of recording-rule names (`level:metric:ops`,
/// whose `:` marks them as Prometheus' own series) and the bare prefix.
fn names_in(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(at) = text.get(from..).and_then(|t| t.find("nsbeacon_")) {
        let start = from + at;
        let mut end = start + "nsbeacon_".len();
        while bytes
            .get(end)
            .is_some_and(|b| b.is_ascii_lowercase() || *b == b'_')
        {
            end += 1;
        }
        from = end;
        let before = start.checked_sub(1).and_then(|i| bytes.get(i)).copied();
        let after = bytes.get(end).copied();
        let part_of_word = before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
        let recorded = before == Some(b':') || after == Some(b':');
        let name = &text[start..end];
        if part_of_word || recorded || name == "nsbeacon_" || NOT_METRICS.contains(&name) {
            continue;
        }
        names.push(name.trim_end_matches('_').to_owned());
    }
    names
}

fn files() -> Vec<PathBuf> {
    let root = repo();
    let mut files = vec![
        root.join("README.md"),
        root.join("deploy/prometheus/nsbeacon.rules.yml"),
        root.join("deploy/grafana/nsbeacon.json"),
    ];
    let mut tests: Vec<PathBuf> = std::fs::read_dir(root.join("deploy/prometheus/tests"))
        .expect("deploy/prometheus/tests")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    tests.sort();
    files.extend(tests);
    files
}

#[test]
fn every_metric_named_in_docs_rules_and_dashboard_is_exported() {
    let metrics = Metrics::new().expect("metrics");
    let families = metrics.family_names();
    let known = |name: &str| {
        families.iter().any(|f| f == name)
            || HISTOGRAM_SUFFIXES.iter().any(|suffix| {
                name.strip_suffix(suffix)
                    .is_some_and(|base| families.iter().any(|f| f == base))
            })
    };
    let mut unknown = Vec::new();
    for file in files() {
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let names = names_in(&text);
        assert!(
            !names.is_empty(),
            "{} names no metric: is the extraction broken?",
            file.display()
        );
        for name in names {
            if !known(&name) {
                unknown.push(format!("{}: {name}", file.display()));
            }
        }
    }
    unknown.sort();
    unknown.dedup();
    assert!(
        unknown.is_empty(),
        "metrics named but not exported (exported: {families:?}):\n{}",
        unknown.join("\n")
    );
}

#[test]
fn every_exported_family_is_in_the_readme_table() {
    let metrics = Metrics::new().expect("metrics");
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README");
    let named = names_in(&readme);
    let missing: Vec<_> = metrics
        .family_names()
        .iter()
        .filter(|f| !named.contains(f))
        .collect();
    assert!(
        missing.is_empty(),
        "exported but not in the README: {missing:?}"
    );
}

#[test]
fn vector_families_without_series_are_still_known_and_the_old_name_is_not() {
    let metrics = Metrics::new().expect("metrics");
    let families = metrics.family_names();
    // No backend call has failed yet, so a scrape has no such series; the family is still registered.
    assert!(!metrics.render().contains("nsbeacon_backend_errors_total"));
    assert!(
        families
            .iter()
            .any(|f| f == "nsbeacon_backend_errors_total")
    );
    assert!(
        !families
            .iter()
            .any(|f| f == "nsbeacon_backend_operation_errors_total")
    );
    assert_eq!(
        names_in("`nsbeacon_a_b` x:nsbeacon_c:sum nsbeacon_d_bucket{le=\"1\"} mynsbeacon_e"),
        ["nsbeacon_a_b", "nsbeacon_d_bucket"]
    );
}
