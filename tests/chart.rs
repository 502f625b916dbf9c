//! The Helm chart, rendered by a real helm (3, and 4 when installed) and checked against the
//! Kubernetes OpenAPI schemas by `kubernetes-validate`, then asserted on: webhook rules and
//! selectors, TLS wiring, Pod Security Standards, RBAC, and agreement with the binary (ports,
//! paths, the embedded default policy, the rule ids). `scripts/install-tools.sh` installs the tools.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use base64::Engine as _;
use daemonset_guard::config::{Policy, DEFAULT_POLICY_YAML};
use daemonset_guard::policy::{self, Operation};
use daemonset_guard::yaml::parse_documents;
use serde_json::{json, Value};

const RELEASE: &str = "guard";
const NAMESPACE: &str = "dsg-system";
/// The Kubernetes versions the rendered manifests must validate against: the one the project
/// targets (its k8s-openapi feature and admission fixtures) and the chart's `kubeVersion` floor.
const KUBE_VERSIONS: &[&str] = &["1.36.0", "1.26.0"];
/// Kinds whose schemas are CRDs, not in the core OpenAPI: asserted on by shape instead.
const CRD_KINDS: &[(&str, &str)] = &[
    ("cert-manager.io/v1", "Certificate"),
    ("cert-manager.io/v1", "Issuer"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
];
/// The chart's own message when cert-manager mode is chosen without cert-manager's API.
const CERT_MANAGER_MISSING: &str =
    "tls.mode=certManager needs cert-manager, but this cluster does not serve the API cert-manager.io/v1";
const FAKE_CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn chart() -> PathBuf {
    repo().join("charts/daemonset-guard")
}

// ---------------------------------------------------------------------------------------------
// Tools

struct Helm {
    path: PathBuf,
    version: String,
}

struct Tools {
    helms: Vec<Helm>,
    validate: PathBuf,
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// `$env`, else `.tools/bin/<local>`, else `<name>` on PATH.
fn find_tool(env: &str, local: &str, name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let p = repo().join(".tools/bin").join(local);
    if p.is_file() {
        return Some(p);
    }
    on_path(name)
}

fn helm_version(path: &Path) -> Option<String> {
    let out = Command::new(path)
        .args(["version", "--short"])
        .output()
        .ok()?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && (v.starts_with("v3.") || v.starts_with("v4."))).then_some(v)
}

fn tools() -> &'static Tools {
    static TOOLS: OnceLock<Tools> = OnceLock::new();
    TOOLS.get_or_init(|| {
        const HINT: &str =
            "run scripts/install-tools.sh (installs into .tools/), or set HELM / HELM4 / \
             KUBERNETES_VALIDATE to the binaries";
        let mut helms: Vec<Helm> = Vec::new();
        for (env, local, name) in [("HELM", "helm", "helm"), ("HELM4", "helm4", "helm4")] {
            let Some(path) = find_tool(env, local, name) else {
                continue;
            };
            let version = helm_version(&path).unwrap_or_else(|| {
                panic!("{} is not a working helm 3 or 4; {HINT}", path.display())
            });
            if !helms.iter().any(|h| h.version[..2] == version[..2]) {
                helms.push(Helm { path, version });
            }
        }
        assert!(!helms.is_empty(), "helm not found; {HINT}");
        let validate = find_tool(
            "KUBERNETES_VALIDATE",
            "kubernetes-validate",
            "kubernetes-validate",
        )
        .unwrap_or_else(|| panic!("kubernetes-validate not found; {HINT}"));
        Tools { helms, validate }
    })
}

fn helms() -> &'static [Helm] {
    &tools().helms
}

// ---------------------------------------------------------------------------------------------
// Rendering

fn existing_secret_sets() -> Vec<String> {
    let ca = base64::engine::general_purpose::STANDARD.encode(FAKE_CA_PEM);
    vec![
        "tls.mode=existingSecret".into(),
        "tls.existingSecret.name=my-webhook-tls".into(),
        format!("tls.existingSecret.caBundle={ca}"),
    ]
}

/// Value combinations every structural test runs over: `(name, --set values)`.
fn combos() -> Vec<(&'static str, Vec<String>)> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    vec![
        ("default", vec![]),
        ("cert-manager", s(&["tls.mode=certManager"])),
        (
            "cert-manager-own-issuer",
            s(&[
                "tls.mode=certManager",
                "tls.certManager.issuerRef.name=corp-ca",
                "tls.certManager.issuerRef.kind=ClusterIssuer",
            ]),
        ),
        ("existing-secret", existing_secret_sets()),
        ("ha-off", s(&["replicaCount=1"])),
        ("service-monitor", s(&["metrics.serviceMonitor.enabled=true"])),
        ("network-policy", s(&["networkPolicy.enabled=true"])),
        (
            "network-policy-restricted",
            s(&[
                "networkPolicy.enabled=true",
                "networkPolicy.webhookFrom[0].ipBlock.cidr=10.0.0.0/24",
                "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.team=monitoring",
            ]),
        ),
        ("hpa", s(&["autoscaling.enabled=true"])),
        ("audit-off", s(&["audit.enabled=false"])),
        ("lint-off", s(&["lint.enabled=false"])),
        ("audit-without-reports", s(&["audit.policyReports=false"])),
        ("kube-system-exclude", s(&["webhooks.kubeSystem=exclude"])),
        ("kube-system-enforce", s(&["webhooks.kubeSystem=enforce"])),
        (
            "custom-ports",
            s(&[
                "server.port=9443",
                "server.metricsPort=9191",
                "service.port=8443",
                "lint.port=9444",
                "lint.servicePort=443",
            ]),
        ),
        (
            "mtls-and-pull-secrets",
            s(&[
                "server.clientCA.configMap=apiserver-client-ca",
                "imagePullSecrets[0].name=regcred",
                "image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ]),
        ),
    ]
}

fn set_args(sets: &[String]) -> Vec<String> {
    sets.iter()
        .flat_map(|s| ["--set".to_string(), s.clone()])
        .collect()
}

/// `helm template`, as against a cluster that serves cert-manager's API when the values choose
/// cert-manager mode; Ok(stdout) or Err(stderr).
fn template(helm: &Helm, sets: &[String]) -> Result<String, String> {
    let cert_manager = sets.iter().any(|s| s == "tls.mode=certManager");
    let api_versions: &[&str] = if cert_manager {
        &["--api-versions", "cert-manager.io/v1"]
    } else {
        &[]
    };
    template_with(helm, sets, api_versions)
}

/// `helm template` with extra arguments; Ok(stdout) or Err(stderr).
fn template_with(helm: &Helm, sets: &[String], extra: &[&str]) -> Result<String, String> {
    let out = Command::new(&helm.path)
        .args(["template", RELEASE])
        .arg(chart())
        .args(["--namespace", NAMESPACE])
        .args(set_args(sets))
        .args(extra)
        .output()
        .expect("run helm template");
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).expect("helm output is UTF-8"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Rendered objects of a combination that must render.
fn render(helm: &Helm, name: &str, sets: &[String]) -> Vec<Value> {
    let text = template(helm, sets).unwrap_or_else(|e| {
        panic!(
            "helm {} template failed for {name} ({sets:?}):\n{e}",
            helm.version
        )
    });
    let docs = parse_documents(&text)
        .unwrap_or_else(|e| panic!("{name}: rendered YAML does not parse: {e}"));
    docs.into_iter()
        .map(|d| d.value)
        .filter(|v| !v.is_null())
        .collect()
}

/// Every (helm, combination, objects) to assert on.
fn all_renders() -> Vec<(String, Vec<String>, Vec<Value>)> {
    let mut out = Vec::new();
    for helm in helms() {
        for (name, sets) in combos() {
            let objs = render(helm, name, &sets);
            out.push((format!("{name} (helm {})", helm.version), sets, objs));
        }
    }
    out
}

fn kind(o: &Value) -> &str {
    o["kind"].as_str().unwrap_or("")
}

fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or("")
}

fn find<'a>(objs: &'a [Value], k: &str) -> Vec<&'a Value> {
    objs.iter().filter(|o| kind(o) == k).collect()
}

/// The one object of kind `k` that is a Helm hook (certs-gen's), beside the server's own.
fn hook_one<'a>(objs: &'a [Value], k: &str, ctx: &str) -> &'a Value {
    let found: Vec<&Value> = find(objs, k)
        .into_iter()
        .filter(|o| o["metadata"]["annotations"]["helm.sh/hook"].is_string())
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{ctx}: expected one hook {k}, found {}",
        found.len()
    );
    found[0]
}

fn one<'a>(objs: &'a [Value], k: &str, ctx: &str) -> &'a Value {
    let found = find(objs, k);
    assert_eq!(
        found.len(),
        1,
        "{ctx}: expected one {k}, found {}",
        found.len()
    );
    found[0]
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn hooks(o: &Value) -> BTreeSet<&str> {
    o["metadata"]["annotations"]["helm.sh/hook"]
        .as_str()
        .map(|h| h.split(',').collect())
        .unwrap_or_default()
}

/// Chart.yaml.
fn chart_metadata() -> Value {
    let text = std::fs::read_to_string(chart().join("Chart.yaml")).expect("read Chart.yaml");
    parse_documents(&text).expect("Chart.yaml parses")[0]
        .value
        .clone()
}

fn delete_policies(o: &Value) -> BTreeSet<&str> {
    o["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
        .as_str()
        .map(|h| h.split(',').collect())
        .unwrap_or_default()
}

fn fullname() -> String {
    format!("{RELEASE}-daemonset-guard")
}

// ---------------------------------------------------------------------------------------------
// helm lint, OpenAPI validation

#[test]
fn helm_lint_strict_passes_for_defaults_and_each_tls_mode() {
    let modes: Vec<(&str, Vec<String>)> = vec![
        ("default (certsGen)", vec![]),
        ("certManager", vec!["tls.mode=certManager".into()]),
        ("existingSecret", existing_secret_sets()),
    ];
    for helm in helms() {
        for (mode, sets) in &modes {
            let out = Command::new(&helm.path)
                .args(["lint", "--strict"])
                .arg(chart())
                .args(["--namespace", NAMESPACE])
                .args(set_args(sets))
                .output()
                .expect("run helm lint");
            assert!(
                out.status.success(),
                "helm {} lint --strict failed for {mode}:\n{}{}",
                helm.version,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn rendered_manifests_validate_against_kubernetes_openapi() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let crds: BTreeSet<(&str, &str)> = CRD_KINDS.iter().copied().collect();
    for (ctx, _, objs) in all_renders() {
        let mut core = Vec::new();
        for o in &objs {
            let api = o["apiVersion"].as_str().unwrap_or("");
            if crds.contains(&(api, kind(o))) {
                assert_crd_shape(&ctx, o);
            } else {
                core.push(serde_json::to_string(o).expect("serialize"));
            }
        }
        let file = tmp.path().join("rendered.yaml");
        std::fs::write(&file, core.join("\n---\n")).expect("write rendered manifests");
        for version in KUBE_VERSIONS {
            let out = Command::new(&tools().validate)
                .args(["--strict", "-k", version])
                .arg(&file)
                .output()
                .expect("run kubernetes-validate");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{ctx}: kubernetes-validate --strict -k {version} failed:\n{stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            // Every object must actually have been checked: a kind without a schema is only a warning.
            let passed = stdout.matches(" passed for resource ").count();
            assert_eq!(
                passed,
                core.len(),
                "{ctx}: kubernetes-validate -k {version} checked {passed} of {} objects:\n{stdout}",
                core.len()
            );
        }
    }
}

/// CRD kinds the validator has no schema for: their required fields, checked by hand.
fn assert_crd_shape(ctx: &str, o: &Value) {
    let spec = &o["spec"];
    match kind(o) {
        "Certificate" => {
            assert!(
                spec["secretName"].is_string(),
                "{ctx}: Certificate secretName"
            );
            assert!(
                spec["issuerRef"]["name"].is_string(),
                "{ctx}: Certificate issuerRef"
            );
            if spec["isCA"] != json!(true) {
                let names = strs(&spec["dnsNames"]);
                let svc = format!("{}.{NAMESPACE}.svc", fullname());
                assert!(
                    names.contains(&svc.as_str()),
                    "{ctx}: dnsNames {names:?} lack {svc}"
                );
                assert!(
                    strs(&spec["usages"]).contains(&"server auth"),
                    "{ctx}: usages"
                );
            }
        }
        "Issuer" => assert!(
            spec["selfSigned"].is_object() || spec["ca"]["secretName"].is_string(),
            "{ctx}: Issuer must be selfSigned or ca: {spec}"
        ),
        "ServiceMonitor" => {
            let ep = &spec["endpoints"][0];
            assert_eq!(ep["port"], "metrics", "{ctx}: ServiceMonitor port");
            assert_eq!(ep["path"], "/metrics", "{ctx}: ServiceMonitor path");
            assert!(
                spec["selector"]["matchLabels"].is_object(),
                "{ctx}: ServiceMonitor selector"
            );
        }
        other => panic!("{ctx}: unexpected CRD kind {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Webhook configurations

#[test]
fn webhooks_match_daemonset_writes_only_with_safe_settings() {
    for (ctx, sets, objs) in all_renders() {
        let kube_system = sets
            .iter()
            .find_map(|s| s.strip_prefix("webhooks.kubeSystem="))
            .unwrap_or("failOpen");
        for (k, path) in [
            ("ValidatingWebhookConfiguration", "/validate"),
            ("MutatingWebhookConfiguration", "/mutate"),
        ] {
            let cfg = one(&objs, k, &ctx);
            assert_eq!(name(cfg), fullname(), "{ctx}: {k} name");
            let hooks = cfg["webhooks"].as_array().expect("webhooks");
            let expected_entries = if kube_system == "failOpen" { 2 } else { 1 };
            assert_eq!(hooks.len(), expected_entries, "{ctx}: {k} webhook entries");
            for w in hooks {
                let wctx = format!("{ctx}: {k} {}", w["name"]);
                assert_eq!(
                    w["rules"],
                    json!([{
                        "apiGroups": ["apps"],
                        "apiVersions": ["v1"],
                        "resources": ["daemonsets"],
                        "operations": ["CREATE", "UPDATE"],
                        "scope": "Namespaced",
                    }]),
                    "{wctx}: rules must be apps/v1 daemonsets CREATE/UPDATE only (no status, no wildcard)"
                );
                assert_eq!(w["sideEffects"], "None", "{wctx}");
                assert_eq!(w["admissionReviewVersions"], json!(["v1"]), "{wctx}");
                assert_eq!(w["timeoutSeconds"], 5, "{wctx}");
                assert_eq!(w["matchPolicy"], "Equivalent", "{wctx}");
                if k.starts_with("Mutating") {
                    assert_eq!(w["reinvocationPolicy"], "IfNeeded", "{wctx}");
                } else {
                    assert!(w.get("reinvocationPolicy").is_none(), "{wctx}");
                }
                let svc = &w["clientConfig"]["service"];
                assert_eq!(svc["path"], path, "{wctx}: path");
                assert_eq!(svc["name"], fullname().as_str(), "{wctx}: service name");
                assert_eq!(svc["namespace"], NAMESPACE, "{wctx}: service namespace");
                assert!(w["clientConfig"].get("url").is_none(), "{wctx}: no url");

                let exprs = w["namespaceSelector"]["matchExpressions"]
                    .as_array()
                    .expect("namespaceSelector.matchExpressions");
                assert_eq!(exprs.len(), 1, "{wctx}");
                assert_eq!(exprs[0]["key"], "kubernetes.io/metadata.name", "{wctx}");
                let values = strs(&exprs[0]["values"]);
                if w["name"].as_str().unwrap_or("").contains("kube-system") {
                    assert_eq!(exprs[0]["operator"], "In", "{wctx}");
                    assert_eq!(values, ["kube-system"], "{wctx}");
                    assert_eq!(
                        w["failurePolicy"], "Ignore",
                        "{wctx}: kube-system must fail open (CNI deadlock)"
                    );
                } else {
                    assert_eq!(exprs[0]["operator"], "NotIn", "{wctx}");
                    assert!(
                        values.contains(&NAMESPACE),
                        "{wctx}: the release namespace must be excluded: {values:?}"
                    );
                    assert_eq!(
                        values.contains(&"kube-system"),
                        kube_system != "enforce",
                        "{wctx}: kube-system exclusion with kubeSystem={kube_system}: {values:?}"
                    );
                    assert_eq!(w["failurePolicy"], "Fail", "{wctx}: default failurePolicy");
                }
            }
        }
    }
}

#[test]
fn failure_policy_and_exclusions_follow_values() {
    for helm in helms() {
        let objs = render(
            helm,
            "failure-policy",
            &[
                "webhooks.validating.failurePolicy=Ignore".into(),
                "webhooks.timeoutSeconds=10".into(),
                "webhooks.excludeNamespaces={monitoring,kube-system}".into(),
                "webhooks.objectSelector.matchLabels.guarded=yes".into(),
            ],
        );
        let v = one(&objs, "ValidatingWebhookConfiguration", "failure-policy");
        let m = one(&objs, "MutatingWebhookConfiguration", "failure-policy");
        // kube-system listed as excluded: no fail-open entry for it.
        assert_eq!(v["webhooks"].as_array().map(Vec::len), Some(1));
        assert_eq!(v["webhooks"][0]["failurePolicy"], "Ignore");
        assert_eq!(m["webhooks"][0]["failurePolicy"], "Fail");
        assert_eq!(v["webhooks"][0]["timeoutSeconds"], 10);
        assert_eq!(
            v["webhooks"][0]["namespaceSelector"]["matchExpressions"][0]["values"],
            json!([NAMESPACE, "kube-system", "monitoring"])
        );
        assert_eq!(
            m["webhooks"][0]["objectSelector"],
            json!({"matchLabels": {"guarded": "yes"}})
        );

        // Installed into kube-system itself: never a webhook entry that selects its own namespace.
        let text = Command::new(&helm.path)
            .args(["template", RELEASE])
            .arg(chart())
            .args(["--namespace", "kube-system"])
            .output()
            .expect("helm template");
        assert!(text.status.success());
        let docs = parse_documents(&String::from_utf8_lossy(&text.stdout)).expect("parse");
        let objs: Vec<Value> = docs.into_iter().map(|d| d.value).collect();
        let v = one(
            &objs,
            "ValidatingWebhookConfiguration",
            "kube-system release",
        );
        let entries = v["webhooks"].as_array().expect("webhooks");
        assert_eq!(entries.len(), 1);
        assert_eq!(
            entries[0]["namespaceSelector"]["matchExpressions"][0],
            json!({"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]})
        );
    }
}

/// caBundle: never rendered where certs-gen or cert-manager writes it (so an upgrade cannot reset
/// it), rendered from values for a user-provided Secret.
#[test]
fn ca_bundle_is_owned_by_exactly_one_writer() {
    for (ctx, sets, objs) in all_renders() {
        let mode = sets
            .iter()
            .find_map(|s| s.strip_prefix("tls.mode="))
            .unwrap_or("certsGen");
        let deployment = one(&objs, "Deployment", &ctx);
        let tls_secret = deployment["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .and_then(|vs| vs.iter().find(|v| v["name"] == "tls"))
            .map(|v| v["secret"]["secretName"].as_str().unwrap_or("").to_string())
            .expect("tls volume");
        for k in [
            "ValidatingWebhookConfiguration",
            "MutatingWebhookConfiguration",
        ] {
            let cfg = one(&objs, k, &ctx);
            let inject = cfg["metadata"]["annotations"]["cert-manager.io/inject-ca-from"].as_str();
            for w in cfg["webhooks"].as_array().expect("webhooks") {
                let bundle = w["clientConfig"].get("caBundle");
                match mode {
                    "existingSecret" => {
                        let b64 = bundle.and_then(Value::as_str).expect("caBundle rendered");
                        let pem = base64::engine::general_purpose::STANDARD
                            .decode(b64)
                            .expect("caBundle is base64");
                        assert_eq!(pem, FAKE_CA_PEM.as_bytes(), "{ctx}: {k} caBundle");
                        assert_eq!(inject, None, "{ctx}");
                    }
                    _ => assert!(
                        bundle.is_none(),
                        "{ctx}: {k} must not render caBundle in {mode} mode (Helm would own it)"
                    ),
                }
            }
            if mode == "certManager" {
                // cainjector reads ca.crt of the Secret of this Certificate: the one the server mounts.
                let target = inject.expect("inject-ca-from annotation");
                let (ns, cert_name) = target.split_once('/').expect("ns/name");
                assert_eq!(ns, NAMESPACE, "{ctx}");
                let cert = find(&objs, "Certificate")
                    .into_iter()
                    .find(|c| name(c) == cert_name)
                    .unwrap_or_else(|| panic!("{ctx}: Certificate {cert_name} not rendered"));
                assert_eq!(cert["spec"]["secretName"], tls_secret.as_str(), "{ctx}");
            }
        }
        match mode {
            "existingSecret" => assert_eq!(tls_secret, "my-webhook-tls", "{ctx}"),
            _ => assert_eq!(tls_secret, format!("{}-tls", fullname()), "{ctx}"),
        }
        let jobs = find(&objs, "Job");
        assert_eq!(
            jobs.len(),
            if mode == "certsGen" { 3 } else { 0 },
            "{ctx}: certs-gen Jobs"
        );
    }
}

#[test]
fn certs_gen_hooks_create_before_and_patch_after_the_release() {
    for helm in helms() {
        let objs = render(helm, "default", &[]);
        let jobs = find(&objs, "Job");
        let args = |j: &Value| -> Vec<String> {
            strs(&j["spec"]["template"]["spec"]["containers"][0]["args"])
                .into_iter()
                .map(String::from)
                .collect()
        };
        let create = jobs
            .iter()
            .find(|j| args(j).first().map(String::as_str) == Some("create"))
            .expect("create Job");
        let patches: Vec<&Value> = jobs
            .iter()
            .filter(|j| args(j).first().map(String::as_str) == Some("patch"))
            .copied()
            .collect();
        let patch = *patches
            .iter()
            .find(|j| hooks(j).contains("post-install"))
            .expect("post-install patch Job");
        let early = *patches
            .iter()
            .find(|j| hooks(j).contains("pre-upgrade"))
            .expect("pre-upgrade patch Job");
        assert_eq!(
            hooks(create),
            BTreeSet::from(["pre-install", "pre-upgrade"])
        );
        assert_eq!(
            hooks(patch),
            BTreeSet::from(["post-install", "post-upgrade"])
        );
        // On upgrade the caBundle must carry the rotated CA (new + previous) before running pods
        // can pick up a rotated certificate: the early patch runs right after create.
        assert_eq!(hooks(early), BTreeSet::from(["pre-upgrade"]));
        let weight = |j: &Value| -> i64 {
            j["metadata"]["annotations"]["helm.sh/hook-weight"]
                .as_str()
                .and_then(|w| w.parse().ok())
                .expect("hook weight")
        };
        assert!(
            weight(create) < weight(early),
            "create must run before the early patch"
        );
        assert_eq!(args(early), args(patch));
        let secret = format!("{}-tls", fullname());
        let svc = fullname();
        let mut expected_create = vec![
            "create".to_string(),
            "--namespace".into(),
            NAMESPACE.into(),
            "--secret-name".into(),
            secret.clone(),
        ];
        for host in [
            svc.clone(),
            format!("{svc}.{NAMESPACE}"),
            format!("{svc}.{NAMESPACE}.svc"),
            format!("{svc}.{NAMESPACE}.svc.cluster.local"),
        ] {
            expected_create.extend(["--host".to_string(), host]);
        }
        expected_create.extend(["--days".to_string(), "3650".into()]);
        let meta = chart_metadata();
        // The Secret gets the chart's standard labels (those of every object it renders).
        for (k, v) in [
            ("app.kubernetes.io/instance", RELEASE),
            ("app.kubernetes.io/managed-by", "Helm"),
            ("app.kubernetes.io/name", "daemonset-guard"),
            ("app.kubernetes.io/part-of", "daemonset-guard"),
            (
                "app.kubernetes.io/version",
                meta["appVersion"].as_str().unwrap(),
            ),
            (
                "helm.sh/chart",
                &format!("daemonset-guard-{}", meta["version"].as_str().unwrap()),
            ),
        ] {
            expected_create.extend(["--label".to_string(), format!("{k}={v}")]);
        }
        // On install the configurations follow (see the install test below).
        let create_args = args(create);
        assert_eq!(create_args[..expected_create.len()], expected_create);
        assert_eq!(
            create_args[expected_create.len()..]
                .iter()
                .step_by(2)
                .collect::<Vec<_>>(),
            ["--webhook-configuration", "--webhook-configuration"]
        );
        let deployment = one(&objs, "Deployment", "default");
        for (k, v) in deployment["metadata"]["labels"].as_object().unwrap() {
            if k != "app.kubernetes.io/component" {
                let label = format!("{k}={}", v.as_str().unwrap());
                assert!(args(create).contains(&label), "Secret label {label}");
            }
        }
        assert_eq!(
            args(patch),
            [
                "patch",
                "--secret-namespace",
                NAMESPACE,
                "--secret-name",
                &secret,
                "--validating",
                &fullname(),
                "--mutating",
                &fullname(),
            ]
        );
        for j in [create, patch, early] {
            let c = &j["spec"]["template"]["spec"]["containers"][0];
            assert_eq!(c["command"], json!(["/usr/local/bin/certs-gen"]));
        }
    }
}

/// No caBundle window on install or upgrade (issue 16), shown by rendering both and reading the
/// order Helm runs them in: hooks by phase (pre-install/pre-upgrade before the release's
/// objects, post-* after) and, within a phase, by weight.
///
/// Install: the pre-install create Job makes the Secret, then both configurations from the very
/// objects the chart renders, plus the metadata Helm requires to adopt them, with the CA in every
/// caBundle; Helm then applies the same objects (which never render caBundle) over them. Upgrade:
/// the configurations exist, nothing is created, and the pre-upgrade patch puts a rotated CA in
/// place before the Deployment changes.
#[test]
fn configurations_never_exist_without_the_ca_on_install_or_upgrade() {
    let weight = |o: &Value| -> i64 {
        o["metadata"]["annotations"]["helm.sh/hook-weight"]
            .as_str()
            .and_then(|w| w.parse().ok())
            .expect("hook weight")
    };
    let args = |j: &Value| -> Vec<String> {
        strs(&j["spec"]["template"]["spec"]["containers"][0]["args"])
            .into_iter()
            .map(String::from)
            .collect()
    };
    let configs_in = |args: &[String]| -> Vec<Value> {
        args.windows(2)
            .filter(|w| w[0] == "--webhook-configuration")
            .map(|w| serde_json::from_str(&w[1]).expect("--webhook-configuration is JSON"))
            .collect()
    };
    let create_rule = |objs: &[Value]| -> bool {
        hook_one(objs, "ClusterRole", "rbac")["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| strs(&r["verbs"]).contains(&"create"))
    };
    for helm in helms() {
        let ctx = format!("helm {}", helm.version);
        let parse = |text: String| -> Vec<Value> {
            parse_documents(&text)
                .unwrap()
                .into_iter()
                .map(|d| d.value)
                .filter(|v| !v.is_null())
                .collect()
        };
        let install = parse(template_with(helm, &[], &[]).unwrap());
        let upgrade = parse(template_with(helm, &[], &["--is-upgrade"]).unwrap());

        // Install.
        let jobs = find(&install, "Job");
        let create = jobs
            .iter()
            .find(|j| args(j).first().map(String::as_str) == Some("create"))
            .expect("create Job");
        assert!(hooks(create).contains("pre-install"), "{ctx}");
        let handed = configs_in(&args(create));
        assert_eq!(handed.len(), 2, "{ctx}");
        for k in [
            "ValidatingWebhookConfiguration",
            "MutatingWebhookConfiguration",
        ] {
            let rendered = one(&install, k, &ctx);
            // Created in the main phase, after every pre-install hook has completed.
            assert!(hooks(rendered).is_empty(), "{ctx}: {k} must not be a hook");
            let mut want = rendered.clone();
            want["metadata"]["annotations"] = json!({
                "meta.helm.sh/release-name": RELEASE,
                "meta.helm.sh/release-namespace": NAMESPACE,
            });
            let got = handed
                .iter()
                .find(|c| c["kind"] == k)
                .unwrap_or_else(|| panic!("{ctx}: {k} not handed to certs-gen"));
            // Exactly what Helm applies next.
            assert_eq!(got, &want, "{ctx}: {k}");
            assert_eq!(
                got["metadata"]["labels"]["app.kubernetes.io/managed-by"],
                "Helm"
            );
            for w in rendered["webhooks"].as_array().unwrap() {
                assert!(w["clientConfig"].get("caBundle").is_none(), "{ctx}: {k}");
            }
        }
        assert!(create_rule(&install), "{ctx}: install needs create");
        let rbac_weight = weight(hook_one(&install, "ClusterRole", &ctx));
        assert!(rbac_weight < weight(create), "{ctx}");

        // Upgrade: nothing created; create is not even allowed.
        let jobs = find(&upgrade, "Job");
        let create = jobs
            .iter()
            .find(|j| args(j).first().map(String::as_str) == Some("create"))
            .expect("create Job");
        assert!(configs_in(&args(create)).is_empty(), "{ctx}");
        assert!(
            !create_rule(&upgrade),
            "{ctx}: upgrade must not grant create"
        );
        let early = jobs
            .iter()
            .find(|j| hooks(j).contains("pre-upgrade") && args(j)[0] == "patch")
            .expect("pre-upgrade patch");
        assert!(weight(create) < weight(early), "{ctx}");
        for k in [
            "ValidatingWebhookConfiguration",
            "MutatingWebhookConfiguration",
        ] {
            let cfg = one(&upgrade, k, &ctx);
            assert!(hooks(cfg).is_empty(), "{ctx}");
            for w in cfg["webhooks"].as_array().unwrap() {
                assert!(w["clientConfig"].get("caBundle").is_none(), "{ctx}: {k}");
            }
        }
    }
}

/// The certs-gen Jobs go whatever their outcome, with their pods and so the pods' tokens; helm
/// prints the log of a failed one first.
#[test]
fn certs_gen_jobs_are_deleted_whatever_their_outcome() {
    for helm in helms() {
        let objs = render(helm, "default", &[]);
        let jobs = find(&objs, "Job");
        assert!(!jobs.is_empty());
        for j in jobs {
            assert_eq!(
                delete_policies(j),
                BTreeSet::from(["before-hook-creation", "hook-failed", "hook-succeeded"]),
                "{}",
                name(j)
            );
            assert_eq!(
                j["metadata"]["annotations"]["helm.sh/hook-output-log-policy"],
                "hook-failed"
            );
        }
    }
}

/// cert-manager mode renders only where cert-manager's API is served, and otherwise stops with
/// one sentence that names the missing API and the ways out.
#[test]
fn cert_manager_mode_needs_the_cert_manager_api() {
    let sets = vec!["tls.mode=certManager".to_string()];
    for helm in helms() {
        let err = template_with(helm, &sets, &[]).expect_err("rendered without cert-manager");
        let line = err
            .lines()
            .find(|l| l.contains(CERT_MANAGER_MISSING))
            .unwrap_or_else(|| panic!("helm {}: {err}", helm.version));
        assert!(line.contains("install cert-manager first"), "{line}");
        assert!(!err.contains("no matches for kind"), "{err}");
        let text = template_with(helm, &sets, &["--api-versions", "cert-manager.io/v1"])
            .unwrap_or_else(|e| panic!("helm {}: {e}", helm.version));
        assert!(text.contains("kind: Certificate"));
        // The other modes never ask for it.
        template_with(helm, &[], &[]).unwrap();
        template_with(helm, &existing_secret_sets(), &[]).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Chart and binary agree: ports, paths, policy, rule ids

fn flag_value<'a>(args: &'a [&'a str], flag: &str) -> Option<&'a str> {
    args.iter().enumerate().find_map(|(i, a)| {
        if *a == flag {
            args.get(i + 1).copied()
        } else {
            a.strip_prefix(flag).and_then(|r| r.strip_prefix('='))
        }
    })
}

fn port_of(addr: &str) -> u64 {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("not HOST:PORT: {addr}"))
}

/// A Service or probe port (number or container port name) resolved to a number.
fn resolve_port(container: &Value, port: &Value) -> u64 {
    if let Some(n) = port.as_u64() {
        return n;
    }
    let name = port.as_str().expect("port is a number or a name");
    container["ports"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("no container port named {name}"))
}

#[test]
fn webhooks_service_and_server_agree_on_ports_and_paths() {
    for (ctx, _, objs) in all_renders() {
        let deployment = one(&objs, "Deployment", &ctx);
        let pod = &deployment["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        assert_eq!(
            c["command"],
            json!(["/usr/local/bin/daemonset-guard"]),
            "{ctx}"
        );
        let args = strs(&c["args"]);
        assert_eq!(args.first(), Some(&"serve"), "{ctx}: {args:?}");
        let listen = port_of(flag_value(&args, "--listen").expect("--listen"));
        let metrics = port_of(flag_value(&args, "--metrics-listen").expect("--metrics-listen"));
        assert_eq!(
            flag_value(&args, "--log-format"),
            Some("json"),
            "{ctx}: production logs are JSON"
        );
        // Files the server reads are on the mounted volumes (directories, so updates reach it).
        let mounts: BTreeMap<&str, &str> = c["volumeMounts"]
            .as_array()
            .expect("volumeMounts")
            .iter()
            .map(|m| {
                assert!(m.get("subPath").is_none(), "{ctx}: subPath never updates");
                (
                    m["mountPath"].as_str().unwrap_or(""),
                    m["name"].as_str().unwrap_or(""),
                )
            })
            .collect();
        for flag in ["--config", "--tls-cert", "--tls-key", "--client-ca"] {
            if let Some(file) = flag_value(&args, flag) {
                let dir = file.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                assert!(mounts.contains_key(dir), "{ctx}: {flag} {file} not mounted");
            }
        }
        assert_eq!(resolve_port(c, &json!("https")), listen, "{ctx}");
        for probe in ["readinessProbe", "livenessProbe"] {
            let p = &c[probe]["httpGet"];
            assert_eq!(resolve_port(c, &p["port"]), metrics, "{ctx}: {probe} port");
            assert!(p.get("scheme").is_none() || p["scheme"] == "HTTP", "{ctx}");
        }
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz", "{ctx}");
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz", "{ctx}");

        let service = find(&objs, "Service")
            .into_iter()
            .find(|s| name(s) == fullname())
            .expect("Service");
        let selector = &service["spec"]["selector"];
        for (k, v) in selector.as_object().expect("selector") {
            assert_eq!(
                &deployment["spec"]["template"]["metadata"]["labels"][k], v,
                "{ctx}: Service selects the pods"
            );
        }
        for k in [
            "ValidatingWebhookConfiguration",
            "MutatingWebhookConfiguration",
        ] {
            for w in one(&objs, k, &ctx)["webhooks"]
                .as_array()
                .expect("webhooks")
            {
                let port = &w["clientConfig"]["service"]["port"];
                let sp = service["spec"]["ports"]
                    .as_array()
                    .and_then(|ps| ps.iter().find(|p| &p["port"] == port))
                    .unwrap_or_else(|| panic!("{ctx}: {k} calls port {port}, not on the Service"));
                assert_eq!(
                    resolve_port(c, &sp["targetPort"]),
                    listen,
                    "{ctx}: {k} port {port} must reach --listen {listen}"
                );
            }
        }

        // /lint has a listener of its own, or none; the helm test Pod calls its Service port, by
        // the name the certificate covers.
        let lint_sp = service["spec"]["ports"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == "lint"));
        match flag_value(&args, "--lint-listen").expect("--lint-listen") {
            "off" => {
                assert!(lint_sp.is_none(), "{ctx}: no /lint Service port");
                assert!(
                    find(&objs, "Pod").is_empty(),
                    "{ctx}: helm test needs /lint"
                );
            }
            addr => {
                let lint = port_of(addr);
                assert!(lint != listen && lint != metrics, "{ctx}: {args:?}");
                let sp = lint_sp.expect("lint Service port");
                assert_eq!(resolve_port(c, &sp["targetPort"]), lint, "{ctx}");
                let test_pod = one(&objs, "Pod", &ctx);
                let targs = strs(&test_pod["spec"]["containers"][0]["args"]);
                let url = flag_value(&targs, "--remote").expect("--remote");
                assert_eq!(
                    url,
                    format!("https://{}.{NAMESPACE}.svc:{}/lint", fullname(), sp["port"]),
                    "{ctx}"
                );
            }
        }
    }
}

fn policy_text(objs: &[Value], ctx: &str) -> String {
    find(objs, "ConfigMap")
        .into_iter()
        .find(|c| name(c) == format!("{}-policy", fullname()))
        .and_then(|c| c["data"]["policy.yaml"].as_str())
        .unwrap_or_else(|| panic!("{ctx}: policy ConfigMap"))
        .to_string()
}

#[test]
fn default_values_render_the_embedded_default_policy() {
    let embedded = parse_documents(DEFAULT_POLICY_YAML).expect("default policy parses");
    for helm in helms() {
        let objs = render(helm, "default", &[]);
        let text = policy_text(&objs, "default");
        let rendered = parse_documents(&text).expect("rendered policy parses");
        assert_eq!(rendered.len(), 1);
        // Same structure, key by key (the embedded file only adds comments).
        assert_eq!(rendered[0].value, embedded[0].value);
        let policy = Policy::from_yaml(&text, "policy.yaml")
            .unwrap_or_else(|e| panic!("rendered policy is rejected by the server: {e}"));
        assert_eq!(policy, Policy::default());
    }
}

#[test]
fn policy_values_reach_the_server_config() {
    for helm in helms() {
        let objs = render(
            helm,
            "policy",
            &[
                "policy.rules.security-privileged=warn".into(),
                "policy.mutations.security=false".into(),
                "policy.rollout.maxUnavailable=2".into(),
            ],
        );
        let text = policy_text(&objs, "policy");
        let policy = Policy::from_yaml(&text, "policy.yaml")
            .unwrap_or_else(|e| panic!("rendered policy is rejected by the server: {e}"));
        assert_eq!(policy.mode("security-privileged"), policy::Mode::Warn);
        assert!(!policy.mutations().security);
        assert!(policy.mutations().resources);
        assert_eq!(
            policy.rollout().max_unavailable,
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(2))
        );
        assert_eq!(policy.exemptions(), Policy::default().exemptions());
    }
}

fn schema() -> Value {
    let text = std::fs::read_to_string(chart().join("values.schema.json")).expect("schema");
    serde_json::from_str(&text).expect("values.schema.json is JSON")
}

#[test]
fn values_schema_knows_exactly_the_engines_rule_ids() {
    let schema = schema();
    let policy = &schema["properties"]["policy"]["properties"];
    let in_schema: BTreeSet<&str> = strs(&policy["rules"]["propertyNames"]["enum"])
        .into_iter()
        .collect();
    let engine: BTreeSet<&str> = daemonset_guard::catalog::rules().map(|r| r.id).collect();
    assert_eq!(
        in_schema, engine,
        "values.schema.json policy.rules ids differ from `daemonset-guard rules`"
    );
    let families: BTreeSet<&str> = daemonset_guard::catalog::rules()
        .map(|r| r.family.as_str())
        .collect();
    let exemptable: BTreeSet<&str> =
        strs(&policy["exemptions"]["items"]["properties"]["rules"]["items"]["enum"])
            .into_iter()
            .collect();
    assert_eq!(
        exemptable,
        engine.union(&families).copied().collect(),
        "exemption rules must be rule ids or family names"
    );
}

/// Every value in values.yaml is described by the schema and listed in the chart README.
#[test]
fn every_value_is_in_the_schema_and_the_readme() {
    let values_text = std::fs::read_to_string(chart().join("values.yaml")).expect("values.yaml");
    let values = parse_documents(&values_text).expect("values.yaml parses");
    let readme = std::fs::read_to_string(chart().join("README.md")).expect("chart README.md");
    let schema = schema();
    /// (path, described by the schema, a leaf for documentation purposes).
    fn walk(v: &Value, s: &Value, path: String, out: &mut Vec<(String, bool, bool)>) {
        let described = s.is_object();
        // Below `policy`, values are policy keys documented by the policy itself.
        let children = match (v.as_object(), s["properties"].as_object()) {
            (Some(map), Some(props)) if path != "policy" && !map.is_empty() => Some((map, props)),
            _ => None,
        };
        out.push((path.clone(), described, children.is_none()));
        for (k, child) in children.into_iter().flat_map(|(map, props)| {
            map.iter()
                .map(move |(k, c)| (k, (c, props.get(k).cloned())))
        }) {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            walk(child.0, &child.1.unwrap_or(Value::Null), p, out);
        }
    }
    let mut paths = Vec::new();
    walk(&values[0].value, &schema, String::new(), &mut paths);
    assert!(paths.len() > 40, "walked {} values", paths.len());
    for (path, described, leaf) in paths.into_iter().filter(|(p, _, _)| !p.is_empty()) {
        assert!(described, "value {path} is not in values.schema.json");
        if leaf {
            assert!(
                readme.contains(&format!("`{path}`")),
                "value {path} is not listed in charts/daemonset-guard/README.md"
            );
        }
    }
}

#[test]
fn values_violating_the_schema_are_rejected_with_a_clear_message() {
    let cases: &[(&[&str], &[&str])] = &[
        (&["replicaCount=0"], &["replicaCount"]),
        (
            &["webhooks.validating.failurePolicy=Sometimes"],
            &["failurePolicy", "Fail", "Ignore"],
        ),
        (&["webhooks.timeoutSeconds=31"], &["timeoutSeconds"]),
        (&["webhooks.kubeSystem=maybe"], &["kubeSystem", "failOpen"]),
        (&["tls.mode=vault"], &["mode", "certsGen"]),
        (&["tls.mode=existingSecret"], &["existingSecret", "name"]),
        (&["replicas=3"], &["replicas"]),
        (&["policy.rules.no-such-rule=warn"], &["no-such-rule"]),
        (&["policy.rules.security-privileged=deny"], &["enforce"]),
        (&["server.port=70000"], &["port"]),
    ];
    for helm in helms() {
        for (sets, needles) in cases {
            let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
            let err = match template(helm, &sets) {
                Ok(_) => panic!("helm {} accepted invalid values {sets:?}", helm.version),
                Err(e) => e,
            };
            assert!(
                err.contains("values don't meet the specifications of the schema"),
                "helm {}: {sets:?} not rejected by values.schema.json:\n{err}",
                helm.version
            );
            for needle in *needles {
                assert!(
                    err.contains(needle),
                    "helm {}: message for {sets:?} lacks {needle:?}:\n{err}",
                    helm.version
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Security: Pod Security Standards, RBAC

/// Every pod spec the chart renders: Deployment and Job templates, bare Pods.
fn pod_specs(objs: &[Value]) -> Vec<(String, &Value)> {
    objs.iter()
        .filter_map(|o| {
            let spec = match kind(o) {
                "Pod" => &o["spec"],
                "Deployment" | "Job" | "DaemonSet" | "StatefulSet" => {
                    &o["spec"]["template"]["spec"]
                }
                _ => return None,
            };
            Some((format!("{} {}", kind(o), name(o)), spec))
        })
        .collect()
}

/// The "restricted" Pod Security Standard (plus a read-only root filesystem, which the chart
/// also promises).
fn assert_restricted(ctx: &str, spec: &Value) {
    for f in ["hostNetwork", "hostPID", "hostIPC"] {
        let v = &spec[f];
        assert!(v.is_null() || v == &json!(false), "{ctx}: {f}={v}");
    }
    let allowed_volumes = [
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    ];
    for v in spec["volumes"].as_array().into_iter().flatten() {
        for key in v.as_object().expect("volume").keys() {
            assert!(
                key == "name" || allowed_volumes.contains(&key.as_str()),
                "{ctx}: volume type {key} not allowed"
            );
        }
    }
    let psc = &spec["securityContext"];
    assert_ne!(psc["runAsUser"], json!(0), "{ctx}: pod runAsUser 0");
    let containers: Vec<&Value> = ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| spec[k].as_array().into_iter().flatten())
        .collect();
    assert!(!containers.is_empty(), "{ctx}: no containers");
    for c in containers {
        let cctx = format!("{ctx} container {}", c["name"]);
        let sc = &c["securityContext"];
        assert!(
            sc["privileged"].is_null() || sc["privileged"] == json!(false),
            "{cctx}: privileged"
        );
        assert_eq!(
            sc["allowPrivilegeEscalation"],
            json!(false),
            "{cctx}: allowPrivilegeEscalation"
        );
        assert!(
            strs(&sc["capabilities"]["drop"]).contains(&"ALL"),
            "{cctx}: capabilities.drop ALL"
        );
        for cap in strs(&sc["capabilities"]["add"]) {
            assert_eq!(cap, "NET_BIND_SERVICE", "{cctx}: capability added");
        }
        let non_root = sc["runAsNonRoot"] == json!(true)
            || (sc["runAsNonRoot"].is_null() && psc["runAsNonRoot"] == json!(true));
        assert!(non_root, "{cctx}: runAsNonRoot");
        assert_ne!(sc["runAsUser"], json!(0), "{cctx}: runAsUser 0");
        let seccomp = if sc["seccompProfile"].is_null() {
            &psc["seccompProfile"]["type"]
        } else {
            &sc["seccompProfile"]["type"]
        };
        assert!(
            seccomp == "RuntimeDefault" || seccomp == "Localhost",
            "{cctx}: seccompProfile {seccomp}"
        );
        assert_eq!(
            sc["readOnlyRootFilesystem"],
            json!(true),
            "{cctx}: readOnlyRootFilesystem"
        );
        for p in c["ports"].as_array().into_iter().flatten() {
            assert!(p["hostPort"].is_null(), "{cctx}: hostPort");
        }
        assert!(
            c["resources"]["requests"]["memory"].is_string()
                && c["resources"]["limits"]["memory"].is_string(),
            "{cctx}: memory request and limit"
        );
    }
}

#[test]
fn every_pod_meets_the_restricted_pod_security_standard() {
    for (ctx, sets, objs) in all_renders() {
        let pods = pod_specs(&objs);
        assert!(pods.len() >= 2, "{ctx}: server and test pods at least");
        for (what, spec) in pods {
            assert_restricted(&format!("{ctx}: {what}"), spec);
        }
        let deployment = one(&objs, "Deployment", &ctx);
        // Only the background audit calls the API.
        assert_eq!(
            deployment["spec"]["template"]["spec"]["automountServiceAccountToken"],
            json!(audit_enabled(&sets)),
            "{ctx}: a token only for the audit"
        );
    }
}

#[test]
fn rbac_is_limited_to_the_secret_and_the_two_webhook_configurations() {
    for (ctx, sets, objs) in all_renders() {
        // The audit's own RBAC is asserted on in `audit_rbac_reads_daemonsets_and_writes_reports`.
        let objs: Vec<Value> = objs
            .into_iter()
            .filter(|o| !name(o).starts_with(&format!("{}-audit", fullname())))
            .collect();
        let certs_gen = !sets.iter().any(|s| s.starts_with("tls.mode="));
        let roles = find(&objs, "Role");
        let cluster_roles = find(&objs, "ClusterRole");
        if !certs_gen {
            assert!(
                roles.is_empty() && cluster_roles.is_empty(),
                "{ctx}: no RBAC without certs-gen"
            );
            continue;
        }
        let secret = format!("{}-tls", fullname());
        let role = one(&objs, "Role", &ctx);
        assert_eq!(role["metadata"]["namespace"], NAMESPACE, "{ctx}");
        for rule in role["rules"].as_array().expect("rules") {
            assert_eq!(rule["apiGroups"], json!([""]), "{ctx}: {rule}");
            assert_eq!(rule["resources"], json!(["secrets"]), "{ctx}: {rule}");
            let verbs = strs(&rule["verbs"]);
            if verbs == ["create"] {
                // RBAC cannot restrict create by name.
                assert!(rule.get("resourceNames").is_none(), "{ctx}: {rule}");
            } else {
                assert!(
                    verbs.iter().all(|v| ["get", "update", "patch"].contains(v)),
                    "{ctx}: {rule}"
                );
                assert_eq!(
                    rule["resourceNames"],
                    json!([secret]),
                    "{ctx}: secret verbs limited to the one Secret"
                );
            }
        }
        let cr = one(&objs, "ClusterRole", &ctx);
        let mut resources = BTreeSet::new();
        for rule in cr["rules"].as_array().expect("rules") {
            assert_eq!(
                rule["apiGroups"],
                json!(["admissionregistration.k8s.io"]),
                "{ctx}: {rule}"
            );
            for r in strs(&rule["resources"]) {
                resources.insert(r.to_string());
            }
            if strs(&rule["verbs"]) == ["create"] {
                // Install only (these renders are installs): RBAC cannot restrict create by name.
                assert!(rule.get("resourceNames").is_none(), "{ctx}: {rule}");
                continue;
            }
            assert!(
                strs(&rule["verbs"])
                    .iter()
                    .all(|v| ["get", "patch"].contains(v)),
                "{ctx}: {rule}"
            );
            assert_eq!(rule["resourceNames"], json!([fullname()]), "{ctx}: {rule}");
        }
        assert_eq!(
            resources,
            BTreeSet::from([
                "mutatingwebhookconfigurations".to_string(),
                "validatingwebhookconfigurations".to_string()
            ]),
            "{ctx}"
        );
        // Bindings give these roles to the certs-gen ServiceAccount only, which only the Jobs use.
        let sa = format!("{}-certs-gen", fullname());
        for (k, role_kind) in [
            ("RoleBinding", "Role"),
            ("ClusterRoleBinding", "ClusterRole"),
        ] {
            let b = one(&objs, k, &ctx);
            assert_eq!(b["roleRef"]["kind"], role_kind, "{ctx}");
            assert_eq!(
                b["subjects"],
                json!([{"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}]),
                "{ctx}"
            );
        }
        for (what, spec) in pod_specs(&objs) {
            let uses = spec["serviceAccountName"].as_str() == Some(sa.as_str());
            assert_eq!(uses, what.starts_with("Job "), "{ctx}: {what}");
        }
        // RBAC exists only while the hooks run, and before the Jobs that use it.
        for o in objs.iter().filter(|o| {
            [
                "ServiceAccount",
                "Role",
                "RoleBinding",
                "ClusterRole",
                "ClusterRoleBinding",
            ]
            .contains(&kind(o))
                && name(o) == sa
        }) {
            let a = &o["metadata"]["annotations"];
            assert_eq!(
                hooks(o),
                BTreeSet::from(["pre-install", "pre-upgrade", "post-install", "post-upgrade"]),
                "{ctx}: {}",
                kind(o)
            );
            assert_eq!(
                delete_policies(o),
                BTreeSet::from(["before-hook-creation", "hook-failed", "hook-succeeded"]),
                "{ctx}: {} must be deleted whatever the hooks' outcome",
                kind(o)
            );
            let weight: i64 = a["helm.sh/hook-weight"]
                .as_str()
                .and_then(|w| w.parse().ok())
                .expect("hook weight");
            for j in find(&objs, "Job") {
                let jw: i64 = j["metadata"]["annotations"]["helm.sh/hook-weight"]
                    .as_str()
                    .and_then(|w| w.parse().ok())
                    .expect("job hook weight");
                assert!(weight < jw, "{ctx}: RBAC must come before the Jobs");
            }
        }
    }
}

fn audit_enabled(sets: &[String]) -> bool {
    !sets.iter().any(|s| s == "audit.enabled=false")
}

#[test]
fn audit_rbac_reads_daemonsets_and_writes_reports() {
    use daemonset_guard::audit::reports::LEASE_NAME;
    for (ctx, sets, objs) in all_renders() {
        let audit = format!("{}-audit", fullname());
        let lease_role = format!("{audit}-lease");
        let reports = !sets.iter().any(|s| s == "audit.policyReports=false");
        let d = one(&objs, "Deployment", &ctx);
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        let args = strs(&c["args"]);
        let named = |k: &str, n: &str| objs.iter().filter(|o| kind(o) == k && name(o) == n).count();
        if !audit_enabled(&sets) {
            assert!(!args.contains(&"--audit"), "{ctx}");
            assert_eq!(named("ClusterRole", &audit), 0, "{ctx}");
            assert_eq!(named("Role", &lease_role), 0, "{ctx}");
            continue;
        }
        assert!(args.contains(&"--audit"), "{ctx}");
        assert_eq!(args.contains(&"--audit-policy-reports"), reports, "{ctx}");
        let cr = objs
            .iter()
            .find(|o| kind(o) == "ClusterRole" && name(o) == audit)
            .unwrap_or_else(|| panic!("{ctx}: no {audit} ClusterRole"));
        let mut want = vec![json!({
            "apiGroups": ["apps"], "resources": ["daemonsets"], "verbs": ["get", "list", "watch"]
        })];
        if reports {
            want.push(json!({
                "apiGroups": ["wgpolicyk8s.io"], "resources": ["policyreports"],
                "verbs": ["create"]
            }));
            // src/audit/reports.rs only gets, replaces and deletes the report it names.
            want.push(json!({
                "apiGroups": ["wgpolicyk8s.io"], "resources": ["policyreports"],
                "resourceNames": ["daemonset-guard"],
                "verbs": ["get", "update", "delete"]
            }));
        }
        assert_eq!(cr["rules"], json!(want), "{ctx}");
        let sa = d["spec"]["template"]["spec"]["serviceAccountName"].clone();
        let binding = objs
            .iter()
            .find(|o| kind(o) == "ClusterRoleBinding" && name(o) == audit)
            .unwrap_or_else(|| panic!("{ctx}: no binding"));
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}]),
            "{ctx}"
        );
        assert_eq!(binding["roleRef"]["name"], json!(audit), "{ctx}");
        if reports {
            let role = objs
                .iter()
                .find(|o| kind(o) == "Role" && name(o) == lease_role)
                .unwrap_or_else(|| panic!("{ctx}: no lease Role"));
            assert_eq!(role["metadata"]["namespace"], NAMESPACE, "{ctx}");
            assert_eq!(
                role["rules"][1]["resourceNames"],
                json!([LEASE_NAME]),
                "{ctx}"
            );
            let env: Vec<&str> = c["env"]
                .as_array()
                .expect("env")
                .iter()
                .filter_map(|e| e["valueFrom"]["fieldRef"]["fieldPath"].as_str())
                .collect();
            assert_eq!(env, ["metadata.name", "metadata.namespace"], "{ctx}");
        } else {
            assert_eq!(named("Role", &lease_role), 0, "{ctx}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Availability

/// Restarts (issue 16): the server is told to keep accepting through a shutdown delay longer than
/// endpoint propagation, then to drain, and the kubelet waits for both before SIGKILL. The
/// rendered arguments are parsed by the server's own flag definitions, so a renamed or mistyped
/// flag fails here rather than in a crash-looping pod.
#[test]
fn restarts_keep_serving_through_endpoint_propagation() {
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        serve: daemonset_guard::server::ServeArgs,
    }
    use clap::Parser as _;
    for (ctx, _, objs) in all_renders() {
        let deployment = one(&objs, "Deployment", &ctx);
        let pod = &deployment["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        let args = strs(&c["args"]);
        assert_eq!(args.first(), Some(&"serve"), "{ctx}");
        let serve = Cli::try_parse_from(std::iter::once("serve").chain(args[1..].iter().copied()))
            .unwrap_or_else(|e| panic!("{ctx}: the server rejects the chart's arguments: {e}"))
            .serve;
        // The chart's documented value: 15 s, above the few seconds endpoints take to reach
        // kube-proxy and the API server in an ordinary cluster (README "Restarts").
        assert_eq!(
            serve.shutdown_delay,
            std::time::Duration::from_secs(15),
            "{ctx}"
        );
        assert_eq!(
            serve.drain_timeout,
            std::time::Duration::from_secs(10),
            "{ctx}"
        );
        let grace = pod["terminationGracePeriodSeconds"]
            .as_u64()
            .expect("grace period");
        assert!(
            grace > (serve.shutdown_delay + serve.drain_timeout).as_secs(),
            "{ctx}: SIGKILL ({grace}s) before delay + drain"
        );
        // Readiness comes from /readyz, which turns false at SIGTERM; no preStop (the image
        // has no shell or sleep, and the server's delay does what a preStop sleep would).
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz", "{ctx}");
        assert!(c.get("lifecycle").is_none(), "{ctx}");
        // A surge-only rollout: a new pod is ready before an old one gets SIGTERM.
        assert_eq!(
            deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0,
            "{ctx}"
        );
    }
    for helm in helms() {
        let sets = vec!["server.shutdownDelaySeconds=25".to_string()];
        let err = template(helm, &sets).expect_err("grace period shorter than delay + drain");
        assert!(
            err.contains("terminationGracePeriodSeconds (30) must exceed server.shutdownDelaySeconds + server.drainTimeoutSeconds (25 + 10)"),
            "{err}"
        );
        let sets = vec![
            "server.shutdownDelaySeconds=25".to_string(),
            "terminationGracePeriodSeconds=40".to_string(),
        ];
        let text = template(helm, &sets).unwrap();
        assert!(text.contains("- \"25s\""), "{text}");
    }
}

#[test]
fn availability_follows_replicas_and_autoscaling() {
    for helm in helms() {
        let defaults = render(helm, "default", &[]);
        let d = one(&defaults, "Deployment", "default");
        assert_eq!(d["spec"]["replicas"], 2);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
        let pdb = one(&defaults, "PodDisruptionBudget", "default");
        assert_eq!(pdb["spec"]["maxUnavailable"], 1);
        assert_eq!(
            pdb["spec"]["selector"]["matchLabels"],
            d["spec"]["selector"]["matchLabels"]
        );
        let spread = &d["spec"]["template"]["spec"]["topologySpreadConstraints"];
        let by_node = spread
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|c| c["topologyKey"] == "kubernetes.io/hostname")
            })
            .expect("spread across nodes");
        assert_eq!(by_node["whenUnsatisfiable"], "DoNotSchedule");
        assert_eq!(
            by_node["labelSelector"]["matchLabels"],
            d["spec"]["selector"]["matchLabels"]
        );
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        for k in ["requests", "limits"] {
            assert!(c["resources"][k]["memory"].is_string(), "resources.{k}");
        }
        assert!(find(&defaults, "HorizontalPodAutoscaler").is_empty());

        let single = render(helm, "ha-off", &["replicaCount=1".into()]);
        assert_eq!(one(&single, "Deployment", "ha-off")["spec"]["replicas"], 1);
        assert!(
            find(&single, "PodDisruptionBudget").is_empty(),
            "a PDB over one replica protects nothing"
        );

        let hpa = render(helm, "hpa", &["autoscaling.enabled=true".into()]);
        let d = one(&hpa, "Deployment", "hpa");
        assert!(d["spec"].get("replicas").is_none(), "the HPA owns replicas");
        let h = one(&hpa, "HorizontalPodAutoscaler", "hpa");
        assert_eq!(h["spec"]["scaleTargetRef"]["name"], name(d));
        assert_eq!(h["spec"]["minReplicas"], 2);
        assert_eq!(find(&hpa, "PodDisruptionBudget").len(), 1);

        let np = render(
            helm,
            "network-policy",
            &["networkPolicy.enabled=true".into()],
        );
        let n = one(&np, "NetworkPolicy", "network-policy");
        assert_eq!(n["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        // The audit (on by default) reaches the API server's endpoints and nothing else.
        assert_eq!(
            n["spec"]["egress"],
            json!([{"ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]}])
        );
        let off = render(
            helm,
            "audit-off-network-policy",
            &[
                "audit.enabled=false".into(),
                "networkPolicy.enabled=true".into(),
            ],
        );
        let n_off = one(&off, "NetworkPolicy", "audit-off-network-policy");
        assert!(n_off["spec"].get("egress").is_none(), "no egress at all");
        let ports: BTreeSet<&str> = n["spec"]["ingress"]
            .as_array()
            .expect("ingress")
            .iter()
            .flat_map(|r| r["ports"].as_array().into_iter().flatten())
            .filter_map(|p| p["port"].as_str())
            .collect();
        assert_eq!(ports, BTreeSet::from(["https", "lint", "metrics"]));
        // The webhook port stays open to any source (the API server's address is cluster
        // specific); the /lint port takes lintFrom, and the helm test Pod always.
        let restricted = render(
            helm,
            "network-policy-lint",
            &[
                "networkPolicy.enabled=true".into(),
                "networkPolicy.lintFrom[0].namespaceSelector.matchLabels.team=ci".into(),
            ],
        );
        let rules = one(&restricted, "NetworkPolicy", "network-policy-lint")["spec"]["ingress"]
            .as_array()
            .expect("ingress")
            .clone();
        let rule = |port: &str| {
            rules
                .iter()
                .find(|r| r["ports"][0]["port"] == port)
                .unwrap_or_else(|| panic!("no ingress rule for {port}"))
        };
        assert!(rule("https").get("from").is_none(), "webhook port open");
        let from = rule("lint")["from"].as_array().expect("lint from");
        assert_eq!(from[0]["namespaceSelector"]["matchLabels"]["team"], "ci");
        assert_eq!(
            from[1]["podSelector"]["matchLabels"]["app.kubernetes.io/component"],
            "test"
        );
        let off = render(
            helm,
            "network-policy-lint-off",
            &[
                "networkPolicy.enabled=true".into(),
                "lint.enabled=false".into(),
            ],
        );
        let n = one(&off, "NetworkPolicy", "network-policy-lint-off");
        assert!(
            !n["spec"]["ingress"].to_string().contains("\"lint\""),
            "no /lint port to let in: {n}"
        );
    }
}

/// The helm test Pod lints a DaemonSet the default policy admits (it passes on exit code 0), and
/// mounts only the CA, never the serving key.
#[test]
fn helm_test_pod_lints_an_admissible_daemonset_and_sees_only_the_ca() {
    for (ctx, sets, objs) in all_renders() {
        if sets.iter().any(|s| s == "lint.enabled=false") {
            continue; // no /lint to call: checked in webhooks_service_and_server_agree_on_ports_and_paths
        }
        let pod = one(&objs, "Pod", &ctx);
        assert!(hooks(pod).contains("test"), "{ctx}: helm test hook");
        let spec = &pod["spec"];
        assert_eq!(spec["restartPolicy"], "Never", "{ctx}");
        let ca = spec["volumes"]
            .as_array()
            .and_then(|vs| vs.iter().find(|v| v["name"] == "ca"))
            .expect("ca volume");
        let source = if ca["secret"].is_object() {
            &ca["secret"]
        } else {
            &ca["configMap"]
        };
        assert_eq!(
            source["items"],
            json!([{"key": "ca.crt", "path": "ca.crt"}]),
            "{ctx}: only ca.crt"
        );
        let cm = find(&objs, "ConfigMap")
            .into_iter()
            .find(|c| name(c) == format!("{}-test", fullname()))
            .expect("test ConfigMap");
        let policy =
            Policy::from_yaml(&policy_text(&objs, &ctx), "policy.yaml").expect("policy parses");
        let containers = spec["containers"].as_array().expect("containers");
        let mut expectations = Vec::new();
        for c in containers {
            let args = strs(&c["args"]);
            assert_eq!(args.first(), Some(&"lint"), "{ctx}");
            assert_eq!(flag_value(&args, "--ca-cert"), Some("/ca/ca.crt"), "{ctx}");
            let expect = flag_value(&args, "--expect").expect("--expect");
            let file = args.last().expect("file arg");
            let key = file
                .strip_prefix("/manifests/")
                .expect("file under /manifests");
            let manifest = cm["data"][key]
                .as_str()
                .expect("manifest in the test ConfigMap");
            let doc = parse_documents(manifest).expect("test manifest parses");
            let ds: k8s_openapi::api::apps::v1::DaemonSet =
                serde_json::from_value(doc[0].value.clone()).expect("test manifest is a DaemonSet");
            let review = policy::Review {
                operation: Operation::Create,
                sub_resource: None,
                is_daemonset: true,
                dry_run: false,
                namespace: "default",
                object: Some(&ds),
                old: None,
            };
            let decision = policy::decide(&review, &policy::Policies::new(policy.clone()))
                .expect("decide")
                .expect("a CREATE of a DaemonSet is evaluated");
            let verdict = if decision.allowed() {
                "allowed"
            } else {
                "denied"
            };
            assert_eq!(
                verdict, expect,
                "{ctx}: {key} must be {expect} by the chart's policy, got {:?}",
                decision.validation.findings
            );
            expectations.push(expect.to_string());
        }
        expectations.sort();
        assert_eq!(
            expectations,
            ["allowed", "denied"],
            "{ctx}: one admissible and one known-bad DaemonSet"
        );
        if sets.iter().any(|s| s == "tls.mode=existingSecret") {
            assert_eq!(cm["data"]["ca.crt"], FAKE_CA_PEM, "{ctx}: CA from caBundle");
        }
    }
}
