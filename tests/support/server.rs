//! The real `daemonset-guard serve` on 127.0.0.1 with ephemeral ports, killed on drop.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use daemonset_guard::admission::Endpoint;

use super::{
    answer, bin, client, client_config, get, golden, post_review, tls_connect, Ca, Http, SecretDir,
    PATIENCE,
};

/// Lines of server output kept for [`Server::logs`] (stdout and stderr together).
const LOG_LINES: usize = 10_000;

/// Where the server's TLS certificate comes from.
enum Tls {
    /// A fresh test CA and a serving certificate in a Secret-like directory.
    TestCa,
    /// Files the test made (say with certs-gen).
    Files(PathBuf, PathBuf),
    /// No flags: the server makes its own development CA.
    Development,
}

/// How to start a [`Server`]; see [`Server::builder`].
pub struct ServerBuilder {
    bin: PathBuf,
    tls: Tls,
    client_ca: Option<String>,
    args: Vec<OsString>,
}

impl ServerBuilder {
    /// One more command-line argument after the listen, log and TLS flags.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Self {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Runs another build of the server (default: this crate's `daemonset-guard`).
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.bin = path.into();
        self
    }

    /// `--config PATH`.
    pub fn config(self, path: &Path) -> Self {
        self.arg("--config").arg(path)
    }

    /// Requires client certificates signed by `ca_pem` (`--client-ca`).
    pub fn client_ca(mut self, ca_pem: &str) -> Self {
        self.client_ca = Some(ca_pem.to_string());
        self
    }

    /// Serves `cert` and `key` instead of a certificate of the test CA.
    pub fn tls_files(mut self, cert: &Path, key: &Path) -> Self {
        self.tls = Tls::Files(cert.to_path_buf(), key.to_path_buf());
        self
    }

    /// No TLS flags: development mode, where the server makes its own CA.
    pub fn development(mut self) -> Self {
        self.tls = Tls::Development;
        self
    }

    /// Starts the server and waits until it logs its addresses; panics after [`PATIENCE`].
    pub fn start(self) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(&self.bin);
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .args(["--log-format", "json"]);
        // Never the default port: tests run in parallel.
        if !self.args.iter().any(|a| a == "--lint-listen") {
            cmd.args(["--lint-listen", "127.0.0.1:0"]);
        }
        let pki = match self.tls {
            Tls::TestCa => {
                let ca = Ca::new("daemonset-guard test CA");
                let secret = SecretDir::tls(&ca.server());
                cmd.arg("--tls-cert").arg(secret.cert());
                cmd.arg("--tls-key").arg(secret.key());
                Some((ca, secret))
            }
            Tls::Files(cert, key) => {
                cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
                None
            }
            Tls::Development => None,
        };
        if let Some(pem) = &self.client_ca {
            let path = dir.path().join("client-ca.pem");
            std::fs::write(&path, pem).unwrap();
            cmd.arg("--client-ca").arg(path);
        }
        cmd.args(&self.args)
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
                    if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        if v["message"] == "listening" {
                            let _ = tx.send(v);
                        }
                    }
                    let mut log = log.lock().unwrap();
                    if log.len() >= LOG_LINES {
                        log.pop_front();
                    }
                    log.push_back(line);
                }
            });
        }
        drop(tx);
        let mut server = Server {
            child,
            https: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics: SocketAddr::from(([127, 0, 0, 1], 0)),
            listening: Value::Null,
            pki,
            dir,
            log,
        };
        let Ok(listening) = rx.recv_timeout(PATIENCE) else {
            let _ = server.child.kill();
            let status = server.child.wait().ok();
            // Let the readers catch the last lines.
            std::thread::sleep(Duration::from_millis(200));
            panic!(
                "the server did not report its addresses ({status:?}); log:\n{}",
                server.log()
            );
        };
        server.https = listener(&listening, "https");
        server.metrics = listener(&listening, "metrics");
        server.listening = listening;
        server
    }
}

fn listener(listening: &Value, name: &str) -> SocketAddr {
    listening[name]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no {name} address in {listening}"))
}

/// A running `daemonset-guard serve`.
pub struct Server {
    pub child: Child,
    pub https: SocketAddr,
    pub metrics: SocketAddr,
    /// The `listening` log line, with every listener's address.
    pub listening: Value,
    pki: Option<(Ca, SecretDir)>,
    /// Scratch space that lives as long as the server.
    pub dir: tempfile::TempDir,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Server {
    /// Serve with a fresh test CA, unless the builder says otherwise.
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            bin: bin().into(),
            tls: Tls::TestCa,
            client_ca: None,
            args: Vec::new(),
        }
    }

    /// The test CA that signed the serving certificate.
    pub fn ca(&self) -> &Ca {
        &self
            .pki
            .as_ref()
            .expect("server started with the test CA")
            .0
    }

    /// The Secret-like directory the serving certificate is read from.
    pub fn secret(&self) -> &SecretDir {
        &self
            .pki
            .as_ref()
            .expect("server started with the test CA")
            .1
    }

    /// The address a `listening` log field names (`https`, `metrics`, ...).
    pub fn listener(&self, name: &str) -> SocketAddr {
        listener(&self.listening, name)
    }

    /// `https://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.https.port())
    }

    /// `https://127.0.0.1:PORT{path}` on the /lint listener.
    pub fn lint_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.listener("lint").port())
    }

    /// `http://127.0.0.1:PORT{path}` on the metrics listener.
    pub fn metrics_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.metrics.port())
    }

    /// The last lines the server wrote (stdout and stderr).
    pub fn logs(&self) -> Vec<String> {
        self.log.lock().unwrap().iter().cloned().collect()
    }

    /// [`Server::logs`] as one text.
    pub fn log(&self) -> String {
        self.logs().join("\n")
    }

    /// Waits until a JSON log line satisfies `pred`; panics after [`PATIENCE`].
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
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
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

    /// Waits for the process to exit; panics after [`PATIENCE`].
    pub fn wait_exit(&mut self) -> ExitStatus {
        self.wait_exit_within(PATIENCE)
            .unwrap_or_else(|| panic!("server did not exit; log:\n{}", self.log()))
    }

    /// Waits at most `bound` for the process to exit.
    pub fn wait_exit_within(&mut self, bound: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + bound;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// A rustls client config trusting the test CA, offering `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> rustls::ClientConfig {
        client_config(&self.ca().pem, None, alpn)
    }

    /// An HTTPS client trusting the test CA.
    pub fn http(&self, http: Http) -> reqwest::Client {
        client(&self.ca().pem, http)
    }

    /// A raw TLS connection trusting the test CA.
    pub async fn tls(&self, alpn: &[&[u8]]) -> std::io::Result<TlsStream<TcpStream>> {
        tls_connect(self.https, self.client_config(alpn)).await
    }

    /// A TLS connection to the /lint listener.
    pub async fn lint_tls(&self, alpn: &[&[u8]]) -> std::io::Result<TlsStream<TcpStream>> {
        tls_connect(self.listener("lint"), self.client_config(alpn)).await
    }

    /// `GET` on the plain-HTTP metrics listener: `(status, body)`.
    pub async fn metrics_get(&self, path: &str) -> (u16, String) {
        let resp = get(&self.metrics_url(path))
            .await
            .expect("metrics listener answers");
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    /// The value of one sample of `/metrics` (exact series name with labels), 0 if absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let (_, text) = self.metrics_get("/metrics").await;
        metric_value(&text, series)
    }

    /// Waits until `series` reaches at least `value`; panics after [`PATIENCE`].
    pub async fn wait_for_metric(&self, series: &str, value: f64) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let got = self.metric(series).await;
            if got >= value {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{series} stayed at {got}, wanted {value}; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// VmRSS of the server process in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of one sample (exact series name with labels) in Prometheus text, 0 if absent.
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
        .unwrap_or(0.0)
}

/// VmRSS of process `pid` in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

impl Server {
    /// A valid request still gets its reviewed answer.
    pub async fn assert_serving(&self) {
        const FIXTURE: &str = "create-busybox-minimal.json";
        let body = super::fixture(FIXTURE);
        let resp = post_review(&self.http(Http::H1), &self.url("/validate"), body)
            .await
            .unwrap_or_else(|e| panic!("server no longer serving: {e}\n{}", self.log()));
        assert_eq!(resp.status(), 200);
        let got = answer(&resp.bytes().await.unwrap()).unwrap();
        assert_eq!(got, golden(Endpoint::Validate, FIXTURE));
    }
}
