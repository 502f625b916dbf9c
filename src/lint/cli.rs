//! The `lint` and `rules` commands: the only part of the linter that reads files and writes to
//! the terminal.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::report::{ErrorKind, InputError, LintOptions, OldObjects, UPDATE_NEEDS_OLD};
use super::source::{Evaluator, PolicySource};
use super::stream::{self, Input, Settings, Source};
use super::text::Style;
use super::{decode, rule_docs, valid_namespace, Format};
use crate::policy::{Operation, Policies};

/// When to colour text output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Color {
    /// When the output is a terminal and NO_COLOR is not set.
    Auto,
    Always,
    Never,
}

/// Arguments of `daemonset-guard lint`.
#[derive(Debug, clap::Args)]
pub struct LintArgs {
    /// Manifest files or directories (searched recursively for *.yaml, *.yml, *.json); `-` reads
    /// stdin, which is also the default.
    #[arg(value_name = "PATH")]
    pub paths: Vec<String>,
    #[command(flatten)]
    pub source: PolicySource,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Print the manifests with the mutation applied (YAML, stdout); the report goes to stderr.
    #[arg(long)]
    pub fix: bool,
    /// Namespace of objects that do not name one.
    #[arg(long, short = 'n', value_name = "NS", default_value = "default")]
    pub namespace: String,
    /// Admission operation to evaluate as. UPDATE needs --old; DELETE and CONNECT are never
    /// evaluated (admission does not restrict them).
    #[arg(long, value_name = "OP", default_value = "CREATE", value_parser = parse_operation)]
    pub operation: Operation,
    /// With --operation UPDATE: the stored objects the manifests replace (YAML/JSON), matched by
    /// namespace and name.
    #[arg(long, value_name = "FILE", conflicts_with = "remote")]
    pub old: Option<PathBuf>,
    /// Colour the text report.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
    /// Exit 0 only when every DaemonSet gets this verdict (and there is at least one), else 1:
    /// for smoke tests that must see a known-bad manifest denied, e.g. `helm test`, whose Pods
    /// have no shell to invert an exit code.
    #[arg(long, value_enum, value_name = "VERDICT")]
    pub expect: Option<Expect>,
    /// Threads that lint files and documents in parallel (default: the available cores); the
    /// report is the same for any number.
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
}

/// The verdict `--expect` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Expect {
    Allowed,
    Denied,
}

/// The exit code of a run: the report's own, or with `--expect`, whether every DaemonSet got the
/// expected verdict. Unreadable input stays 2 either way.
fn exit_code(report: &super::report::Report, expect: Option<Expect>) -> u8 {
    let code = report.exit_code();
    match expect {
        _ if code == 2 => 2,
        None => code,
        Some(want) => {
            let s = &report.summary;
            let all = match want {
                Expect::Allowed => s.allowed,
                Expect::Denied => s.denied,
            };
            u8::from(!(s.daemonsets > 0 && all == s.daemonsets))
        }
    }
}

fn parse_operation(s: &str) -> Result<Operation, String> {
    s.parse()
}

/// Arguments of `daemonset-guard rules`.
#[derive(Debug, clap::Args)]
pub struct RulesArgs {
    /// Output format (sarif is not available here).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

fn use_color(choice: Color, terminal: bool) -> bool {
    match choice {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    }
}

/// Runs `rules`.
pub fn print_rules(args: RulesArgs) -> ExitCode {
    let docs = rule_docs();
    let out = match args.format {
        Format::Json => {
            let mut s = serde_json::to_string_pretty(&docs).unwrap_or_default();
            s.push('\n');
            s
        }
        Format::Text => super::text::render_rules(
            &docs,
            super::text::Style {
                color: use_color(Color::Auto, std::io::stdout().is_terminal()),
            },
        ),
        Format::Sarif => {
            eprintln!("error: rules prints text or json");
            return ExitCode::from(2);
        }
    };
    write_out(&out)
}

fn write_out(s: &str) -> ExitCode {
    // A closed pipe (`| head`) is not an error worth a message.
    match std::io::stdout().lock().write_all(s.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(2),
    }
}

fn is_manifest(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Manifest files under `dir`, sorted, skipping hidden entries (`.git`) and not following
/// symlinked directories (no loops).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .map(|e| e.path())
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    entries.sort();
    for p in entries {
        let meta = std::fs::symlink_metadata(&p)?;
        if meta.is_dir() {
            walk(&p, out)?;
        } else if is_manifest(&p) && std::fs::metadata(&p).is_ok_and(|m| m.is_file()) {
            out.push(p);
        }
    }
    Ok(())
}

fn inputs(paths: &[String]) -> Vec<Input> {
    let defaulted = ["-".to_string()];
    let paths = if paths.is_empty() {
        &defaulted[..]
    } else {
        paths
    };
    let mut out = Vec::new();
    for p in paths {
        let input = |source| Input {
            name: p.clone(),
            source,
        };
        if p == "-" {
            out.push(input(Source::Stdin));
            continue;
        }
        let path = Path::new(p);
        if path.is_dir() {
            let mut files = Vec::new();
            match walk(path, &mut files) {
                Err(e) => out.push(input(Source::Failed(InputError::new(
                    p,
                    ErrorKind::Io,
                    format!("cannot read: {e}"),
                )))),
                Ok(()) if files.is_empty() => out.push(input(Source::Failed(InputError::new(
                    p,
                    ErrorKind::Io,
                    "directory holds no *.yaml, *.yml or *.json file",
                )))),
                Ok(()) => out.extend(files.into_iter().map(|f| Input {
                    name: f.to_string_lossy().into_owned(),
                    source: Source::File(f),
                })),
            }
        } else {
            out.push(input(Source::File(path.to_path_buf())));
        }
    }
    out
}

/// Runs `lint`; the exit code is 0 (nothing denied), 1 (a deny) or 2 (unreadable input).
pub fn run_cli(args: LintArgs) -> ExitCode {
    match run(&args) {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// Lint is a short batch with small heaps, one per thread. mimalloc asks for transparent huge
/// pages on its arenas, so the first touch of any 2 MiB of a thread's heap faulted in a whole
/// zeroed huge page: with two threads the peak RSS doubled (the 20,000-document stream in JSON:
/// 59 MiB, 22 MiB without), and zeroing them cost CPU. Best effort, for this process only.
fn small_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: sets a flag of the calling process; no pointers, no memory is touched.
    unsafe {
        let _ = libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn run(args: &LintArgs) -> Result<u8, String> {
    small_pages();
    if !valid_namespace(&args.namespace) {
        return Err(format!(
            "--namespace {:?} is not a valid namespace name (RFC 1123 label)",
            args.namespace
        ));
    }
    let Evaluator { policy, remote } = args.source.evaluator()?;
    let old = match (&args.old, args.operation) {
        (Some(path), Operation::Update) => {
            let bytes =
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let name = path.display().to_string();
            let text = decode(&name, &bytes).map_err(|e| e.to_string())?;
            Some(
                OldObjects::from_text(&name, text, &args.namespace).map_err(|errs| {
                    errs.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n")
                })?,
            )
        }
        (Some(_), op) => {
            return Err(format!(
                "--old is only read with --operation UPDATE (the operation is {})",
                op.as_str()
            ))
        }
        (None, Operation::Update) if remote.is_some() => {
            return Err(
                "--operation UPDATE needs the stored object, which --remote cannot send; \
                 lint locally with --old FILE"
                    .into(),
            )
        }
        (None, Operation::Update) => return Err(UPDATE_NEEDS_OLD.into()),
        (None, _) => None,
    };
    let policies = Policies::new(policy);
    let opts = LintOptions {
        policies: &policies,
        operation: args.operation,
        namespace: &args.namespace,
        old: old.as_ref(),
    };

    let jobs = match args.jobs {
        Some(0) => return Err("--jobs must be at least 1".into()),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    // The report goes to stdout, or to stderr when stdout carries the fixed manifests.
    let terminal = if args.fix {
        std::io::stderr().is_terminal()
    } else {
        std::io::stdout().is_terminal()
    };
    let settings = Settings {
        opts,
        format: args.format,
        style: Style {
            color: use_color(args.color, terminal),
        },
        fix: args.fix,
        jobs,
    };
    let inputs = inputs(&args.paths);
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let (mut report_out, mut fixed_out) = if args.fix {
        (
            Box::new(BufWriter::new(stderr.lock())) as Box<dyn Write>,
            Some(BufWriter::new(stdout.lock())),
        )
    } else {
        (
            Box::new(BufWriter::new(stdout.lock())) as Box<dyn Write>,
            None,
        )
    };
    let result = stream::run(
        inputs,
        &settings,
        remote.as_ref(),
        &mut report_out,
        fixed_out.as_mut().map(|w| w as &mut dyn Write),
    );
    let _ = report_out.flush();
    if let Some(w) = &mut fixed_out {
        let _ = w.flush();
    }
    drop(report_out);
    drop(fixed_out);
    let report = match result {
        Ok(r) => r,
        // A closed pipe (`| head`) is not worth a message; the exit code still says it.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(2),
        Err(e) => return Err(format!("cannot write the report: {e}")),
    };
    if !args.fix && args.format != Format::Text {
        // Machine formats own stdout; people still see why the exit code is 2.
        for e in &report.errors {
            eprintln!("error: {e}");
        }
    }
    Ok(exit_code(&report, args.expect))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_auto_needs_a_terminal() {
        assert!(!use_color(Color::Auto, false));
        assert!(use_color(Color::Always, false));
        assert!(!use_color(Color::Never, true));
    }

    #[test]
    fn walks_directories_sorted_and_filtered() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("sub/deeper")).unwrap();
        std::fs::create_dir_all(d.join(".git")).unwrap();
        for f in [
            "b.yaml",
            "a.yml",
            "c.json",
            "notes.txt",
            "sub/deeper/z.yaml",
            ".git/x.yaml",
            "sub/m.YAML",
        ] {
            std::fs::write(d.join(f), "{}").unwrap();
        }
        let mut out = Vec::new();
        walk(d, &mut out).unwrap();
        let rel: Vec<String> = out
            .iter()
            .map(|p| p.strip_prefix(d).unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(rel, ["a.yml", "b.yaml", "c.json", "sub/deeper/z.yaml"]);
    }
}
