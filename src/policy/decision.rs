//! The one admission decision: what `/mutate` and `/validate` answer for one request. Admission,
//! `lint` and `POST /lint` all call [`decide`] or [`answer`] and only translate the result, so
//! they cannot disagree.
//!
//! Where each rule can act follows the API server's order: it decodes and defaults the object,
//! calls mutating webhooks, validates the object itself, then calls validating webhooks. A
//! violation the API server rejects on its own ([`RuleInfo::api_server_rejects`]) never reaches
//! `/validate`, so `/mutate` denies it (enforce mode) or warns about it (warn mode); the API
//! server then still rejects a warned object with its own text.

use json_patch::PatchOperation;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::{denial_message, evaluate, Evaluation, Finding, Mode, Operation, Request};
use crate::catalog::rule;
use crate::config::Policy;

/// The API server drops a warning that contains a newline and cuts each one at this many
/// characters.
pub const WARNING_MAX_CHARS: usize = 256;
/// The API server keeps at most 4 KiB of warnings per request, shared with warnings from other
/// webhooks and deprecation notices; keeping ours under 3 KiB leaves them room.
pub const WARNINGS_MAX_BYTES: usize = 3 * 1024;

/// Skip reason of a DELETE or CONNECT.
pub const SKIP_OPERATION: &str = "the operation is never restricted";
/// Skip reason of a subresource request (`status`, ...).
pub const SKIP_SUBRESOURCE: &str = "subresource request";
/// Skip reason of a request about another kind of object.
pub const SKIP_NOT_DAEMONSET: &str = "not an apps/v1 DaemonSet";

/// The stored object of an UPDATE, reduced to what the rules read: its selector.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OldObject {
    /// `spec.selector`; `None` when the stored object has no spec.
    pub selector: Option<LabelSelector>,
}

impl OldObject {
    /// The parts of a stored DaemonSet the rules read.
    pub fn of(ds: &DaemonSet) -> OldObject {
        OldObject {
            selector: ds.spec.as_ref().map(|s| s.selector.clone()),
        }
    }
}

/// One admission request as the engine sees it.
#[derive(Clone, Copy, Debug)]
pub struct Review<'a> {
    pub operation: Operation,
    /// `request.subResource` (`status`, ...); `None` or empty for the object itself.
    pub sub_resource: Option<&'a str>,
    /// Whether the request is about an `apps/v1` DaemonSet.
    pub is_daemonset: bool,
    /// The answer does not depend on it (the webhook has no side effects); carried for the record.
    pub dry_run: bool,
    /// The namespace of the request (an object without one is in this namespace).
    pub namespace: &'a str,
    /// `request.object`; absent on DELETE and CONNECT.
    pub object: Option<&'a DaemonSet>,
    /// The stored object, on UPDATE.
    pub old: Option<&'a OldObject>,
}

/// The policy as each webhook applies it, built once per policy load.
///
/// `/validate` never patches, so it evaluates with mutation switched off: a violation that the
/// mutating webhook would have fixed, but that reaches validation unfixed (the mutating webhook is
/// not installed, or a later webhook undid the change), is reported and denied as what it is,
/// instead of being excused by a patch nobody applied. On an object `/mutate` already patched the
/// two agree, since mutation is idempotent.
#[derive(Clone, Debug)]
pub struct Policies {
    mutating: Policy,
    validating: Policy,
}

impl Policies {
    /// Derives the validating view of `policy`.
    pub fn new(policy: Policy) -> Self {
        let validating = policy.without_mutations();
        Policies {
            mutating: policy,
            validating,
        }
    }

    /// The policy as loaded (what `/mutate` applies).
    pub fn policy(&self) -> &Policy {
        &self.mutating
    }

    /// The policy `/validate` applies: the loaded one with mutation off.
    pub fn validating(&self) -> &Policy {
        &self.validating
    }
}

impl Default for Policies {
    fn default() -> Self {
        Policies::new(Policy::default())
    }
}

/// Which webhook answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `/validate`: decides on the final object, never patches.
    Validate,
    /// `/mutate`: fills safe defaults; denies what the API server would reject itself before
    /// validating admission.
    Mutate,
}

impl Endpoint {
    /// `validate` or `mutate`, for logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Validate => "validate",
            Endpoint::Mutate => "mutate",
        }
    }
}

/// The verdict of one webhook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Admitted as it is.
    Allowed,
    /// Admitted with a patch (`/mutate` only).
    Patched,
    /// Rejected.
    Denied,
    /// Admitted without evaluation: not a DaemonSet, a DELETE or CONNECT, or a subresource.
    Skipped,
}

impl Verdict {
    /// Lowercase name, for logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Patched => "patched",
            Verdict::Denied => "denied",
            Verdict::Skipped => "skipped",
        }
    }

    /// Whether the request goes on.
    pub fn allowed(self) -> bool {
        self != Verdict::Denied
    }
}

/// What one webhook answers.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub verdict: Verdict,
    /// The denial message (`DaemonSet ns/name:` then one line per finding), when denied.
    pub message: Option<String>,
    /// Warnings, already fitted to the API server's limits.
    pub warnings: Vec<String>,
    /// The JSONPatch (`/mutate` only; empty when nothing changes or when denied).
    pub patch: Vec<PatchOperation>,
    /// The findings this webhook acted on, for metrics: all of them on `/validate`; on `/mutate`
    /// the fixed ones, the denials and the warnings.
    pub acted_on: Vec<(&'static str, Mode)>,
    /// Why the request was not evaluated, when [`Verdict::Skipped`].
    pub skip_reason: Option<&'static str>,
}

impl Answer {
    fn skipped(reason: &'static str) -> Answer {
        Answer {
            verdict: Verdict::Skipped,
            message: None,
            warnings: Vec::new(),
            patch: Vec::new(),
            acted_on: Vec::new(),
            skip_reason: Some(reason),
        }
    }
}

/// Why a request is not evaluated at all, decided from what is known before the object is parsed.
pub fn skip_reason(
    operation: Operation,
    sub_resource: Option<&str>,
    is_daemonset: bool,
) -> Option<&'static str> {
    if matches!(operation, Operation::Delete | Operation::Connect) {
        Some(SKIP_OPERATION)
    } else if sub_resource.is_some_and(|s| !s.is_empty()) {
        Some(SKIP_SUBRESOURCE)
    } else if !is_daemonset {
        Some(SKIP_NOT_DAEMONSET)
    } else {
        None
    }
}

/// The name an object is shown under: `metadata.name`, or `generateName` followed by `*` (the
/// API server appends a random suffix after admission), or empty.
pub fn display_name(meta: &ObjectMeta) -> String {
    match (&meta.name, &meta.generate_name) {
        (Some(name), _) if !name.is_empty() => name.clone(),
        (_, Some(prefix)) if !prefix.is_empty() => format!("{prefix}*"),
        _ => String::new(),
    }
}

/// What one webhook answers for `review`, evaluating only what that webhook needs: the request
/// path of the admission server.
pub fn answer(endpoint: Endpoint, review: &Review<'_>, policies: &Policies) -> Answer {
    let Some((object, req)) = prepare(review) else {
        return Answer::skipped(skipped_why(review));
    };
    let shown = Shown::of(object, review.namespace);
    match endpoint {
        Endpoint::Mutate => {
            let mut e = evaluate(&req, policies.policy());
            let patch = std::mem::take(&mut e.patch);
            mutate_answer(&shown, &e, patch)
        }
        Endpoint::Validate => validate_answer(&shown, &evaluate(&req, policies.validating())),
    }
}

/// Both webhooks on one request: `/mutate` on the object as submitted, then `/validate` on the
/// object as patched.
#[derive(Clone, Debug)]
pub struct Decision {
    /// `metadata.namespace`, or the request's namespace.
    pub namespace: String,
    /// See [`display_name`].
    pub name: String,
    /// Findings on the object as submitted (what `/mutate` sees, under the loaded policy).
    pub mutation: Evaluation,
    /// What `/mutate` answers.
    pub mutate: Answer,
    /// The object after the patch; `None` when the patch is empty (it is the submitted object).
    pub patched: Option<DaemonSet>,
    /// Findings on the patched object under the validating policy.
    pub validation: Evaluation,
    /// What `/validate` answers for the patched object.
    pub validate: Answer,
}

/// Which step of admission rejects an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// `/mutate`.
    Mutating,
    /// The API server's own validation, after `/mutate` warned (a warn-mode rule the API server
    /// enforces anyway).
    ApiServer,
    /// `/validate`.
    Validating,
}

/// The end result of admission through both webhooks.
#[derive(Clone, Debug, PartialEq)]
pub struct Final {
    /// `None` when admitted.
    pub denied_by: Option<Stage>,
    /// The denial message, when denied.
    pub message: Option<String>,
    /// The warnings kubectl prints: those of `/mutate`, then those of `/validate` when reached.
    pub warnings: Vec<String>,
}

impl Decision {
    /// Findings the API server rejects after `/mutate` allowed them (warn mode): the request
    /// never reaches `/validate`.
    pub fn api_server_denials(&self) -> impl Iterator<Item = &Finding> {
        self.mutation
            .findings
            .iter()
            .filter(|f| f.mode == Mode::Warn && !f.fixed && api_server_rejects(f))
    }

    /// What the user sees in the end.
    pub fn end(&self) -> Final {
        if self.mutate.verdict == Verdict::Denied {
            return Final {
                denied_by: Some(Stage::Mutating),
                message: self.mutate.message.clone(),
                warnings: self.mutate.warnings.clone(),
            };
        }
        let rejected: Vec<&Finding> = self.api_server_denials().collect();
        if !rejected.is_empty() {
            return Final {
                denied_by: Some(Stage::ApiServer),
                message: Some(denial_message(&self.namespace, &self.name, rejected)),
                warnings: self.mutate.warnings.clone(),
            };
        }
        let mut warnings = self.mutate.warnings.clone();
        warnings.extend(self.validate.warnings.iter().cloned());
        Final {
            denied_by: (self.validate.verdict == Verdict::Denied).then_some(Stage::Validating),
            message: self.validate.message.clone(),
            warnings,
        }
    }

    /// Whether the object is admitted by both webhooks and the API server.
    pub fn allowed(&self) -> bool {
        self.end().denied_by.is_none()
    }
}

/// Why the patch could not be applied; a bug in a rule family, never the user's fault.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("the mutation patch does not apply: {0}")]
    Patch(#[from] json_patch::PatchError),
    #[error("the patched object is not a DaemonSet: {0}")]
    Patched(#[from] serde_json::Error),
}

/// Decides `review` through both webhooks; `Ok(None)` when it is not evaluated (see
/// [`skip_reason`]).
pub fn decide(review: &Review<'_>, policies: &Policies) -> Result<Option<Decision>, DecideError> {
    let Some((object, req)) = prepare(review) else {
        return Ok(None);
    };
    let shown = Shown::of(object, review.namespace);
    let mutation = evaluate(&req, policies.policy());
    let mutate = mutate_answer(&shown, &mutation, mutation.patch.clone());
    let patched = if mutation.patch.is_empty() {
        None
    } else {
        let mut doc = serde_json::to_value(object)?;
        json_patch::patch(&mut doc, &mutation.patch)?;
        Some(serde_json::from_value::<DaemonSet>(doc)?)
    };
    let validation = evaluate(
        &Request {
            object: patched.as_ref().unwrap_or(object),
            ..req
        },
        policies.validating(),
    );
    let validate = validate_answer(&shown, &validation);
    Ok(Some(Decision {
        namespace: shown.namespace,
        name: shown.name,
        mutation,
        mutate,
        patched,
        validation,
        validate,
    }))
}

fn prepare<'a>(review: &'a Review<'a>) -> Option<(&'a DaemonSet, Request<'a>)> {
    if skip_reason(review.operation, review.sub_resource, review.is_daemonset).is_some() {
        return None;
    }
    let object = review.object?;
    Some((
        object,
        Request {
            object,
            old_object: review.old.filter(|_| review.operation == Operation::Update),
            operation: review.operation,
            namespace: review.namespace,
        },
    ))
}

fn skipped_why(review: &Review<'_>) -> &'static str {
    skip_reason(review.operation, review.sub_resource, review.is_daemonset)
        .unwrap_or("the request carries no object")
}

/// Namespace and name as messages show them.
struct Shown {
    namespace: String,
    name: String,
}

impl Shown {
    fn of(object: &DaemonSet, namespace: &str) -> Shown {
        Shown {
            namespace: object
                .metadata
                .namespace
                .as_deref()
                .unwrap_or(namespace)
                .to_string(),
            name: display_name(&object.metadata),
        }
    }
}

fn api_server_rejects(f: &Finding) -> bool {
    rule(f.rule).is_some_and(|r| r.api_server_rejects)
}

/// `patch` is `e.patch`, passed apart so the request path can move it instead of copying it.
fn mutate_answer(shown: &Shown, e: &Evaluation, patch: Vec<PatchOperation>) -> Answer {
    let denials: Vec<&Finding> = e.denials().filter(|f| api_server_rejects(f)).collect();
    let warned = |f: &Finding| f.fixed || (f.mode == Mode::Warn && api_server_rejects(f));
    let acted_on = e
        .findings
        .iter()
        .filter(|f| warned(f) || (f.denies() && api_server_rejects(f)))
        .map(|f| (f.rule, f.mode))
        .collect();
    if !denials.is_empty() {
        return Answer {
            verdict: Verdict::Denied,
            message: Some(denial_message(&shown.namespace, &shown.name, denials)),
            warnings: Vec::new(),
            patch: Vec::new(),
            acted_on,
            skip_reason: None,
        };
    }
    Answer {
        verdict: if patch.is_empty() {
            Verdict::Allowed
        } else {
            Verdict::Patched
        },
        message: None,
        warnings: fit_warnings(
            e.findings
                .iter()
                .filter(|f| warned(f))
                .map(|f| f.message.as_str()),
        ),
        patch,
        acted_on,
        skip_reason: None,
    }
}

fn validate_answer(shown: &Shown, e: &Evaluation) -> Answer {
    let denials: Vec<&Finding> = e.denials().collect();
    Answer {
        verdict: if denials.is_empty() {
            Verdict::Allowed
        } else {
            Verdict::Denied
        },
        message: (!denials.is_empty())
            .then(|| denial_message(&shown.namespace, &shown.name, denials)),
        warnings: fit_warnings(
            e.findings
                .iter()
                .filter(|f| f.mode == Mode::Warn)
                .map(|f| f.message.as_str()),
        ),
        patch: Vec::new(),
        acted_on: e.findings.iter().map(|f| (f.rule, f.mode)).collect(),
        skip_reason: None,
    }
}

/// Makes warnings survive the API server's limits: one line each, at most
/// [`WARNING_MAX_CHARS`], and all of them within [`WARNINGS_MAX_BYTES`]; what does not fit is
/// counted in a last "and N more".
pub fn fit_warnings<'a>(messages: impl Iterator<Item = &'a str>) -> Vec<String> {
    const MORE_RESERVE: usize = 96;
    let messages: Vec<&str> = messages.collect();
    let mut out = Vec::new();
    let mut used = 0;
    for (i, m) in messages.iter().enumerate() {
        let w = one_line(m);
        let remaining = messages.len() - i - 1;
        let reserve = if remaining > 0 { MORE_RESERVE } else { 0 };
        if used + w.len() + reserve > WARNINGS_MAX_BYTES {
            out.push(format!(
                "and {} more warnings: run `daemonset-guard lint` on the manifest for the full list",
                messages.len() - i
            ));
            return out;
        }
        used += w.len();
        out.push(w);
    }
    out
}

fn one_line(message: &str) -> String {
    // Nearly every message is short and printable: copy it as it is.
    if message.len() <= WARNING_MAX_CHARS && !message.chars().any(char::is_control) {
        return message.to_string();
    }
    let mut out = String::with_capacity(message.len().min(WARNING_MAX_CHARS * 4));
    let fits = message.chars().nth(WARNING_MAX_CHARS).is_none();
    for (i, c) in message.chars().enumerate() {
        if !fits && i == WARNING_MAX_CHARS - 1 {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::add_op;
    use serde_json::json;

    fn shown() -> Shown {
        Shown {
            namespace: "ns".into(),
            name: "ds".into(),
        }
    }

    fn finding(rule: &'static str, mode: Mode, fixed: bool) -> Finding {
        Finding {
            rule,
            mode,
            path: "/spec/selector".into(),
            message: format!("{rule} message"),
            fixed,
        }
    }

    #[test]
    fn warnings_fit_the_api_server_limits() {
        let long = "x".repeat(1000);
        let with_newline = "first line\nsecond line";
        let w = fit_warnings([long.as_str(), with_newline].into_iter());
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].chars().count(), WARNING_MAX_CHARS);
        assert!(w[0].ends_with('…'));
        assert_eq!(w[1], "first line second line");

        let many: Vec<String> = (0..200)
            .map(|i| format!("container \"c{i}\": {}", "y".repeat(100)))
            .collect();
        let w = fit_warnings(many.iter().map(String::as_str));
        let total: usize = w.iter().map(String::len).sum();
        assert!(total <= WARNINGS_MAX_BYTES, "{total}");
        let last = w.last().unwrap();
        let kept = w.len() - 1;
        assert_eq!(last, &format!("and {} more warnings: run `daemonset-guard lint` on the manifest for the full list", 200 - kept));
        assert!(kept > 10);

        let exact = "z".repeat(WARNING_MAX_CHARS);
        assert_eq!(
            fit_warnings([exact.as_str()].into_iter()),
            vec![exact.clone()]
        );
        assert_eq!(fit_warnings(["a", "b"].into_iter()), vec!["a", "b"]);
        assert!(fit_warnings(std::iter::empty()).is_empty());
    }

    #[test]
    fn mutate_returns_the_patch_and_says_what_it_changed() {
        let e = Evaluation {
            findings: vec![
                finding("resources-requests-missing", Mode::Enforce, true),
                finding("security-seccomp-profile", Mode::Warn, true),
                finding("tolerations-blanket-exists", Mode::Warn, false),
                finding("security-privileged", Mode::Enforce, false),
            ],
            patch: vec![add_op("/spec/minReadySeconds", json!(5))],
        };
        let a = mutate_answer(&shown(), &e, e.patch.clone());
        assert_eq!(a.verdict, Verdict::Patched);
        assert_eq!(a.message, None);
        assert_eq!(
            serde_json::to_value(&a.patch).unwrap(),
            json!([{"op": "add", "path": "/spec/minReadySeconds", "value": 5}])
        );
        assert_eq!(
            a.warnings,
            vec![
                "resources-requests-missing message",
                "security-seccomp-profile message"
            ]
        );
        assert_eq!(
            a.acted_on,
            vec![
                ("resources-requests-missing", Mode::Enforce),
                ("security-seccomp-profile", Mode::Warn)
            ]
        );
        let a = mutate_answer(&shown(), &Evaluation::default(), Vec::new());
        assert_eq!(a.verdict, Verdict::Allowed);
        assert!(a.patch.is_empty() && a.warnings.is_empty());
    }

    #[test]
    fn mutate_denies_what_the_api_server_rejects_and_warns_in_warn_mode() {
        let e = Evaluation {
            findings: vec![
                finding("security-privileged", Mode::Enforce, false),
                finding("selector-immutable", Mode::Enforce, false),
                finding("rollout-max-unavailable-invalid", Mode::Enforce, false),
                finding("resources-requests-missing", Mode::Enforce, true),
            ],
            patch: vec![add_op("/spec/minReadySeconds", json!(5))],
        };
        let a = mutate_answer(&shown(), &e, e.patch.clone());
        assert_eq!(a.verdict, Verdict::Denied);
        assert!(a.patch.is_empty() && a.warnings.is_empty());
        assert_eq!(
            a.message.as_deref(),
            Some(
                "DaemonSet ns/ds:\n  [selector-immutable] selector-immutable message (at spec.selector)\n  \
                 [rollout-max-unavailable-invalid] rollout-max-unavailable-invalid message (at spec.selector)"
            )
        );
        assert!(a.acted_on.contains(&("selector-immutable", Mode::Enforce)));
        assert!(!a.acted_on.contains(&("security-privileged", Mode::Enforce)));

        // Warn mode: /mutate allows and warns; the API server still rejects the object.
        let e = Evaluation {
            findings: vec![finding("spec-restart-policy", Mode::Warn, false)],
            patch: vec![],
        };
        let a = mutate_answer(&shown(), &e, Vec::new());
        assert_eq!(a.verdict, Verdict::Allowed);
        assert_eq!(a.warnings, vec!["spec-restart-policy message"]);
    }

    #[test]
    fn validate_denies_every_enforce_finding_and_warns_the_rest() {
        let e = Evaluation {
            findings: vec![
                finding("security-privileged", Mode::Enforce, false),
                finding("tolerations-blanket-exists", Mode::Warn, false),
                finding("spec-restart-policy", Mode::Enforce, false),
            ],
            patch: vec![],
        };
        let a = validate_answer(&shown(), &e);
        assert_eq!(a.verdict, Verdict::Denied);
        assert!(a.patch.is_empty());
        assert_eq!(a.warnings, vec!["tolerations-blanket-exists message"]);
        assert_eq!(
            a.message.as_deref(),
            Some(
                "DaemonSet ns/ds:\n  [security-privileged] security-privileged message (at spec.selector)\n  \
                 [spec-restart-policy] spec-restart-policy message (at spec.selector)"
            )
        );
        assert_eq!(a.acted_on.len(), 3);

        let warn_only = Evaluation {
            findings: vec![finding("tolerations-blanket-exists", Mode::Warn, false)],
            patch: vec![],
        };
        let a = validate_answer(&shown(), &warn_only);
        assert_eq!(a.verdict, Verdict::Allowed);
        assert_eq!(a.message, None);
        assert_eq!(a.warnings.len(), 1);
    }

    #[test]
    fn validating_policy_never_mutates() {
        let p = Policies::default();
        assert!(p.policy().mutates(crate::vocab::Family::Resources));
        for family in [
            crate::vocab::Family::Resources,
            crate::vocab::Family::Tolerations,
            crate::vocab::Family::Security,
        ] {
            assert!(!p.validating().mutates(family), "{family:?}");
        }
    }

    #[test]
    fn skips_are_decided_before_the_object() {
        assert_eq!(
            skip_reason(Operation::Delete, None, true),
            Some(SKIP_OPERATION)
        );
        assert_eq!(
            skip_reason(Operation::Connect, None, true),
            Some(SKIP_OPERATION)
        );
        assert_eq!(
            skip_reason(Operation::Update, Some("status"), true),
            Some(SKIP_SUBRESOURCE)
        );
        assert_eq!(
            skip_reason(Operation::Create, Some(""), false),
            Some(SKIP_NOT_DAEMONSET)
        );
        assert_eq!(skip_reason(Operation::Update, None, true), None);
    }

    #[test]
    fn generate_name_is_shown_with_a_star() {
        let meta = |name: Option<&str>, generate: Option<&str>| ObjectMeta {
            name: name.map(String::from),
            generate_name: generate.map(String::from),
            ..ObjectMeta::default()
        };
        assert_eq!(display_name(&meta(Some("a"), Some("b-"))), "a");
        assert_eq!(display_name(&meta(None, Some("agent-"))), "agent-*");
        assert_eq!(display_name(&meta(Some(""), Some("agent-"))), "agent-*");
        assert_eq!(display_name(&meta(None, None)), "");
    }

    #[test]
    fn a_warned_finding_the_api_server_rejects_ends_the_request_there() {
        let object: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "ns"},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "5"}},
                "template": {"metadata": {"labels": {"app": "agent"}},
                             "spec": {"containers": [{"name": "agent", "image": "a:1"}]}}
            }
        }))
        .unwrap();
        let review = Review {
            operation: Operation::Create,
            sub_resource: None,
            is_daemonset: true,
            dry_run: false,
            namespace: "default",
            object: Some(&object),
            old: None,
        };
        let policy =
            Policy::from_yaml("rules:\n  rollout-max-unavailable-invalid: warn\n", "p").unwrap();
        let d = decide(&review, &Policies::new(policy)).unwrap().unwrap();
        assert_ne!(d.mutate.verdict, Verdict::Denied);
        let end = d.end();
        assert_eq!(end.denied_by, Some(Stage::ApiServer));
        assert!(end
            .message
            .unwrap()
            .contains("[rollout-max-unavailable-invalid]"));
        // Enforce mode (the default): /mutate denies it with the same finding.
        let d = decide(&review, &Policies::default()).unwrap().unwrap();
        assert_eq!(d.mutate.verdict, Verdict::Denied);
        assert_eq!(d.end().denied_by, Some(Stage::Mutating));
    }
}
