//! The server's background audit: a kube-runtime watcher over apps/v1 DaemonSets keeps every
//! DaemonSet evaluated, re-evaluates one when it changes and all of them when the policy
//! reloads, and exports the violations as metrics. Admission never waits on it: it runs as its
//! own task, and an API server that is down or forbids the watch only shows in the logs and in
//! `daemonset_guard_audit_errors_total`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::DaemonSet;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::eval::{self, Violation};
use crate::admission::Policies;
use crate::policy::Mode;

/// `namespace/name` of a DaemonSet.
pub type Key = (String, String);

/// The gauge values of one DaemonSet: the number of findings per rule and mode, sorted.
type Counts = Box<[(&'static str, Mode, u32)]>;

/// `daemonset_guard_audit_violations`: the counts of every DaemonSet that has some, rendered
/// at scrape time. A `Family` would copy the namespace and name into each of a DaemonSet's
/// series and allocate a gauge per series; here a DaemonSet costs one map entry, and a
/// DaemonSet's series change together, under one lock.
#[derive(Clone, Debug, Default)]
struct ViolationSeries(Arc<RwLock<BTreeMap<Key, Counts>>>);

impl ViolationSeries {
    /// Sets the counts of a DaemonSet (none: its series go away); returns the previous ones.
    fn set(&self, k: &Key, counts: Counts) -> Option<Counts> {
        let mut map = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if counts.is_empty() {
            map.remove(k)
        } else {
            map.insert(k.clone(), counts)
        }
    }
}

impl EncodeMetric for ViolationSeries {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let map = self.0.read().unwrap_or_else(PoisonError::into_inner);
        for ((namespace, name), counts) in map.iter() {
            for &(rule, mode, n) in counts.iter() {
                let labels = [
                    ("namespace", namespace.as_str()),
                    ("daemonset", name.as_str()),
                    ("rule", rule),
                    ("mode", mode.as_str()),
                ];
                encoder
                    .encode_family(&labels)?
                    .encode_gauge(&i64::from(n))?;
            }
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }

    fn is_empty(&self) -> bool {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }
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
    violations: ViolationSeries,
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

/// One audited DaemonSet: its results, not the object. A policy reload relists instead of
/// re-reading kept objects: a DaemonSet of a CNI or CSI driver is some 5 KiB of JSON even without
/// its managedFields, 25 MiB for 5,000 of them, kept for an event that comes once a week.
#[derive(Clone, Debug)]
pub struct Entry {
    pub uid: Option<String>,
    /// The violations with their fields and messages, for the PolicyReports; empty when the
    /// audit keeps only the metrics ([`Audit::metrics_only`]).
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
    /// Keep each violation's field and message (the PolicyReports need them).
    details: bool,
    /// Keys seen since the watcher started a (re)list.
    listing: Option<HashSet<Key>>,
    /// Namespaces whose results changed since [`Audit::take_dirty`].
    dirty: BTreeSet<String>,
    /// A first full list has ended: absent objects are really absent.
    listed: bool,
    /// One copy of each field and message the violations hold: 5,000 DaemonSets of a few
    /// kinds repeat the same few hundred texts some 44,000 times.
    texts: HashSet<Arc<str>>,
    /// `texts.len()` after the last prune: pruning again once it doubles keeps the texts of
    /// changed and deleted DaemonSets from piling up between full passes.
    texts_pruned: usize,
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

/// Counts per (rule, mode) of the violations, the gauge values of one DaemonSet.
fn counts(violations: impl Iterator<Item = (&'static str, Mode)>) -> Counts {
    let mut out = BTreeMap::new();
    for (rule, mode) in violations {
        out.entry((rule, mode.as_str())).or_insert((mode, 0)).1 += 1;
    }
    out.into_iter()
        .map(|((rule, _), (mode, n))| (rule, mode, n))
        .collect()
}

impl Audit {
    /// An audit that keeps the details of each violation, for the PolicyReports.
    pub fn new(metrics: AuditMetrics) -> Self {
        Audit {
            entries: BTreeMap::new(),
            metrics,
            details: true,
            listing: None,
            dirty: BTreeSet::new(),
            listed: false,
            texts: HashSet::new(),
            texts_pruned: 0,
        }
    }

    /// The kept copy of `text`.
    fn intern(&mut self, text: Arc<str>) -> Arc<str> {
        match self.texts.get(&text) {
            Some(kept) => kept.clone(),
            None => {
                if self.texts.len() >= 2 * self.texts_pruned + 1024 {
                    self.prune_texts();
                }
                self.texts.insert(text.clone());
                text
            }
        }
    }

    /// Forgets the texts no violation holds any more.
    fn prune_texts(&mut self) {
        self.texts.retain(|t| Arc::strong_count(t) > 1);
        self.texts_pruned = self.texts.len();
    }

    /// Keeps only what the metrics need: no field or message per violation (about a third of
    /// the memory of a large audit without reports).
    pub fn metrics_only(mut self) -> Self {
        self.details = false;
        self
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

    /// Evaluates a new or changed DaemonSet.
    pub fn apply(&mut self, mut ds: DaemonSet, policies: &Policies) {
        // No rule reads these, and they are most of a stored object (kubectl's copy of the
        // manifest doubles it): the engine turns the object into JSON to patch it, so dropping
        // them first saves a fifth of a full pass's CPU.
        ds.metadata.managed_fields = None;
        ds.status = None;
        if let Some(a) = ds.metadata.annotations.as_mut() {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
        let k = key(&ds);
        if let Some(seen) = self.listing.as_mut() {
            seen.insert(k.clone());
        }
        let old = self.entries.remove(&k);
        let entry = self.evaluate(&k, &ds, old, policies);
        self.entries.insert(k, entry);
        self.metrics.daemonsets.set(self.entries.len() as i64);
    }

    /// Evaluates `ds`, updates its series and marks its namespace dirty if its results changed
    /// since `old`.
    fn evaluate(
        &mut self,
        k: &Key,
        ds: &DaemonSet,
        old: Option<Entry>,
        policies: &Policies,
    ) -> Entry {
        let (violations, new_counts, error) = match eval::decide(ds, policies) {
            Ok(d) if self.details => {
                let mut v = d.as_ref().map(eval::violations).unwrap_or_default();
                for v in &mut v {
                    v.path = self.intern(v.path.clone());
                    v.message = self.intern(v.message.clone());
                }
                let c = counts(v.iter().map(|v| (v.rule, v.mode)));
                (v, c, None)
            }
            Ok(d) => {
                let c = d
                    .as_ref()
                    .map(|d| counts(eval::rules(d)))
                    .unwrap_or_default();
                (Vec::new(), c, None)
            }
            Err(e) => {
                tracing::error!(namespace = %k.0, name = %k.1, error = %e, "the audit cannot evaluate this DaemonSet");
                self.metrics.error("evaluation");
                (Vec::new(), Box::default(), Some(e.to_string()))
            }
        };
        let old_counts = self.metrics.violations.set(k, new_counts.clone());
        let changed = old.as_ref().is_none_or(|o| {
            o.violations != violations
                || o.error != error
                || old_counts.as_deref().unwrap_or_default() != &*new_counts
        });
        let evaluated = match &old {
            Some(o) if !changed => o.evaluated,
            _ => now_seconds(),
        };
        if changed {
            self.dirty.insert(k.0.clone());
        }
        Entry {
            uid: ds.metadata.uid.clone(),
            violations,
            evaluated,
            error,
        }
    }

    /// Forgets a deleted DaemonSet and its series.
    pub fn delete(&mut self, ds: &DaemonSet) {
        self.remove(&key(ds));
    }

    fn remove(&mut self, k: &Key) {
        if self.entries.remove(k).is_some() {
            self.metrics.violations.set(k, Box::default());
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
        self.prune_texts();
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
/// policy in force; a different `Arc` means it was reloaded, and then the watch starts over
/// with a fresh list, which re-evaluates every DaemonSet under the new policy (the audit keeps
/// results, not objects; see [`Entry`]). Results stay those of the old policy until that list
/// ends, and until the API server answers it if it is down.
pub async fn watch(
    client: kube::Client,
    policies: impl Fn() -> Arc<Policies>,
    audit: &tokio::sync::Mutex<Audit>,
    sink: &mut impl Sink,
    config: watcher::Config,
) {
    let api: Api<DaemonSet> = Api::all(client);
    let start = || watcher::watcher(api.clone(), config.clone()).default_backoff();
    let mut stream = std::pin::pin!(start());
    let mut current = policies();
    // The policy changed since the last full list ended.
    let mut reloaded = false;
    let mut tick = tokio::time::interval(POLICY_CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            item = stream.next() => {
                let Some(item) = item else { return };
                let mut a = audit.lock().await;
                match item {
                    Ok(event) => {
                        let listing = matches!(event, Event::InitApply(_));
                        let done = matches!(event, Event::InitDone);
                        a.handle(event, &current);
                        // The DaemonSets this list returned so far are the keys it has seen.
                        if listing && a.listing.as_ref().is_some_and(|seen| seen.len() % COLLECT_EVERY == 0) {
                            return_memory();
                        }
                        if done {
                            return_memory();
                            let daemonsets = a.entries.len();
                            if std::mem::take(&mut reloaded) {
                                tracing::info!(daemonsets, "background audit: policy changed, every DaemonSet re-evaluated");
                            } else {
                                tracing::info!(daemonsets, "background audit: every DaemonSet listed and evaluated");
                            }
                        }
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
                if !Arc::ptr_eq(&latest, &current) {
                    current = latest;
                    reloaded = true;
                    stream.set(start());
                    tracing::info!("background audit: policy changed, listing every DaemonSet again");
                }
                let mut a = audit.lock().await;
                sink.tick(&mut a).await;
            }
        }
    }
}

/// Hands back to the OS what this thread freed after a full pass (the list pages parsed into
/// typed objects, each object's evaluation), rather than keeping it in the thread's heap until
/// the next full pass. Only the calling thread's heap: the pass ran on it.
fn return_memory() {
    // SAFETY: no arguments to uphold; collects the calling thread's heap and purges free pages.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// DaemonSets listed between two [`return_memory`] calls. mimalloc purges freed pages only a
/// second after they are freed (`purge_delay`), and a list of 5,000 takes about that long, so
/// the garbage of every page stays resident until the list ends: +52 MiB at the end of a list
/// of 5,000, against +36 MiB when it is handed back every 500 (and +28 MiB every 100, which
/// cost a fifth more CPU in page faults). README, Performance, has the figures.
const COLLECT_EVERY: usize = 500;

/// DaemonSets per list page. The watcher holds a whole page as typed objects (managedFields
/// included) before the audit sees the first, so the page bounds the peak memory of a full
/// pass; 100 instead of kube's 500 makes 50 list calls for 5,000 DaemonSets.
pub const PAGE_SIZE: u32 = 100;

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
    let audit = Audit::new(metrics.clone());
    let audit = tokio::sync::Mutex::new(if reports { audit } else { audit.metrics_only() });
    let config = watcher::Config::default().page_size(PAGE_SIZE);
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

/// The background audit's thread; [`AuditHandle::abort`] (or dropping it) stops the audit.
#[derive(Debug)]
pub struct AuditHandle {
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl AuditHandle {
    /// Stops the audit (its thread ends at the next await).
    pub fn abort(self) {}
}

/// Starts the background audit of a server on a thread of its own with a single-threaded
/// runtime. A full pass is a long run of synchronous work (5,000 DaemonSets: about half a
/// second of CPU, see README, Performance) that would otherwise hold one of the workers that
/// answer admission requests; and on one thread, what a pass allocates is freed on the thread
/// that allocated it, so [`return_memory`] gives all of it back.
pub fn spawn(app: Arc<crate::server::http::App>, reports: bool) -> std::io::Result<AuditHandle> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("audit".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "background audit: cannot start its runtime (admission is not affected)");
                    return;
                }
            };
            let metrics = app.metrics.audit.clone();
            let policies = move || app.policies();
            rt.block_on(async move {
                tokio::select! {
                    () = run(policies, metrics, reports) => {}
                    _ = stopped => {}
                }
            });
        })?;
    Ok(AuditHandle { _stop: stop })
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
        assert_eq!(e.uid, stored("vector").metadata.uid);
    }

    /// Copies of one DaemonSet under other names share one copy of each field and message,
    /// and the copies go when no violation holds them.
    #[test]
    fn violations_share_their_texts_and_let_them_go() {
        let mut registry = Registry::with_prefix("daemonset_guard");
        let mut audit = Audit::new(AuditMetrics::register(&mut registry));
        let policies = Policies::default();
        audit.list_started();
        for name in ["a", "b"] {
            let mut ds = stored("fluent-bit");
            ds.metadata.name = Some(name.to_string());
            audit.apply(ds, &policies);
        }
        audit.list_done();
        let of = |name: &str| audit.entries()[&("logging".to_string(), name.to_string())].clone();
        let (a, b) = (of("a"), of("b"));
        assert!(!a.violations.is_empty());
        assert_eq!(a.violations, b.violations);
        for (x, y) in a.violations.iter().zip(&b.violations) {
            assert!(Arc::ptr_eq(&x.message, &y.message) && Arc::ptr_eq(&x.path, &y.path));
        }
        let kept = audit.texts.len();
        assert!(kept > 0 && kept <= 2 * a.violations.len());
        drop((a, b));
        audit.list_started();
        audit.list_done();
        assert!(audit.entries().is_empty());
        assert!(audit.texts.is_empty(), "{} texts left", audit.texts.len());
    }
}
