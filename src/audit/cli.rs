//! `daemonset-guard audit`: lists the cluster's DaemonSets and reports what admission would say
//! about each, in the formats and with the exit codes of `lint`. Read-only: it only lists.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use k8s_openapi::api::apps::v1::DaemonSet;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::lint::remote::Remote;
use crate::lint::source::{Evaluator, PolicySource};
use crate::lint::{
    self, lint_text, report, FileReport, Format, InputError, LintOptions, LintQuery,
};
use crate::policy::{Operation, Policies};

/// Arguments of `daemonset-guard audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Only this namespace (default: all namespaces).
    #[arg(long, short = 'n', value_name = "NS")]
    pub namespace: Option<String>,
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then the in-cluster service account).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    #[command(flatten)]
    pub source: PolicySource,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// DaemonSets per list request (the API server pages with limit/continue).
    #[arg(long, default_value_t = 500, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub page_size: u32,
}

/// Why the cluster could not be read (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot load the Kubernetes client configuration: {0}")]
    Config(String),
    #[error("cannot list DaemonSets: {message} (HTTP {code} {reason}){hint}")]
    Api {
        message: String,
        code: u16,
        reason: String,
        hint: &'static str,
    },
    #[error("cannot list DaemonSets: {0}")]
    Other(String),
}

impl From<kube::Error> for ClusterError {
    fn from(e: kube::Error) -> Self {
        match e {
            kube::Error::Api(s) => {
                let hint = match s.code {
                    403 => {
                        "; grant get, list and watch on daemonsets in API group apps (a \
                         ClusterRole, or a Role with -n) to this user"
                    }
                    401 => {
                        "; the credentials were refused: log in again or fix the kubeconfig user"
                    }
                    _ => "",
                };
                ClusterError::Api {
                    message: s.message.clone(),
                    code: s.code,
                    reason: s.reason.clone(),
                    hint,
                }
            }
            other => ClusterError::Other(other.to_string()),
        }
    }
}

/// A Kubernetes client from `--kubeconfig`/`--context`, or inferred as kubectl does.
pub async fn client(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
) -> Result<kube::Client, ClusterError> {
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..KubeConfigOptions::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| ClusterError::Config(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kc, &options).await
        }
        None if context.is_some() => kube::Config::from_kubeconfig(&options).await,
        None => {
            return kube::Config::infer()
                .await
                .map_err(|e| ClusterError::Config(e.to_string()))
                .and_then(|c| {
                    kube::Client::try_from(c).map_err(|e| ClusterError::Config(e.to_string()))
                })
        }
    }
    .map_err(|e| ClusterError::Config(e.to_string()))?;
    kube::Client::try_from(config).map_err(|e| ClusterError::Config(e.to_string()))
}

/// How many times a list restarts from the first page after its continue token expired (HTTP
/// 410 on a page), before giving up.
const MAX_LIST_RESTARTS: usize = 3;

/// Every DaemonSet `api` sees, page by page. A continue token that expired mid-list (a plain 410,
/// the API server compacted past the list's resourceVersion) restarts the list from the first
/// page, so the result is one consistent snapshot.
pub async fn list_all(
    api: &Api<DaemonSet>,
    page_size: u32,
    mut progress: impl FnMut(usize),
) -> Result<Vec<DaemonSet>, ClusterError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    let mut restarts = 0;
    loop {
        let mut params = ListParams::default().limit(page_size);
        if let Some(t) = &token {
            params = params.continue_token(t);
        }
        match api.list(&params).await {
            Ok(page) => {
                out.extend(page.items);
                progress(out.len());
                match page.metadata.continue_ {
                    Some(c) if !c.is_empty() => token = Some(c),
                    _ => return Ok(out),
                }
            }
            Err(kube::Error::Api(s))
                if s.code == 410 && token.is_some() && restarts < MAX_LIST_RESTARTS =>
            {
                tracing::debug!(message = %s.message, "continue token expired; listing again");
                restarts += 1;
                out.clear();
                token = None;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Where a cluster object is, as the source of its report entry: its API path.
pub fn source(ds: &DaemonSet) -> String {
    format!(
        "apis/apps/v1/namespaces/{}/daemonsets/{}",
        ds.metadata.namespace.as_deref().unwrap_or("default"),
        ds.metadata.name.as_deref().unwrap_or("")
    )
}

/// The manifest evaluated: the object as stored, without the server's bookkeeping
/// (`managedFields`), with the apiVersion and kind that list items lack.
fn manifest(mut ds: DaemonSet) -> String {
    ds.metadata.managed_fields = None;
    serde_json::to_string(&ds).unwrap_or_default()
}

/// Evaluates each DaemonSet through `lint`'s own code path (or a server's `/lint`), so the
/// report is exactly what `lint` would print for the same objects.
pub(crate) fn evaluate(
    items: Vec<DaemonSet>,
    policies: &Policies,
    remote: Option<&Remote>,
    mut progress: impl FnMut(usize, usize),
) -> (Vec<FileReport>, Vec<InputError>) {
    let total = items.len();
    let mut files = Vec::with_capacity(total);
    let mut errors = Vec::new();
    for (i, ds) in items.into_iter().enumerate() {
        let src = source(&ds);
        let namespace = ds
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let text = manifest(ds);
        let file = match remote {
            None => {
                let linted = lint_text(
                    &src,
                    &text,
                    &LintOptions {
                        policies,
                        operation: Operation::Create,
                        namespace: &namespace,
                        old: None,
                    },
                );
                errors.extend(linted.errors);
                linted.file
            }
            Some(r) => {
                let query = LintQuery {
                    namespace: Some(namespace),
                    operation: Some(Operation::Create.as_str().into()),
                    format: Some("json".into()),
                };
                match r.lint(&src, text.as_bytes(), &query) {
                    Ok(f) => f,
                    Err(mut e) => {
                        errors.append(&mut e);
                        continue;
                    }
                }
            }
        };
        files.push(without_locations(file));
        progress(i + 1, total);
    }
    (files, errors)
}

/// Lines and columns point into the JSON the audit built, which nobody can open: drop them.
fn without_locations(mut file: FileReport) -> FileReport {
    for o in &mut file.objects {
        o.line = None;
        o.column = None;
        for f in &mut o.findings {
            f.line = None;
            f.column = None;
        }
    }
    file
}

/// Runs `audit`; the exit code is 0 (everything admitted), 1 (some DaemonSet would be denied) or
/// 2 (the cluster could not be read, or a DaemonSet could not be evaluated).
pub fn run_cli(args: AuditArgs) -> ExitCode {
    match run(&args) {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &AuditArgs) -> Result<u8, String> {
    if let Some(ns) = &args.namespace {
        if !lint::valid_namespace(ns) {
            return Err(format!(
                "--namespace {ns:?} is not a valid namespace name (RFC 1123 label)"
            ));
        }
    }
    // Remote owns a runtime of its own and blocks on it: set it up outside ours.
    let Evaluator { policy, remote } = args.source.evaluator()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let items = runtime
        .block_on(async {
            let client = client(args.kubeconfig.as_deref(), args.context.as_deref()).await?;
            let api: Api<DaemonSet> = match &args.namespace {
                Some(ns) => Api::namespaced(client, ns),
                None => Api::all(client),
            };
            let mut pages = 0;
            list_all(&api, args.page_size, |n| {
                pages += 1;
                if pages > 1 {
                    eprintln!("audit: listed {n} DaemonSets");
                }
            })
            .await
        })
        .map_err(|e| e.to_string())?;
    drop(runtime);

    let loud = items.len() > args.page_size as usize;
    let policies = Policies::new(policy);
    let (files, errors) = evaluate(items, &policies, remote.as_ref(), |done, total| {
        if loud && (done % 1000 == 0 || done == total) {
            eprintln!("audit: evaluated {done}/{total} DaemonSets");
        }
    });
    let opts = LintOptions {
        policies: &policies,
        operation: Operation::Create,
        namespace: args.namespace.as_deref().unwrap_or("default"),
        old: None,
    };
    let report = report(files, errors, &opts);
    let code = report.exit_code();
    if args.format != Format::Text {
        for e in &report.errors {
            eprintln!("error: {e}");
        }
    }
    let color = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = std::io::stdout()
        .lock()
        .write_all(lint::render(&report, args.format, color).as_bytes());
    Ok(code)
}
