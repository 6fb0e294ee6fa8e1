//! Order statistics over samples, and the markdown tables every part prints and writes.

use std::fmt::Write as _;
use std::time::Duration;

/// Order statistics of one series of samples (nearest-rank quantiles), in the samples' own unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Smallest sample.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile (nearest rank: with 20 samples it is the 19th smallest).
    pub p95: f64,
    /// Largest sample.
    pub max: f64,
}

impl Summary {
    /// Summarises `samples`; `None` when there are none.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let rank = |q: f64| {
            let n = sorted.len();
            // Nearest rank: the smallest value with at least q of the samples at or below it.
            let index = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
            sorted[index]
        };
        Some(Summary {
            n: sorted.len(),
            min: sorted[0],
            p50: rank(0.5),
            p95: rank(0.95),
            max: sorted[sorted.len() - 1],
        })
    }

    /// Summarises durations in milliseconds.
    pub fn of_ms(samples: &[Duration]) -> Option<Summary> {
        let ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        Summary::of(&ms)
    }
}

/// Formats a number with a precision that suits its size (0.25, 4.3, 94, 5046).
pub fn num(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 100.0 {
        format!("{value:.0}")
    } else if magnitude >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// `p50 (min–max)` style cells for a summary, or `n/a`.
pub fn cells(summary: Option<Summary>) -> [String; 4] {
    match summary {
        Some(s) => [num(s.p50), num(s.p95), num(s.max), format!("{}", s.n)],
        None => ["n/a".into(), "n/a".into(), "n/a".into(), "0".into()],
    }
}

/// A target's verdict as the tables print it (`scripts/bench` collects the lines ending in `-> met` or
/// `-> missed`).
pub fn met(met: bool) -> &'static str {
    if met { "met" } else { "missed" }
}

/// A markdown table built row by row.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends one row (missing cells are left empty).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as GitHub markdown, columns padded for reading in a terminal too.
    pub fn render(&self) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut out = String::from("|");
            for (i, width) in widths.iter().enumerate() {
                let cell = cells.get(i).map(String::as_str).unwrap_or("");
                let pad = width.saturating_sub(cell.chars().count());
                let _ = write!(out, " {cell}{} |", " ".repeat(pad));
            }
            out.push('\n');
            out
        };
        let mut out = line(&self.headers);
        out.push('|');
        for width in &widths {
            let _ = write!(out, "{}|", "-".repeat(width + 2));
        }
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let samples: Vec<f64> = (1..=20).map(f64::from).collect();
        let s = Summary::of(&samples).expect("samples");
        assert_eq!(
            (s.n, s.min, s.p50, s.p95, s.max),
            (20, 1.0, 10.0, 19.0, 20.0)
        );
        let one = Summary::of(&[7.0]).expect("one sample");
        assert_eq!((one.p50, one.p95, one.max), (7.0, 7.0, 7.0));
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn table_renders_header_rule_and_rows() {
        let mut t = Table::new(&["a", "bb"]);
        t.row(vec!["1".into(), "22222".into()]);
        let text = t.render();
        assert_eq!(text, "| a | bb    |\n|---|-------|\n| 1 | 22222 |\n");
    }
}
