//! Load benchmark: `daemonset-guard serve` against the baseline server (`examples/baseline.rs`,
//! the same TLS + HTTP + JSON stack with no policy), on this machine, in one run.
//!
//! Run it with `scripts/loadbench.sh` (builds the release binaries first). It
//! 1. generates a CA and a server certificate for 127.0.0.1 and passes them to both servers, so
//!    the client trusts a known CA;
//! 2. measures the time from process spawn to the first `200` on `GET /readyz` over TLS, several
//!    times for each server;
//! 3. starts both servers once more, records their idle RSS, then drives them over TLS with
//!    keep-alive at each concurrency, over HTTP/1.1 (one connection per worker) and HTTP/2 (one
//!    connection, one stream per worker, as the API server does), for each endpoint, in
//!    alternating rounds (baseline, validate, mutate, baseline, ...), so that background load on a
//!    shared machine hits every target alike;
//! 4. prints requests/s, p50, p99 and server CPU time per request, each with its ratio to the
//!    baseline, and the peak RSS under load.
//!
//! Everything stays on 127.0.0.1; every measurement is bounded in time and requests; the servers
//! are killed when the benchmark ends, fails, panics or is interrupted.

use std::fmt::Write as _;
use std::fs::File;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::{http1, http2};
use hyper::{header, Method, Request, StatusCode, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The API server calls webhooks with its timeout in the query string.
const QUERY: &str = "?timeout=5s";
/// USER_HZ: the unit of utime/stime in /proc/PID/stat; 100 on every Linux ABI in use.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;
/// A request that takes longer than this is an error, and its worker stops.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server may take to become ready before the benchmark gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Parser, Debug)]
#[command(about = "Load benchmark: daemonset-guard serve vs the baseline TLS+HTTP+JSON server")]
struct Args {
    /// The daemonset-guard binary (default: next to this example's directory).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// The baseline server binary (default: next to this example).
    #[arg(long)]
    baseline_bin: Option<PathBuf>,
    /// AdmissionReview sent on every request (re-serialized compactly, as the API server sends it).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/admission/create-fluentd.json"))]
    fixture: PathBuf,
    /// Moves the fixture's DaemonSet to this namespace (request and object), e.g. out of
    /// kube-system, whose default exemptions skip the security rules, to exercise the patch and
    /// warning paths.
    #[arg(long)]
    namespace: Option<String>,
    /// Policy file passed to `serve --config` (default: the embedded policy).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Concurrency levels (workers, each with one request in flight).
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// Protocols: h1 (one connection per worker) and/or h2 (one connection for all workers).
    #[arg(long, value_delimiter = ',', default_value = "h1,h2")]
    protocols: Vec<Proto>,
    /// Endpoints of daemonset-guard to measure.
    #[arg(long, value_delimiter = ',', default_value = "validate,mutate")]
    endpoints: Vec<String>,
    /// Alternating rounds per cell (baseline, endpoint..., baseline, endpoint..., ...).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Measured seconds per target per round.
    #[arg(long, default_value_t = 2.0)]
    duration: f64,
    /// Unmeasured seconds before each measurement, on the same connections.
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// Upper bound of requests per measurement.
    #[arg(long, default_value_t = 2_000_000)]
    max_requests: u64,
    /// Process starts per server for the start-to-ready time.
    #[arg(long, default_value_t = 5)]
    starts: usize,
    /// Worker threads of the load generator (the servers use their own defaults).
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// Clients posting a large manifest stream to `/lint` back to back (each on its own HTTP/2
    /// connection, ignoring 503s) while the endpoints named `ENDPOINT+lintflood` (e.g.
    /// `validate+lintflood`) are measured.
    #[arg(long, default_value_t = 64)]
    lint_flood: usize,
    /// Nice value of the `/lint` flood's client thread. 0 (the default): the flood's clients
    /// compete for this machine's cores with the server as much as the measured clients do;
    /// 19: they only use what the others leave, as clients in other pods, with CPU of their own,
    /// would not take the server's.
    #[arg(long, default_value_t = 0)]
    flood_nice: i32,
    /// Send the `/lint` flood to a second daemonset-guard process instead of the measured one:
    /// the control that tells the flood's cost to the machine (its clients, the kernel's
    /// loopback copies, caches) apart from its cost to the measured server.
    #[arg(long)]
    flood_elsewhere: bool,
    /// Body of the `/lint` flood (default: the shared DaemonSet corpus repeated to 3 MB).
    #[arg(long)]
    lint_body: Option<PathBuf>,
    /// Keep the servers' logs here instead of a temporary directory.
    #[arg(long)]
    log_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Proto {
    H1,
    H2,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::H1 => "h1",
            Proto::H2 => "h2",
        }
    }
    fn alpn(self) -> &'static [u8] {
        match self {
            Proto::H1 => b"http/1.1",
            Proto::H2 => b"h2",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Baseline,
    Guard,
}

/// A server child process, killed when dropped (end, error, panic, interrupt).
struct Server {
    kind: Kind,
    child: Child,
    addr: SocketAddr,
    /// The /lint listener (daemonset-guard only).
    lint_addr: SocketAddr,
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything needed to start a server and talk to it.
struct Setup {
    guard_bin: PathBuf,
    baseline_bin: PathBuf,
    config: Option<PathBuf>,
    cert: PathBuf,
    key: PathBuf,
    logs: PathBuf,
    tls_h1: TlsConnector,
    tls_h2: TlsConnector,
    body: Bytes,
    uid: String,
    lint_body: Bytes,
}

impl Setup {
    fn tls(&self, proto: Proto) -> &TlsConnector {
        match proto {
            Proto::H1 => &self.tls_h1,
            Proto::H2 => &self.tls_h2,
        }
    }

    fn spawn(&self, kind: Kind, tag: &str) -> anyhow::Result<(Server, Instant)> {
        let addr = free_addr()?;
        let lint_addr = free_addr()?;
        let log_path = self.logs.join(format!("{}-{tag}.log", kind_name(kind)));
        let log =
            File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let mut cmd = match kind {
            Kind::Guard => {
                let mut cmd = Command::new(&self.guard_bin);
                cmd.arg("serve")
                    .arg("--listen")
                    .arg(addr.to_string())
                    .arg("--metrics-listen")
                    .arg(free_addr()?.to_string())
                    .arg("--lint-listen")
                    .arg(lint_addr.to_string())
                    .arg("--log-format")
                    .arg("json");
                if let Some(config) = &self.config {
                    cmd.arg("--config").arg(config);
                }
                cmd
            }
            Kind::Baseline => {
                let mut cmd = Command::new(&self.baseline_bin);
                cmd.arg("--listen").arg(addr.to_string());
                cmd
            }
        };
        cmd.arg("--tls-cert")
            .arg(&self.cert)
            .arg("--tls-key")
            .arg(&self.key)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let started = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", cmd.get_program().to_string_lossy()))?;
        Ok((
            Server {
                kind,
                child,
                addr,
                lint_addr,
            },
            started,
        ))
    }

    /// Polls `GET /readyz` over TLS until it answers 200; returns the time since `started`.
    async fn wait_ready(&self, server: &mut Server, started: Instant) -> anyhow::Result<Duration> {
        loop {
            if let Ok(mut conn) = Conn::open(self.tls(Proto::H1), server.addr, Proto::H1).await {
                if let Ok((status, _)) = conn.get("/readyz").await {
                    if status == StatusCode::OK {
                        return Ok(started.elapsed());
                    }
                }
            }
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "{} exited with {status} before becoming ready; its log is in {}",
                    kind_name(server.kind),
                    self.logs.display()
                );
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "{} not ready after {READY_TIMEOUT:?}",
                    kind_name(server.kind)
                );
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    async fn start(&self, kind: Kind, tag: &str) -> anyhow::Result<(Server, Duration)> {
        let (mut server, started) = self.spawn(kind, tag)?;
        let ready = self.wait_ready(&mut server, started).await?;
        Ok((server, ready))
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Baseline => "baseline",
        Kind::Guard => "daemonset-guard",
    }
}

/// An unused port on 127.0.0.1 (the tiny race with other processes is acceptable here).
fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(StdListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// One client connection over TLS with the protocol negotiated by ALPN.
enum Conn {
    H1(http1::SendRequest<Full<Bytes>>, Uri),
    H2(http2::SendRequest<Full<Bytes>>, Uri),
}

impl Conn {
    async fn open(tls: &TlsConnector, addr: SocketAddr, proto: Proto) -> anyhow::Result<Conn> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::IpAddress(addr.ip().into());
        let stream = tls.connect(name, tcp).await?;
        let alpn = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        if alpn.as_deref() != Some(proto.alpn()) {
            bail!(
                "the server negotiated ALPN {:?}, not {}",
                alpn.map(|a| String::from_utf8_lossy(&a).into_owned()),
                proto.name()
            );
        }
        let io = TokioIo::new(stream);
        let base: Uri = format!("https://{addr}/").parse()?;
        Ok(match proto {
            Proto::H1 => {
                let (send, conn) = http1::handshake(io).await?;
                tokio::spawn(conn);
                Conn::H1(send, base)
            }
            Proto::H2 => {
                let (send, conn) = http2::handshake(TokioExecutor::new(), io).await?;
                tokio::spawn(conn);
                Conn::H2(send, base)
            }
        })
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> anyhow::Result<Request<Full<Bytes>>> {
        let (base, h2) = match self {
            Conn::H1(_, base) => (base, false),
            Conn::H2(_, base) => (base, true),
        };
        let authority = base.authority().map(|a| a.as_str()).unwrap_or_default();
        // HTTP/2 takes :scheme and :authority from an absolute URI; HTTP/1.1 sends origin-form
        // with a Host header, as Go's client (the API server) does.
        let uri = if h2 {
            format!("https://{authority}{path}")
        } else {
            path.to_string()
        };
        let mut builder = Request::builder().method(method).uri(uri);
        if !h2 {
            builder = builder.header(header::HOST, authority);
        }
        if !body.is_empty() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        Ok(builder
            .header(header::ACCEPT, "application/json, */*")
            .header(header::ACCEPT_ENCODING, "gzip")
            .header(header::USER_AGENT, "kube-apiserver-admission")
            .body(Full::new(body))?)
    }

    async fn send(&mut self, req: Request<Full<Bytes>>) -> anyhow::Result<(StatusCode, Bytes)> {
        let resp = match self {
            Conn::H1(send, _) => {
                send.ready().await?;
                send.send_request(req).await?
            }
            Conn::H2(send, _) => {
                send.ready().await?;
                send.send_request(req).await?
            }
        };
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    async fn get(&mut self, path: &str) -> anyhow::Result<(StatusCode, Bytes)> {
        let req = self.request(Method::GET, path, Bytes::new())?;
        self.send(req).await
    }

    /// A second handle on the same HTTP/2 connection (a new stream per request).
    fn share(&self) -> Option<Conn> {
        match self {
            Conn::H2(send, base) => Some(Conn::H2(send.clone(), base.clone())),
            Conn::H1(..) => None,
        }
    }
}

/// Utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("unexpected /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `rest` starts at field 3.
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    Ok((utime + stime) as f64 / CLOCK_TICKS_PER_SEC)
}

/// A `Vm*` line of /proc/PID/status, in KiB.
fn status_kib(pid: u32, key: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {key} in /proc/{pid}/status"))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// What one target did over all rounds of one cell.
#[derive(Default)]
struct Tally {
    latencies_ns: Vec<u64>,
    requests: u64,
    errors: u64,
    elapsed: Duration,
    cpu: f64,
    first_error: Option<String>,
}

impl Tally {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    fn cpu_us_per_request(&self) -> f64 {
        self.cpu * 1e6 / (self.requests.max(1) as f64)
    }
    /// Nearest-rank percentile, in milliseconds; `latencies_ns` must be sorted.
    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_ns.is_empty() {
            return f64::NAN;
        }
        let rank = ((p * self.latencies_ns.len() as f64).ceil() as usize).max(1);
        self.latencies_ns[rank.min(self.latencies_ns.len()) - 1] as f64 / 1e6
    }
}

/// Opens the connections for `concurrency` workers: one each over h1, one shared over h2.
async fn connect_workers(
    tls: &TlsConnector,
    addr: SocketAddr,
    proto: Proto,
    concurrency: usize,
) -> anyhow::Result<Vec<Conn>> {
    let mut conns = Vec::with_capacity(concurrency);
    match proto {
        Proto::H1 => {
            for _ in 0..concurrency {
                conns.push(Conn::open(tls, addr, proto).await?);
            }
        }
        Proto::H2 => {
            let first = Conn::open(tls, addr, proto).await?;
            for _ in 1..concurrency {
                conns.push(first.share().context("h2 connection not shareable")?);
            }
            conns.push(first);
        }
    }
    Ok(conns)
}

struct WorkerResult {
    conn: Conn,
    latencies_ns: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

/// Sends requests back to back on `conn` until `deadline` or until `budget` runs out.
async fn worker(
    mut conn: Conn,
    path: Arc<str>,
    body: Bytes,
    deadline: Instant,
    budget: Arc<AtomicU64>,
    record: bool,
) -> WorkerResult {
    let mut latencies_ns = Vec::with_capacity(if record { 4096 } else { 0 });
    let mut errors = 0;
    let mut first_error = None;
    while Instant::now() < deadline {
        if budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
            .is_err()
        {
            break;
        }
        let req = match conn.request(Method::POST, &path, body.clone()) {
            Ok(req) => req,
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| e.to_string());
                break;
            }
        };
        let t0 = Instant::now();
        let res = tokio::time::timeout(REQUEST_TIMEOUT, conn.send(req)).await;
        let dt = t0.elapsed();
        match res {
            Ok(Ok((StatusCode::OK, _))) => {
                if record {
                    latencies_ns.push(dt.as_nanos() as u64);
                }
            }
            Ok(Ok((status, body))) => {
                errors += 1;
                first_error.get_or_insert_with(|| {
                    format!("HTTP {status}: {}", String::from_utf8_lossy(&body))
                });
            }
            Ok(Err(e)) => {
                errors += 1;
                first_error.get_or_insert_with(|| e.to_string());
                break;
            }
            Err(_) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("timeout after {REQUEST_TIMEOUT:?}"));
                break;
            }
        }
    }
    WorkerResult {
        conn,
        latencies_ns,
        errors,
        first_error,
    }
}

/// Runs the workers for `seconds` (all connections shared by the phase) and returns the
/// connections for the next phase.
async fn phase(
    conns: Vec<Conn>,
    path: &Arc<str>,
    body: &Bytes,
    seconds: f64,
    max_requests: u64,
    record: bool,
    tally: &mut Tally,
) -> anyhow::Result<Vec<Conn>> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let budget = Arc::new(AtomicU64::new(max_requests));
    let handles: Vec<_> = conns
        .into_iter()
        .map(|conn| {
            tokio::spawn(worker(
                conn,
                path.clone(),
                body.clone(),
                deadline,
                budget.clone(),
                record,
            ))
        })
        .collect();
    let mut conns = Vec::with_capacity(handles.len());
    let mut results = Vec::with_capacity(handles.len());
    for h in handles {
        results.push(h.await?);
    }
    let elapsed = start.elapsed();
    for r in results {
        if record {
            tally.requests += r.latencies_ns.len() as u64;
            tally.latencies_ns.extend(r.latencies_ns);
            tally.errors += r.errors;
            if tally.first_error.is_none() {
                tally.first_error = r.first_error;
            }
        } else if let Some(e) = r.first_error {
            bail!("warm-up failed: {e}");
        }
        conns.push(r.conn);
    }
    if record {
        tally.elapsed += elapsed;
    }
    Ok(conns)
}

/// One measurement: fresh connections, warm-up, then `duration` seconds measured, with the
/// server's CPU time read around it.
async fn measure(
    setup: &Setup,
    args: &Args,
    server: &Server,
    proto: Proto,
    concurrency: usize,
    endpoint: &str,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let (endpoint, flood) = match endpoint.strip_suffix("+lintflood") {
        Some(e) => (e, args.lint_flood),
        None => (endpoint, 0),
    };
    let sink = if flood > 0 && args.flood_elsewhere {
        Some(setup.start(Kind::Guard, "flood-sink").await?.0)
    } else {
        None
    };
    let flood_addr = sink.as_ref().map_or(server.lint_addr, |s| s.lint_addr);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The flood runs on a runtime of its own, so that its clients do not delay the measured
    // ones inside this process (in a cluster they would be other pods).
    let flood_nice = args.flood_nice;
    let flood_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .on_thread_start(move || {
            if flood_nice != 0 {
                // SAFETY: plain syscalls on the calling thread with no pointers.
                unsafe {
                    let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                    let _ = libc::setpriority(libc::PRIO_PROCESS, tid, flood_nice);
                }
            }
        })
        .enable_all()
        .build()?;
    let flooders: Vec<_> = (0..flood)
        .map(|_| {
            flood_rt.spawn(lint_flood_worker(
                setup.tls(Proto::H2).clone(),
                flood_addr,
                setup.lint_body.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let conns = connect_workers(setup.tls(proto), server.addr, proto, concurrency).await?;
    let path: Arc<str> = format!("/{endpoint}{QUERY}").into();
    let conns = phase(
        conns,
        &path,
        &setup.body,
        args.warmup,
        args.max_requests,
        false,
        tally,
    )
    .await?;
    let cpu_before = cpu_seconds(server.pid())?;
    let conns = phase(
        conns,
        &path,
        &setup.body,
        args.duration,
        args.max_requests,
        true,
        tally,
    )
    .await?;
    tally.cpu += cpu_seconds(server.pid())? - cpu_before;
    drop(conns);
    stop.store(true, Ordering::Relaxed);
    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    for f in flooders {
        for (k, v) in f.await? {
            *counts.entry(k).or_default() += v;
        }
    }
    flood_rt.shutdown_background();
    if flood > 0 {
        println!(
            "    /lint flood x{flood} during {} {endpoint}: {counts:?}; server RSS {:.1} MiB, peak {:.1} MiB",
            proto.name(),
            status_kib(server.pid(), "VmRSS")? as f64 / 1024.0,
            status_kib(server.pid(), "VmHWM")? as f64 / 1024.0
        );
    }
    Ok(())
}

/// Posts `body` to `/lint` back to back on one HTTP/2 connection (a new one after an error)
/// until `stop`; returns the count of each answer.
async fn lint_flood_worker(
    tls: TlsConnector,
    addr: SocketAddr,
    body: Bytes,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::collections::BTreeMap<String, u64> {
    let mut counts = std::collections::BTreeMap::new();
    let mut conn = None;
    while !stop.load(Ordering::Relaxed) {
        let c = match conn.take() {
            Some(c) => c,
            None => match Conn::open(&tls, addr, Proto::H2).await {
                Ok(c) => c,
                Err(_) => {
                    *counts.entry("connect error".to_string()).or_default() += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let mut c = c;
        let outcome = match c.request(Method::POST, "/lint", body.clone()) {
            Ok(req) => match tokio::time::timeout(REQUEST_TIMEOUT, c.send(req)).await {
                Ok(Ok((status, _))) => {
                    conn = Some(c);
                    status.as_u16().to_string()
                }
                Ok(Err(_)) => "error".to_string(),
                Err(_) => "timeout".to_string(),
            },
            Err(_) => "error".to_string(),
        };
        *counts.entry(outcome).or_default() += 1;
    }
    counts
}

/// The shared DaemonSet corpus as one YAML stream, repeated to at least 3 MB.
fn corpus_stream() -> anyhow::Result<Bytes> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/daemonsets");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut one = String::new();
    for f in &files {
        one.push_str("---\n");
        one.push_str(&std::fs::read_to_string(f)?);
        one.push('\n');
    }
    let mut out = String::new();
    while out.len() < 3_000_000 {
        out.push_str(&one);
    }
    Ok(Bytes::from(out))
}

/// Sends one request per endpoint and checks the reply is a real AdmissionReview for our uid.
async fn sanity_check(setup: &Setup, server: &Server, endpoints: &[String]) -> anyhow::Result<()> {
    for proto in [Proto::H1, Proto::H2] {
        let mut conn = Conn::open(setup.tls(proto), server.addr, proto).await?;
        for endpoint in endpoints {
            let req = conn.request(
                Method::POST,
                &format!("/{endpoint}{QUERY}"),
                setup.body.clone(),
            )?;
            let (status, body) = conn.send(req).await?;
            if status != StatusCode::OK {
                bail!(
                    "{} /{endpoint} over {}: HTTP {status}: {}",
                    kind_name(server.kind),
                    proto.name(),
                    String::from_utf8_lossy(&body)
                );
            }
            let reply: serde_json::Value = serde_json::from_slice(&body).with_context(|| {
                format!("{} /{endpoint}: reply is not JSON", kind_name(server.kind))
            })?;
            let response = &reply["response"];
            if response["uid"] != setup.uid.as_str() {
                bail!(
                    "{} /{endpoint}: reply does not echo the uid: {reply}",
                    kind_name(server.kind)
                );
            }
            if proto == Proto::H1 && server.kind == Kind::Guard {
                println!(
                    "  /{endpoint}: allowed={} patch={} bytes warnings={} reply={} bytes",
                    response["allowed"],
                    response["patch"].as_str().map_or(0, str::len),
                    response["warnings"].as_array().map_or(0, Vec::len),
                    body.len()
                );
            }
        }
    }
    Ok(())
}

fn client_tls(ca_pem: &str, proto: Proto) -> anyhow::Result<TlsConnector> {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![proto.alpn().to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// A CA and a server certificate for 127.0.0.1/localhost signed by it, written to `dir`.
fn write_certs(dir: &Path) -> anyhow::Result<(String, PathBuf, PathBuf)> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])?;
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = params.signed_by(&key, &issuer)?;
    let cert_path = dir.join("tls.crt");
    let key_path = dir.join("tls.key");
    std::fs::write(&cert_path, cert.pem())?;
    std::fs::write(&key_path, key.serialize_pem())?;
    std::fs::write(dir.join("ca.crt"), ca_cert.pem())?;
    Ok((ca_cert.pem(), cert_path, key_path))
}

fn default_bin(name: &str, from_examples_dir: bool) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .context("no directory for the current executable")?;
    let path = if from_examples_dir {
        dir.join(name)
    } else {
        dir.parent()
            .context("no target profile directory")?
            .join(name)
    };
    if !path.exists() {
        bail!(
            "{} not found; build it first (scripts/loadbench.sh does)",
            path.display()
        );
    }
    Ok(path)
}

fn summarize(times: &mut [Duration]) -> String {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "min {:.1} ms, median {:.1} ms, max {:.1} ms ({} starts)",
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
        times.len()
    )
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.concurrency.is_empty() || args.concurrency.contains(&0) {
        bail!("--concurrency needs positive values");
    }
    if args.rounds == 0 || args.duration <= 0.0 || args.starts == 0 {
        bail!("--rounds, --duration and --starts must be positive");
    }
    let tmp = tempfile::tempdir()?;
    let logs = match &args.log_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir.clone()
        }
        None => tmp.path().to_path_buf(),
    };
    let (ca_pem, cert, key) = write_certs(tmp.path())?;
    let fixture = std::fs::read(&args.fixture)
        .with_context(|| format!("reading {}", args.fixture.display()))?;
    let mut review: serde_json::Value = serde_json::from_slice(&fixture)?;
    if let Some(ns) = &args.namespace {
        review["request"]["namespace"] = ns.as_str().into();
        for field in ["object", "oldObject"] {
            if let Some(meta) = review["request"][field].get_mut("metadata") {
                meta["namespace"] = ns.as_str().into();
            }
        }
    }
    let uid = review["request"]["uid"]
        .as_str()
        .context("the fixture has no request.uid")?
        .to_string();
    let body = Bytes::from(serde_json::to_vec(&review)?);
    let setup = Setup {
        guard_bin: match &args.server_bin {
            Some(p) => p.clone(),
            None => default_bin("daemonset-guard", false)?,
        },
        baseline_bin: match &args.baseline_bin {
            Some(p) => p.clone(),
            None => default_bin("baseline", true)?,
        },
        config: args.config.clone(),
        cert,
        key,
        logs,
        tls_h1: client_tls(&ca_pem, Proto::H1)?,
        tls_h2: client_tls(&ca_pem, Proto::H2)?,
        body,
        uid,
        lint_body: match &args.lint_body {
            Some(p) => {
                Bytes::from(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?)
            }
            None => corpus_stream()?,
        },
    };
    let targets: Vec<(Kind, &str)> = std::iter::once((Kind::Baseline, "validate"))
        .chain(args.endpoints.iter().map(|e| (Kind::Guard, e.as_str())))
        .collect();
    let cells = args.protocols.len() * args.concurrency.len();
    let estimate =
        cells as f64 * args.rounds as f64 * targets.len() as f64 * (args.duration + args.warmup);
    println!(
        "daemonset-guard load benchmark: {} ({} bytes body), {} cells x {} rounds x {} targets, ~{:.0} s",
        args.fixture.display(),
        setup.body.len(),
        cells,
        args.rounds,
        targets.len(),
        estimate
    );
    println!(
        "cpus: {}, load average at start: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );

    // Start-to-ready, alternating the two servers.
    let mut ready_times = [Vec::new(), Vec::new()];
    for i in 0..args.starts {
        for (slot, kind) in [Kind::Baseline, Kind::Guard].into_iter().enumerate() {
            let (server, ready) = setup.start(kind, &format!("start{i}")).await?;
            drop(server);
            ready_times[slot].push(ready);
        }
    }

    let (baseline, _) = setup.start(Kind::Baseline, "load").await?;
    let (guard, _) = setup.start(Kind::Guard, "load").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = [
        (
            status_kib(baseline.pid(), "VmRSS")?,
            status_kib(baseline.pid(), "VmHWM")?,
        ),
        (
            status_kib(guard.pid(), "VmRSS")?,
            status_kib(guard.pid(), "VmHWM")?,
        ),
    ];
    println!("sanity check (daemonset-guard's replies to the fixture):");
    sanity_check(&setup, &baseline, &["validate".to_string()]).await?;
    let plain: Vec<String> = args
        .endpoints
        .iter()
        .map(|e| e.trim_end_matches("+lintflood").to_string())
        .collect();
    sanity_check(&setup, &guard, &plain).await?;

    let mut results: Vec<(Proto, usize, Vec<Tally>)> = Vec::new();
    for &proto in &args.protocols {
        for &concurrency in &args.concurrency {
            let mut tallies: Vec<Tally> = targets.iter().map(|_| Tally::default()).collect();
            for _round in 0..args.rounds {
                for ((kind, endpoint), tally) in targets.iter().zip(tallies.iter_mut()) {
                    let server = match kind {
                        Kind::Baseline => &baseline,
                        Kind::Guard => &guard,
                    };
                    measure(&setup, &args, server, proto, concurrency, endpoint, tally).await?;
                }
            }
            for t in &mut tallies {
                t.latencies_ns.sort_unstable();
            }
            print_cell(proto, concurrency, &targets, &tallies);
            results.push((proto, concurrency, tallies));
        }
    }
    let peak = [
        (
            status_kib(baseline.pid(), "VmRSS")?,
            status_kib(baseline.pid(), "VmHWM")?,
        ),
        (
            status_kib(guard.pid(), "VmRSS")?,
            status_kib(guard.pid(), "VmHWM")?,
        ),
    ];

    println!();
    println!("== summary (load average at end: {})", loadavg());
    print_table(&targets, &results);
    println!();
    let mib = |kib: u64| kib as f64 / 1024.0;
    for (slot, kind) in [Kind::Baseline, Kind::Guard].into_iter().enumerate() {
        println!(
            "{:<16} RSS idle {:.1} MiB (peak {:.1} MiB); after load {:.1} MiB, peak under load {:.1} MiB",
            kind_name(kind),
            mib(idle[slot].0),
            mib(idle[slot].1),
            mib(peak[slot].0),
            mib(peak[slot].1)
        );
    }
    for (slot, kind) in [Kind::Baseline, Kind::Guard].into_iter().enumerate() {
        println!(
            "{:<16} start to ready: {}",
            kind_name(kind),
            summarize(&mut ready_times[slot])
        );
    }
    Ok(())
}

fn print_cell(proto: Proto, concurrency: usize, targets: &[(Kind, &str)], tallies: &[Tally]) {
    for ((kind, endpoint), t) in targets.iter().zip(tallies) {
        let mut line = format!(
            "  {} c={:<3} {:<9} {:>9.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms  cpu {:>6.1} us/req",
            proto.name(),
            concurrency,
            match kind {
                Kind::Baseline => "baseline",
                Kind::Guard => endpoint,
            },
            t.rps(),
            t.percentile_ms(0.50),
            t.percentile_ms(0.99),
            t.cpu_us_per_request()
        );
        if t.errors > 0 {
            let _ = write!(
                line,
                "  {} errors, first: {}",
                t.errors,
                t.first_error.as_deref().unwrap_or("?")
            );
        }
        println!("{line}");
    }
}

fn print_table(targets: &[(Kind, &str)], results: &[(Proto, usize, Vec<Tally>)]) {
    println!(
        "| proto | c | target | req/s | x base | p50 ms | p99 ms | p99 x base | CPU us/req | CPU x base | errors |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (proto, concurrency, tallies) in results {
        let base = &tallies[0];
        for ((kind, endpoint), t) in targets.iter().zip(tallies) {
            let name = match kind {
                Kind::Baseline => "baseline".to_string(),
                Kind::Guard => format!("/{endpoint}"),
            };
            let ratio = |a: f64, b: f64| {
                if *kind == Kind::Baseline {
                    "".to_string()
                } else {
                    format!("{:.2}", a / b)
                }
            };
            println!(
                "| {} | {} | {} | {:.0} | {} | {:.3} | {:.3} | {} | {:.1} | {} | {} |",
                proto.name(),
                concurrency,
                name,
                t.rps(),
                ratio(t.rps(), base.rps()),
                t.percentile_ms(0.50),
                t.percentile_ms(0.99),
                ratio(t.percentile_ms(0.99), base.percentile_ms(0.99)),
                t.cpu_us_per_request(),
                ratio(t.cpu_us_per_request(), base.cpu_us_per_request()),
                t.errors
            );
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        // The servers are owned by `run`'s future: returning from here drops it, which kills them.
        tokio::select! {
            res = run(args) => res,
            _ = tokio::signal::ctrl_c() => bail!("interrupted"),
            _ = term.recv() => bail!("terminated"),
        }
    })
}
