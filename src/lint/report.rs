//! The lint report (stable JSON) and the one code path that builds it, shared by the CLI and
//! `/lint`.
//!
//! Shape (`version` 1; fields are only added, never renamed or removed, without a version bump):
//! ```text
//! { "version": 1, "operation": "CREATE", "defaultNamespace": "default",
//!   "files": [{ "source": "ds.yaml",
//!     "objects": [{ "document": 0, "item": null, "apiVersion": "apps/v1", "kind": "DaemonSet",
//!       "namespace": "logging", "name": "agent", "line": 5, "column": 1,
//!       "findings": [{ "rule": "security-privileged", "mode": "enforce",
//!         "path": "/spec/template/spec/containers/0/securityContext/privileged",
//!         "message": "container \"agent\": ...", "fixed": false, "line": 28, "column": 25 }],
//!       "verdict": { "allowed": false, "deniedBy": "validating", "message": "DaemonSet logging/agent:\n  [...] ...",
//!         "warnings": ["..."] },
//!       "patch": [{ "op": "add", "path": "...", "value": {} }],
//!       "mutated": { "apiVersion": "apps/v1", ... } }],
//!     "skipped": [{ "document": 1, "item": null, "apiVersion": "v1", "kind": "ConfigMap",
//!       "namespace": "logging", "name": "cfg", "reason": "a ConfigMap, not a DaemonSet" }] }],
//!   "errors": [{ "source": "x.yaml", "kind": "syntax", "document": 0, "line": 3, "column": 5,
//!     "path": null, "message": "invalid YAML: ..." }],
//!   "summary": { "files": 1, "daemonsets": 1, "allowed": 0, "denied": 1, "skipped": 1,
//!     "errors": 0, "enforce": 4, "warn": 2, "fixed": 4 } }
//! ```
//! `/lint` answers 400/413/415 with `{ "version": 1, "error": "<first error, one line>",
//! "errors": [<same objects as above>] }`.

use std::fmt;

use json_patch::PatchOperation;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::load::{self, Item, Loaded, Removed};
use super::split::{Chunk, Splitter};
use crate::policy::decision::{self, Decision, Review, Stage};
use crate::policy::{Finding, Mode, OldObject, Operation, Policies};
use crate::yaml::{self, Document, Location};

/// Version of the report format; bumped on any incompatible change.
pub const REPORT_VERSION: u32 = 1;

/// Rule id of the finding for a DaemonSet under an API version Kubernetes no longer serves. It
/// is not a policy rule: no configuration can make the API server accept such an object.
pub const RULE_API_VERSION_REMOVED: &str = "api-version-removed";

/// Everything one lint run found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// [`REPORT_VERSION`].
    pub version: u32,
    /// The admission operation each DaemonSet was evaluated as.
    pub operation: Operation,
    /// Namespace of objects that do not name one.
    pub default_namespace: String,
    pub files: Vec<FileReport>,
    /// Input that could not be read; any error makes the CLI exit 2 and `/lint` answer 400.
    pub errors: Vec<InputError>,
    pub summary: Summary,
}

/// The DaemonSets and skipped documents of one input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileReport {
    /// The path as given, or `-` for stdin and for the body of `/lint`.
    pub source: String,
    pub objects: Vec<ObjectReport>,
    pub skipped: Vec<Skipped>,
}

/// One DaemonSet and what admission would do with it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReport {
    /// 0-based index of the YAML document in the file.
    pub document: usize,
    /// Index in `items` when the object is part of a `List`.
    pub item: Option<usize>,
    pub api_version: String,
    pub kind: String,
    /// The object's namespace, or the default namespace it is evaluated in.
    pub namespace: String,
    /// `metadata.name` (or `generateName`), empty when neither is set.
    pub name: String,
    /// Where the object starts in the input.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Findings on the object as submitted (what the mutating webhook sees), in rule order.
    pub findings: Vec<FindingReport>,
    pub verdict: Verdict,
    /// The RFC 6902 operations the mutating webhook would return (empty: no mutation).
    pub patch: Vec<PatchOperation>,
    /// The object after the patch.
    pub mutated: Value,
}

/// A finding with its place in the input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FindingReport {
    pub rule: String,
    pub mode: Mode,
    /// JSON Pointer of the field inside the object.
    pub path: String,
    pub message: String,
    /// The mutation fixes it: admission would not deny it.
    pub fixed: bool,
    /// Line and column of the field, or of its nearest ancestor present in the input (a missing
    /// field points at the object that should hold it).
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl FindingReport {
    /// Whether admission denies because of this finding.
    pub fn denies(&self) -> bool {
        self.mode == Mode::Enforce && !self.fixed
    }
}

/// Which webhook rejects the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeniedBy {
    /// The API server itself: before any webhook (a removed API version), or after `/mutate`
    /// allowed a warn-mode finding of a rule the API server enforces too.
    Apiserver,
    /// The mutating webhook (`/mutate`): enforce-mode findings of rules the API server enforces
    /// too (see `RuleInfo::api_server_rejects`).
    Mutating,
    /// The validating webhook (`/validate`).
    Validating,
}

/// What admission answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub allowed: bool,
    pub denied_by: Option<DeniedBy>,
    /// The denial message admission would return (`None` when allowed).
    pub message: Option<String>,
    /// The warnings kubectl would print: what mutation set, then warn-mode findings.
    pub warnings: Vec<String>,
}

/// A document (or `List` item) that is not an `apps/v1` DaemonSet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    pub document: usize,
    pub item: Option<usize>,
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub reason: String,
}

/// Counts over the whole run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub files: usize,
    pub daemonsets: usize,
    pub allowed: usize,
    pub denied: usize,
    pub skipped: usize,
    pub errors: usize,
    /// Findings that deny (enforce, not fixed).
    pub enforce: usize,
    /// Warn-mode findings.
    pub warn: usize,
    /// Findings the mutation fixes.
    pub fixed: usize,
}

impl Summary {
    /// Counts a DaemonSet and its findings.
    pub fn count(&mut self, o: &ObjectReport) {
        self.daemonsets += 1;
        if o.verdict.allowed {
            self.allowed += 1;
        } else {
            self.denied += 1;
        }
        for x in &o.findings {
            match (x.fixed, x.mode) {
                (true, _) => self.fixed += 1,
                (false, Mode::Enforce) => self.enforce += 1,
                (false, Mode::Warn) => self.warn += 1,
                (false, Mode::Off) => {}
            }
        }
    }

    /// Adds the counts of `other`.
    pub fn add(&mut self, other: &Summary) {
        self.files += other.files;
        self.daemonsets += other.daemonsets;
        self.allowed += other.allowed;
        self.denied += other.denied;
        self.skipped += other.skipped;
        self.errors += other.errors;
        self.enforce += other.enforce;
        self.warn += other.warn;
        self.fixed += other.fixed;
    }
}

/// What kind of input problem an [`InputError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The file could not be read.
    Io,
    /// Not UTF-8.
    Encoding,
    /// YAML/JSON syntax.
    Syntax,
    /// A document (or `List` item) that is not a mapping.
    NotAnObject,
    /// A DaemonSet whose fields have the wrong types.
    InvalidObject,
    /// `/lint` received nothing to lint.
    Empty,
    /// `/lint` body over the size limit.
    TooLarge,
    /// `/lint` Content-Type not accepted.
    UnsupportedMediaType,
    /// A bad query parameter or command-line value.
    InvalidRequest,
    /// `--remote`: the server could not be reached or answered something unexpected.
    Remote,
    /// The engine's patch did not apply: a bug in daemonset-guard, reported rather than hidden.
    Internal,
}

/// Input that could not be linted, with its location when one is known.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InputError {
    pub source: String,
    pub kind: ErrorKind,
    pub document: Option<usize>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// JSON Pointer of the offending field inside its object, for type errors.
    pub path: Option<String>,
    pub message: String,
}

impl InputError {
    /// An error without a location.
    pub fn new(source: &str, kind: ErrorKind, message: impl Into<String>) -> InputError {
        InputError {
            source: source.to_string(),
            kind,
            document: None,
            line: None,
            column: None,
            path: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for InputError {
    /// `file:line:column: message (document N)`, the form editors and terminals link.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": {}", self.message)?;
        if let Some(d) = self.document {
            write!(f, " (document {d})")?;
        }
        Ok(())
    }
}

/// How to evaluate the DaemonSets of a run.
#[derive(Clone, Copy, Debug)]
pub struct LintOptions<'a> {
    pub policies: &'a Policies,
    pub operation: Operation,
    /// Namespace of objects that do not name one.
    pub namespace: &'a str,
    /// The stored objects an UPDATE replaces; required for [`Operation::Update`].
    pub old: Option<&'a OldObjects>,
}

/// The stored DaemonSets of an UPDATE (`lint --old FILE`), found by namespace and name.
#[derive(Clone, Debug, Default)]
pub struct OldObjects {
    by_name: std::collections::BTreeMap<(String, String), OldObject>,
}

impl OldObjects {
    /// Reads the apps/v1 DaemonSets of `text`; objects without a namespace are in `namespace`.
    /// Other kinds are ignored.
    pub fn from_text(source: &str, text: &str, namespace: &str) -> Result<Self, Vec<InputError>> {
        let docs = parse(text).map_err(|e| {
            vec![InputError {
                document: Some(e.document),
                line: Some(e.line),
                column: Some(e.column),
                ..InputError::new(
                    source,
                    ErrorKind::Syntax,
                    format!("invalid YAML: {}", e.message),
                )
            }]
        })?;
        let locator = Locator::at(text, 0);
        let mut out = OldObjects::default();
        for doc in &docs {
            for item in load::items(source, doc, &locator).map_err(|e| vec![*e])? {
                if let Item::DaemonSet(ds) = item {
                    let meta = &ds.object.metadata;
                    let key = (
                        meta.namespace.as_deref().unwrap_or(namespace).to_string(),
                        meta.name.clone().unwrap_or_default(),
                    );
                    out.by_name.insert(key, OldObject::of(&ds.object));
                }
            }
        }
        Ok(out)
    }

    /// The stored object named `name` in `namespace`.
    pub fn get(&self, namespace: &str, name: &str) -> Option<&OldObject> {
        self.by_name.get(&(namespace.to_string(), name.to_string()))
    }
}

/// Why an UPDATE cannot be linted without the stored object.
pub const UPDATE_NEEDS_OLD: &str = "--operation UPDATE compares the manifest with the stored \
     object (spec.selector is immutable): pass it with --old FILE (the manifest as applied \
     before, or `kubectl get ds NAME -o yaml`)";

/// Finds the input location of a JSON Pointer. `yaml::Document` places a block mapping at the
/// `:` of its first key; a finding about a missing field should point at the start of the object
/// that lacks it, so such locations are moved back to the start of that key.
pub(crate) struct Locator<'t> {
    lines: Vec<&'t str>,
    /// Lines of the input before `text`.
    first_line: usize,
}

impl<'t> Locator<'t> {
    #[cfg(test)]
    pub fn new(text: &'t str) -> Self {
        Self::at(text, 0)
    }

    /// A locator for a piece of an input that starts after `first_line` lines.
    pub fn at(text: &'t str, first_line: usize) -> Self {
        Locator {
            lines: text.lines().collect(),
            first_line,
        }
    }

    /// Where `pointer` (or its nearest ancestor in the input) starts.
    pub fn locate(&self, doc: &Document, pointer: &str) -> Option<Location> {
        doc.locate(pointer).map(|l| self.refine(l))
    }

    fn refine(&self, l: Location) -> Location {
        let Some(line) = l
            .line
            .checked_sub(1 + self.first_line)
            .and_then(|i| self.lines.get(i))
        else {
            return l;
        };
        let chars: Vec<char> = line.chars().collect();
        if l.column == 0 || chars.get(l.column - 1) != Some(&':') {
            return l;
        }
        // Skip indentation and sequence markers (`- - key:`): the key starts after them.
        let mut i = 0;
        loop {
            while chars.get(i).is_some_and(|c| *c == ' ' || *c == '\t') {
                i += 1;
            }
            if chars.get(i) == Some(&'-')
                && chars.get(i + 1).is_some_and(|c| *c == ' ' || *c == '\t')
            {
                i += 1;
                continue;
            }
            break;
        }
        if i < l.column - 1 {
            Location {
                line: l.line,
                column: i + 1,
            }
        } else {
            l
        }
    }
}

/// One linted input: its report, how many documents it holds, and the errors (the last one
/// may have stopped it).
#[derive(Debug)]
pub struct Linted {
    pub file: FileReport,
    /// Documents that hold something (comments and empty documents do not count).
    pub documents: usize,
    pub errors: Vec<InputError>,
}

/// Lints one input. An unreadable document (a syntax error too: YAML cannot resume after one)
/// stops the input there, keeping what came before.
pub fn lint_text(source: &str, text: &str, opts: &LintOptions<'_>) -> Linted {
    let mut linted = Linted {
        file: FileReport {
            source: source.to_string(),
            objects: Vec::new(),
            skipped: Vec::new(),
        },
        documents: 0,
        errors: Vec::new(),
    };
    // Reading from a slice cannot fail.
    for chunk in Splitter::new(text.as_bytes()).map_while(Result::ok) {
        let c = lint_chunk(source, &chunk, opts, false);
        linted.file.objects.extend(c.objects);
        linted.file.skipped.extend(c.skipped);
        linted.errors.extend(c.errors);
        linted.documents += c.documents;
        if c.stop {
            break;
        }
    }
    linted
}

/// One linted piece of an input (a document, see [`super::split`]).
#[derive(Debug, Default)]
pub struct ChunkLinted {
    pub objects: Vec<ObjectReport>,
    pub skipped: Vec<Skipped>,
    pub errors: Vec<InputError>,
    /// An unreadable document: the rest of the input is not linted.
    pub stop: bool,
    /// Documents that hold something.
    pub documents: usize,
    /// With `fix`: the documents with the mutation applied, as a YAML stream.
    pub fixed: Option<String>,
}

/// Lints one piece of an input. A document that is not an apps/v1 DaemonSet (nor a `List` that
/// may hold one) is recognised from the parser's events alone; only the others get the
/// positioned tree. With `fix`, every document is parsed to be printed again.
pub fn lint_chunk(source: &str, chunk: &Chunk, opts: &LintOptions<'_>, fix: bool) -> ChunkLinted {
    let mut out = ChunkLinted::default();
    let text = match decode_chunk(source, chunk) {
        Ok(t) => t,
        Err(e) => {
            out.errors.push(*e);
            out.stop = true;
            return out;
        }
    };
    if !fix {
        if let Some(skipped) = yaml::sniff(text).and_then(|h| load::sniffed(chunk.document, &h)) {
            out.documents = 1;
            out.skipped.push(skipped);
            return out;
        }
    }
    let docs = match yaml::parse_documents_at(text, chunk.document, chunk.line) {
        Ok(d) => d,
        Err(e) => {
            out.errors.push(InputError {
                source: source.to_string(),
                kind: ErrorKind::Syntax,
                document: Some(e.document),
                line: Some(e.line),
                column: Some(e.column),
                path: None,
                message: format!("invalid YAML: {}", e.message),
            });
            out.stop = true;
            return out;
        }
    };
    let locator = Locator::at(text, chunk.line);
    for doc in &docs {
        out.documents += 1;
        lint_document(source, doc, &locator, opts, &mut out);
        if out.stop {
            break;
        }
    }
    if fix {
        out.fixed = Some(super::fixed_manifests(&docs, &out.objects));
    }
    out
}

/// Lints one parsed document into `out`.
fn lint_document(
    source: &str,
    doc: &Document,
    locator: &Locator<'_>,
    opts: &LintOptions<'_>,
    out: &mut ChunkLinted,
) {
    let items = match load::items(source, doc, locator) {
        Ok(items) => items,
        Err(e) => {
            out.errors.push(*e);
            out.stop = true;
            return;
        }
    };
    for item in items {
        match item {
            Item::Skipped(s) => out.skipped.push(s),
            Item::Removed(r) => out.objects.push(removed(locator, doc, r, opts)),
            Item::DaemonSet(ds) => match evaluate(locator, doc, &ds, opts) {
                Ok(Ok(o)) => out.objects.push(o),
                Ok(Err(s)) => out.skipped.push(s),
                Err((kind, message)) => out.errors.push(InputError {
                    document: Some(doc.index),
                    line: locator.locate(doc, &ds.pointer).map(|l| l.line),
                    column: locator.locate(doc, &ds.pointer).map(|l| l.column),
                    ..InputError::new(source, kind, message)
                }),
            },
        }
    }
}

/// The piece as text, or where it stops being UTF-8 (line and column in the whole input).
fn decode_chunk<'c>(source: &str, chunk: &'c Chunk) -> Result<&'c str, Box<InputError>> {
    std::str::from_utf8(&chunk.bytes).map_err(|e| {
        let good = &chunk.bytes[..e.valid_up_to()];
        // The prefix is valid UTF-8 by construction.
        let before = std::str::from_utf8(good).unwrap_or_default();
        let line = chunk.line + before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Box::new(InputError {
            document: Some(chunk.document),
            line: Some(line),
            column: Some(column),
            ..InputError::new(
                source,
                ErrorKind::Encoding,
                format!("invalid UTF-8 at byte {}", chunk.offset + e.valid_up_to()),
            )
        })
    })
}

/// The one parse every linted input goes through (alias bombs are refused there, see
/// [`yaml::MAX_EXPANDED_VALUES`]).
pub fn parse(text: &str) -> Result<Vec<Document>, yaml::YamlError> {
    yaml::parse_documents(text)
}

/// Builds the run's report from linted inputs (and errors of inputs that could not be read).
pub fn report(files: Vec<FileReport>, errors: Vec<InputError>, opts: &LintOptions<'_>) -> Report {
    let mut summary = Summary {
        files: files.len(),
        errors: errors.len(),
        ..Summary::default()
    };
    for f in &files {
        summary.skipped += f.skipped.len();
        for o in &f.objects {
            summary.count(o);
        }
    }
    Report {
        version: REPORT_VERSION,
        operation: opts.operation,
        default_namespace: opts.namespace.to_string(),
        files,
        errors,
        summary,
    }
}

impl Report {
    /// Whether some DaemonSet would be denied.
    pub fn denied(&self) -> bool {
        self.summary.denied > 0
    }

    /// The CLI's exit code: 2 unreadable input, 1 a deny, 0 otherwise.
    pub fn exit_code(&self) -> u8 {
        if !self.errors.is_empty() {
            2
        } else if self.denied() {
            1
        } else {
            0
        }
    }
}

/// Reason a DaemonSet is listed as skipped when the operation is never evaluated (DELETE,
/// CONNECT): admission does not look at it.
fn not_evaluated(operation: Operation) -> String {
    format!("not evaluated: {} is never restricted", operation.as_str())
}

fn evaluate(
    locator: &Locator<'_>,
    doc: &Document,
    ds: &Loaded,
    opts: &LintOptions<'_>,
) -> Result<Result<ObjectReport, Skipped>, (ErrorKind, String)> {
    let meta = &ds.object.metadata;
    let namespace = meta.namespace.as_deref().unwrap_or(opts.namespace);
    let old = match opts.operation {
        Operation::Update => {
            let name = meta.name.as_deref().unwrap_or("");
            let old = opts
                .old
                .ok_or_else(|| (ErrorKind::InvalidRequest, UPDATE_NEEDS_OLD.to_string()))?;
            Some(old.get(namespace, name).ok_or_else(|| {
                (
                    ErrorKind::InvalidRequest,
                    format!(
                        "--operation UPDATE: no stored DaemonSet {namespace}/{name} in the --old \
                         manifests; an UPDATE needs the object it replaces"
                    ),
                )
            })?)
        }
        _ => None,
    };
    let review = Review {
        operation: opts.operation,
        sub_resource: None,
        is_daemonset: true,
        dry_run: false,
        namespace: opts.namespace,
        object: Some(&ds.object),
        old,
    };
    let Some(decision) = decision::decide(&review, opts.policies)
        .map_err(|e| (ErrorKind::Internal, e.to_string()))?
    else {
        return Ok(Err(Skipped {
            document: ds.document,
            item: ds.item,
            api_version: Some("apps/v1".into()),
            kind: Some("DaemonSet".into()),
            namespace: Some(namespace.to_string()),
            name: Some(decision::display_name(meta)),
            reason: not_evaluated(opts.operation),
        }));
    };
    let findings = decision
        .mutation
        .findings
        .iter()
        .map(|f| finding(locator, doc, &ds.pointer, f))
        .collect();
    let end = decision.end();
    let mutated = mutated(&ds.value, &decision).map_err(|e| (ErrorKind::Internal, e))?;
    let at = locator.locate(doc, &ds.pointer);
    Ok(Ok(ObjectReport {
        document: ds.document,
        item: ds.item,
        api_version: "apps/v1".into(),
        kind: "DaemonSet".into(),
        namespace: decision.namespace,
        name: decision.name,
        line: at.map(|l| l.line),
        column: at.map(|l| l.column),
        findings,
        verdict: Verdict {
            allowed: end.denied_by.is_none(),
            denied_by: end.denied_by.map(|s| match s {
                Stage::Mutating => DeniedBy::Mutating,
                Stage::ApiServer => DeniedBy::Apiserver,
                Stage::Validating => DeniedBy::Validating,
            }),
            message: end.message,
            warnings: end.warnings,
        },
        patch: decision.mutation.patch,
        mutated,
    }))
}

fn finding(locator: &Locator<'_>, doc: &Document, base: &str, f: &Finding) -> FindingReport {
    let at = locator.locate(doc, &format!("{base}{}", f.path));
    FindingReport {
        rule: f.rule.to_string(),
        mode: f.mode,
        path: f.path.clone(),
        message: f.message.clone(),
        fixed: f.fixed,
        line: at.map(|l| l.line),
        column: at.map(|l| l.column),
    }
}

/// The patched manifest. The patch targets the object as k8s-openapi serialises it; applied to
/// the input instead it keeps fields k8s-openapi does not know and the author's key order. When it
/// does not apply there (an explicit `null` where the patch adds below it), the typed object
/// serialised is the answer.
fn mutated(input: &Value, decision: &Decision) -> Result<Value, String> {
    let Some(patched) = &decision.patched else {
        return Ok(input.clone());
    };
    let mut v = input.clone();
    if json_patch::patch(&mut v, &decision.mutation.patch).is_ok() {
        return Ok(v);
    }
    serde_json::to_value(patched).map_err(|e| format!("cannot serialise the patched object: {e}"))
}

fn removed(
    locator: &Locator<'_>,
    doc: &Document,
    r: Removed,
    opts: &LintOptions<'_>,
) -> ObjectReport {
    let namespace = r.namespace.unwrap_or_else(|| opts.namespace.to_string());
    let name = r.name.unwrap_or_default();
    let message = format!(
        "DaemonSet {} is no longer served since Kubernetes 1.16; use apiVersion apps/v1 \
         (which requires spec.selector matching the template labels)",
        r.api_version
    );
    let at = locator.locate(doc, &format!("{}/apiVersion", r.pointer));
    let obj_at = locator.locate(doc, &r.pointer);
    ObjectReport {
        document: r.document,
        item: r.item,
        api_version: r.api_version.clone(),
        kind: "DaemonSet".into(),
        namespace: namespace.clone(),
        name: name.clone(),
        line: obj_at.map(|l| l.line),
        column: obj_at.map(|l| l.column),
        findings: vec![FindingReport {
            rule: RULE_API_VERSION_REMOVED.into(),
            mode: Mode::Enforce,
            path: "/apiVersion".into(),
            message: message.clone(),
            fixed: false,
            line: at.map(|l| l.line),
            column: at.map(|l| l.column),
        }],
        verdict: Verdict {
            allowed: false,
            denied_by: Some(DeniedBy::Apiserver),
            message: Some(format!(
                "no matches for kind \"DaemonSet\" in version \"{}\": {message}",
                r.api_version
            )),
            warnings: Vec::new(),
        },
        patch: Vec::new(),
        mutated: r.value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy;

    fn opts(policies: &Policies) -> LintOptions<'_> {
        LintOptions {
            policies,
            operation: Operation::Create,
            namespace: "default",
            old: None,
        }
    }

    #[test]
    fn syntax_errors_name_document_line_and_column() {
        let p = Policies::default();
        let l = lint_text("x.yaml", "a: 1\n---\nb: [1, 2\nc: 3\n", &opts(&p));
        let e = &l.errors[0];
        assert_eq!((e.kind, e.document), (ErrorKind::Syntax, Some(1)));
        assert!(e.line.unwrap() >= 3);
        assert!(e.to_string().starts_with("x.yaml:"), "{e}");
    }

    #[test]
    fn removed_api_version_is_a_located_deny() {
        let p = Policies::default();
        let text = "# old\napiVersion: extensions/v1beta1\nkind: DaemonSet\nmetadata:\n  name: old\n  namespace: ns\n";
        let l = lint_text("x.yaml", text, &opts(&p));
        assert!(l.errors.is_empty());
        let o = &l.file.objects[0];
        assert_eq!((o.namespace.as_str(), o.name.as_str()), ("ns", "old"));
        assert!(!o.verdict.allowed);
        assert_eq!(o.verdict.denied_by, Some(DeniedBy::Apiserver));
        let f = &o.findings[0];
        assert_eq!(f.rule, RULE_API_VERSION_REMOVED);
        assert_eq!((f.line, f.column), (Some(2), Some(13)));
        assert!(f.message.contains("1.16") && f.message.contains("apps/v1"));
        let r = report(vec![l.file], l.errors, &opts(&p));
        assert_eq!(r.exit_code(), 1);
    }

    #[test]
    fn finding_locations_use_the_list_item_prefix() {
        let text = "kind: List\napiVersion: v1\nitems:\n- kind: DaemonSet\n  spec:\n    x: 1\n";
        let doc = &yaml::parse_documents(text).unwrap()[0];
        let locator = Locator::new(text);
        let f = Finding {
            rule: "spec-x",
            mode: Mode::Warn,
            path: "/spec/x".into(),
            message: "m".into(),
            fixed: false,
        };
        let r = finding(&locator, doc, "/items/0", &f);
        assert_eq!((r.line, r.column), (Some(6), Some(8)));
        let missing = Finding {
            path: "/spec/template/spec".into(),
            ..f
        };
        let r = finding(&locator, doc, "/items/0", &missing);
        assert_eq!((r.line, r.column), (Some(6), Some(5)));
    }

    #[test]
    fn block_mappings_are_located_at_their_first_key() {
        let text = "a: 1\nspec:\n  containers:\n    - name: agent\n      image: x\n    - - k: v\n";
        let doc = &yaml::parse_documents(text).unwrap()[0];
        let l = Locator::new(text);
        let at = |p: &str| l.locate(doc, p).map(|l| (l.line, l.column));
        assert_eq!(at(""), Some((1, 1)));
        assert_eq!(at("/spec"), Some((3, 3)));
        assert_eq!(at("/spec/containers/0"), Some((4, 7)));
        assert_eq!(at("/spec/containers/0/resources/requests"), Some((4, 7)));
        assert_eq!(at("/spec/containers/0/image"), Some((5, 14)));
        assert_eq!(at("/spec/containers/1/0"), Some((6, 9)));
    }

    #[test]
    fn closing_brackets_at_the_parent_indentation_are_accepted() {
        let text = "a:\n  args: [\n    \"x\",\n  ]\n  b: 1\nc:\n  - [\n    1\n  ]\n";
        let docs = parse(text).unwrap();
        assert_eq!(
            docs[0].value,
            serde_json::json!({"a": {"args": ["x"], "b": 1}, "c": [[1]]})
        );
        assert_eq!(docs[0].locations["/a/b"], Location { line: 5, column: 6 });
        // Real indentation mistakes are still errors, reported where they are.
        let e = parse("a:\n  b: 1\n c: 2\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(parse("a: 1\n]\n").is_err());
    }

    #[test]
    fn columns_count_characters_as_sarif_is_told() {
        let doc = &parse("{ü: 1, b: 2}\n").unwrap()[0];
        assert_eq!(
            doc.locations["/b"],
            Location {
                line: 1,
                column: 11
            }
        );
    }

    #[test]
    fn denial_message_lists_each_finding_with_rule_and_path() {
        let f = Finding {
            rule: "security-privileged",
            mode: Mode::Enforce,
            path: "/spec/template/spec/containers/0/securityContext/privileged".into(),
            message: "container \"a\": privileged".into(),
            fixed: false,
        };
        assert_eq!(
            policy::denial_message("ns", "ds", [&f]),
            "DaemonSet ns/ds:\n  [security-privileged] container \"a\": privileged (at spec.template.spec.containers[0].securityContext.privileged)"
        );
    }

    #[test]
    fn clean_daemonset_is_allowed_and_mutated_equals_input() {
        let p = Policies::default();
        let text = serde_json::to_string(&crate::policy::testing::clean()).unwrap();
        let l = lint_text("-", &text, &opts(&p));
        assert!(l.errors.is_empty(), "{:?}", l.errors);
        let o = &l.file.objects[0];
        assert!(o.verdict.allowed);
        assert_eq!(
            (o.namespace.as_str(), o.name.as_str()),
            ("monitoring", "agent")
        );
        assert_eq!(o.mutated, crate::policy::testing::clean());
        assert_eq!((o.line, o.column), (Some(1), Some(1)));
    }
}
