//! Rendering the shipped BIRD and FRR templates for the lab, with a few substitutions only.
//!
//! The lab must run what operators copy, so rendering is deliberately dumb: BIRD templates get their
//! `define NAME = ...;` lines rewritten and their `include` lines inlined (the testkit's BIRD takes one
//! config text); FRR templates get literal example values replaced. Every substitution must hit: a template
//! that no longer contains what the lab substitutes is an error, never a silently unrendered config.

use std::path::{Path, PathBuf};

/// Why a template could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A template or included file could not be read.
    #[error("cannot read template {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A `define` the lab substitutes is not in the template.
    #[error(
        "template {path} has no `define {name} = ...;` line; the lab substitutes it, so keep the define (or update tests/src/render.rs)"
    )]
    MissingDefine {
        /// The template.
        path: PathBuf,
        /// The define's name.
        name: String,
    },
    /// A literal value the lab substitutes is not in the template.
    #[error(
        "template {path} does not contain {from:?}; the lab replaces it with {to:?}, so keep the example value (or update tests/src/render.rs)"
    )]
    MissingLiteral {
        /// The template.
        path: PathBuf,
        /// The example value looked for.
        from: String,
        /// What it would have been replaced with.
        to: String,
    },
    /// An `include` line this renderer cannot follow.
    #[error(
        "{path}: unsupported include line {line:?}: only `include \"relative/path\";` is inlined"
    )]
    BadInclude {
        /// The file holding the line.
        path: PathBuf,
        /// The line.
        line: String,
    },
    /// Includes nest too deep (most likely a cycle).
    #[error("{path}: includes nest deeper than 8 levels (an include cycle?)")]
    IncludeDepth {
        /// The file where the limit was hit.
        path: PathBuf,
    },
}

/// The repository root (the templates live there, not in this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// `bird-templates/` in the repository.
pub fn bird_templates_dir() -> PathBuf {
    repo_root().join("bird-templates")
}

/// `frr-templates/` in the repository.
pub fn frr_templates_dir() -> PathBuf {
    repo_root().join("frr-templates")
}

fn read(path: &Path) -> Result<String, RenderError> {
    std::fs::read_to_string(path).map_err(|source| RenderError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The start of the include lines of nsbeacon's decision files in the BIRD templates (the `[n]` is a glob,
/// see bird-templates/nsbeacon/anycast-dns.conf). The part after `/run/` is kept by the renderer.
pub const DECISION_INCLUDE_PREFIX: &str = "/run/nsbeaco[n]/bird/";

/// Renders the BIRD config at `path`: each `(NAME, VALUE)` in `defines` rewrites the line
/// `define NAME = ...;` to `define NAME = VALUE;`, includes are inlined (relative to the including file,
/// as BIRD resolves them), and `log syslog all;` becomes `log stderr all;` so the lab's BIRD log file shows
/// what BIRD says. The includes of nsbeacon's decision files ([`DECISION_INCLUDE_PREFIX`]) stay includes,
/// moved from `/run` to `run_root` (a lab's own directory): BIRD reads them on every configure and start.
pub fn render_bird(
    path: &Path,
    defines: &[(&str, &str)],
    run_root: &Path,
) -> Result<String, RenderError> {
    let mut text = inline_includes(path, 0, run_root)?;
    for (name, value) in defines {
        let prefix = format!("define {name} =");
        let mut found = false;
        text = text
            .lines()
            .map(|line| {
                if line.trim_start().starts_with(&prefix) {
                    found = true;
                    format!("define {name} = {value};")
                } else {
                    line.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        text.push('\n');
        if !found {
            return Err(RenderError::MissingDefine {
                path: path.to_path_buf(),
                name: (*name).to_owned(),
            });
        }
    }
    Ok(text.replace("log syslog all;", "log stderr all;"))
}

fn inline_includes(path: &Path, depth: usize, run_root: &Path) -> Result<String, RenderError> {
    if depth > 8 {
        return Err(RenderError::IncludeDepth {
            path: path.to_path_buf(),
        });
    }
    let text = read(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(decision) = trimmed
            .strip_prefix("include \"")
            .and_then(|rest| rest.strip_prefix(DECISION_INCLUDE_PREFIX))
        {
            let moved = format!(
                "include \"{}/{}{decision}",
                run_root.display(),
                DECISION_INCLUDE_PREFIX.trim_start_matches("/run/")
            );
            out.push_str(&line.replace(trimmed, &moved));
            out.push('\n');
        } else if let Some(rest) = trimmed.strip_prefix("include ") {
            let target = rest
                .trim()
                .strip_suffix(';')
                .and_then(|t| t.trim().strip_prefix('"'))
                .and_then(|t| t.strip_suffix('"'))
                .filter(|t| !t.is_empty() && !t.contains('*'))
                .ok_or_else(|| RenderError::BadInclude {
                    path: path.to_path_buf(),
                    line: line.to_owned(),
                })?;
            let included = base.join(target);
            out.push_str(&format!("# ---- begin {target}\n"));
            out.push_str(&inline_includes(&included, depth + 1, run_root)?);
            out.push_str(&format!("# ---- end {target}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

/// Renders the FRR config at `path`, replacing each literal `from` with `to` everywhere. Each `from` must
/// occur (see [`RenderError::MissingLiteral`]). Substitutions apply in order, so list longer literals
/// that contain shorter ones first.
pub fn render_frr(path: &Path, substitutions: &[(&str, &str)]) -> Result<String, RenderError> {
    let mut text = read(path)?;
    for (from, to) in substitutions {
        if !text.contains(from) {
            return Err(RenderError::MissingLiteral {
                path: path.to_path_buf(),
                from: (*from).to_owned(),
                to: (*to).to_owned(),
            });
        }
        text = text.replace(from, to);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bird_defines_are_rewritten_and_includes_inlined() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        std::fs::write(dir.path().join("sub/x.conf"), "define B = 2;\n").expect("write");
        std::fs::write(
            dir.path().join("sub/y.conf"),
            "protocol static p {\n\tdisabled;\n\tinclude \"/run/nsbeaco[n]/bird/p.conf\";\n}\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join("main.conf"),
            "define A = 1;\nlog syslog all;\ninclude \"sub/x.conf\";\ninclude \"sub/y.conf\";\n",
        )
        .expect("write");
        let text = render_bird(
            &dir.path().join("main.conf"),
            &[("A", "10"), ("B", "20")],
            Path::new("/lab/run"),
        )
        .expect("render");
        assert!(
            text.contains("\tinclude \"/lab/run/nsbeaco[n]/bird/p.conf\";\n"),
            "{text}"
        );
        assert!(text.contains("define A = 10;"), "{text}");
        assert!(text.contains("define B = 20;"), "{text}");
        assert!(text.contains("log stderr all;"), "{text}");
        assert_eq!(text.matches("include").count(), 1, "{text}");
    }

    #[test]
    fn missing_define_and_literal_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.conf");
        std::fs::write(&path, "define A = 1;\nrouter bgp 65001\n").expect("write");
        let err =
            render_bird(&path, &[("NOPE", "1")], Path::new("/lab")).expect_err("missing define");
        assert!(err.to_string().contains("define NOPE"), "{err}");
        let err = render_frr(&path, &[("65002", "1")]).expect_err("missing literal");
        assert!(err.to_string().contains("65002"), "{err}");
        let err = render_bird(&dir.path().join("nope.conf"), &[], Path::new("/lab"))
            .expect_err("missing file");
        assert!(err.to_string().contains("nope.conf"), "{err}");
    }

    #[test]
    fn include_cycles_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.conf"), "include \"a.conf\";\n").expect("write");
        let err =
            render_bird(&dir.path().join("a.conf"), &[], Path::new("/lab")).expect_err("cycle");
        assert!(matches!(err, RenderError::IncludeDepth { .. }), "{err}");
    }

    #[test]
    fn shipped_templates_render() {
        let bird = render_bird(
            &bird_templates_dir().join("bird.conf"),
            &[("NODE_AS", "65001")],
            Path::new("/lab/run"),
        )
        .expect("bird.conf renders");
        assert!(bird.contains("protocol static anycast_dns {"));
        assert!(bird.contains("include \"/lab/run/nsbeaco[n]/bird/anycast_dns.conf\";"));
        let frr = render_frr(
            &frr_templates_dir().join("nsbeacon-bgpd.conf"),
            &[("router bgp 65001", "router bgp 65001")],
        )
        .expect("frr template renders");
        assert!(frr.contains("NSBEACON-UPSTREAM-OUT-V4"));
        let kernel_metric = render_frr(
            &frr_templates_dir().join("nsbeacon-bgpd-kernel-metric.conf"),
            &[("router bgp 65001", "router bgp 65001")],
        )
        .expect("kernel-metric template renders");
        assert!(kernel_metric.contains("redistribute kernel route-map NSBEACON-KERNEL-V4"));
        assert!(!kernel_metric.contains("\n  network "));
    }
}
