//! Shared helpers for the server integration tests: a test PKI, the real binary started on
//! 127.0.0.1 with ephemeral ports, HTTPS clients for HTTP/1.1 and HTTP/2, and the fixtures.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;

/// Upper bound for anything a test waits for; reaching it fails the test instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A CA that issues server and client certificates.
pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

/// A PEM certificate and key.
#[derive(Clone)]
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Pair {
    /// DER of the leaf.
    pub fn der(&self) -> Vec<u8> {
        CertificateDer::from_pem_slice(self.cert_pem.as_bytes())
            .unwrap()
            .to_vec()
    }
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Pki {
            ca: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// A server certificate for localhost and 127.0.0.1.
    pub fn server(&self) -> Pair {
        self.issue(
            vec!["localhost".into(), "127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate, as the API server would present.
    pub fn client(&self) -> Pair {
        self.issue(vec![], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(&self, names: Vec<String>, eku: ExtendedKeyUsagePurpose) -> Pair {
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "daemonset-guard test");
        params.extended_key_usages = vec![eku];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        Pair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// A directory laid out like a mounted Kubernetes Secret: `tls.crt -> ..data/tls.crt`,
/// `..data -> ..vN`, so a rotation is one atomic rename of `..data`.
pub struct SecretDir {
    pub dir: tempfile::TempDir,
    version: usize,
}

impl SecretDir {
    pub fn new(pair: &Pair) -> SecretDir {
        let mut s = SecretDir {
            dir: tempfile::tempdir().unwrap(),
            version: 0,
        };
        s.rotate(pair);
        for f in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{f}"), s.dir.path().join(f)).unwrap();
        }
        s
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("tls.crt")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.path().join("tls.key")
    }

    /// Writes a new version and swaps `..data` to it atomically, as the kubelet does.
    pub fn rotate(&mut self, pair: &Pair) {
        self.version += 1;
        let name = format!("..v{}", self.version);
        let d = self.dir.path().join(&name);
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("tls.crt"), &pair.cert_pem).unwrap();
        std::fs::write(d.join("tls.key"), &pair.key_pem).unwrap();
        let tmp = self.dir.path().join("..data_tmp");
        std::os::unix::fs::symlink(&name, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.path().join("..data")).unwrap();
    }
}

/// Writes `text` to `path` atomically (write, then rename), so a poll never sees half a file.
pub fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The real `daemonset-guard serve`, on 127.0.0.1 with ephemeral ports.
pub struct Server {
    child: Child,
    pub https: SocketAddr,
    pub metrics: SocketAddr,
    /// `None` with `--lint-listen off`.
    pub lint: Option<SocketAddr>,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts the server with `args` after the listen and log flags, and waits until it logs
    /// `listening`.
    pub fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_daemonset-guard"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
            ])
            .args(
                (!args.contains(&"--lint-listen"))
                    .then_some(["--lint-listen", "127.0.0.1:0"])
                    .into_iter()
                    .flatten(),
            )
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start daemonset-guard");
        let stdout = child.stdout.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if v["message"] == "listening" {
                        let _ = tx.send(v);
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let listening = match rx.recv_timeout(PATIENCE) {
            Ok(v) => v,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "server did not start; log:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
        };
        Server {
            child,
            https: listening["https"].as_str().unwrap().parse().unwrap(),
            metrics: listening["metrics"].as_str().unwrap().parse().unwrap(),
            lint: listening["lint"].as_str().unwrap().parse().ok(),
            logs,
        }
    }

    /// `https://localhost:PORT{path}` on the /lint listener.
    pub fn lint_url(&self, path: &str) -> String {
        let lint = self.lint.expect("the server has a /lint listener");
        format!("https://localhost:{}{path}", lint.port())
    }

    /// `https://localhost:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.https.port())
    }

    /// `http://127.0.0.1:PORT{path}` on the metrics listener.
    pub fn metrics_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.metrics.port())
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Waits until a log line satisfies `pred`; panics after [`PATIENCE`].
    pub fn wait_for_log(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            for line in self.logs() {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if pred(&v) {
                        return v;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "no log line {what}; log:\n{}",
                self.logs().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; panics after [`PATIENCE`].
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The value of one metric sample (exact name with labels), or 0 when absent.
    pub async fn metric(&self, sample: &str) -> f64 {
        let text = get(&self.metrics_url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }

    /// Waits until `sample` reaches at least `value`; panics after [`PATIENCE`].
    pub async fn wait_for_metric(&self, sample: &str, value: f64) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let got = self.metric(sample).await;
            if got >= value {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{sample} stayed at {got}, wanted {value}; log:\n{}",
                self.logs().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain GET (the metrics listener speaks plain HTTP).
pub async fn get(url: &str) -> reqwest::Result<reqwest::Response> {
    // reqwest's default client needs a process-wide rustls provider even for plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()?
        .get(url)
        .send()
        .await
}

/// HTTP version a client speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Http {
    H1,
    H2,
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls client config trusting `ca_pem`, offering only the ALPN of `http`, with an optional
/// client certificate.
pub fn tls_config(ca_pem: &str, http: Http, identity: Option<&Pair>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(pair) => {
            let chain = CertificateDer::pem_slice_iter(pair.cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(pair.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = match http {
        Http::H1 => vec![b"http/1.1".to_vec()],
        Http::H2 => vec![b"h2".to_vec()],
    };
    config
}

/// An HTTPS client for `http`, trusting `ca_pem`.
pub fn client(ca_pem: &str, http: Http) -> reqwest::Client {
    client_with(ca_pem, http, None, true)
}

/// An HTTPS client; `keep_alive: false` makes every request use a new connection (and so show
/// the certificate served now).
pub fn client_with(
    ca_pem: &str,
    http: Http,
    identity: Option<&Pair>,
    keep_alive: bool,
) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_preconfigured_tls(tls_config(ca_pem, http, identity))
        .tls_info(true)
        .timeout(PATIENCE);
    b = match http {
        Http::H1 => b.http1_only(),
        Http::H2 => b.http2_prior_knowledge(),
    };
    if !keep_alive {
        b = b.pool_max_idle_per_host(0);
    }
    b.build().unwrap()
}

/// DER of the certificate the server presented for this response.
pub fn peer_certificate(resp: &reqwest::Response) -> Vec<u8> {
    resp.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("TLS info")
        .to_vec()
}

/// `../shared/fixtures/admission`.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/admission")
}

/// Every fixture: file name and body.
pub fn fixtures() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(fixtures_dir())
        .expect("../shared/fixtures/admission (ln -sfn /work/shared /work/wt/shared)")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert_eq!(out.len(), 15, "fixtures moved?");
    out
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(name)).unwrap()
}

/// POSTs an AdmissionReview the way the API server does.
pub async fn post_review(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(format!("{url}?timeout=5s"))
        .header("content-type", "application/json")
        .header("accept-encoding", "gzip")
        .header("user-agent", "kube-apiserver-admission")
        .body(body)
        .send()
        .await
}

/// Starts a server with its own PKI; returns it with the CA PEM.
pub fn start_with_pki(extra: &[&str]) -> (Server, Pki, SecretDir) {
    let pki = Pki::new("daemonset-guard test CA");
    let secret = SecretDir::new(&pki.server());
    let (cert, key) = (
        secret.cert().display().to_string(),
        secret.key().display().to_string(),
    );
    let mut args = vec!["--tls-cert", &cert, "--tls-key", &key];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    (server, pki, secret)
}
