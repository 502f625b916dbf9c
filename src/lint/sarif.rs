//! SARIF 2.1.0 output, for GitHub code scanning and other SARIF viewers: one run, every rule with
//! its help text, one result per finding at the field's line and column.

use serde_json::{json, Value};

use super::report::{FindingReport, ObjectReport, Report};
use super::RuleDoc;
use crate::policy::Mode;

/// Where people learn about the tool (SARIF `informationUri`).
pub const INFORMATION_URI: &str = "https://github.com/daemonset-guard/daemonset-guard";

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

fn level(mode: Mode) -> &'static str {
    match mode {
        Mode::Enforce => "error",
        Mode::Warn => "warning",
        Mode::Off => "none",
    }
}

fn result_level(f: &FindingReport) -> &'static str {
    if f.fixed {
        "note"
    } else {
        level(f.mode)
    }
}

/// Percent-encodes what may not appear in a URI reference, keeping `/`.
fn uri_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The artifact location of a source as given on the command line: relative paths stay relative
/// to the checkout (`%SRCROOT%`), which is what code scanning needs to annotate the file.
fn artifact(source: &str) -> Value {
    let p = source.replace('\\', "/");
    if let Some(abs) = p.strip_prefix('/') {
        return json!({ "uri": format!("file:///{}", uri_path(abs)) });
    }
    let rel = p.trim_start_matches("./");
    json!({ "uri": uri_path(rel), "uriBaseId": "%SRCROOT%" })
}

fn region(line: Option<usize>, column: Option<usize>) -> Option<Value> {
    let line = line.filter(|l| *l >= 1)?;
    let mut r = json!({ "startLine": line });
    if let Some(c) = column.filter(|c| *c >= 1) {
        r["startColumn"] = json!(c);
    }
    Some(r)
}

fn location(source: &str, line: Option<usize>, column: Option<usize>) -> Value {
    let mut physical = json!({ "artifactLocation": artifact(source) });
    if let Some(r) = region(line, column) {
        physical["region"] = r;
    }
    json!({ "physicalLocation": physical })
}

fn rule_descriptor(r: &RuleDoc) -> Value {
    let help = format!("{}\n\nWhy: {}\n\nHow to fix: {}", r.summary, r.why, r.fix);
    let markdown = format!(
        "{}\n\n**Why it matters.** {}\n\n**How to fix.** {}",
        r.summary, r.why, r.fix
    );
    // The `security` family tag is what makes code scanning file results as security alerts.
    let tags = [r.family.as_str(), "kubernetes", "daemonset"];
    let mut properties = json!({ "tags": tags });
    if r.family == "security" {
        // GitHub ranks security alerts by this CVSS-like score: >= 7 high, >= 4 medium.
        properties["security-severity"] = json!(match r.default_mode {
            Mode::Enforce => "7.5",
            _ => "4.0",
        });
    }
    json!({
        "id": r.id,
        "name": r.id,
        "shortDescription": { "text": r.summary },
        "fullDescription": { "text": format!("{} {}", r.summary, r.why) },
        "help": { "text": help, "markdown": markdown },
        "defaultConfiguration": { "level": level(r.default_mode) },
        "properties": properties,
    })
}

/// One result per finding of a DaemonSet.
pub fn results(source: &str, o: &ObjectReport, rules: &[RuleDoc]) -> Vec<Value> {
    o.findings
        .iter()
        .map(|f| {
            let mut result = json!({
                "ruleId": f.rule,
                "level": result_level(f),
                "message": { "text": f.message },
                "locations": [location(source, f.line, f.column)],
                "properties": {
                    "object": format!("{}/{}", o.namespace, o.name),
                    "document": o.document,
                    "path": f.path,
                    "mode": f.mode,
                    "fixedByMutation": f.fixed,
                },
            });
            if let Some(i) = rules.iter().position(|r| r.id == f.rule) {
                result["ruleIndex"] = json!(i);
            }
            result
        })
        .collect()
}

/// Renders the report as a SARIF 2.1.0 log.
pub fn render(report: &Report, rules: &[RuleDoc]) -> Value {
    let descriptors: Vec<Value> = rules.iter().map(rule_descriptor).collect();
    let results: Vec<Value> = report
        .files
        .iter()
        .flat_map(|file| {
            file.objects
                .iter()
                .flat_map(|o| results(&file.source, o, rules))
        })
        .collect();
    let notifications: Vec<Value> = report
        .errors
        .iter()
        .map(|e| {
            json!({
                "level": "error",
                "message": { "text": e.message },
                "locations": [location(&e.source, e.line, e.column)],
            })
        })
        .collect();
    json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "daemonset-guard",
                    "version": env!("CARGO_PKG_VERSION"),
                    "semanticVersion": env!("CARGO_PKG_VERSION"),
                    "informationUri": INFORMATION_URI,
                    "rules": descriptors,
                }
            },
            "invocations": [{
                "executionSuccessful": report.errors.is_empty(),
                "toolExecutionNotifications": notifications,
            }],
            // yaml-rust2 counts columns in characters, not UTF-16 code units.
            "columnKind": "unicodeCodePoints",
            "results": results,
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_uris_are_relative_and_encoded() {
        assert_eq!(
            artifact("./deploy/my ds.yaml"),
            json!({"uri": "deploy/my%20ds.yaml", "uriBaseId": "%SRCROOT%"})
        );
        assert_eq!(
            artifact("/tmp/a.yaml"),
            json!({"uri": "file:///tmp/a.yaml"})
        );
    }

    #[test]
    fn levels_follow_mode_and_fix() {
        let mut f = FindingReport {
            rule: "r".into(),
            mode: Mode::Enforce,
            path: "/".into(),
            message: "m".into(),
            fixed: false,
            line: None,
            column: None,
        };
        assert_eq!(result_level(&f), "error");
        f.fixed = true;
        assert_eq!(result_level(&f), "note");
        f.fixed = false;
        f.mode = Mode::Warn;
        assert_eq!(result_level(&f), "warning");
        assert_eq!(region(None, None), None);
    }
}
