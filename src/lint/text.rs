//! The text report, for people: grouped by file and object, one finding per line as
//! `file:line:col`, so terminals and editors link straight to the field.

use std::fmt::Write;

use super::report::{FindingReport, InputError, ObjectReport, Report, Skipped, Summary};
use super::RuleDoc;
use crate::policy::Mode;

/// ANSI styling, or none.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    fn red(self, t: &str) -> String {
        self.paint("1;31", t)
    }
    fn yellow(self, t: &str) -> String {
        self.paint("33", t)
    }
    fn green(self, t: &str) -> String {
        self.paint("32", t)
    }
    fn bold(self, t: &str) -> String {
        self.paint("1", t)
    }
    fn dim(self, t: &str) -> String {
        self.paint("2", t)
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn place(source: &str, line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("{source}:{l}:{c}"),
        (Some(l), None) => format!("{source}:{l}"),
        _ => source.to_string(),
    }
}

fn object_title(o: &ObjectReport) -> String {
    let name = if o.name.is_empty() {
        "(unnamed)"
    } else {
        &o.name
    };
    let mut t = format!("DaemonSet {}/{name}", o.namespace);
    if o.api_version != "apps/v1" {
        t.push_str(&format!(" ({})", o.api_version));
    }
    t
}

fn where_in_file(document: usize, item: Option<usize>) -> String {
    match item {
        Some(i) => format!("document {document}, item {i}"),
        None => format!("document {document}"),
    }
}

fn finding_line(out: &mut String, source: &str, f: &FindingReport, s: Style) {
    let level = match (f.fixed, f.mode) {
        (true, _) => s.green("fixed  "),
        (false, Mode::Enforce) => s.red("error  "),
        _ => s.yellow("warning"),
    };
    let _ = write!(
        out,
        "  {}: {level} {} {}",
        place(source, f.line, f.column),
        s.bold(&f.rule),
        f.message
    );
    if f.fixed {
        out.push_str(&s.green(" [fixed by mutation]"));
    }
    out.push('\n');
}

/// Renders the report for a terminal.
pub fn render(report: &Report, s: Style) -> String {
    let mut out = String::new();
    for e in &report.errors {
        error(&mut out, e, s);
    }
    for file in &report.files {
        for o in &file.objects {
            object(&mut out, &file.source, o, s);
        }
        for k in &file.skipped {
            skipped(&mut out, &file.source, k, s);
        }
    }
    summary(&mut out, &report.summary, s);
    out
}

/// An input error, one line.
pub fn error(out: &mut String, e: &InputError, s: Style) {
    let _ = writeln!(out, "{} {e}", s.red("error:"));
}

/// A DaemonSet: title and verdict, then one line per finding.
pub fn object(out: &mut String, source: &str, o: &ObjectReport, s: Style) {
    let verdict = if o.verdict.allowed {
        s.green("allowed")
    } else {
        s.red("denied")
    };
    let _ = writeln!(
        out,
        "{} {} ({}): {verdict}",
        s.bold(&object_title(o)),
        s.dim(&format!("{source}:{}", o.line.unwrap_or(1))),
        where_in_file(o.document, o.item),
    );
    // People read top to bottom: by position in the file, engine order within a line.
    let mut findings: Vec<&FindingReport> = o.findings.iter().collect();
    findings.sort_by_key(|f| (f.line, f.column));
    for f in findings {
        finding_line(out, source, f, s);
    }
    if !o.patch.is_empty() {
        let _ = writeln!(
            out,
            "  {}",
            s.dim(&format!(
                "mutation: {} (lint --fix prints the result)",
                plural(o.patch.len(), "patch operation", "patch operations")
            ))
        );
    }
}

/// A skipped document, one line.
pub fn skipped(out: &mut String, source: &str, k: &Skipped, s: Style) {
    let what = match (&k.kind, &k.name) {
        (Some(kind), Some(name)) => format!("{kind} {name}"),
        (Some(kind), None) => kind.clone(),
        (None, _) => "document".to_string(),
    };
    let _ = writeln!(
        out,
        "{}",
        s.dim(&format!(
            "{source}: skipped {what} ({}): {}",
            where_in_file(k.document, k.item),
            k.reason
        ))
    );
}

/// The closing line with the counts.
pub fn summary(out: &mut String, sum: &Summary, s: Style) {
    let mut line = format!(
        "{} in {}: {} allowed, {} denied",
        plural(sum.daemonsets, "DaemonSet", "DaemonSets"),
        plural(sum.files, "input", "inputs"),
        sum.allowed,
        sum.denied
    );
    let _ = write!(
        line,
        "; {} ({} error, {} warning, {} fixed by mutation)",
        plural(sum.enforce + sum.warn + sum.fixed, "finding", "findings"),
        sum.enforce,
        sum.warn,
        sum.fixed
    );
    if sum.skipped > 0 {
        let _ = write!(
            line,
            "; {} skipped",
            plural(sum.skipped, "other document", "other documents")
        );
    }
    if sum.errors > 0 {
        let _ = write!(
            line,
            "; {}",
            plural(sum.errors, "input error", "input errors")
        );
    }
    let painted = if sum.errors > 0 || sum.denied > 0 {
        s.red(&line)
    } else {
        s.green(&line)
    };
    out.push_str(&painted);
    out.push('\n');
}

/// Renders the rule catalogue for a terminal.
pub fn render_rules(rules: &[RuleDoc], s: Style) -> String {
    let mut out = String::new();
    for r in rules {
        let mode = match r.default_mode {
            Mode::Enforce => s.red("enforce"),
            Mode::Warn => s.yellow("warn"),
            Mode::Off => s.dim("off"),
        };
        let _ = writeln!(out, "{} ({}, default {mode})", s.bold(&r.id), r.family);
        let _ = writeln!(out, "  checks: {}", r.summary);
        let _ = writeln!(out, "  why:    {}", r.why);
        let _ = writeln!(out, "  fix:    {}", r.fix);
        if r.api_server_rejects && r.configurable {
            let _ = writeln!(
                out,
                "  also rejected by the API server: /mutate denies it (enforce) or warns (warn, \
                 the API server then rejects it with its own message); off leaves it to the API \
                 server"
            );
        } else if r.api_server_rejects {
            let _ = writeln!(out, "  also rejected by the API server, before any webhook");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::report::*;
    use crate::policy::Operation;

    fn sample() -> Report {
        let f = |mode, fixed, line| FindingReport {
            rule: "rule-x".into(),
            mode,
            path: "/spec".into(),
            message: "msg".into(),
            fixed,
            line: Some(line),
            column: Some(3),
        };
        let obj = ObjectReport {
            document: 1,
            item: None,
            api_version: "apps/v1".into(),
            kind: "DaemonSet".into(),
            namespace: "ns".into(),
            name: "agent".into(),
            line: Some(5),
            column: Some(1),
            findings: vec![
                f(Mode::Enforce, false, 9),
                f(Mode::Enforce, true, 10),
                f(Mode::Warn, false, 11),
            ],
            verdict: Verdict {
                allowed: false,
                denied_by: Some(DeniedBy::Validating),
                message: Some("m".into()),
                warnings: vec![],
            },
            patch: vec![],
            mutated: serde_json::Value::Null,
        };
        let file = FileReport {
            source: "a.yaml".into(),
            objects: vec![obj],
            skipped: vec![Skipped {
                document: 0,
                item: None,
                api_version: Some("v1".into()),
                kind: Some("ConfigMap".into()),
                namespace: None,
                name: Some("cm".into()),
                reason: "a ConfigMap, not a DaemonSet".into(),
            }],
        };
        let policies = crate::policy::Policies::default();
        report(
            vec![file],
            vec![],
            &LintOptions {
                policies: &policies,
                operation: Operation::Create,
                namespace: "default",
                old: None,
            },
        )
    }

    #[test]
    fn groups_by_object_with_file_line_column() {
        let text = render(&sample(), Style { color: false });
        assert_eq!(
            text,
            "DaemonSet ns/agent a.yaml:5 (document 1): denied
  a.yaml:9:3: error   rule-x msg
  a.yaml:10:3: fixed   rule-x msg [fixed by mutation]
  a.yaml:11:3: warning rule-x msg
a.yaml: skipped ConfigMap cm (document 0): a ConfigMap, not a DaemonSet
1 DaemonSet in 1 input: 0 allowed, 1 denied; 3 findings (1 error, 1 warning, 1 fixed by mutation); 1 other document skipped
"
        );
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn colour_only_when_asked() {
        assert!(render(&sample(), Style { color: true }).contains("\x1b[1;31m"));
    }
}
