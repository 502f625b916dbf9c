//! The one place the audit calls the engine, and what it keeps of the answer.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::DaemonSet;

use crate::policy::decision::{DecideError, Decision, Review};
use crate::policy::{self, Finding, Mode, Operation, Policies};

/// What admission would decide for a DaemonSet already in the cluster, as if it were created
/// now: the same call `lint` makes, so the audit and `lint` cannot disagree. `None` only for
/// what admission never evaluates (it cannot happen for a stored DaemonSet on CREATE).
pub fn decide(ds: &DaemonSet, policies: &Policies) -> Result<Option<Decision>, DecideError> {
    let namespace = ds.metadata.namespace.as_deref().unwrap_or("default");
    policy::decide(
        &Review {
            operation: Operation::Create,
            sub_resource: None,
            is_daemonset: true,
            dry_run: true,
            namespace,
            object: Some(ds),
            old: None,
        },
        policies,
    )
}

/// Whether the API server itself rejects a violation of this finding's rule.
fn api_server_rejects(f: &Finding) -> bool {
    crate::catalog::rule(f.rule).is_some_and(|r| r.api_server_rejects)
}

/// How a finding stands for a stored object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// Admission would deny the object as stored.
    Fail,
    /// A warn-mode finding, or one the mutating webhook would fix at the next write: the stored
    /// object does not follow the policy, but a write would be admitted.
    Warn,
}

impl Outcome {
    /// The PolicyReport `result` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Fail => "fail",
            Outcome::Warn => "warn",
        }
    }
}

/// One rule the stored object breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub rule: &'static str,
    pub mode: Mode,
    pub outcome: Outcome,
    /// JSON Pointer of the field.
    pub path: Arc<str>,
    pub message: Arc<str>,
}

/// Rule and mode of each of [`violations`], without building their fields and messages.
pub fn rules(decision: &Decision) -> impl Iterator<Item = (&'static str, Mode)> + '_ {
    decision
        .mutation
        .findings
        .iter()
        .filter(|f| f.mode != Mode::Off)
        .map(|f| (f.rule, f.mode))
}

/// The findings on the object as stored (what `/mutate` would see), one per finding, in rule
/// order. Off-mode findings are not violations.
pub fn violations(decision: &Decision) -> Vec<Violation> {
    decision
        .mutation
        .findings
        .iter()
        .filter(|f| f.mode != Mode::Off)
        .map(|f| {
            // A finding `/mutate` denies itself (a rule the API server also enforces), one the
            // API server rejects after a warning, or one `/validate` still denies after the patch.
            let fails = (!f.fixed && api_server_rejects(f))
                || (f.denies()
                    && decision
                        .validation
                        .denials()
                        .any(|v| v.rule == f.rule && v.path == f.path));
            Violation {
                rule: f.rule,
                mode: f.mode,
                outcome: if fails { Outcome::Fail } else { Outcome::Warn },
                path: f.path.as_str().into(),
                message: f.message.as_str().into(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ds(v: serde_json::Value) -> DaemonSet {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_privileged_container_fails_and_missing_requests_warn() {
        // The corpus DaemonSet `logging/fluent-bit` as the API server stored it (fixture 01),
        // with the container made privileged.
        let text =
            std::fs::read_to_string("../shared/fixtures/apiserver-api/01-list-all.json").unwrap();
        let list: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut item = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["metadata"]["name"] == "fluent-bit")
            .unwrap()
            .clone();
        item["spec"]["template"]["spec"]["containers"][0]["securityContext"] =
            json!({"privileged": true});
        let d = decide(&ds(item), &Policies::default()).unwrap().unwrap();
        let v = violations(&d);
        let privileged = v.iter().find(|v| v.rule == "security-privileged").unwrap();
        assert_eq!(privileged.outcome, Outcome::Fail);
        assert_eq!(
            &*privileged.path,
            "/spec/template/spec/containers/0/securityContext/privileged"
        );
        // `resources: {}`: the default policy's mutation fills the requests, so a write would
        // be admitted; the stored object still lacks them.
        let requests = v
            .iter()
            .find(|v| v.rule == "resources-requests-missing")
            .unwrap();
        assert_eq!(requests.outcome, Outcome::Warn);
    }
}
