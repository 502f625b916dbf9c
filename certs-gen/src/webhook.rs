//! Webhook configurations, pure part: the JSON Patch of `certs-gen patch` that injects
//! `caBundle` (and optionally `failurePolicy`), and the configurations `certs-gen create` makes
//! at install with their `caBundle` already in place.

use base64::Engine as _;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use k8s_openapi::ByteString;
use serde_json::{json, Value};

use crate::Error;

/// Field manager of the configurations `certs-gen create` makes at install. Helm adopts them
/// right after; `certs-gen patch` then drops this manager's entry from `managedFields`, so Helm 4's
/// server-side apply is not in conflict with it when a later upgrade changes a webhook field.
pub const INSTALL_FIELD_MANAGER: &str = "certs-gen-install";

/// A webhook configuration, as the chart renders it, to create at install.
#[derive(Clone, Debug, PartialEq)]
pub enum NewConfiguration {
    /// A `ValidatingWebhookConfiguration`.
    Validating(ValidatingWebhookConfiguration),
    /// A `MutatingWebhookConfiguration`.
    Mutating(MutatingWebhookConfiguration),
}

impl NewConfiguration {
    /// Parses one `--webhook-configuration` argument: a JSON object of either kind, with a name
    /// and at least one webhook.
    pub fn parse(json_text: &str) -> Result<NewConfiguration, Error> {
        let bad = |why: String| Error::InvalidArgument(format!("--webhook-configuration: {why}"));
        let value: Value =
            serde_json::from_str(json_text).map_err(|e| bad(format!("not JSON: {e}")))?;
        if value["apiVersion"] != "admissionregistration.k8s.io/v1" {
            return Err(bad(format!(
                "apiVersion {} is not admissionregistration.k8s.io/v1",
                value["apiVersion"]
            )));
        }
        let parsed = match value["kind"].as_str() {
            Some("ValidatingWebhookConfiguration") => serde_json::from_value(value)
                .map(NewConfiguration::Validating),
            Some("MutatingWebhookConfiguration") => serde_json::from_value(value)
                .map(NewConfiguration::Mutating),
            other => {
                return Err(bad(format!(
                    "kind {other:?} is neither ValidatingWebhookConfiguration nor MutatingWebhookConfiguration"
                )))
            }
        }
        .map_err(|e| bad(e.to_string()))?;
        if parsed.name().is_empty() {
            return Err(bad("metadata.name is missing".into()));
        }
        if parsed.webhook_count() == 0 {
            return Err(bad(format!("{} has no webhooks", parsed.name())));
        }
        Ok(parsed)
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        match self {
            NewConfiguration::Validating(c) => c.metadata.name.as_deref(),
            NewConfiguration::Mutating(c) => c.metadata.name.as_deref(),
        }
        .unwrap_or("")
    }

    /// The kind, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            NewConfiguration::Validating(_) => ValidatingWebhookConfiguration::KIND,
            NewConfiguration::Mutating(_) => MutatingWebhookConfiguration::KIND,
        }
    }

    /// The resource (plural), for RBAC messages.
    pub fn plural(&self) -> &'static str {
        match self {
            NewConfiguration::Validating(_) => ValidatingWebhookConfiguration::PLURAL,
            NewConfiguration::Mutating(_) => MutatingWebhookConfiguration::PLURAL,
        }
    }

    fn webhook_count(&self) -> usize {
        match self {
            NewConfiguration::Validating(c) => c.webhooks.as_ref().map_or(0, Vec::len),
            NewConfiguration::Mutating(c) => c.webhooks.as_ref().map_or(0, Vec::len),
        }
    }

    /// The same configuration with `caBundle` set to `ca_pem` on every webhook, and no
    /// server-set metadata (a create must not carry a resourceVersion).
    pub fn with_ca_bundle(mut self, ca_pem: &[u8]) -> NewConfiguration {
        let bundle = || Some(ByteString(ca_pem.to_vec()));
        match &mut self {
            NewConfiguration::Validating(c) => {
                c.metadata.resource_version = None;
                c.metadata.managed_fields = None;
                for w in c.webhooks.iter_mut().flatten() {
                    w.client_config.ca_bundle = bundle();
                }
            }
            NewConfiguration::Mutating(c) => {
                c.metadata.resource_version = None;
                c.metadata.managed_fields = None;
                for w in c.webhooks.iter_mut().flatten() {
                    w.client_config.ca_bundle = bundle();
                }
            }
        }
        self
    }
}

/// The JSON Patch operation that removes [`INSTALL_FIELD_MANAGER`]'s entries from
/// `managedFields`, or `None` when there are none. The API server takes `managedFields` from a
/// request that sets them; a list left empty would be ignored, so a single empty entry stands
/// for "no managers" (the documented way to strip them).
pub fn handover_op(managed_fields: Option<&[ManagedFieldsEntry]>) -> Option<Value> {
    let entries = managed_fields?;
    let kept: Vec<&ManagedFieldsEntry> = entries
        .iter()
        .filter(|e| e.manager.as_deref() != Some(INSTALL_FIELD_MANAGER))
        .collect();
    if kept.len() == entries.len() {
        return None;
    }
    let value = if kept.is_empty() {
        json!([{}])
    } else {
        serde_json::to_value(&kept).ok()?
    };
    Some(json!({"op": "replace", "path": "/metadata/managedFields", "value": value}))
}

/// A webhook's `failurePolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Reject the request when the webhook cannot be called.
    Fail,
    /// Admit the request when the webhook cannot be called.
    Ignore,
}

impl FailurePolicy {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FailurePolicy::Fail => "Fail",
            FailurePolicy::Ignore => "Ignore",
        }
    }
}

impl std::str::FromStr for FailurePolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "Fail" => Ok(FailurePolicy::Fail),
            "Ignore" => Ok(FailurePolicy::Ignore),
            other => Err(format!(
                "failure policy {other:?} is neither Fail nor Ignore"
            )),
        }
    }
}

/// The fields of one webhook that `patch` may change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookState {
    /// `webhooks[].name`.
    pub name: String,
    /// Decoded `clientConfig.caBundle`.
    pub ca_bundle: Option<Vec<u8>>,
    /// `failurePolicy` (the API server defaults it to `Fail`).
    pub failure_policy: Option<String>,
}

/// A webhook configuration kind certs-gen can patch.
pub trait WebhookConfiguration {
    /// The kind, for messages.
    const KIND: &'static str;
    /// The resource (plural), for RBAC messages.
    const PLURAL: &'static str;
    /// The `certs-gen patch` option naming it.
    const FLAG: &'static str;
    /// Its webhooks, in order.
    fn webhook_states(&self) -> Vec<WebhookState>;
}

impl WebhookConfiguration for ValidatingWebhookConfiguration {
    const KIND: &'static str = "ValidatingWebhookConfiguration";
    const PLURAL: &'static str = "validatingwebhookconfigurations";
    const FLAG: &'static str = "--validating";

    fn webhook_states(&self) -> Vec<WebhookState> {
        self.webhooks
            .iter()
            .flatten()
            .map(|w| WebhookState {
                name: w.name.clone(),
                ca_bundle: w.client_config.ca_bundle.as_ref().map(|b| b.0.clone()),
                failure_policy: w.failure_policy.clone(),
            })
            .collect()
    }
}

impl WebhookConfiguration for MutatingWebhookConfiguration {
    const KIND: &'static str = "MutatingWebhookConfiguration";
    const PLURAL: &'static str = "mutatingwebhookconfigurations";
    const FLAG: &'static str = "--mutating";

    fn webhook_states(&self) -> Vec<WebhookState> {
        self.webhooks
            .iter()
            .flatten()
            .map(|w| WebhookState {
                name: w.name.clone(),
                ca_bundle: w.client_config.ca_bundle.as_ref().map(|b| b.0.clone()),
                failure_policy: w.failure_policy.clone(),
            })
            .collect()
    }
}

/// A JSON Patch and the webhooks it changes.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchPlan {
    /// RFC 6902 operations, ready to send as `application/json-patch+json`.
    pub ops: Value,
    /// Names of the webhooks that change.
    pub changed: Vec<String>,
}

/// Builds the patch setting `caBundle` to `ca_pem` (and `failurePolicy`, when given) on every
/// webhook, or `None` when all already have those values.
///
/// Webhooks are addressed by index, so the patch first sets `metadata.resourceVersion` to the
/// version it was computed from: the API server then rejects it with 409 Conflict if the object
/// changed meanwhile (a JSON Patch `test` would fail with an indistinct 422 instead).
pub fn build_patch(
    resource_version: &str,
    webhooks: &[WebhookState],
    ca_pem: &[u8],
    failure_policy: Option<FailurePolicy>,
) -> Option<PatchPlan> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let mut ops = vec![json!({
        "op": "replace",
        "path": "/metadata/resourceVersion",
        "value": resource_version,
    })];
    let mut changed = Vec::new();
    for (index, webhook) in webhooks.iter().enumerate() {
        let before = ops.len();
        if webhook.ca_bundle.as_deref() != Some(ca_pem) {
            ops.push(json!({
                "op": "add",
                "path": format!("/webhooks/{index}/clientConfig/caBundle"),
                "value": encoded,
            }));
        }
        if let Some(policy) = failure_policy {
            if webhook.failure_policy.as_deref() != Some(policy.as_str()) {
                ops.push(json!({
                    "op": "add",
                    "path": format!("/webhooks/{index}/failurePolicy"),
                    "value": policy.as_str(),
                }));
            }
        }
        if ops.len() > before {
            changed.push(webhook.name.clone());
        }
    }
    if changed.is_empty() {
        return None;
    }
    Some(PatchPlan {
        ops: Value::Array(ops),
        changed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &[u8] = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    fn state(name: &str, ca: Option<&[u8]>, policy: Option<&str>) -> WebhookState {
        WebhookState {
            name: name.into(),
            ca_bundle: ca.map(<[u8]>::to_vec),
            failure_policy: policy.map(str::to_owned),
        }
    }

    fn encoded() -> String {
        base64::engine::general_purpose::STANDARD.encode(CA)
    }

    #[test]
    fn sets_ca_bundle_on_every_webhook_after_pinning_the_resource_version() {
        let hooks = [
            state("a.example.com", None, Some("Fail")),
            state("b.example.com", Some(b"old"), None),
        ];
        let plan = build_patch("4711", &hooks, CA, None).unwrap();
        assert_eq!(
            plan.ops,
            json!([
                {"op": "replace", "path": "/metadata/resourceVersion", "value": "4711"},
                {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": encoded()},
                {"op": "add", "path": "/webhooks/1/clientConfig/caBundle", "value": encoded()},
            ])
        );
        assert_eq!(plan.changed, ["a.example.com", "b.example.com"]);
    }

    #[test]
    fn nothing_to_do_when_every_webhook_has_the_bundle() {
        let hooks = [
            state("a", Some(CA), Some("Fail")),
            state("b", Some(CA), Some("Ignore")),
        ];
        assert_eq!(build_patch("1", &hooks, CA, None), None);
        assert_eq!(build_patch("1", &[], CA, Some(FailurePolicy::Fail)), None);
    }

    #[test]
    fn only_webhooks_that_differ_are_patched() {
        let hooks = [
            state("a", Some(CA), Some("Fail")),
            state("b", None, Some("Fail")),
        ];
        let plan = build_patch("9", &hooks, CA, Some(FailurePolicy::Fail)).unwrap();
        assert_eq!(
            plan.ops,
            json!([
                {"op": "replace", "path": "/metadata/resourceVersion", "value": "9"},
                {"op": "add", "path": "/webhooks/1/clientConfig/caBundle", "value": encoded()},
            ])
        );
        assert_eq!(plan.changed, ["b"]);
    }

    #[test]
    fn failure_policy_is_set_when_it_differs() {
        let hooks = [
            state("a", Some(CA), Some("Fail")),
            state("b", Some(CA), None),
        ];
        let plan = build_patch("9", &hooks, CA, Some(FailurePolicy::Ignore)).unwrap();
        assert_eq!(
            plan.ops,
            json!([
                {"op": "replace", "path": "/metadata/resourceVersion", "value": "9"},
                {"op": "add", "path": "/webhooks/0/failurePolicy", "value": "Ignore"},
                {"op": "add", "path": "/webhooks/1/failurePolicy", "value": "Ignore"},
            ])
        );
        let both = build_patch(
            "9",
            &[state("c", None, Some("Fail"))],
            CA,
            Some(FailurePolicy::Ignore),
        )
        .unwrap();
        assert_eq!(both.ops.as_array().unwrap().len(), 3);
        assert_eq!(both.changed, ["c"]);
    }

    #[test]
    fn failure_policy_parses_only_api_spellings() {
        assert_eq!("Fail".parse(), Ok(FailurePolicy::Fail));
        assert_eq!("Ignore".parse(), Ok(FailurePolicy::Ignore));
        assert!("fail".parse::<FailurePolicy>().is_err());
    }

    #[test]
    fn states_come_from_typed_configurations() {
        let config: ValidatingWebhookConfiguration = serde_json::from_value(json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "guard", "resourceVersion": "5"},
            "webhooks": [
                {"name": "a", "clientConfig": {"service": {"name": "s", "namespace": "n"}, "caBundle": encoded()},
                 "failurePolicy": "Ignore", "sideEffects": "None", "admissionReviewVersions": ["v1"]},
                {"name": "b", "clientConfig": {"url": "https://x"}, "sideEffects": "None", "admissionReviewVersions": ["v1"]}
            ]
        }))
        .unwrap();
        assert_eq!(
            config.webhook_states(),
            [state("a", Some(CA), Some("Ignore")), state("b", None, None)]
        );
    }

    fn rendered(kind: &str) -> Value {
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": kind,
            "metadata": {
                "name": "guard",
                "labels": {"app.kubernetes.io/managed-by": "Helm"},
                "annotations": {"meta.helm.sh/release-name": "guard", "meta.helm.sh/release-namespace": "guard-system"}
            },
            "webhooks": [
                {"name": "validate.daemonset-guard.dev", "clientConfig": {"service": {"name": "guard", "namespace": "guard-system", "path": "/validate", "port": 443}},
                 "failurePolicy": "Fail", "sideEffects": "None", "admissionReviewVersions": ["v1"]},
                {"name": "validate-kube-system.daemonset-guard.dev", "clientConfig": {"service": {"name": "guard", "namespace": "guard-system", "path": "/validate", "port": 443}},
                 "failurePolicy": "Ignore", "sideEffects": "None", "admissionReviewVersions": ["v1"]}
            ]
        })
    }

    #[test]
    fn a_new_configuration_gets_the_ca_on_every_webhook_and_keeps_helm_ownership() {
        for kind in [
            "ValidatingWebhookConfiguration",
            "MutatingWebhookConfiguration",
        ] {
            let mut text = rendered(kind);
            text["metadata"]["resourceVersion"] = json!("7");
            let config = NewConfiguration::parse(&text.to_string()).unwrap();
            assert_eq!((config.name(), config.kind()), ("guard", kind));
            let out = match config.with_ca_bundle(CA) {
                NewConfiguration::Validating(c) => serde_json::to_value(c).unwrap(),
                NewConfiguration::Mutating(c) => serde_json::to_value(c).unwrap(),
            };
            assert_eq!(out["kind"], kind);
            assert!(out["metadata"].get("resourceVersion").is_none());
            // What Helm checks before it adopts an existing object into a release.
            assert_eq!(
                out["metadata"]["labels"]["app.kubernetes.io/managed-by"],
                "Helm"
            );
            assert_eq!(
                out["metadata"]["annotations"]["meta.helm.sh/release-name"],
                "guard"
            );
            assert_eq!(
                out["metadata"]["annotations"]["meta.helm.sh/release-namespace"],
                "guard-system"
            );
            let hooks = out["webhooks"].as_array().unwrap();
            assert_eq!(hooks.len(), 2);
            for w in hooks {
                assert_eq!(w["clientConfig"]["caBundle"], encoded());
                assert_eq!(w["clientConfig"]["service"]["name"], "guard");
            }
            assert_eq!(hooks[1]["failurePolicy"], "Ignore");
        }
    }

    #[test]
    fn new_configurations_must_be_webhook_configurations_with_webhooks() {
        let cases = [
            ("{", "not JSON"),
            (r#"{"apiVersion": "v1", "kind": "ConfigMap"}"#, "apiVersion"),
            (
                r#"{"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy"}"#,
                "neither ValidatingWebhookConfiguration nor MutatingWebhookConfiguration",
            ),
            (
                r#"{"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration", "metadata": {}}"#,
                "metadata.name is missing",
            ),
            (
                r#"{"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration", "metadata": {"name": "x"}, "webhooks": []}"#,
                "x has no webhooks",
            ),
        ];
        for (text, want) in cases {
            let err = NewConfiguration::parse(text).unwrap_err().to_string();
            assert!(err.starts_with("--webhook-configuration: "), "{err}");
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    fn entry(manager: &str, operation: &str) -> ManagedFieldsEntry {
        serde_json::from_value(json!({
            "manager": manager, "operation": operation, "apiVersion": "admissionregistration.k8s.io/v1",
            "time": "2026-05-01T10:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:webhooks": {}}
        }))
        .unwrap()
    }

    #[test]
    fn the_install_field_manager_is_handed_over_once() {
        let helm = entry("helm", "Apply");
        let patch = entry("certs-gen", "Update");
        let install = entry(INSTALL_FIELD_MANAGER, "Update");
        let op = handover_op(Some(&[install.clone(), helm.clone(), patch.clone()])).unwrap();
        assert_eq!(op["op"], "replace");
        assert_eq!(op["path"], "/metadata/managedFields");
        let kept: Vec<ManagedFieldsEntry> = serde_json::from_value(op["value"].clone()).unwrap();
        assert_eq!(kept, [helm.clone(), patch]);
        // Only the install entry: strip all (an empty list would be ignored by the API server).
        assert_eq!(handover_op(Some(&[install])).unwrap()["value"], json!([{}]));
        assert_eq!(handover_op(Some(&[helm])), None);
        assert_eq!(handover_op(None), None);
    }
}
