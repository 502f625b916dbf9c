//! Engine benchmarks: the cost of one admission without the network.
//!
//! Two reviews: `create-fluentd.json` (a real ~10 KB AdmissionReview from kube-apiserver) and
//! the largest manifest of the corpus (`calico-node.yaml`) wrapped in the same envelope. For each:
//! parsing the body into a typed DaemonSet, the engine alone (`evaluate`, `decide`), and the whole
//! admission path of `/validate` and `/mutate` from body bytes to reply bytes (patch built,
//! base64-encoded and serialized).
//!
//! `cargo bench --bench engine`; in `cargo test --all-targets` each benchmark runs once.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use daemonset_guard::admission::{self, Endpoint, Policies};
use daemonset_guard::config::Policy;
use daemonset_guard::policy::{self, OldObject, Operation, Request};
use k8s_openapi::api::apps::v1::DaemonSet;
use serde::Deserialize;

const FLUENTD: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/fixtures/admission/create-fluentd.json"
));
const CALICO: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/corpus/daemonsets/calico-node.yaml"
));

/// The part of an AdmissionReview the engine needs, fully typed: what the server must parse.
#[derive(Deserialize)]
struct Review {
    request: ReviewRequest,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReviewRequest {
    namespace: Option<String>,
    operation: Operation,
    object: DaemonSet,
    old_object: Option<DaemonSet>,
}

/// Compact bodies, as the API server sends them (the fixture is pretty-printed).
fn reviews() -> Vec<(&'static str, Vec<u8>)> {
    let fluentd: serde_json::Value = serde_json::from_str(FLUENTD).expect("fixture is JSON");
    let docs = daemonset_guard::yaml::parse_documents(CALICO).expect("corpus manifest parses");
    let calico_object = docs
        .into_iter()
        .next()
        .expect("calico-node.yaml has a document")
        .value;
    let mut calico = fluentd.clone();
    let request = &mut calico["request"];
    request["name"] = calico_object["metadata"]["name"].clone();
    request["namespace"] = calico_object["metadata"]["namespace"].clone();
    request["object"] = calico_object;
    vec![
        (
            "fluentd-10k",
            serde_json::to_vec(&fluentd).expect("serializes"),
        ),
        (
            "calico-node",
            serde_json::to_vec(&calico).expect("serializes"),
        ),
    ]
}

fn parse(body: &[u8]) -> Review {
    serde_json::from_slice(body).expect("the benchmark review is a valid AdmissionReview")
}

fn engine_request<'a>(review: &'a Review, old: Option<&'a OldObject>) -> Request<'a> {
    let req = &review.request;
    Request {
        object: &req.object,
        old_object: old,
        operation: req.operation,
        namespace: req.namespace.as_deref().unwrap_or_default(),
    }
}

fn decision_review<'a>(review: &'a Review, old: Option<&'a OldObject>) -> policy::Review<'a> {
    let req = &review.request;
    policy::Review {
        operation: req.operation,
        sub_resource: None,
        is_daemonset: true,
        dry_run: false,
        namespace: req.namespace.as_deref().unwrap_or_default(),
        object: Some(&req.object),
        old,
    }
}

fn engine(c: &mut Criterion) {
    let policy = Policy::default();
    let policies = Policies::new(policy.clone());
    for (name, body) in reviews() {
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Bytes(body.len() as u64));

        group.bench_function("parse", |b| b.iter(|| parse(black_box(&body))));

        let review = parse(&body);
        let old = review.request.old_object.as_ref().map(OldObject::of);
        let request = engine_request(&review, old.as_ref());
        let decided = decision_review(&review, old.as_ref());
        group.bench_function("evaluate", |b| {
            b.iter(|| policy::evaluate(black_box(&request), &policy))
        });
        group.bench_function("decide", |b| {
            b.iter(|| policy::decide(black_box(&decided), &policies).expect("the patch applies"))
        });
        group.bench_function("parse+evaluate", |b| {
            b.iter(|| {
                let review = parse(black_box(&body));
                let old = review.request.old_object.as_ref().map(OldObject::of);
                policy::evaluate(&engine_request(&review, old.as_ref()), &policy)
            })
        });
        // What the server does per request between reading the body and writing the reply.
        for endpoint in [Endpoint::Validate, Endpoint::Mutate] {
            group.bench_function(format!("admit-{}", endpoint.as_str()), |b| {
                b.iter(|| {
                    let reviewed = admission::review(endpoint, black_box(&body), &policies)
                        .expect("the review is answered");
                    serde_json::to_vec(&reviewed.reply).expect("the reply serializes")
                })
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
        .sample_size(50);
    targets = engine
}
criterion_main!(benches);
