//! Manifests (YAML/JSON, multi-document, `List` kinds) <-> engine, and the report formats.
//!
//! One code path ([`report::lint_chunk`], per document) serves the `lint` CLI (which streams its
//! inputs in parallel, see `stream.rs`), `lint --remote` and the server's `/lint` ([`lint_http`],
//! through [`report::lint_text`]), so they cannot disagree; each DaemonSet goes through
//! [`crate::policy::decide`], exactly as admission through both webhooks would.

pub(crate) mod cli;
pub mod emit;
pub mod load;
pub(crate) mod remote;
pub mod report;
pub mod sarif;
pub mod source;
pub mod split;
mod stream;
pub mod text;

use serde::{Deserialize, Serialize};

use crate::catalog;
use crate::policy::{Mode, Operation, Policies};
use crate::yaml::Document;

pub use cli::{print_rules, run_cli, LintArgs, RulesArgs};
pub use report::{
    lint_text, report, ErrorKind, FileReport, FindingReport, InputError, LintOptions, Linted,
    ObjectReport, Report, Skipped, Summary, Verdict, REPORT_VERSION,
};
pub use source::PolicySource;

/// The largest `/lint` body accepted: a little above the API server's 3 MiB request limit, since
/// a body may hold several manifests.
pub const MAX_LINT_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Report formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Grouped, for people.
    Text,
    /// The stable JSON report.
    Json,
    /// SARIF 2.1.0, for code scanning.
    Sarif,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            "sarif" => Ok(Format::Sarif),
            _ => Err(format!(
                "unknown format {s:?}: expected json, sarif or text"
            )),
        }
    }
}

/// One rule as `rules`, SARIF and the docs describe it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleDoc {
    pub id: String,
    pub family: String,
    pub default_mode: Mode,
    pub summary: String,
    pub why: String,
    pub fix: String,
    /// Whether the policy can change its mode (the linter's own checks mirror the API server).
    pub configurable: bool,
    /// Whether the API server rejects a violation itself, before validating admission: `/mutate`
    /// denies it (enforce) or warns about it (warn; the API server still rejects the object
    /// with its own message); `off` leaves it to the API server alone.
    pub api_server_rejects: bool,
}

/// Every rule: the engine's, then the linter's own.
pub fn rule_docs() -> Vec<RuleDoc> {
    let mut out: Vec<RuleDoc> = catalog::rules()
        .map(|r| RuleDoc {
            id: r.id.into(),
            family: r.family.as_str().into(),
            default_mode: r.default_mode,
            summary: r.summary.into(),
            why: r.why.into(),
            fix: r.fix.into(),
            configurable: true,
            api_server_rejects: r.api_server_rejects,
        })
        .collect();
    out.push(RuleDoc {
        id: report::RULE_API_VERSION_REMOVED.into(),
        family: "manifest".into(),
        default_mode: Mode::Enforce,
        summary: "The DaemonSet uses apiVersion extensions/v1beta1 or apps/v1beta2.".into(),
        why: "Kubernetes 1.16 stopped serving DaemonSets under these API versions: the API \
              server rejects the manifest before any webhook sees it."
            .into(),
        fix: "Set apiVersion: apps/v1. apps/v1 requires spec.selector, and it must match \
              spec.template.metadata.labels; updateStrategy defaults to RollingUpdate."
            .into(),
        configurable: false,
        api_server_rejects: true,
    });
    out
}

/// Renders a report. `color` only affects text.
pub fn render(report: &Report, format: Format, color: bool) -> String {
    match format {
        Format::Text => text::render(report, text::Style { color }),
        Format::Json => json_pretty(&serde_json::to_value(report).unwrap_or_default()),
        Format::Sarif => json_pretty(&sarif::render(report, &rule_docs())),
    }
}

fn json_pretty(v: &serde_json::Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// The input's documents with the mutation applied to each DaemonSet, as a YAML stream (what
/// `lint --fix` prints). Other documents are kept as they are; comments are not preserved.
pub fn fixed_manifests(documents: &[Document], objects: &[ObjectReport]) -> String {
    let mut out = String::new();
    for doc in documents {
        let mut value = doc.value.clone();
        for o in objects.iter().filter(|o| o.document == doc.index) {
            match o.item {
                None => value = o.mutated.clone(),
                Some(i) => {
                    if let Some(slot) = value.pointer_mut(&format!("/items/{i}")) {
                        *slot = o.mutated.clone();
                    }
                }
            }
        }
        out.push_str("---\n");
        out.push_str(&emit::to_yaml(&value, Some(doc)));
    }
    out
}

/// Query parameters of `POST /lint`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct LintQuery {
    /// Namespace of objects that do not name one (default `default`).
    pub namespace: Option<String>,
    /// `CREATE` (default) or `UPDATE`, `DELETE`, `CONNECT`.
    pub operation: Option<String>,
    /// `json` (default), `sarif` or `text`.
    pub format: Option<String>,
}

/// The answer of `/lint`, ready for any HTTP framework.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LintHttpResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

const JSON: &str = "application/json";

/// Content types `/lint` accepts (before any `; charset=` parameter); none at all is accepted too.
pub const LINT_CONTENT_TYPES: &[&str] = &[
    "application/yaml",
    "application/x-yaml",
    "text/yaml",
    "text/x-yaml",
    "application/json",
    "text/plain",
];

/// Source name of a `/lint` body in reports.
pub const BODY_SOURCE: &str = "-";

fn error_response(status: u16, errors: Vec<InputError>) -> LintHttpResponse {
    let message = errors
        .first()
        .map(|e| e.to_string())
        .unwrap_or_else(|| "bad request".into());
    let body = serde_json::json!({
        "version": REPORT_VERSION,
        "error": message,
        "errors": errors,
    });
    LintHttpResponse {
        status,
        content_type: JSON,
        body: json_pretty(&body),
    }
}

fn request_error(kind: ErrorKind, message: String) -> InputError {
    InputError::new(BODY_SOURCE, kind, message)
}

/// Whether `ns` is a valid namespace name (an RFC 1123 label).
pub fn valid_namespace(ns: &str) -> bool {
    !ns.is_empty()
        && ns.len() <= 63
        && ns
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !ns.starts_with('-')
        && !ns.ends_with('-')
}

/// Decodes input as UTF-8 (dropping a byte-order mark), or says where it stops being UTF-8.
pub fn decode<'a>(source: &str, bytes: &'a [u8]) -> Result<&'a str, Box<InputError>> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| {
        let good = &bytes[..e.valid_up_to()];
        // The prefix is valid UTF-8 by construction.
        let before = std::str::from_utf8(good).unwrap_or_default();
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        let doc = before
            .lines()
            .filter(|l| l.trim_end() == "---" || l.starts_with("--- "))
            .count();
        Box::new(InputError {
            document: Some(doc),
            line: Some(line),
            column: Some(column),
            ..InputError::new(
                source,
                ErrorKind::Encoding,
                format!("invalid UTF-8 at byte {}", e.valid_up_to()),
            )
        })
    })
}

/// `POST /lint`: lints the body with the server's policy. Never panics and never answers 500:
/// 200 with the report; 400 for unreadable input (with document, line and column), a bad query
/// or an empty body; 413 over [`MAX_LINT_BODY_BYTES`]; 415 for another Content-Type.
pub fn lint_http(
    body: &[u8],
    content_type: Option<&str>,
    query: &LintQuery,
    policies: &Policies,
) -> LintHttpResponse {
    if let Some(ct) = content_type {
        let media = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !media.is_empty() && !LINT_CONTENT_TYPES.contains(&media.as_str()) {
            return error_response(
                415,
                vec![request_error(
                    ErrorKind::UnsupportedMediaType,
                    format!(
                        "Content-Type {media:?} is not accepted; send manifests as \
                         application/yaml, application/json or text/plain"
                    ),
                )],
            );
        }
    }
    let format = match query.format.as_deref().map(str::parse::<Format>) {
        None => Format::Json,
        Some(Ok(f)) => f,
        Some(Err(e)) => {
            return error_response(400, vec![request_error(ErrorKind::InvalidRequest, e)])
        }
    };
    let operation = match query.operation.as_deref().map(str::parse::<Operation>) {
        None => Operation::Create,
        Some(Ok(Operation::Update)) => {
            return error_response(
                400,
                vec![request_error(
                    ErrorKind::InvalidRequest,
                    "operation UPDATE needs the stored object, which /lint does not take; lint \
                     it as CREATE, or with `daemonset-guard lint --operation UPDATE --old FILE`"
                        .into(),
                )],
            )
        }
        Some(Ok(o)) => o,
        Some(Err(e)) => {
            return error_response(400, vec![request_error(ErrorKind::InvalidRequest, e)])
        }
    };
    let namespace = query.namespace.as_deref().unwrap_or("default");
    if !valid_namespace(namespace) {
        return error_response(
            400,
            vec![request_error(
                ErrorKind::InvalidRequest,
                format!("namespace {namespace:?} is not a valid namespace name (RFC 1123 label)"),
            )],
        );
    }
    if body.len() > MAX_LINT_BODY_BYTES {
        return error_response(
            413,
            vec![request_error(
                ErrorKind::TooLarge,
                format!(
                    "the body is {} bytes; /lint accepts at most {MAX_LINT_BODY_BYTES} bytes: \
                     split the manifests over several requests",
                    body.len()
                ),
            )],
        );
    }
    let text = match decode(BODY_SOURCE, body) {
        Ok(t) => t,
        Err(e) => return error_response(400, vec![*e]),
    };
    let opts = LintOptions {
        policies,
        operation,
        namespace,
        old: None,
    };
    let Linted {
        file,
        documents,
        errors,
    } = lint_text(BODY_SOURCE, text, &opts);
    if !errors.is_empty() {
        return error_response(400, errors);
    }
    if documents == 0 {
        return error_response(
            400,
            vec![InputError {
                document: Some(0),
                line: Some(1),
                column: Some(1),
                ..request_error(
                    ErrorKind::Empty,
                    "the body holds no YAML or JSON document; send one or more manifests".into(),
                )
            }],
        );
    }
    let report = report(vec![file], Vec::new(), &opts);
    LintHttpResponse {
        status: 200,
        content_type: match format {
            Format::Json => JSON,
            Format::Sarif => "application/sarif+json",
            Format::Text => "text/plain; charset=utf-8",
        },
        body: render(&report, format, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn call(body: &[u8], ct: Option<&str>, q: LintQuery) -> (u16, Value) {
        let r = lint_http(body, ct, &q, &Policies::default());
        let v = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        (r.status, v)
    }

    fn clean_yaml() -> String {
        emit::to_yaml(&crate::policy::testing::clean(), None)
    }

    #[test]
    fn lints_a_body_into_a_json_report() {
        let (status, v) = call(
            clean_yaml().as_bytes(),
            Some("application/yaml"),
            LintQuery::default(),
        );
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["version"], 1);
        assert_eq!(v["operation"], "CREATE");
        let o = &v["files"][0]["objects"][0];
        assert_eq!(o["name"], "agent");
        assert_eq!(o["verdict"]["allowed"], true);
        assert_eq!(o["mutated"], crate::policy::testing::clean());
    }

    #[test]
    fn formats_and_operation_are_honoured() {
        let q = LintQuery {
            namespace: Some("team-a".into()),
            operation: Some("create".into()),
            format: Some("sarif".into()),
        };
        let r = lint_http(clean_yaml().as_bytes(), None, &q, &Policies::default());
        assert_eq!((r.status, r.content_type), (200, "application/sarif+json"));
        // An UPDATE needs the stored object, which /lint does not take.
        let q = LintQuery {
            operation: Some("update".into()),
            ..LintQuery::default()
        };
        let r = lint_http(clean_yaml().as_bytes(), None, &q, &Policies::default());
        assert_eq!(r.status, 400);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .starts_with("-: operation UPDATE needs the stored object"),
            "{v}"
        );
        // A DELETE is never evaluated: the DaemonSet is listed as skipped, nothing is denied.
        let q = LintQuery {
            operation: Some("DELETE".into()),
            ..LintQuery::default()
        };
        let r = lint_http(clean_yaml().as_bytes(), None, &q, &Policies::default());
        assert_eq!(r.status, 200);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["files"][0]["objects"], serde_json::json!([]));
        assert_eq!(
            v["files"][0]["skipped"][0]["reason"],
            "not evaluated: DELETE is never restricted"
        );
        assert_eq!(v["summary"]["denied"], 0);
        let q = LintQuery {
            format: Some("text".into()),
            ..LintQuery::default()
        };
        let r = lint_http(
            clean_yaml().as_bytes(),
            Some("text/plain; charset=utf-8"),
            &q,
            &Policies::default(),
        );
        assert_eq!(r.status, 200);
        assert!(r.body.contains("monitoring/agent"), "{}", r.body);
        assert!(r.body.contains("allowed"), "{}", r.body);
    }

    #[test]
    fn malformed_requests_get_specific_errors() {
        type Case<'a> = (&'a [u8], Option<&'a str>, LintQuery, u16, &'a str);
        let cases: &[Case<'_>] = &[
            (b"", None, LintQuery::default(), 400, "empty"),
            (b"# only a comment\n---\n", None, LintQuery::default(), 400, "empty"),
            (b"a: [1\n", None, LintQuery::default(), 400, "syntax"),
            (b"kind: x\n---\n- 1\n", None, LintQuery::default(), 400, "not-an-object"),
            (b"\"scalar\"", None, LintQuery::default(), 400, "not-an-object"),
            (b"a: \xff\n", None, LintQuery::default(), 400, "encoding"),
            (b"{}", Some("application/x-www-form-urlencoded"), LintQuery::default(), 415, "unsupported-media-type"),
            (b"{}", None, LintQuery { operation: Some("PATCH".into()), ..LintQuery::default() }, 400, "invalid-request"),
            (b"{}", None, LintQuery { format: Some("xml".into()), ..LintQuery::default() }, 400, "invalid-request"),
            (b"{}", None, LintQuery { namespace: Some("Bad_NS".into()), ..LintQuery::default() }, 400, "invalid-request"),
            (
                b"apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x}\nspec:\n  minReadySeconds: soon\n",
                Some("application/yaml"),
                LintQuery::default(),
                400,
                "invalid-object",
            ),
        ];
        for (body, ct, q, status, kind) in cases {
            let (s, v) = call(body, *ct, q.clone());
            assert_eq!(s, *status, "{v}");
            assert_eq!(v["errors"][0]["kind"], *kind, "{v}");
            assert!(v["error"].as_str().is_some_and(|m| !m.is_empty()));
        }
        let (_, v) = call(b"ok: 1\n---\nbad: \xff\n", None, LintQuery::default());
        assert_eq!(
            (
                v["errors"][0]["line"].clone(),
                v["errors"][0]["column"].clone()
            ),
            (3.into(), 6.into())
        );
        assert_eq!(v["errors"][0]["document"], 1);
        let (_, v) = call(
            b"apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x}\nspec:\n  minReadySeconds: soon\n",
            None,
            LintQuery::default(),
        );
        let e = &v["errors"][0];
        assert_eq!(
            (
                e["line"].clone(),
                e["column"].clone(),
                e["document"].clone()
            ),
            (5.into(), 20.into(), 0.into())
        );
        assert_eq!(e["path"], "/spec/minReadySeconds");
    }

    #[test]
    fn huge_bodies_are_refused_before_parsing() {
        let body = vec![b'#'; MAX_LINT_BODY_BYTES + 1];
        let (s, v) = call(&body, None, LintQuery::default());
        assert_eq!(s, 413);
        assert_eq!(v["errors"][0]["kind"], "too-large");
    }

    #[test]
    fn skipped_documents_are_listed() {
        let (s, v) = call(
            b"apiVersion: v1\nkind: Service\nmetadata: {name: svc}\n",
            None,
            LintQuery::default(),
        );
        assert_eq!(s, 200);
        assert_eq!(v["files"][0]["skipped"][0]["kind"], "Service");
        assert_eq!(v["summary"]["skipped"], 1);
    }

    #[test]
    fn namespaces_are_rfc1123_labels() {
        assert!(valid_namespace("kube-system"));
        for bad in ["", "-a", "a-", "A", "a.b", &"a".repeat(64)] {
            assert!(!valid_namespace(bad), "{bad}");
        }
    }

    #[test]
    fn rule_docs_include_the_linter_rule() {
        let docs = rule_docs();
        assert!(docs
            .iter()
            .any(|r| r.id == report::RULE_API_VERSION_REMOVED && !r.configurable));
        assert_eq!(docs.len(), catalog::rules().count() + 1);
    }
}
