//! The server's background audit: a kube-runtime watcher over apps/v1 DaemonSets keeps every
//! DaemonSet evaluated, re-evaluates one when it changes and all of them when the policy
//! reloads, and exports the violations as metrics. Admission never waits on it: it runs as its
//! own task, and an API server that is down or forbids the watch only shows in the logs and in
//! `daemonset_guard_audit_errors_total`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::DaemonSet;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use super::eval::{self, Violation};
use crate::admission::Policies;

/// `namespace/name` of a DaemonSet.
pub type Key = (String, String);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ViolationLabels {
    namespace: String,
    daemonset: String,
    rule: &'static str,
    mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    reason: &'static str,
}

/// The audit's metrics. Unlike the admission metrics, the violations carry the namespace and
/// name of the DaemonSet: that is what an alert on them must say, and the series of a
/// DaemonSet go away when it is fixed or deleted, so their number stays bounded by the cluster.
#[derive(Clone, Debug, Default)]
pub struct AuditMetrics {
    violations: Family<ViolationLabels, Gauge>,
    daemonsets: Gauge,
    last_full_pass: Gauge,
    errors: Family<ErrorLabels, Counter>,
}

impl AuditMetrics {
    /// Registers the audit metrics in `registry` (under its `daemonset_guard` prefix).
    pub fn register(registry: &mut Registry) -> Self {
        let m = AuditMetrics::default();
        registry.register(
            "audit_violations",
            "Findings of the background audit on DaemonSets in the cluster, by namespace, \
             DaemonSet, rule and mode (the series goes away when fixed or deleted)",
            m.violations.clone(),
        );
        registry.register(
            "audit_daemonsets",
            "DaemonSets the background audit evaluated and keeps evaluating",
            m.daemonsets.clone(),
        );
        registry.register_with_unit(
            "audit_last_full_pass_timestamp",
            "When the background audit last evaluated every DaemonSet (a list, or a policy reload)",
            Unit::Seconds,
            m.last_full_pass.clone(),
        );
        registry.register(
            "audit_errors",
            "Errors of the background audit by reason (the watch backs off and retries)",
            m.errors.clone(),
        );
        m
    }

    /// Counts an error of the audit.
    pub fn error(&self, reason: &'static str) {
        self.errors.get_or_create(&ErrorLabels { reason }).inc();
    }
}

/// A bounded label for an error.
pub fn error_reason(e: &kube::Error) -> &'static str {
    match e {
        kube::Error::Api(s) if s.code == 401 => "unauthorized",
        kube::Error::Api(s) if s.code == 403 => "forbidden",
        kube::Error::Api(s) if s.code == 410 => "expired",
        kube::Error::Api(_) => "api",
        _ => "connection",
    }
}

fn watch_error_reason(e: &watcher::Error) -> &'static str {
    match e {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => error_reason(e),
        watcher::Error::WatchError(s) if s.code == 410 => "expired",
        watcher::Error::WatchError(s) if s.code == 403 => "forbidden",
        watcher::Error::WatchError(_) => "api",
        watcher::Error::NoResourceVersion => "api",
    }
}

/// One audited DaemonSet.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The object as last seen (without managedFields), to re-evaluate on a policy change.
    pub object: DaemonSet,
    pub uid: Option<String>,
    pub violations: Vec<Violation>,
    /// When the violations last changed (Unix seconds): the time of the report results.
    pub evaluated: i64,
    /// The engine could not evaluate it (a bug, reported rather than hidden).
    pub error: Option<String>,
}

/// What the audit knows: every DaemonSet and its violations, mirrored into the metrics.
#[derive(Debug)]
pub struct Audit {
    entries: BTreeMap<Key, Entry>,
    metrics: AuditMetrics,
    /// Keys seen since the watcher started a (re)list.
    listing: Option<HashSet<Key>>,
    /// Namespaces whose results changed since [`Audit::take_dirty`].
    dirty: BTreeSet<String>,
    /// A first full list has ended: absent objects are really absent.
    listed: bool,
}

fn key(ds: &DaemonSet) -> Key {
    (
        ds.metadata.namespace.clone().unwrap_or_default(),
        ds.metadata.name.clone().unwrap_or_default(),
    )
}

fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Counts per (rule, mode), the gauge values of one DaemonSet.
fn series(violations: &[Violation]) -> BTreeMap<(&'static str, &'static str), i64> {
    let mut out = BTreeMap::new();
    for v in violations {
        *out.entry((v.rule, v.mode.as_str())).or_insert(0) += 1;
    }
    out
}

impl Audit {
    pub fn new(metrics: AuditMetrics) -> Self {
        Audit {
            entries: BTreeMap::new(),
            metrics,
            listing: None,
            dirty: BTreeSet::new(),
            listed: false,
        }
    }

    /// Every audited DaemonSet.
    pub fn entries(&self) -> &BTreeMap<Key, Entry> {
        &self.entries
    }

    /// Whether a first full list has ended.
    pub fn listed(&self) -> bool {
        self.listed
    }

    /// The namespaces whose results changed since the last call.
    pub fn take_dirty(&mut self) -> BTreeSet<String> {
        std::mem::take(&mut self.dirty)
    }

    fn set_series(&self, k: &Key, old: &[Violation], new: &[Violation]) {
        let (old, new) = (series(old), series(new));
        let labels = |(rule, mode): (&'static str, &'static str)| ViolationLabels {
            namespace: k.0.clone(),
            daemonset: k.1.clone(),
            rule,
            mode,
        };
        for s in old.keys().filter(|s| !new.contains_key(*s)) {
            self.metrics.violations.remove(&labels(*s));
        }
        for (s, n) in new {
            self.metrics.violations.get_or_create(&labels(s)).set(n);
        }
    }

    /// Evaluates a new or changed DaemonSet.
    pub fn apply(&mut self, mut ds: DaemonSet, policies: &Policies) {
        // Kept only to be evaluated again: drop what no rule reads and what can be large
        // (the engine reads no status; kubectl's copy of the manifest doubles the object).
        ds.metadata.managed_fields = None;
        ds.status = None;
        if let Some(a) = ds.metadata.annotations.as_mut() {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
        let k = key(&ds);
        if let Some(seen) = self.listing.as_mut() {
            seen.insert(k.clone());
        }
        let (violations, error) = match eval::decide(&ds, policies) {
            Ok(d) => (d.as_ref().map(eval::violations).unwrap_or_default(), None),
            Err(e) => {
                tracing::error!(namespace = %k.0, name = %k.1, error = %e, "the audit cannot evaluate this DaemonSet");
                self.metrics.error("evaluation");
                (Vec::new(), Some(e.to_string()))
            }
        };
        let old = self.entries.get(&k);
        let changed = old.is_none_or(|o| o.violations != violations || o.error != error);
        let evaluated = match old {
            Some(o) if !changed => o.evaluated,
            _ => now_seconds(),
        };
        if changed {
            self.dirty.insert(k.0.clone());
        }
        self.set_series(&k, old.map_or(&[][..], |o| &o.violations), &violations);
        let uid = ds.metadata.uid.clone();
        self.entries.insert(
            k,
            Entry {
                object: ds,
                uid,
                violations,
                evaluated,
                error,
            },
        );
        self.metrics.daemonsets.set(self.entries.len() as i64);
    }

    /// Forgets a deleted DaemonSet and its series.
    pub fn delete(&mut self, ds: &DaemonSet) {
        self.remove(&key(ds));
    }

    fn remove(&mut self, k: &Key) {
        if let Some(old) = self.entries.remove(k) {
            self.set_series(k, &old.violations, &[]);
            self.dirty.insert(k.0.clone());
        }
        self.metrics.daemonsets.set(self.entries.len() as i64);
    }

    /// A (re)list starts: what it does not return was deleted meanwhile.
    pub fn list_started(&mut self) {
        self.listing = Some(HashSet::new());
    }

    /// A (re)list ended: drops what it did not return; every DaemonSet is now evaluated.
    pub fn list_done(&mut self) {
        if let Some(seen) = self.listing.take() {
            let gone: Vec<Key> = self
                .entries
                .keys()
                .filter(|k| !seen.contains(*k))
                .cloned()
                .collect();
            for k in gone {
                self.remove(&k);
            }
        }
        self.listed = true;
        self.metrics.last_full_pass.set(now_seconds());
    }

    /// Re-evaluates every DaemonSet under a new policy.
    pub fn reevaluate(&mut self, policies: &Policies) {
        let objects: Vec<DaemonSet> = self.entries.values().map(|e| e.object.clone()).collect();
        for ds in objects {
            self.apply(ds, policies);
        }
        self.metrics.last_full_pass.set(now_seconds());
    }

    /// Handles one watcher event.
    pub fn handle(&mut self, event: Event<DaemonSet>, policies: &Policies) {
        match event {
            Event::Init => self.list_started(),
            Event::InitApply(ds) | Event::Apply(ds) => self.apply(ds, policies),
            Event::InitDone => self.list_done(),
            Event::Delete(ds) => self.delete(&ds),
        }
    }
}

/// How often the policy in force is compared with the one the audit last used.
pub const POLICY_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Where results go besides the metrics (PolicyReports).
pub trait Sink: Send {
    /// After each watch event: some results may have changed (see [`Audit::take_dirty`]).
    fn changed(&mut self, audit: &mut Audit) -> impl std::future::Future<Output = ()> + Send;
    /// Every [`POLICY_CHECK_INTERVAL`]: the time to write, in batches.
    fn tick(&mut self, audit: &mut Audit) -> impl std::future::Future<Output = ()> + Send {
        let _ = audit;
        async {}
    }
}

/// No reports: metrics only.
pub struct NoSink;

impl Sink for NoSink {
    async fn changed(&mut self, audit: &mut Audit) {
        audit.take_dirty();
    }
}

/// Watches every DaemonSet through `client` until the task is dropped. `policies` gives the
/// policy in force; a different `Arc` means it was reloaded.
pub async fn watch(
    client: kube::Client,
    policies: impl Fn() -> Arc<Policies>,
    audit: &tokio::sync::Mutex<Audit>,
    sink: &mut impl Sink,
    config: watcher::Config,
) {
    let api: Api<DaemonSet> = Api::all(client);
    let mut stream = std::pin::pin!(watcher::watcher(api, config).default_backoff());
    let mut current = policies();
    let mut tick = tokio::time::interval(POLICY_CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            item = stream.next() => {
                let Some(item) = item else { return };
                let mut a = audit.lock().await;
                match item {
                    Ok(event) => {
                        a.handle(event, &current);
                    }
                    Err(e) => {
                        let reason = watch_error_reason(&e);
                        a.metrics.error(reason);
                        tracing::warn!(error = %e, reason, "background audit: watching DaemonSets failed; retrying with backoff (admission is not affected)");
                    }
                }
                sink.changed(&mut a).await;
            }
            _ = tick.tick() => {
                let latest = policies();
                let mut a = audit.lock().await;
                if !Arc::ptr_eq(&latest, &current) {
                    current = latest;
                    a.reevaluate(&current);
                    tracing::info!(daemonsets = a.entries.len(), "background audit: policy changed, every DaemonSet re-evaluated");
                    sink.changed(&mut a).await;
                }
                sink.tick(&mut a).await;
            }
        }
    }
}

/// Connects with the in-cluster (or kubeconfig) credentials, retrying with backoff, then
/// watches. Runs until the task is dropped.
pub async fn run(policies: impl Fn() -> Arc<Policies>, metrics: AuditMetrics, reports: bool) {
    let mut delay = Duration::from_secs(1);
    let client = loop {
        match kube::Client::try_default().await {
            Ok(c) => break c,
            Err(e) => {
                metrics.error("config");
                tracing::error!(error = %e, retry_in = ?delay, "background audit: no Kubernetes client configuration (admission is not affected)");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(300));
            }
        }
    };
    tracing::info!("background audit: watching DaemonSets in every namespace");
    let audit = tokio::sync::Mutex::new(Audit::new(metrics.clone()));
    let config = watcher::Config::default();
    if reports {
        let (namespace, identity) = identity();
        tracing::info!(lease = %format!("{namespace}/{}", super::reports::LEASE_NAME), identity, "background audit: PolicyReports are written by the Lease holder");
        let leader = super::reports::Leader::new(client.clone(), &namespace, &identity);
        let mut sink = super::reports::Reports::new(client.clone(), metrics, leader);
        watch(client, policies, &audit, &mut sink, config).await;
    } else {
        watch(client, policies, &audit, &mut NoSink, config).await;
    }
}

/// The namespace for the Lease and this replica's name in it: the Pod's (downward API
/// `POD_NAMESPACE`/`POD_NAME`, else the service account's namespace and the hostname).
fn identity() -> (String, String) {
    let namespace = std::env::var("POD_NAMESPACE")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "default".into());
    let identity = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("daemonset-guard-{}", std::process::id()));
    (namespace, identity)
}

/// Starts the background audit of a server; abort the handle to stop it.
pub fn spawn(app: Arc<crate::server::http::App>, reports: bool) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let metrics = app.metrics.audit.clone();
        let policies = {
            let app = app.clone();
            move || app.policies()
        };
        run(policies, metrics, reports).await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The DaemonSets a real API server listed (fixture 01), by name.
    fn stored(name: &str) -> DaemonSet {
        let text = std::fs::read_to_string("../shared/fixtures/apiserver-api/01-list-all.json")
            .unwrap_or_default();
        let list: serde_json::Value = serde_json::from_str(&text).unwrap();
        let item = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["metadata"]["name"] == name)
            .unwrap()
            .clone();
        serde_json::from_value(item).unwrap()
    }

    fn series_of(registry: &Registry, name: &str) -> usize {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
        out.lines()
            .filter(|l| {
                l.starts_with("daemonset_guard_audit_violations{")
                    && l.contains(&format!("daemonset=\"{name}\""))
            })
            .count()
    }

    #[test]
    fn a_relist_drops_what_was_deleted_while_the_watch_was_down() {
        let mut registry = Registry::with_prefix("daemonset_guard");
        let mut audit = Audit::new(AuditMetrics::register(&mut registry));
        let policies = Policies::default();
        audit.list_started();
        audit.apply(stored("fluent-bit"), &policies);
        audit.apply(stored("vector"), &policies);
        audit.list_done();
        assert!(audit.listed());
        // Both set no resources: the corpus manifests have `resources: {}`.
        assert!(series_of(&registry, "fluent-bit") > 0);
        assert_eq!(audit.take_dirty(), BTreeSet::from(["logging".to_string()]));

        audit.list_started();
        audit.apply(stored("vector"), &policies);
        audit.list_done();
        assert_eq!(series_of(&registry, "fluent-bit"), 0);
        assert!(series_of(&registry, "vector") > 0);
        let keys: Vec<&Key> = audit.entries().keys().collect();
        assert_eq!(keys, [&("logging".to_string(), "vector".to_string())]);
        // vector did not change; fluent-bit's removal changed logging's results.
        assert_eq!(audit.take_dirty(), BTreeSet::from(["logging".to_string()]));
        let e = &audit.entries()[&("logging".to_string(), "vector".to_string())];
        assert!(e.object.status.is_none() && e.object.metadata.managed_fields.is_none());
    }
}
