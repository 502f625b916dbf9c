//! The Kubernetes API calls of `create` and `patch`, around the pure decisions of
//! [`crate::secret`] and [`crate::webhook`].

use std::collections::BTreeMap;
use std::fmt::Debug;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use time::{Duration, OffsetDateTime};

use crate::cert::{self, Host};
use crate::files::CA_CRT;
use crate::secret::{self, Decision};
use crate::webhook::{self, FailurePolicy, NewConfiguration, WebhookConfiguration};
use crate::{Error, Outcome, Report};

/// Attempts of a read-decide-write cycle before giving up on repeated 409 Conflicts.
pub const MAX_ATTEMPTS: u32 = 5;

/// The field manager recorded in `managedFields` for our writes.
pub const FIELD_MANAGER: &str = "certs-gen";

/// Inputs of `certs-gen create`.
#[derive(Clone, Debug)]
pub struct CreateOptions {
    /// Namespace of the Secret.
    pub namespace: String,
    /// Name of the Secret.
    pub name: String,
    /// Names the certificate must serve.
    pub hosts: Vec<Host>,
    /// Validity of a new certificate.
    pub days: u32,
    /// Rotate when the certificate expires within this many days.
    pub renew_before_days: u32,
    /// Labels the Secret carries (set on create, rotation, and on a kept Secret missing them).
    pub labels: BTreeMap<String, String>,
}

impl CreateOptions {
    /// Rejects option combinations that cannot work.
    pub fn validate(&self) -> Result<(), Error> {
        cert::check_days(self.days)?;
        if self.hosts.is_empty() {
            return Err(Error::InvalidArgument(
                "at least one --host is required".into(),
            ));
        }
        if self.renew_before_days >= self.days {
            // Otherwise every run would find the fresh certificate due and rotate it again.
            return Err(Error::InvalidArgument(format!(
                "--renew-before-days {} must be less than --days {}",
                self.renew_before_days, self.days
            )));
        }
        Ok(())
    }
}

/// Ensures the Secret exists and holds a certificate good for the hosts: creates it, keeps it, or
/// rotates it. Concurrent writers are detected through 409 Conflict (resourceVersion on replace,
/// AlreadyExists on create) and the decision is made again on a fresh read.
pub async fn create(
    client: Client,
    options: &CreateOptions,
    now: OffsetDateTime,
) -> Result<Report, Error> {
    options.validate()?;
    let api: Api<Secret> = Api::namespaced(client, &options.namespace);
    let object = format!("Secret {}/{}", options.namespace, options.name);
    let target = format!(
        "secrets {:?} in namespace {}",
        options.name, options.namespace
    );
    let rule = format!(
        "the Role in namespace {} needs verbs [get, update] on secrets with resourceNames: [{}], \
         and verb [create] on secrets without resourceNames (RBAC cannot limit create by name)",
        options.namespace, options.name
    );
    let fail = |verb, err| api_error(err, verb, &target, &rule);
    let params = PostParams {
        dry_run: false,
        field_manager: Some(FIELD_MANAGER.to_owned()),
    };
    let renew_before = Duration::days(i64::from(options.renew_before_days));

    for _ in 0..MAX_ATTEMPTS {
        let existing = api
            .get_opt(&options.name)
            .await
            .map_err(|e| fail("get", e))?;
        let Some(existing) = existing else {
            let bundle = cert::generate(&options.hosts, options.days, now)?;
            let fresh =
                secret::new_secret(&options.namespace, &options.name, &bundle, &options.labels);
            match api.create(&params, &fresh).await {
                Ok(_) => {
                    return Ok(Report::new(Outcome::Created, object).detail(format!(
                        "certificate for {} valid until {}",
                        hosts_list(&options.hosts),
                        cert::rfc3339(bundle.not_after)
                    )))
                }
                Err(e) if is_conflict(&e) => continue,
                Err(e) => {
                    let create_target = format!("secrets in namespace {}", options.namespace);
                    return Err(api_error(e, "create", &create_target, &rule));
                }
            }
        };
        match secret::decide(&existing, &options.hosts, renew_before, now) {
            Decision::Keep { expires } => {
                let detail = format!(
                    "certificate for {} valid until {}",
                    hosts_list(&options.hosts),
                    cert::rfc3339(expires)
                );
                let Some(relabeled) = secret::relabeled_secret(&existing, &options.labels) else {
                    return Ok(Report::new(Outcome::Kept, object).detail(detail));
                };
                match api.replace(&options.name, &params, &relabeled).await {
                    Ok(_) => {
                        return Ok(Report::new(Outcome::Patched, object)
                            .detail(format!("labels set; {detail}")))
                    }
                    Err(e) if is_conflict(&e) => continue,
                    Err(e) => return Err(fail("update", e)),
                }
            }
            Decision::Refuse { reason } => {
                return Err(Error::BadSecret {
                    target: object,
                    reason,
                })
            }
            Decision::Rotate { reason } => {
                let bundle = cert::generate(&options.hosts, options.days, now)?;
                let replacement = secret::rotated_secret(&existing, &bundle, &options.labels, now);
                match api.replace(&options.name, &params, &replacement).await {
                    Ok(_) => {
                        return Ok(Report::new(Outcome::Rotated, object).detail(format!(
                            "{reason}; new certificate valid until {}",
                            cert::rfc3339(bundle.not_after)
                        )))
                    }
                    Err(e) if is_conflict(&e) => continue,
                    Err(e) => return Err(fail("update", e)),
                }
            }
        }
    }
    Err(Error::Conflict {
        target: object,
        attempts: MAX_ATTEMPTS,
    })
}

/// Creates each configuration that does not exist yet with `caBundle` set to the Secret's
/// `ca.crt` on every webhook, so the API server never calls a webhook of a new install without
/// trusting its certificate. One that exists already is left alone: Helm (which adopts it) and
/// `certs-gen patch` own it from there. Calls `report` once per configuration.
pub async fn install_configurations(
    client: Client,
    secret_namespace: &str,
    secret_name: &str,
    configurations: Vec<NewConfiguration>,
    mut report: impl FnMut(Report),
) -> Result<(), Error> {
    if configurations.is_empty() {
        return Ok(());
    }
    let ca_pem = read_ca(&client, secret_namespace, secret_name).await?;
    let params = PostParams {
        dry_run: false,
        field_manager: Some(webhook::INSTALL_FIELD_MANAGER.to_owned()),
    };
    for config in configurations {
        let object = format!("{} {}", config.kind(), config.name());
        let target = format!("{}.admissionregistration.k8s.io", config.plural());
        let rule = format!(
            "the ClusterRole needs verb [create] on {} (apiGroups: [admissionregistration.k8s.io]; \
             RBAC cannot limit create by name)",
            config.plural()
        );
        let result = match config.with_ca_bundle(&ca_pem) {
            NewConfiguration::Validating(c) => {
                let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
                api.create(&params, &c).await.map(|_| ())
            }
            NewConfiguration::Mutating(c) => {
                let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
                api.create(&params, &c).await.map(|_| ())
            }
        };
        match result {
            Ok(()) => report(Report::new(Outcome::Created, object).detail(format!(
                "caBundle from Secret {secret_namespace}/{secret_name} on every webhook"
            ))),
            Err(e) if is_conflict(&e) => report(
                Report::new(Outcome::Kept, object)
                    .detail("exists already; certs-gen patch sets its caBundle"),
            ),
            Err(e) => return Err(api_error(e, "create", &target, &rule)),
        }
    }
    Ok(())
}

/// Inputs of `certs-gen patch`.
#[derive(Clone, Debug)]
pub struct PatchOptions {
    /// Namespace of the Secret holding `ca.crt`.
    pub secret_namespace: String,
    /// Name of that Secret.
    pub secret_name: String,
    /// ValidatingWebhookConfiguration to patch.
    pub validating: Option<String>,
    /// MutatingWebhookConfiguration to patch.
    pub mutating: Option<String>,
    /// failurePolicy to set on every webhook, if any.
    pub failure_policy: Option<FailurePolicy>,
}

/// Reads `ca.crt` from the Secret and injects it as `caBundle` into the named webhook
/// configurations, calling `report` once per configuration as soon as it is done.
pub async fn patch(
    client: Client,
    options: &PatchOptions,
    mut report: impl FnMut(Report),
) -> Result<(), Error> {
    if options.validating.is_none() && options.mutating.is_none() {
        return Err(Error::InvalidArgument(
            "nothing to patch: give --validating NAME, --mutating NAME, or both".into(),
        ));
    }
    let ca_pem = read_ca(&client, &options.secret_namespace, &options.secret_name).await?;
    if let Some(name) = &options.validating {
        let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
        report(patch_configuration(&api, name, &ca_pem, options.failure_policy).await?);
    }
    if let Some(name) = &options.mutating {
        let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
        report(patch_configuration(&api, name, &ca_pem, options.failure_policy).await?);
    }
    Ok(())
}

async fn read_ca(client: &Client, namespace: &str, name: &str) -> Result<Vec<u8>, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let object = format!("Secret {namespace}/{name}");
    let target = format!("secrets {name:?} in namespace {namespace}");
    let rule = format!("the Role in namespace {namespace} needs verb [get] on secrets with resourceNames: [{name}]");
    let found = api
        .get_opt(name)
        .await
        .map_err(|e| api_error(e, "get", &target, &rule))?
        .ok_or_else(|| Error::NotFound {
            target: object.clone(),
            hint: "create it first (certs-gen create) or fix --secret-namespace/--secret-name"
                .into(),
        })?;
    let ca_pem = found
        .data
        .and_then(|mut data| data.remove(CA_CRT))
        .map(|bytes| bytes.0)
        .filter(|bytes| !bytes.is_empty())
        .ok_or_else(|| Error::BadSecret {
            target: object.clone(),
            reason: format!("has no {CA_CRT}; run certs-gen create to fill it"),
        })?;
    // Never inject something the API server would fail to use: it would break every admission.
    cert::parse_pem_certs(&ca_pem).map_err(|e| Error::BadSecret {
        target: object,
        reason: format!("{CA_CRT}: {e}; run certs-gen create to replace it"),
    })?;
    Ok(ca_pem)
}

async fn patch_configuration<K>(
    api: &Api<K>,
    name: &str,
    ca_pem: &[u8],
    failure_policy: Option<FailurePolicy>,
) -> Result<Report, Error>
where
    K: WebhookConfiguration + kube::Resource + Clone + DeserializeOwned + Debug,
{
    let object = format!("{} {name}", K::KIND);
    let target = format!("{}.admissionregistration.k8s.io {name:?}", K::PLURAL);
    let rule = format!(
        "the ClusterRole needs verbs [get, patch] on {} (apiGroups: [admissionregistration.k8s.io], \
         resourceNames: [{name}])",
        K::PLURAL
    );
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    for _ in 0..MAX_ATTEMPTS {
        let current = api
            .get_opt(name)
            .await
            .map_err(|e| api_error(e, "get", &target, &rule))?
            .ok_or_else(|| Error::NotFound {
                target: format!("{} {name:?}", K::KIND),
                hint: format!("install it first (the chart creates it) or fix {}", K::FLAG),
            })?;
        let states = current.webhook_states();
        let resource_version = current.meta().resource_version.clone().unwrap_or_default();
        let plan = webhook::build_patch(&resource_version, &states, ca_pem, failure_policy);
        let handover = webhook::handover_op(current.meta().managed_fields.as_deref());
        let mut details = Vec::new();
        let mut ops = match &plan {
            Some(plan) => {
                let mut detail = format!("caBundle set on webhook(s) {}", plan.changed.join(", "));
                if let Some(policy) = failure_policy {
                    detail.push_str(&format!(" (failurePolicy {})", policy.as_str()));
                }
                details.push(detail);
                plan.ops.as_array().cloned().unwrap_or_default()
            }
            None => vec![serde_json::json!({
                "op": "replace", "path": "/metadata/resourceVersion", "value": resource_version,
            })],
        };
        match handover {
            Some(op) => {
                ops.push(op);
                details.push(format!(
                    "field ownership of {} released",
                    webhook::INSTALL_FIELD_MANAGER
                ));
            }
            None if plan.is_none() => {
                return Ok(Report::new(Outcome::Unchanged, object).detail(format!(
                    "caBundle already set on {} webhook(s)",
                    states.len()
                )));
            }
            None => {}
        }
        // kube wants its own json-patch type; it deserializes from the plain operations.
        let ops = serde_json::from_value(serde_json::Value::Array(ops))
            .map_err(|e| Error::InvalidArgument(format!("internal: bad JSON Patch: {e}")))?;
        match api.patch(name, &params, &Patch::Json::<()>(ops)).await {
            Ok(_) => {
                return Ok(Report::new(Outcome::Patched, object).detail(details.join("; ")));
            }
            Err(e) if is_conflict(&e) => continue,
            Err(e) => return Err(api_error(e, "patch", &target, &rule)),
        }
    }
    Err(Error::Conflict {
        target: object,
        attempts: MAX_ATTEMPTS,
    })
}

fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 409)
}

/// Turns a client error into a message naming the verb, the object and, for 403, the RBAC rule.
fn api_error(err: kube::Error, verb: &'static str, target: &str, rule: &str) -> Error {
    match err {
        kube::Error::Api(status) if status.code == 403 => Error::Forbidden {
            verb,
            target: target.to_owned(),
            rule: rule.to_owned(),
            message: status.message,
        },
        kube::Error::Api(status) if status.code == 401 => Error::Unauthorized {
            verb,
            target: target.to_owned(),
            message: status.message,
        },
        kube::Error::Api(status) => Error::Api {
            verb,
            target: target.to_owned(),
            code: status.code,
            reason: status.reason,
            message: status.message,
        },
        other => Error::Transport {
            verb,
            target: target.to_owned(),
            source: other,
        },
    }
}

fn hosts_list(hosts: &[Host]) -> String {
    hosts
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
