//! A small `serde_json::Value` -> YAML emitter for `lint --fix`. Keys keep the order of the input
//! (taken from the source locations of the document); keys the mutation added follow, sorted.
//! Strings are quoted whenever a YAML 1.1 or 1.2 reader could take them for anything but a
//! string, so the output re-parses to the same value with any Kubernetes tooling.

use std::fmt::Write;

use serde_json::{Map, Value};

use crate::k8s::pointer::escape_token;
use crate::yaml::Document;

/// Emits one document (without the `---` separator). `doc` gives the key order of the input; the
/// value may differ from `doc.value` (mutated).
pub fn to_yaml(value: &Value, doc: Option<&Document>) -> String {
    let mut out = String::new();
    let e = Emitter { doc };
    match value {
        Value::Object(m) if !m.is_empty() => e.map(&mut out, m, "", 0),
        Value::Array(a) if !a.is_empty() => e.seq(&mut out, a, "", 0),
        scalar => {
            out.push_str(&e.inline(scalar));
            out.push('\n');
        }
    }
    out
}

struct Emitter<'a> {
    doc: Option<&'a Document>,
}

impl Emitter<'_> {
    fn ordered<'m>(&self, m: &'m Map<String, Value>, ptr: &str) -> Vec<(&'m String, &'m Value)> {
        let mut entries: Vec<_> = m.iter().collect();
        if let Some(doc) = self.doc {
            entries.sort_by_key(|(k, _)| {
                match doc.locations.get(&format!("{ptr}/{}", escape_token(k))) {
                    Some(l) => (0, l.line, l.column),
                    None => (1, 0, 0),
                }
            });
        }
        entries
    }

    fn map(&self, out: &mut String, m: &Map<String, Value>, ptr: &str, indent: usize) {
        for (i, (k, v)) in self.ordered(m, ptr).into_iter().enumerate() {
            // The first key of a mapping inside a sequence item follows the `- ` on its line.
            if i > 0 || !out.ends_with("- ") {
                pad(out, indent);
            }
            out.push_str(&key(k));
            out.push(':');
            let child = format!("{ptr}/{}", escape_token(k));
            self.value_after_key(out, v, &child, indent);
        }
    }

    fn value_after_key(&self, out: &mut String, v: &Value, ptr: &str, indent: usize) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                out.push('\n');
                self.map(out, m, ptr, indent + 2);
            }
            Value::Array(a) if !a.is_empty() => {
                out.push('\n');
                self.seq(out, a, ptr, indent + 2);
            }
            Value::String(s) if block_literal(s) => {
                out.push(' ');
                literal(out, s, indent + 2);
            }
            other => {
                out.push(' ');
                out.push_str(&self.inline(other));
                out.push('\n');
            }
        }
    }

    fn seq(&self, out: &mut String, a: &[Value], ptr: &str, indent: usize) {
        for (i, v) in a.iter().enumerate() {
            pad(out, indent);
            out.push_str("- ");
            let child = format!("{ptr}/{i}");
            match v {
                Value::Object(m) if !m.is_empty() => self.map(out, m, &child, indent + 2),
                Value::Array(inner) if !inner.is_empty() => {
                    out.pop();
                    out.push('\n');
                    self.seq(out, inner, &child, indent + 2);
                }
                Value::String(s) if block_literal(s) => literal(out, s, indent + 2),
                other => {
                    out.push_str(&self.inline(other));
                    out.push('\n');
                }
            }
        }
    }

    fn inline(&self, v: &Value) -> String {
        match v {
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::String(s) => scalar(s),
            Value::Object(_) => "{}".into(),
            Value::Array(_) => "[]".into(),
        }
    }
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn key(k: &str) -> String {
    scalar(k)
}

/// A string as a plain scalar when that is unambiguous, else double-quoted.
fn scalar(s: &str) -> String {
    if plain_is_safe(s) {
        s.to_string()
    } else {
        quoted(s)
    }
}

/// Words YAML 1.1 (still used by Go's yaml.v2, hence by kubectl) or 1.2 resolves to a non-string.
const RESERVED: &[&str] = &[
    "y", "yes", "n", "no", "true", "false", "on", "off", "null", "~", ".inf", "-.inf", "+.inf",
    ".nan", "<<", "=",
];

fn plain_is_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if RESERVED.contains(&s.to_ascii_lowercase().as_str()) {
        return false;
    }
    if s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) || s.ends_with(':') {
        return false;
    }
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.contains('\t') {
        return false;
    }
    if s.chars().any(|c| c.is_control() || needs_escape(c)) {
        return false;
    }
    if first.is_ascii_digit() || ((first == '+' || first == '.') && s.len() > 1) {
        return quantity_like(s);
    }
    true
}

/// `100m`, `64Mi`, `1.5Gi`: digits, an optional fraction, then letters that cannot make a number
/// (no exponent, hex, octal or binary prefix letter), so YAML cannot read it as a number or date.
fn quantity_like(s: &str) -> bool {
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(digits_end);
    let Some(first) = suffix.chars().next() else {
        return false;
    };
    num.chars().next().is_some_and(|c| c.is_ascii_digit())
        && num.matches('.').count() <= 1
        && !num.ends_with('.')
        && suffix.chars().all(|c| c.is_ascii_alphabetic())
        && !"eExXoObB".contains(first)
}

fn needs_escape(c: char) -> bool {
    matches!(
        c,
        '\u{7f}'..='\u{9f}' | '\u{feff}' | '\u{2028}' | '\u{2029}' | '\u{fffe}' | '\u{ffff}'
    )
}

fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || needs_escape(c) => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Multi-line text reads best as a literal block; only text a literal block reproduces exactly
/// qualifies (no leading space, which would need an indentation indicator; nothing to escape).
fn block_literal(s: &str) -> bool {
    s.contains('\n')
        && !s.starts_with([' ', '\n'])
        && !s
            .chars()
            .any(|c| (c.is_control() && c != '\n') || needs_escape(c))
        && !s.lines().any(|l| l.ends_with(' '))
}

fn literal(out: &mut String, s: &str, indent: usize) {
    let trimmed = s.trim_end_matches('\n');
    let trailing = s.len() - trimmed.len();
    out.push_str(match trailing {
        0 => "|-",
        1 => "|",
        _ => "|+",
    });
    out.push('\n');
    for line in trimmed.split('\n') {
        if !line.is_empty() {
            pad(out, indent);
            out.push_str(line);
        }
        out.push('\n');
    }
    // Keep-chomping: the extra final newlines are empty lines of the block.
    for _ in 1..trailing {
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse_documents;
    use proptest::prelude::*;
    use serde_json::json;

    fn roundtrip(v: &Value) -> Value {
        let text = to_yaml(v, None);
        let docs = parse_documents(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        docs.into_iter()
            .next()
            .map(|d| d.value)
            .unwrap_or(Value::Null)
    }

    #[test]
    fn emits_kubernetes_style_yaml() {
        let v = json!({
            "apiVersion": "apps/v1",
            "spec": {"containers": [{"name": "a", "args": ["--x", "on", "1.5", "100m"], "ports": []}]},
            "empty": {},
        });
        assert_eq!(
            to_yaml(&v, None),
            "apiVersion: apps/v1\nempty: {}\nspec:\n  containers:\n    - args:\n        - \"--x\"\n        - \"on\"\n        - \"1.5\"\n        - 100m\n      name: a\n      ports: []\n"
        );
    }

    #[test]
    fn keeps_the_input_key_order() {
        let doc =
            &parse_documents("kind: DaemonSet\nmetadata:\n  name: x\n  labels: {b: 1, a: 2}\n")
                .unwrap()[0];
        let mut v = doc.value.clone();
        v["metadata"]["added"] = json!(true);
        assert_eq!(
            to_yaml(&v, Some(doc)),
            "kind: DaemonSet\nmetadata:\n  name: x\n  labels:\n    b: 1\n    a: 2\n  added: true\n"
        );
    }

    #[test]
    fn tricky_strings_roundtrip() {
        for s in [
            "",
            " x",
            "x ",
            "yes",
            "No",
            "~",
            "null",
            "1e3",
            "0x1F",
            "0o17",
            "0b11",
            "1_000",
            "12:30",
            "2001-12-14",
            "-",
            "- x",
            "a: b",
            "a #b",
            "#x",
            "*x",
            "&x",
            "!x",
            "%x",
            "@x",
            "`x",
            "'",
            "\"",
            "\\",
            "tab\there",
            "line\nbreak\n",
            "two\n\n",
            "\n",
            "x\r\ny",
            "\u{0}",
            "\u{85}",
            "\u{feff}x",
            "ünïcödé",
            "🎉",
            "64Mi",
            "1.5Gi",
            "100m",
            "1.",
            ".5",
            "+1",
            "-1",
            "=",
            "<<",
            "key:",
            "a,b",
            "[x]",
            "{x}",
            "#!/bin/sh\nset -e\n  indented\n\nexit 0\n",
            " lead\nx",
            "trail \nx",
        ] {
            // yaml.rs reads any `<<` key as a merge key, so that one is only tested as a value.
            let k = if s == "<<" { "merge" } else { s };
            let v = json!({ k: s, "list": [s, {k: [s]}] });
            assert_eq!(roundtrip(&v), v, "{s:?} -> {}", to_yaml(&v, None));
        }
    }

    #[test]
    fn scalars_and_numbers_roundtrip() {
        for v in [
            json!(1),
            json!(-7),
            json!(0.5),
            json!(1e300),
            json!(true),
            json!("x"),
            json!({"n": null, "f": 1000.0, "neg": i64::MIN, "nested": [[1, [2]], []]}),
        ] {
            assert_eq!(roundtrip(&v), v);
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|i| json!(i)),
            (-1e6f64..1e6).prop_map(|f| json!(f)),
            ".*".prop_map(Value::String),
            "[a-z0-9 :#.\\-\n]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(
                    ".{0,6}".prop_filter("yaml.rs merges `<<` keys", |k| k != "<<"),
                    inner,
                    0..4,
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_value_roundtrips(v in json_value()) {
            let wrapped = json!({"root": v});
            prop_assert_eq!(roundtrip(&wrapped), wrapped);
        }
    }
}
