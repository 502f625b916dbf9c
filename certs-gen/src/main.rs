//! certs-gen: creates, rotates and injects the TLS certificates of the daemonset-guard webhook.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use certs_gen::api::{self, CreateOptions, PatchOptions};
use certs_gen::webhook::{FailurePolicy, NewConfiguration};
use certs_gen::{cert, files, Report};
use clap::{Parser, Subcommand};
use time::OffsetDateTime;

#[derive(Parser)]
#[command(name = "certs-gen", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write ca.crt, tls.crt and tls.key (PEM) into a directory.
    Files {
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// DNS name or IP address the certificate serves; repeat for several.
        #[arg(long = "host", required = true, num_args = 1..)]
        hosts: Vec<String>,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// Create or rotate a kubernetes.io/tls Secret holding ca.crt, tls.crt and tls.key.
    Create {
        /// Namespace of the Secret.
        #[arg(long)]
        namespace: String,
        /// Name of the Secret.
        #[arg(long)]
        secret_name: String,
        /// DNS name or IP address the certificate serves; repeat for several.
        #[arg(long = "host", required = true, num_args = 1..)]
        hosts: Vec<String>,
        /// Validity of a new certificate, in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Rotate when the certificate expires within this many days.
        #[arg(long, default_value_t = 30)]
        renew_before_days: u32,
        /// Label the Secret carries, KEY=VALUE; repeat for several.
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// A Validating- or MutatingWebhookConfiguration (JSON) to create, once the Secret
        /// exists, with caBundle set to its ca.crt on every webhook; left alone if it exists.
        /// Repeat for several. The chart passes its own on install, so they never exist without
        /// the CA.
        #[arg(long = "webhook-configuration", value_name = "JSON")]
        webhook_configurations: Vec<String>,
    },
    /// Set caBundle (from the Secret's ca.crt) on every webhook of the named configurations.
    Patch {
        /// Namespace of the Secret holding ca.crt.
        #[arg(long)]
        secret_namespace: String,
        /// Name of the Secret holding ca.crt.
        #[arg(long)]
        secret_name: String,
        /// ValidatingWebhookConfiguration to patch.
        #[arg(long, required_unless_present = "mutating")]
        validating: Option<String>,
        /// MutatingWebhookConfiguration to patch.
        #[arg(long)]
        mutating: Option<String>,
        /// Also set failurePolicy on every webhook.
        #[arg(long, value_parser = ["Fail", "Ignore"])]
        failure_policy: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("certs-gen: error: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, skipping causes whose text the message already holds
/// (our errors and kube's embed their source's text).
fn one_line(err: &anyhow::Error) -> String {
    let mut message = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    message.replace('\n', " ")
}

fn run(command: Command) -> anyhow::Result<()> {
    let print = |report: Report| println!("{report}");
    match command {
        Command::Files {
            out,
            hosts,
            days,
            force,
        } => {
            let hosts = cert::parse_hosts(&hosts)?;
            let bundle = cert::generate(&hosts, days, OffsetDateTime::now_utc())?;
            for (outcome, path) in files::write_bundle(&out, &bundle, force)? {
                print(Report::new(outcome, path.display().to_string()));
            }
            Ok(())
        }
        Command::Create {
            namespace,
            secret_name,
            hosts,
            days,
            renew_before_days,
            labels,
            webhook_configurations,
        } => {
            let configurations = webhook_configurations
                .iter()
                .map(|text| NewConfiguration::parse(text))
                .collect::<Result<Vec<_>, _>>()?;
            let options = CreateOptions {
                namespace,
                name: secret_name,
                hosts: cert::parse_hosts(&hosts)?,
                days,
                renew_before_days,
                labels: certs_gen::secret::parse_labels(&labels)?,
            };
            options.validate()?;
            runtime()?.block_on(async {
                let client = client().await?;
                print(api::create(client.clone(), &options, OffsetDateTime::now_utc()).await?);
                api::install_configurations(
                    client,
                    &options.namespace,
                    &options.name,
                    configurations,
                    print,
                )
                .await?;
                Ok(())
            })
        }
        Command::Patch {
            secret_namespace,
            secret_name,
            validating,
            mutating,
            failure_policy,
        } => {
            let failure_policy = failure_policy
                .map(|p| p.parse::<FailurePolicy>())
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let options = PatchOptions {
                secret_namespace,
                secret_name,
                validating,
                mutating,
                failure_policy,
            };
            runtime()?.block_on(async {
                let client = client().await?;
                api::patch(client, &options, print).await?;
                Ok(())
            })
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// In-cluster configuration when run as a Job, else the kubeconfig.
async fn client() -> anyhow::Result<kube::Client> {
    // rustls needs one process-wide crypto provider; name it rather than rely on feature
    // unification picking exactly one. An error only means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    kube::Client::try_default()
        .await
        .context("cannot configure a Kubernetes client (no in-cluster service account and no usable kubeconfig)")
}
