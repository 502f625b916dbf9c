//! Shared by the `reliability_*` integration tests: starts the real `daemonset-guard serve`
//! binary on 127.0.0.1 with real TLS (certificates made here with rcgen, laid out as a Kubernetes
//! Secret volume), and the clients that talk to it (reqwest over HTTP/1.1 and HTTP/2, raw TLS
//! and raw TCP for hostile input).
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use daemonset_guard::admission::{self, Endpoint, Policies};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Upper bound for any single wait in these tests: they must stop by themselves.
pub const WAIT: Duration = Duration::from_secs(60);

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_daemonset-guard")
}

pub fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(rel)
}

/// `(file name, body)` of every real AdmissionReview in `../shared/fixtures/admission/`.
pub fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = shared("fixtures/admission");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (symlink /work/wt/shared -> /work/shared?)",
                dir.display()
            )
        })
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no fixtures in {}", dir.display());
    out
}

/// What the server must answer for one request: computed in-process by the same library with
/// the default policy, so the check follows the rules as they evolve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub uid: String,
    pub allowed: bool,
    pub patch: Option<String>,
}

pub fn expected(endpoint: Endpoint, body: &[u8]) -> Expected {
    let r = admission::review(endpoint, body, &Policies::default()).expect("fixture is answered");
    Expected {
        uid: r.reply.response.uid,
        allowed: r.reply.response.allowed,
        patch: r.reply.response.patch,
    }
}

/// The same fields read from a server's answer.
pub fn answer(body: &[u8]) -> Result<Expected, String> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| format!("reply is not JSON ({e}): {}", String::from_utf8_lossy(body)))?;
    if v["apiVersion"] != "admission.k8s.io/v1" || v["kind"] != "AdmissionReview" {
        return Err(format!("not an AdmissionReview v1: {v}"));
    }
    let r = &v["response"];
    Ok(Expected {
        uid: r["uid"].as_str().unwrap_or_default().to_string(),
        allowed: r["allowed"]
            .as_bool()
            .ok_or_else(|| format!("no response.allowed: {v}"))?,
        patch: r["patch"].as_str().map(str::to_string),
    })
}

/// A test CA that signs serving and client certificates.
pub struct Ca {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

static SERIAL: AtomicU64 = AtomicU64::new(1);

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("{name} test CA"));
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    fn leaf(
        &self,
        cn: &str,
        sans: Vec<SanType>,
        usage: ExtendedKeyUsagePurpose,
    ) -> (String, String) {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        // Distinct serials so every rotation serves a certificate that differs in its bytes.
        params.serial_number = Some(SERIAL.fetch_add(1, Ordering::Relaxed).into());
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A serving certificate for 127.0.0.1 and localhost: `(cert PEM, key PEM)`.
    pub fn server_cert(&self) -> (String, String) {
        self.leaf(
            "daemonset-guard",
            vec![
                SanType::IpAddress([127, 0, 0, 1].into()),
                SanType::DnsName("localhost".try_into().unwrap()),
            ],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate, as the API server presents for mutual TLS.
    pub fn client_cert(&self, cn: &str) -> (String, String) {
        self.leaf(cn, vec![], ExtendedKeyUsagePurpose::ClientAuth)
    }
}

pub fn der(cert_pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()
}

/// A directory laid out like a Kubernetes Secret volume: `tls.crt -> ..data/tls.crt`,
/// `..data -> ..<version>`; [`SecretDir::publish`] swaps `..data` atomically, as the kubelet does.
pub struct SecretDir {
    pub root: PathBuf,
    version: u64,
    current: Option<PathBuf>,
}

impl SecretDir {
    pub fn new(root: &Path, files: &[(&str, &str)]) -> SecretDir {
        std::fs::create_dir_all(root).unwrap();
        let mut s = SecretDir {
            root: root.to_path_buf(),
            version: 0,
            current: None,
        };
        s.publish(files);
        for (name, _) in files {
            std::os::unix::fs::symlink(format!("..data/{name}"), root.join(name)).unwrap();
        }
        s
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Writes a new version directory, swaps `..data` to it with one rename, then removes the
    /// previous version.
    pub fn publish(&mut self, files: &[(&str, &str)]) {
        self.version += 1;
        let name = format!(
            "..2026_01_01_00_00_{:02}.{}",
            self.version % 60,
            self.version
        );
        let dir = self.root.join(&name);
        std::fs::create_dir(&dir).unwrap();
        for (file, content) in files {
            std::fs::write(dir.join(file), content).unwrap();
        }
        let tmp = self.root.join("..data_tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&name, &tmp).unwrap();
        std::fs::rename(&tmp, self.root.join("..data")).unwrap();
        if let Some(old) = self.current.replace(dir) {
            std::fs::remove_dir_all(old).unwrap();
        }
    }
}

/// How to start the server.
#[derive(Default)]
pub struct Opts {
    pub client_ca: Option<String>,
    pub config: Option<PathBuf>,
    pub args: Vec<String>,
}

/// A running `daemonset-guard serve`; killed on drop.
pub struct Server {
    pub child: Child,
    pub https: SocketAddr,
    pub metrics: SocketAddr,
    pub lint: SocketAddr,
    pub ca: Ca,
    pub secret: SecretDir,
    pub dir: tempfile::TempDir,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Server {
    pub fn start(opts: Opts) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("serving");
        let (cert, key) = ca.server_cert();
        let secret = SecretDir::new(
            &dir.path().join("tls"),
            &[("tls.crt", &cert), ("tls.key", &key)],
        );
        let mut cmd = Command::new(bin());
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--lint-listen",
            "127.0.0.1:0",
        ])
        .args(["--log-format", "json"])
        .arg("--tls-cert")
        .arg(secret.path("tls.crt"))
        .arg("--tls-key")
        .arg(secret.path("tls.key"));
        if let Some(pem) = &opts.client_ca {
            let path = dir.path().join("client-ca.pem");
            std::fs::write(&path, pem).unwrap();
            cmd.arg("--client-ca").arg(path);
        }
        if let Some(path) = &opts.config {
            cmd.arg("--config").arg(path);
        }
        cmd.args(&opts.args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start daemonset-guard serve");
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let (log, tx) = (log.clone(), tx.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                        if let (Some(h), Some(m), Some(l)) = (
                            v["https"].as_str(),
                            v["metrics"].as_str(),
                            v["lint"].as_str(),
                        ) {
                            let _ = tx.send((
                                h.parse().unwrap(),
                                m.parse().unwrap(),
                                l.parse().unwrap(),
                            ));
                        }
                    }
                    let mut log = log.lock().unwrap();
                    if log.len() >= 400 {
                        log.pop_front();
                    }
                    log.push_back(line);
                }
            });
        }
        drop(tx);
        let (https, metrics, lint) = match rx.recv_timeout(WAIT) {
            Ok(addrs) => addrs,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "the server did not report its addresses ({status:?}); log:\n{}",
                    log.lock()
                        .unwrap()
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
        };
        Server {
            child,
            https,
            metrics,
            lint,
            ca,
            secret,
            dir,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines the server logged.
    pub fn log(&self) -> String {
        self.log
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.https.port())
    }

    /// The same on the /lint listener.
    pub fn lint_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.lint.port())
    }

    pub fn client_config(&self, alpn: &[&[u8]]) -> rustls::ClientConfig {
        client_config(&self.ca.pem, None, alpn)
    }

    /// reqwest over HTTP/1.1 (`h2 = false`) or HTTP/2 (ALPN h2), trusting the test CA.
    pub fn http(&self, h2: bool) -> reqwest::Client {
        http_client(client_config(&self.ca.pem, None, &[]), h2)
    }

    pub async fn tls(&self, alpn: &[&[u8]]) -> std::io::Result<TlsStream<TcpStream>> {
        tls_connect(self.https, self.client_config(alpn)).await
    }

    /// A TLS connection to the /lint listener.
    pub async fn lint_tls(&self, alpn: &[&[u8]]) -> std::io::Result<TlsStream<TcpStream>> {
        tls_connect(self.lint, self.client_config(alpn)).await
    }

    /// `GET` on the plain-HTTP metrics listener: `(status, body)`.
    pub async fn metrics_get(&self, path: &str) -> (u16, String) {
        let url = format!("http://127.0.0.1:{}{path}", self.metrics.port());
        // reqwest needs a TLS provider even for plain HTTP: reuse the HTTP/1.1 client.
        let resp = self
            .http(false)
            .get(url)
            .send()
            .await
            .expect("metrics listener answers");
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    /// The value of one sample of `/metrics` (exact series name with labels), 0 if absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let (_, text) = self.metrics_get("/metrics").await;
        metric_value(&text, series)
    }

    /// VmRSS of the server process in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM failed");
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self, bound: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < bound {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// A valid request still gets a correct answer.
    pub async fn assert_serving(&self) {
        let (_, body) = &fixtures()[0];
        let resp = self
            .http(false)
            .post(self.url("/validate"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("server no longer serving: {e}\n{}", self.log()));
        assert_eq!(resp.status(), 200);
        let got = answer(&resp.bytes().await.unwrap()).unwrap();
        assert_eq!(got, expected(Endpoint::Validate, body));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
        .unwrap_or(0.0)
}

pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls client config trusting `ca_pem`, with an optional client certificate.
pub fn client_config(
    ca_pem: &str,
    client: Option<(&str, &str)>,
    alpn: &[&[u8]],
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der(ca_pem)).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![der(cert)],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

pub fn http_client(mut tls: rustls::ClientConfig, h2: bool) -> reqwest::Client {
    tls.alpn_protocols = if h2 {
        vec![b"h2".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    let builder = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(WAIT)
        .no_proxy();
    let builder = if h2 {
        builder.http2_prior_knowledge()
    } else {
        builder.http1_only()
    };
    builder.build().unwrap()
}

pub async fn tls_connect(
    addr: SocketAddr,
    config: rustls::ClientConfig,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let connector = TlsConnector::from(Arc::new(config));
    connector
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
}

/// The certificate a fresh TLS connection is served.
pub async fn served_cert(
    addr: SocketAddr,
    ca_pem: &str,
) -> std::io::Result<CertificateDer<'static>> {
    let tls = tls_connect(addr, client_config(ca_pem, None, &[])).await?;
    let (_, conn) = tls.get_ref();
    Ok(conn
        .peer_certificates()
        .and_then(|c| c.first())
        .cloned()
        .expect("the server presents a certificate"))
}

/// A parsed HTTP/1.1 response read from a raw stream.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `message` of a Kubernetes Status body (or the whole body).
    pub fn message(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| self.text())
    }
}

/// Reads one HTTP/1.1 response with a Content-Length body (what the server sends).
pub async fn read_response<S: AsyncReadExt + Unpin>(s: &mut S) -> std::io::Result<RawResponse> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "closed before a full response head: {:?}",
                    String::from_utf8_lossy(&buf)
                ),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line: {head}")))?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(len);
    Ok(RawResponse { status, head, body })
}

/// A raw HTTP/1.1 POST head (Connection: close).
pub fn post_head(path: &str, len: usize) -> String {
    format!(
        "POST {path}?timeout=5s HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
         content-length: {len}\r\nconnection: close\r\n\r\n"
    )
}

/// POSTs `body` over a fresh raw TLS connection and reads the response.
pub async fn raw_post(server: &Server, path: &str, body: &[u8]) -> std::io::Result<RawResponse> {
    let mut tls = server.tls(&[b"http/1.1"]).await?;
    tls.write_all(post_head(path, body.len()).as_bytes())
        .await?;
    tls.write_all(body).await?;
    tls.flush().await?;
    read_response(&mut tls).await
}

/// p50 and p99 of latencies.
pub fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    (at(0.50), at(0.99))
}

/// Builds an AdmissionReview v1 around `object`.
pub fn review(uid: &str, operation: &str, object: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "apps", "version": "v1", "kind": "DaemonSet"},
            "resource": {"group": "apps", "version": "v1", "resource": "daemonsets"},
            "name": object["metadata"]["name"],
            "namespace": "default",
            "operation": operation,
            "userInfo": {"username": "reliability-test"},
            "object": object,
            "dryRun": false
        }
    })
}
