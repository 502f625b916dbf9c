//! Prometheus metrics (`/metrics` on the metrics listener). Every label has a bounded set of
//! values: endpoint, operation, verdict, rule id, mode, result. Never object names.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::admission::{Endpoint, Outcome};

/// Latency buckets in seconds. An admission answer normally takes tens to hundreds of
/// microseconds, so the buckets start at 50 us; the last ones cover the API server's 5-30 s
/// webhook timeouts.
const DURATION_BUCKETS: [f64; 17] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    operation: &'static str,
    verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FindingLabels {
    rule: &'static str,
    mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// Outcome of a reload attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReloadResult {
    Success,
    Failure,
}

impl ReloadResult {
    fn as_str(self) -> &'static str {
        match self {
            ReloadResult::Success => "success",
            ReloadResult::Failure => "failure",
        }
    }
}

/// Every metric the server exports, with the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    findings: Family<FindingLabels, Counter>,
    duration: Family<EndpointLabels, Histogram>,
    config_reloads: Family<ResultLabels, Counter>,
    config_last_reload_ok: Gauge,
    cert_reloads: Family<ResultLabels, Counter>,
    cert_last_reload_ok: Gauge,
    cert_expiry: Gauge,
    handshake_failures: Counter,
    in_flight: Gauge,
    lint_refused: Counter,
    /// The background audit's (`serve --audit`); only these name objects.
    pub audit: crate::audit::AuditMetrics,
    /// Length of the last scrape's text.
    last_len: std::sync::atomic::AtomicUsize,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `daemonset_guard_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("daemonset_guard");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Admission requests answered, by endpoint, operation and verdict (error: 4xx/5xx)",
            requests.clone(),
        );
        let findings = Family::<FindingLabels, Counter>::default();
        registry.register(
            "findings",
            "Findings acted on, by rule id and mode (/validate: all; /mutate: fixed and denied)",
            findings.clone(),
        );
        let duration =
            Family::<EndpointLabels, Histogram>::new_with_constructor(|| -> Histogram {
                Histogram::new(DURATION_BUCKETS)
            });
        registry.register_with_unit(
            "request_duration",
            "Time from request headers to the admission answer",
            Unit::Seconds,
            duration.clone(),
        );
        let config_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Policy file reloads by result; a failure keeps the last good policy",
            config_reloads.clone(),
        );
        let config_last_reload_ok = Gauge::default();
        config_last_reload_ok.set(1);
        registry.register(
            "config_last_reload_successful",
            "1 when the policy file on disk is the policy in force, 0 when its last change was rejected",
            config_last_reload_ok.clone(),
        );
        let cert_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "certificate_reloads",
            "Serving certificate reloads by result; a failure keeps the previous certificate",
            cert_reloads.clone(),
        );
        let cert_last_reload_ok = Gauge::default();
        cert_last_reload_ok.set(1);
        registry.register(
            "certificate_last_reload_successful",
            "1 when the certificate files on disk are the ones served, 0 when their last change was rejected",
            cert_last_reload_ok.clone(),
        );
        let cert_expiry = Gauge::default();
        registry.register_with_unit(
            "certificate_expiry_timestamp",
            "notAfter of the served certificate, as a Unix timestamp",
            Unit::Seconds,
            cert_expiry.clone(),
        );
        let handshake_failures = Counter::default();
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed or timed out (plain HTTP, old TLS versions, missing client certificate)",
            handshake_failures.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "requests_in_flight",
            "Admission requests being read or evaluated now",
            in_flight.clone(),
        );
        let lint_refused = Counter::default();
        registry.register(
            "lint_refused",
            "POST /lint requests refused with 503: every lint thread busy or the lint memory budget full",
            lint_refused.clone(),
        );
        let audit = crate::audit::AuditMetrics::register(&mut registry);
        Metrics {
            audit,
            last_len: std::sync::atomic::AtomicUsize::new(0),
            in_flight,
            lint_refused,
            registry,
            requests,
            findings,
            duration,
            config_reloads,
            config_last_reload_ok,
            cert_reloads,
            cert_last_reload_ok,
            cert_expiry,
            handshake_failures,
        }
    }

    /// Counts an answered admission request and the findings it acted on.
    pub fn admitted(&self, endpoint: Endpoint, outcome: &Outcome, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint: endpoint.as_str(),
                operation: outcome.operation.as_str(),
                verdict: outcome.verdict.as_str(),
            })
            .inc();
        for (rule, mode) in &outcome.findings {
            self.findings
                .get_or_create(&FindingLabels {
                    rule,
                    mode: mode.as_str(),
                })
                .inc();
        }
        self.observe(endpoint, elapsed);
    }

    /// Counts a request answered with an HTTP error (its operation may be unknown).
    pub fn rejected(&self, endpoint: Endpoint, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint: endpoint.as_str(),
                operation: "unknown",
                verdict: "error",
            })
            .inc();
        self.observe(endpoint, elapsed);
    }

    fn observe(&self, endpoint: Endpoint, elapsed: Duration) {
        self.duration
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.as_str(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a policy reload attempt.
    pub fn config_reload(&self, result: ReloadResult) {
        self.config_reloads
            .get_or_create(&ResultLabels {
                result: result.as_str(),
            })
            .inc();
        self.config_last_reload_ok
            .set(i64::from(result == ReloadResult::Success));
    }

    /// Counts a certificate reload attempt.
    pub fn certificate_reload(&self, result: ReloadResult) {
        self.cert_reloads
            .get_or_create(&ResultLabels {
                result: result.as_str(),
            })
            .inc();
        self.cert_last_reload_ok
            .set(i64::from(result == ReloadResult::Success));
    }

    /// Records the notAfter of the certificate now served.
    pub fn certificate_expiry(&self, not_after_unix: i64) {
        self.cert_expiry.set(not_after_unix);
    }

    /// Counts a failed TLS handshake.
    pub fn handshake_failed(&self) {
        self.handshake_failures.inc();
    }

    /// Counts a `/lint` request refused with 503 because the lint pool was full.
    pub fn lint_refused(&self) {
        self.lint_refused.inc();
    }

    /// Counts a request in flight until the guard is dropped.
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        use std::sync::atomic::Ordering;
        // Sized from the last scrape: with the audit's violation series the text runs to
        // megabytes, and growing it by doubling held up to twice that, copied, per scrape.
        let last = self.last_len.load(Ordering::Relaxed);
        let mut out = String::with_capacity((last + last / 16).max(8 * 1024));
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        self.last_len.store(out.len(), Ordering::Relaxed);
        Ok(out)
    }
}

/// Decrements the in-flight gauge when dropped (also when the client goes away mid-request).
#[derive(Debug)]
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::Verdict;
    use crate::policy::{Mode, Operation};

    #[test]
    fn exposes_every_metric_with_bounded_labels() {
        let m = Metrics::new();
        let outcome = Outcome {
            uid: "u".into(),
            namespace: "ns".into(),
            name: "secret-name".into(),
            operation: Operation::Create,
            dry_run: false,
            verdict: Verdict::Denied,
            findings: vec![("security-privileged", Mode::Enforce)],
            skip_reason: None,
        };
        m.admitted(Endpoint::Validate, &outcome, Duration::from_micros(120));
        m.rejected(Endpoint::Mutate, Duration::from_micros(10));
        m.config_reload(ReloadResult::Failure);
        m.certificate_reload(ReloadResult::Success);
        m.certificate_expiry(1_900_000_000);
        let text = m.encode().unwrap();
        for want in [
            "daemonset_guard_requests_total{endpoint=\"validate\",operation=\"CREATE\",verdict=\"denied\"} 1",
            "daemonset_guard_requests_total{endpoint=\"mutate\",operation=\"unknown\",verdict=\"error\"} 1",
            "daemonset_guard_findings_total{rule=\"security-privileged\",mode=\"enforce\"} 1",
            "daemonset_guard_request_duration_seconds_bucket{le=\"0.00005\",endpoint=\"validate\"} 0",
            "daemonset_guard_request_duration_seconds_bucket{le=\"0.00025\",endpoint=\"validate\"} 1",
            "daemonset_guard_config_reloads_total{result=\"failure\"} 1",
            "daemonset_guard_config_last_reload_successful 0",
            "daemonset_guard_certificate_reloads_total{result=\"success\"} 1",
            "daemonset_guard_certificate_expiry_timestamp_seconds 1900000000",
            "daemonset_guard_tls_handshake_failures_total 0",
            "daemonset_guard_requests_in_flight 0",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("secret-name"));
    }
}
