//! Hot reload of the serving certificate and the policy file, by polling their content.
//!
//! Polling the bytes (rather than inotify on the paths) handles every way Kubernetes updates a
//! mounted Secret or ConfigMap: the kubelet writes a new timestamped directory and atomically
//! swaps the `..data` symlink, so the watched path itself never changes and its inode events go
//! to a directory that is then deleted. Reading a few kilobytes every couple of seconds is free.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;

use super::http::App;
use super::metrics::ReloadResult;
use super::tls::{self, CertResolver, ServingCert};
use crate::admission::Policies;
use crate::config::Policy;

/// What a watched file last held, so that a poll acts only on a change, and a file that stays
/// unreadable is logged and counted once rather than at every poll.
#[derive(Debug)]
struct Seen<T> {
    last: Option<T>,
    last_error: Option<String>,
}

impl<T: PartialEq> Seen<T> {
    fn new(initial: T) -> Self {
        Seen {
            last: Some(initial),
            last_error: None,
        }
    }

    /// The content just read if it differs from what was last remembered. `Ok(None)` is a read
    /// to retry at the next poll. A read error goes to `report` unless the previous poll failed
    /// the same way; it also forgets the content, so the file is applied again once readable.
    fn changed(&mut self, read: Result<Option<T>, String>, report: impl FnOnce(&str)) -> Option<T> {
        match read {
            Ok(None) => None,
            Err(e) => {
                if self.last_error.as_ref() != Some(&e) {
                    report(&e);
                    self.last_error = Some(e);
                    self.last = None;
                }
                None
            }
            Ok(Some(content)) => {
                self.last_error = None;
                (self.last.as_ref() != Some(&content)).then_some(content)
            }
        }
    }

    /// Marks `content` as handled, applied or rejected.
    fn remember(&mut self, content: T) {
        self.last = Some(content);
    }
}

/// The certificate and key files, and what was last read from them.
#[derive(Debug)]
pub struct CertFiles {
    cert: PathBuf,
    key: PathBuf,
    seen: Seen<(Vec<u8>, Vec<u8>)>,
}

impl CertFiles {
    /// Loads the pair for startup; an error here stops the server.
    pub fn load(
        cert: &Path,
        key: &Path,
        provider: &CryptoProvider,
    ) -> anyhow::Result<(Self, ServingCert)> {
        let (c, k) = read_pair(cert, key)
            .map_err(|e| anyhow::anyhow!("cannot read the TLS certificate or key: {e}"))?;
        let serving = tls::load_pair(&c, &k, provider)
            .map_err(|e| anyhow::anyhow!("{} / {}: {e}", cert.display(), key.display()))?;
        Ok((
            CertFiles {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
                seen: Seen::new((c, k)),
            },
            serving,
        ))
    }

    /// Reloads the pair if its content changed. A pair that does not load keeps the served one.
    pub fn poll(&mut self, resolver: &CertResolver, app: &App, provider: &CryptoProvider) {
        // `None` from the read: caught mid-swap; the next poll sees a consistent pair.
        let read = read_stable_pair(&self.cert, &self.key).map_err(|e| e.to_string());
        let Some(pair) = self.seen.changed(read, |e| {
            tracing::error!(error = %e, "cannot read the TLS certificate or key; still serving the previous certificate");
            app.metrics.certificate_reload(ReloadResult::Failure);
        }) else {
            return;
        };
        match tls::load_pair(&pair.0, &pair.1, provider) {
            Ok(serving) => {
                resolver.swap(serving.key.clone());
                app.metrics.certificate_reload(ReloadResult::Success);
                app.metrics.certificate_expiry(serving.not_after);
                tracing::info!(
                    cert = %self.cert.display(),
                    serial = %serving.serial,
                    not_after = serving.not_after,
                    "TLS certificate reloaded"
                );
            }
            Err(e) => {
                app.metrics.certificate_reload(ReloadResult::Failure);
                tracing::error!(
                    cert = %self.cert.display(),
                    key = %self.key.display(),
                    error = %e,
                    "new TLS certificate rejected; still serving the previous certificate"
                );
            }
        }
        self.seen.remember(pair);
    }
}

fn read_pair(cert: &Path, key: &Path) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let c = std::fs::read(cert).map_err(|e| with_path(cert, e))?;
    let k = std::fs::read(key).map_err(|e| with_path(key, e))?;
    Ok((c, k))
}

/// Reads the pair twice and returns it only if both reads agree, so a symlink swap between
/// reading the certificate and the key is not mistaken for a mismatched pair.
fn read_stable_pair(cert: &Path, key: &Path) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let first = read_pair(cert, key)?;
    let second = read_pair(cert, key)?;
    Ok((first == second).then_some(first))
}

fn with_path(path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// The policy file and what was last read from it.
#[derive(Debug)]
pub struct ConfigFile {
    path: PathBuf,
    seen: Seen<Vec<u8>>,
}

impl ConfigFile {
    /// Loads the policy for startup; an error here stops the server.
    pub fn load(path: &Path) -> anyhow::Result<(Self, Policy)> {
        let bytes = std::fs::read(path).map_err(|e| with_path(path, e))?;
        let policy = parse_policy(&bytes, path)?;
        Ok((
            ConfigFile {
                path: path.to_path_buf(),
                seen: Seen::new(bytes),
            },
            policy,
        ))
    }

    /// Reloads the policy if the file changed. An invalid policy keeps the one in force.
    pub fn poll(&mut self, app: &App) {
        let read = std::fs::read(&self.path)
            .map(Some)
            .map_err(|e| with_path(&self.path, e).to_string());
        let Some(bytes) = self.seen.changed(read, |e| {
            tracing::error!(error = %e, "cannot read the policy file; keeping the last good policy");
            app.metrics.config_reload(ReloadResult::Failure);
        }) else {
            return;
        };
        match parse_policy(&bytes, &self.path) {
            Ok(policy) => {
                app.set_policies(Policies::new(policy));
                app.metrics.config_reload(ReloadResult::Success);
                tracing::info!(config = %self.path.display(), "policy reloaded");
            }
            Err(e) => {
                app.metrics.config_reload(ReloadResult::Failure);
                tracing::error!(error = %e, "new policy rejected; keeping the last good policy");
            }
        }
        self.seen.remember(bytes);
    }
}

fn parse_policy(bytes: &[u8], path: &Path) -> anyhow::Result<Policy> {
    let name = path.display().to_string();
    let text = std::str::from_utf8(bytes)
        .map_err(|e| anyhow::anyhow!("{name}: the policy file is not UTF-8: {e}"))?;
    Ok(Policy::from_yaml(text, &name)?)
}

/// Polls until `stop` receives or is dropped. Runs on its own thread: file reads block.
pub fn run(
    interval: Duration,
    mut cert: Option<(CertFiles, Arc<CertResolver>)>,
    mut config: Option<ConfigFile>,
    app: Arc<App>,
    provider: Arc<CryptoProvider>,
    stop: Receiver<()>,
) {
    loop {
        match stop.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        if let Some((files, resolver)) = cert.as_mut() {
            files.poll(resolver, &app, &provider);
        }
        if let Some(file) = config.as_mut() {
            file.poll(&app);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> App {
        App::new(
            Policies::default(),
            1024,
            4096,
            Duration::from_secs(1),
            crate::server::lint_pool::LintPool::new(1, 1 << 20).unwrap(),
        )
    }

    fn metric(app: &App, line_start: &str) -> String {
        let text = app.metrics.encode().unwrap();
        text.lines()
            .find(|l| l.starts_with(line_start))
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn config_reload_keeps_the_last_good_policy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        std::fs::write(
            &path,
            "resources: {defaults: {}}\nexemptions: []\nallowAnnotationExemptions: true\n",
        )
        .unwrap();
        let (mut file, policy) = ConfigFile::load(&path).unwrap();
        assert!(policy.allow_annotation_exemptions());
        let app = app();
        app.set_policies(Policies::new(policy));

        file.poll(&app);
        assert_eq!(metric(&app, "daemonset_guard_config_reloads_total"), "");

        std::fs::write(&path, "allowAnnotationExemptions: true\nnoSuchKey: 1\n").unwrap();
        file.poll(&app);
        file.poll(&app);
        assert_eq!(
            metric(
                &app,
                "daemonset_guard_config_reloads_total{result=\"failure\"}"
            ),
            "daemonset_guard_config_reloads_total{result=\"failure\"} 1"
        );
        assert!(app.policies().policy().allow_annotation_exemptions());

        std::fs::write(
            &path,
            "resources: {defaults: {}}\nexemptions: []\nallowAnnotationExemptions: false\n",
        )
        .unwrap();
        file.poll(&app);
        assert_eq!(
            metric(
                &app,
                "daemonset_guard_config_reloads_total{result=\"success\"}"
            ),
            "daemonset_guard_config_reloads_total{result=\"success\"} 1"
        );
        assert!(!app.policies().policy().allow_annotation_exemptions());
        assert_eq!(
            metric(&app, "daemonset_guard_config_last_reload_successful"),
            "daemonset_guard_config_last_reload_successful 1"
        );

        std::fs::remove_file(&path).unwrap();
        file.poll(&app);
        file.poll(&app);
        assert_eq!(
            metric(
                &app,
                "daemonset_guard_config_reloads_total{result=\"failure\"}"
            ),
            "daemonset_guard_config_reloads_total{result=\"failure\"} 2"
        );
    }

    #[test]
    fn invalid_config_at_startup_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, "rules: [").unwrap();
        let err = ConfigFile::load(&path).unwrap_err().to_string();
        assert!(err.contains("policy.yaml"), "{err}");
        let err = ConfigFile::load(&dir.path().join("missing.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.yaml"), "{err}");
    }

    #[test]
    fn certificate_reload_follows_a_symlink_swap_and_rejects_a_broken_pair() {
        let provider = tls::provider();
        let dir = tempfile::tempdir().unwrap();
        let write_version = |name: &str, cert: &str, key: &str| {
            let d = dir.path().join(name);
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("tls.crt"), cert).unwrap();
            std::fs::write(d.join("tls.key"), key).unwrap();
        };
        // The layout of a Secret volume: tls.crt -> ..data/tls.crt, ..data -> ..v1.
        let swap_to = |name: &str| {
            let tmp = dir.path().join("..data_tmp");
            std::os::unix::fs::symlink(name, &tmp).unwrap();
            std::fs::rename(&tmp, dir.path().join("..data")).unwrap();
        };
        let a = tls::generate_dev_cert().unwrap();
        let b = tls::generate_dev_cert().unwrap();
        write_version("..v1", &a.cert_pem, &a.key_pem);
        swap_to("..v1");
        for f in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{f}"), dir.path().join(f)).unwrap();
        }
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let (mut files, serving) = CertFiles::load(&cert, &key, &provider).unwrap();
        let resolver = CertResolver::new(serving.key.clone());
        let app = app();

        write_version("..v2", &b.cert_pem, &b.key_pem);
        swap_to("..v2");
        files.poll(&resolver, &app, &provider);
        let served = resolver.current();
        assert_ne!(served.cert[0], serving.key.cert[0]);
        assert_eq!(
            metric(
                &app,
                "daemonset_guard_certificate_reloads_total{result=\"success\"}"
            ),
            "daemonset_guard_certificate_reloads_total{result=\"success\"} 1"
        );

        // A new certificate with the old key: rejected, the served one stays.
        write_version("..v3", &a.cert_pem, &b.key_pem);
        swap_to("..v3");
        files.poll(&resolver, &app, &provider);
        files.poll(&resolver, &app, &provider);
        assert!(Arc::ptr_eq(&resolver.current(), &served));
        assert_eq!(
            metric(
                &app,
                "daemonset_guard_certificate_reloads_total{result=\"failure\"}"
            ),
            "daemonset_guard_certificate_reloads_total{result=\"failure\"} 1"
        );
        assert_eq!(
            metric(&app, "daemonset_guard_certificate_last_reload_successful"),
            "daemonset_guard_certificate_last_reload_successful 0"
        );
    }
}
