//! PolicyReports (wgpolicyk8s.io/v1alpha2, the format Policy Reporter, Kyverno and Kubewarden
//! users read): one report per namespace, named [`REPORT_NAME`], with one result per DaemonSet
//! and rule. Written only when the cluster serves the CRD, and only by the replica holding the
//! [`LEASE_NAME`] Lease, so two replicas never fight over a report.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{json, Value};

use super::background::{Audit, AuditMetrics, Sink};
use super::eval::Outcome;
use crate::policy::Mode;

/// The name of the report in each namespace.
pub const REPORT_NAME: &str = "daemonset-guard";
/// The Lease whose holder writes the reports.
pub const LEASE_NAME: &str = "daemonset-guard-audit";
/// A holder that stops renewing loses the Lease after this long.
pub const LEASE_SECONDS: i32 = 30;
/// How often the holder renews (a third of the duration, as client-go's leader election).
const RENEW_EVERY: Duration = Duration::from_secs(10);
/// How often a cluster without the CRD is asked again (it may be installed later).
const DISCOVERY_EVERY: Duration = Duration::from_secs(300);
/// Attempts of a report write that keeps meeting 409 Conflict.
const MAX_ATTEMPTS: usize = 5;
const GROUP_VERSION: &str = "wgpolicyk8s.io/v1alpha2";

/// The findings of one DaemonSet for one rule, merged into one result.
struct ByRule<'a> {
    outcome: Outcome,
    mode: Mode,
    messages: Vec<&'a str>,
    fields: Vec<&'a str>,
}

/// The results of one namespace's report, sorted, and their summary.
pub fn report_body(audit: &Audit, namespace: &str) -> Option<(Vec<Value>, Value)> {
    let mut results = Vec::new();
    let (mut pass, mut fail, mut warn, mut error) = (0, 0, 0, 0);
    let range = (namespace.to_string(), String::new())..;
    for ((ns, name), entry) in audit.entries().range(range) {
        if ns != namespace {
            break;
        }
        let resource = json!([{
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "namespace": ns,
            "name": name,
            "uid": entry.uid,
        }]);
        let timestamp = json!({"seconds": entry.evaluated, "nanos": 0});
        let mut result = |rule: &str,
                          outcome: &str,
                          severity: &str,
                          category: &str,
                          message: String,
                          properties: Value| {
            results.push(json!({
                "policy": REPORT_NAME,
                "rule": rule,
                "result": outcome,
                "severity": severity,
                "category": category,
                "scored": true,
                "source": "daemonset-guard",
                "message": message,
                "properties": properties,
                "resources": resource.clone(),
                "timestamp": timestamp.clone(),
            }));
        };
        if let Some(e) = &entry.error {
            error += 1;
            result(
                "evaluation",
                "error",
                "high",
                "daemonset-guard",
                e.clone(),
                json!({}),
            );
            continue;
        }
        // One result per rule: the worst outcome of its findings, their messages and fields.
        let mut by_rule: BTreeMap<&str, ByRule<'_>> = BTreeMap::new();
        for v in &entry.violations {
            let slot = by_rule.entry(v.rule).or_insert(ByRule {
                outcome: v.outcome,
                mode: v.mode,
                messages: Vec::new(),
                fields: Vec::new(),
            });
            slot.outcome = slot.outcome.min(v.outcome);
            slot.messages.push(&v.message);
            slot.fields.push(&v.path);
        }
        if by_rule.is_empty() {
            pass += 1;
            result(
                "all-rules",
                "pass",
                "info",
                "daemonset-guard",
                format!("DaemonSet {ns}/{name} follows every rule of the policy"),
                json!({}),
            );
        }
        for (rule, r) in by_rule {
            let ByRule {
                outcome,
                mode,
                messages,
                fields,
            } = r;
            match outcome {
                Outcome::Fail => fail += 1,
                Outcome::Warn => warn += 1,
            }
            let category =
                crate::catalog::rule(rule).map_or("daemonset-guard", |r| r.family.as_str());
            result(
                rule,
                outcome.as_str(),
                if mode == Mode::Enforce {
                    "high"
                } else {
                    "medium"
                },
                category,
                messages.join("; "),
                json!({"mode": mode.as_str(), "fields": fields.join(",")}),
            );
        }
    }
    if results.is_empty() {
        return None;
    }
    let summary = json!({"pass": pass, "fail": fail, "warn": warn, "error": error, "skip": 0});
    Some((results, summary))
}

/// Whether the API server serves PolicyReports, from its discovery document.
pub async fn crd_served(client: &kube::Client) -> Result<bool, kube::Error> {
    match client.list_api_group_resources(GROUP_VERSION).await {
        Ok(list) => Ok(list
            .resources
            .iter()
            .any(|r| r.name == "policyreports" && r.namespaced)),
        // A group the server does not serve is a plain-text 404, not a Status.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

fn report_api(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("wgpolicyk8s.io", "v1alpha2", "PolicyReport");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "policyreports");
    Api::namespaced_with(client.clone(), namespace, &ar)
}

fn is_status(e: &kube::Error, code: u16, reason: &str) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code && s.reason == reason)
}

fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Makes the namespace's report hold `body` (or deletes it when `None`): create, or update in
/// place with the resourceVersion just read; a 409 Conflict (someone wrote in between) reads and
/// tries again, a 409 AlreadyExists on create goes to update.
pub async fn write_report(
    client: &kube::Client,
    namespace: &str,
    body: Option<(Vec<Value>, Value)>,
) -> Result<(), kube::Error> {
    let api = report_api(client, namespace);
    let mut last = None;
    for _ in 0..MAX_ATTEMPTS {
        let current = match api.get(REPORT_NAME).await {
            Ok(r) => Some(r),
            Err(e) if not_found(&e) => None,
            Err(e) => return Err(e),
        };
        let outcome = match (current, &body) {
            (None, None) => return Ok(()),
            (Some(_), None) => match api.delete(REPORT_NAME, &DeleteParams::default()).await {
                Err(e) if !not_found(&e) => Err(e),
                _ => return Ok(()),
            },
            (None, Some((results, summary))) => {
                let mut obj = DynamicObject::new(
                    REPORT_NAME,
                    &ApiResource::from_gvk_with_plural(
                        &GroupVersionKind::gvk("wgpolicyk8s.io", "v1alpha2", "PolicyReport"),
                        "policyreports",
                    ),
                )
                .within(namespace);
                obj.metadata.labels = Some(
                    [(
                        "app.kubernetes.io/managed-by".to_string(),
                        "daemonset-guard".to_string(),
                    )]
                    .into(),
                );
                obj.data = json!({"results": results, "summary": summary});
                api.create(&PostParams::default(), &obj).await.map(drop)
            }
            (Some(mut cur), Some((results, summary))) => {
                if cur.data.get("results").and_then(Value::as_array) == Some(results)
                    && cur.data.get("summary") == Some(summary)
                {
                    return Ok(());
                }
                cur.metadata.managed_fields = None;
                cur.data["results"] = Value::Array(results.clone());
                cur.data["summary"] = summary.clone();
                api.replace(REPORT_NAME, &PostParams::default(), &cur)
                    .await
                    .map(drop)
            }
        };
        match outcome {
            Ok(()) => return Ok(()),
            Err(e) if is_status(&e, 409, "Conflict") || is_status(&e, 409, "AlreadyExists") => {
                tracing::debug!(namespace, error = %e, "PolicyReport changed meanwhile; reading it again");
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    // MAX_ATTEMPTS > 0, so the loop ran and kept its last conflict.
    last.map_or(Ok(()), Err)
}

/// Who holds the Lease that allows writing reports.
pub struct Leader {
    api: Api<Lease>,
    identity: String,
    renewed: Option<Instant>,
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

impl Leader {
    pub fn new(client: kube::Client, namespace: &str, identity: &str) -> Self {
        Leader {
            api: Api::namespaced(client, namespace),
            identity: identity.to_string(),
            renewed: None,
        }
    }

    /// Whether this replica holds the Lease: takes it when free or expired, renews it when held.
    pub async fn leading(&mut self) -> Result<bool, kube::Error> {
        if self.renewed.is_some_and(|t| t.elapsed() < RENEW_EVERY) {
            return Ok(true);
        }
        let lease = match self.api.get(LEASE_NAME).await {
            Ok(l) => Some(l),
            Err(e) if not_found(&e) => None,
            Err(e) => {
                self.renewed = None;
                return Err(e);
            }
        };
        let t = now();
        let written = match lease {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(LEASE_NAME.into()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(LEASE_SECONDS),
                        acquire_time: Some(t.clone()),
                        renew_time: Some(t),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Some(mut lease) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                let mine = spec.holder_identity.as_deref() == Some(self.identity.as_str());
                let seconds = i64::from(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS));
                let expired = spec
                    .renew_time
                    .as_ref()
                    .is_none_or(|r| r.0.as_second().saturating_add(seconds) < t.0.as_second());
                if !mine && !expired && spec.holder_identity.is_some() {
                    self.renewed = None;
                    return Ok(false);
                }
                if !mine {
                    spec.holder_identity = Some(self.identity.clone());
                    spec.acquire_time = Some(t.clone());
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                    spec.lease_duration_seconds = Some(LEASE_SECONDS);
                }
                spec.renew_time = Some(t);
                lease.metadata.managed_fields = None;
                self.api
                    .replace(LEASE_NAME, &PostParams::default(), &lease)
                    .await
            }
        };
        match written {
            Ok(_) => {
                self.renewed = Some(Instant::now());
                Ok(true)
            }
            // Another replica wrote first: it leads.
            Err(e) if matches!(&e, kube::Error::Api(s) if s.code == 409) => {
                self.renewed = None;
                Ok(false)
            }
            Err(e) => {
                self.renewed = None;
                Err(e)
            }
        }
    }
}

/// Writes the PolicyReports of the namespaces whose results changed, when this replica leads.
pub struct Reports {
    client: kube::Client,
    leader: Leader,
    metrics: AuditMetrics,
    served: Option<(bool, Instant)>,
    was_leading: bool,
    /// Namespaces still to write (kept across failures).
    pending: BTreeSet<String>,
}

impl Reports {
    pub fn new(client: kube::Client, metrics: AuditMetrics, leader: Leader) -> Self {
        Reports {
            client,
            leader,
            metrics,
            served: None,
            was_leading: false,
            pending: BTreeSet::new(),
        }
    }

    async fn served(&mut self) -> bool {
        match self.served {
            Some((s, at)) if s || at.elapsed() < DISCOVERY_EVERY => return s,
            _ => {}
        }
        let first = self.served.is_none();
        match crd_served(&self.client).await {
            Ok(s) => {
                if !s && first {
                    tracing::warn!("the cluster does not serve wgpolicyk8s.io/v1alpha2 PolicyReports: no reports are written (install the CRD to get them; the metrics are unaffected)");
                }
                if s && !first {
                    tracing::info!("the PolicyReport CRD is now served: writing reports");
                }
                self.served = Some((s, Instant::now()));
                s
            }
            Err(e) => {
                self.metrics.error(super::background::error_reason(&e));
                tracing::warn!(error = %e, "cannot read the API server's discovery for PolicyReports");
                false
            }
        }
    }
}

impl Sink for Reports {
    async fn changed(&mut self, audit: &mut Audit) {
        self.pending.extend(audit.take_dirty());
    }

    async fn tick(&mut self, audit: &mut Audit) {
        self.pending.extend(audit.take_dirty());
        if !audit.listed() || !self.served().await {
            return;
        }
        let leading = match self.leader.leading().await {
            Ok(l) => l,
            Err(e) => {
                self.metrics.error(super::background::error_reason(&e));
                tracing::warn!(error = %e, "cannot read or renew the audit Lease; not writing reports");
                false
            }
        };
        if leading && !self.was_leading {
            tracing::info!(
                lease = LEASE_NAME,
                "this replica now writes the PolicyReports"
            );
            // Whatever the previous holder wrote may be stale: write every namespace.
            self.pending
                .extend(audit.entries().keys().map(|k| k.0.clone()));
        }
        self.was_leading = leading;
        if !leading {
            return;
        }
        let namespaces = std::mem::take(&mut self.pending);
        for ns in namespaces {
            let body = report_body(audit, &ns);
            if let Err(e) = write_report(&self.client, &ns, body).await {
                self.metrics.error(super::background::error_reason(&e));
                tracing::warn!(namespace = %ns, error = %e, "cannot write the PolicyReport; retrying later");
                self.pending.insert(ns);
            }
        }
    }
}
