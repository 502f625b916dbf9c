//! The HTTPS admission server: `daemonset-guard serve`.
//!
//! [`http`] maps requests to [`crate::admission`]; [`tls`] loads certificates and builds the rustls
//! config; [`reload`] swaps certificate and policy when their files change; [`metrics`] is the
//! Prometheus registry. This module owns the sockets: accept, TLS handshake, HTTP/1.1 and HTTP/2
//! serving, limits, and graceful shutdown.

pub mod http;
pub mod lint_pool;
pub mod metrics;
pub mod reload;
pub mod tls;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use self::http::App;
use self::reload::{CertFiles, ConfigFile};
use self::tls::CertResolver;
use crate::admission::Policies;
use crate::config::Policy;

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    Json,
    /// Human-readable, for a terminal.
    Pretty,
}

/// Arguments of `daemonset-guard serve`.
#[derive(Clone, Debug, clap::Args)]
pub struct ServeArgs {
    /// Address of the HTTPS admission listener (POST /validate, POST /mutate, GET /healthz,
    /// GET /readyz).
    #[arg(long, default_value = "0.0.0.0:8443", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Address of the HTTPS listener for POST /lint (same certificate and client CA), or `off`.
    /// It has a thread, connections and memory of its own, at the lowest CPU priority, so no
    /// /lint traffic can slow admission or take its memory.
    #[arg(long, default_value = "0.0.0.0:8444", value_parser = parse_listen, value_name = "ADDR|off")]
    pub lint_listen: Listen,
    /// Open connections the /lint listener accepts at once; more wait in the listen backlog.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub lint_max_connections: usize,
    /// Address of the plain-HTTP listener for GET /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:9090", value_name = "ADDR")]
    pub metrics_listen: SocketAddr,
    /// Policy file (YAML); reloaded when it changes. Default: the embedded policy
    /// (`daemonset-guard policy default`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// PEM certificate chain, leaf first; reloaded when it changes. Without --tls-cert and
    /// --tls-key the server runs in development mode with a generated certificate for localhost.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle; when given, only clients with a certificate it signed are served (mTLS).
    #[arg(long, value_name = "FILE")]
    pub client_ca: Option<PathBuf>,
    /// Log format. Default: pretty on a terminal, json otherwise.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// How often the certificate, key and policy files are checked for changes.
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub reload_interval: Duration,
    /// Largest request body accepted (413 above). The API server limits objects to 3 MiB.
    #[arg(long, default_value_t = 3 * 1024 * 1024 + 512 * 1024, value_name = "BYTES")]
    pub max_body_bytes: usize,
    /// Request-body bytes held at once across all connections (each body reserves its
    /// Content-Length, or --max-body-bytes when streamed); a request that does not fit gets a 503
    /// at once. Bounds memory whatever the connection limits allow.
    #[arg(long, default_value_t = 64 * 1024 * 1024, value_name = "BYTES")]
    pub max_buffered_body_bytes: usize,
    /// POST /lint requests evaluated at once, each on a dedicated thread at the lowest CPU
    /// priority, apart from the threads that answer admission; more get 503 with Retry-After.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub lint_concurrency: u16,
    /// Memory for POST /lint across all its requests. A body reserves what linting it takes at
    /// the peak (about 48 bytes per body byte) before it is read: a request that does not fit
    /// now gets 503 with Retry-After, a body that could never fit gets 413.
    #[arg(long, default_value_t = 64 * 1024 * 1024, value_name = "BYTES")]
    pub lint_memory_bytes: usize,
    /// Time a client has to complete the TLS handshake, and to send request headers (HTTP/1.1;
    /// also closes HTTP/1.1 connections idle this long).
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub header_read_timeout: Duration,
    /// Time a client has to send the request body.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub request_timeout: Duration,
    /// Open connections accepted at once; more wait in the listen backlog.
    #[arg(long, default_value_t = 4096, value_name = "N")]
    pub max_connections: usize,
    /// HTTP/2 streams (concurrent requests) per connection.
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub max_concurrent_streams: u32,
    /// After SIGTERM, keep accepting connections this long (readiness already false), so the
    /// API server stops sending requests here before the listener closes.
    #[arg(long, default_value = "0s", value_parser = parse_duration, value_name = "DURATION")]
    pub shutdown_delay: Duration,
    /// After the listener closes, how long in-flight requests get to finish before the process
    /// exits anyway.
    #[arg(long, default_value = "20s", value_parser = parse_duration, value_name = "DURATION")]
    pub drain_timeout: Duration,
    /// Audit the DaemonSets already in the cluster in the background (in-cluster or kubeconfig
    /// credentials; needs get/list/watch on daemonsets) and export the violations as metrics.
    /// Admission never depends on it.
    #[arg(long)]
    pub audit: bool,
    /// With --audit: keep a wgpolicyk8s.io/v1alpha2 PolicyReport per namespace when the cluster
    /// serves the CRD (needs create/update/delete on policyreports and on the
    /// daemonset-guard-audit Lease, so only one replica writes).
    #[arg(long, requires = "audit")]
    pub audit_policy_reports: bool,
}

/// A listener address, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listen {
    /// Listen on this address.
    On(SocketAddr),
    /// Do not listen.
    Off,
}

/// Parses `HOST:PORT`, or `off`.
pub fn parse_listen(s: &str) -> Result<Listen, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(Listen::Off);
    }
    s.parse()
        .map(Listen::On)
        .map_err(|e| format!("{s:?} is not an address such as 0.0.0.0:8444, or off: {e}"))
}

/// Parses `250ms`, `10s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 500ms, 10s or 2m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!(
            "{s:?} has an unknown unit {unit:?}; use ms, s, m or h"
        )),
    }
}

/// Runs the server until SIGTERM/SIGINT, then drains and returns.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(
        args.log_format
            .unwrap_or(if std::io::stdout().is_terminal() {
                LogFormat::Pretty
            } else {
                LogFormat::Json
            }),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let result = runtime.block_on(serve(args));
    // Connections still open after the drain timeout are dropped here.
    runtime.shutdown_timeout(Duration::from_millis(200));
    result
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // try_init: a second call (tests in one process) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    // A panic is caught per request and answered with a 500; its message and location belong in
    // the structured log next to that answer, not as a bare line on stderr.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(panic = message, location, "panic");
    }));
}

/// Where the serving certificate comes from.
enum CertSource {
    Files(CertFiles),
    /// Development mode: the CA was written to this path, removed at exit.
    Dev(PathBuf),
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let provider = tls::provider();

    let (config_file, policy) = match &args.config {
        Some(path) => {
            let (file, policy) = ConfigFile::load(path)?;
            (Some(file), policy)
        }
        None => (None, Policy::default()),
    };

    let (source, serving) = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let (files, serving) = CertFiles::load(cert, key, &provider)?;
            (CertSource::Files(files), serving)
        }
        _ => {
            let dev = tls::generate_dev_cert()?;
            let ca_path = std::env::temp_dir()
                .join(format!("daemonset-guard-dev-ca-{}.pem", std::process::id()));
            std::fs::write(&ca_path, &dev.ca_pem).with_context(|| {
                format!("cannot write the development CA to {}", ca_path.display())
            })?;
            let serving =
                tls::load_pair(dev.cert_pem.as_bytes(), dev.key_pem.as_bytes(), &provider)?;
            tracing::warn!(
                ca = %ca_path.display(),
                "DEVELOPMENT MODE: no --tls-cert/--tls-key given, serving a generated certificate \
                 for localhost, 127.0.0.1 and ::1 signed by a throwaway CA; trust the CA file to \
                 call the webhook (curl --cacert); never use this in a cluster"
            );
            (CertSource::Dev(ca_path), serving)
        }
    };

    let client_ca = match &args.client_ca {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?)
        }
        None => None,
    };
    let resolver = Arc::new(CertResolver::new(serving.key.clone()));
    let tls_config = tls::server_config(resolver.clone(), client_ca.as_deref(), provider.clone())
        .with_context(|| match &args.client_ca {
        Some(p) => format!("TLS setup with --client-ca {}", p.display()),
        None => "TLS setup".to_string(),
    })?;
    let acceptor = TlsAcceptor::from(Arc::new(tls_config));

    let app = Arc::new(App::new(
        Policies::new(policy),
        args.max_body_bytes,
        args.max_buffered_body_bytes,
        args.request_timeout,
        lint_pool::LintPool::new(args.lint_concurrency.into(), args.lint_memory_bytes)
            .context("cannot start the lint threads")?,
    ));
    app.metrics.certificate_expiry(serving.not_after);

    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let metrics_listener = TcpListener::bind(args.metrics_listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.metrics_listen))?;
    let lint_listener = match args.lint_listen {
        Listen::On(addr) => Some(
            std::net::TcpListener::bind(addr)
                .with_context(|| format!("cannot listen on {addr} (--lint-listen)"))?,
        ),
        Listen::Off => None,
    };
    let https_addr = listener.local_addr()?;
    let metrics_addr = metrics_listener.local_addr()?;
    let lint_addr = lint_listener
        .as_ref()
        .map(std::net::TcpListener::local_addr)
        .transpose()?;

    // Reloader thread: stops when `stop_reload` is dropped.
    let (stop_reload, stop_rx) = std::sync::mpsc::channel::<()>();
    let (cert_files, dev_ca) = match source {
        CertSource::Files(files) => (Some((files, resolver.clone())), None),
        CertSource::Dev(path) => (None, Some(path)),
    };
    let reloader = if cert_files.is_some() || config_file.is_some() {
        let (app, provider, interval) = (app.clone(), provider.clone(), args.reload_interval);
        Some(
            std::thread::Builder::new()
                .name("reload".into())
                .spawn(move || {
                    reload::run(interval, cert_files, config_file, app, provider, stop_rx)
                })
                .context("cannot start the reload thread")?,
        )
    } else {
        None
    };

    let (metrics_stop, metrics_stop_rx) = tokio::sync::watch::channel(false);
    let metrics_task = tokio::spawn(serve_metrics(
        metrics_listener,
        http::metrics_router(app.clone()),
        metrics_stop_rx,
    ));

    // Both TLS listeners stop accepting when this turns true.
    let (stop_accepting, stop_accepting_rx) = tokio::sync::watch::channel(false);
    let limits = ConnLimits {
        header_read_timeout: args.header_read_timeout,
        max_concurrent_streams: args.max_concurrent_streams,
        drain_timeout: args.drain_timeout,
        h2_stream_window: ADMISSION_H2_STREAM_WINDOW,
        h2_connection_window: ADMISSION_H2_CONNECTION_WINDOW,
    };
    let lint_thread = match lint_listener {
        Some(listener) => Some(spawn_lint_listener(
            listener,
            acceptor.clone(),
            app.clone(),
            ConnLimits {
                max_concurrent_streams: LINT_MAX_CONCURRENT_STREAMS,
                h2_stream_window: LINT_H2_WINDOW,
                h2_connection_window: LINT_H2_WINDOW,
                ..limits
            },
            args.lint_max_connections,
            stop_accepting_rx.clone(),
        )?),
        None => None,
    };

    app.set_ready();
    tracing::info!(
        https = %https_addr,
        lint = %lint_addr.map_or("off".to_string(), |a| a.to_string()),
        metrics = %metrics_addr,
        mtls = args.client_ca.is_some(),
        development = dev_ca.is_some(),
        config = %args.config.as_ref().map_or("(embedded default)".to_string(), |p| p.display().to_string()),
        "listening"
    );

    let audit = if args.audit {
        Some(
            crate::audit::background::spawn(app.clone(), args.audit_policy_reports)
                .context("starting the background audit's thread")?,
        )
    } else {
        None
    };
    let shutdown = {
        let (app, delay) = (app.clone(), args.shutdown_delay);
        async move {
            let signal = shutdown_signal().await;
            app.begin_shutdown();
            tracing::info!(signal, ?delay, "shutdown started; readiness is now false");
            tokio::time::sleep(delay).await;
            let _ = stop_accepting.send(true);
            signal
        }
    };
    let (signal, ()) = tokio::join!(
        shutdown,
        serve_tls(
            "admission",
            listener,
            acceptor,
            http::admission_router(app.clone(), lint_addr),
            app.clone(),
            limits,
            args.max_connections,
            stop_accepting_rx,
        )
    );
    if let Some(task) = audit {
        task.abort();
    }
    if let Some(thread) = lint_thread {
        // Bounded: the lint listener drains within the same --drain-timeout.
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }

    let _ = metrics_stop.send(true);
    let _ = metrics_task.await;
    drop(stop_reload);
    if let Some(handle) = reloader {
        let _ = handle.join();
    }
    if let Some(path) = dev_ca {
        let _ = std::fs::remove_file(path);
    }
    tracing::info!(signal, "stopped");
    Ok(())
}

/// HTTP/2 streams per connection on the /lint listener: a /lint request beyond the lint pool's
/// concurrency is refused at once, so a few streams are plenty.
const LINT_MAX_CONCURRENT_STREAMS: u32 = 16;

/// HTTP/2 receive window of a /lint connection (the stream's and the connection's). Bytes a
/// client has sent but the server has not read wait in this window, so it bounds what a
/// connection can hold while its /lint listener, at the lowest CPU priority, gets little CPU:
/// with hyper's default of 1 MiB, 64 flooding connections held 64 MiB.
const LINT_H2_WINDOW: u32 = 128 * 1024;

/// HTTP/2 receive window of one admission stream: what a client may send on a stream before the
/// server reads it. The largest AdmissionReview a real API server sent in the shared fixtures is
/// 74 KiB (an UPDATE, object and oldObject), so a review of that size arrives in one window with
/// no WINDOW_UPDATE round trip; a body at --max-body-bytes (3.5 MiB) takes about 28 windows,
/// each released as the handler reads, which on a cluster network (RTT well under 1 ms) costs a
/// few milliseconds. hyper's default was 1 MiB.
const ADMISSION_H2_STREAM_WINDOW: u32 = 128 * 1024;

/// HTTP/2 receive window of one admission connection, shared by its streams: two full stream
/// windows, so the API server's concurrent reviews on its one connection keep flowing while one
/// of them is still being read. It bounds what a connection can make the server buffer unread:
/// at worst --max-connections x 256 KiB, 1 GiB at the default 4096 connections (hyper's default
/// 1 MiB allowed 4 GiB). Bodies the handlers read are bounded apart, by
/// --max-buffered-body-bytes.
const ADMISSION_H2_CONNECTION_WINDOW: u32 = 2 * ADMISSION_H2_STREAM_WINDOW;

/// Timeouts and HTTP/2 limits of one TLS listener.
#[derive(Clone, Copy, Debug)]
struct ConnLimits {
    header_read_timeout: Duration,
    max_concurrent_streams: u32,
    drain_timeout: Duration,
    /// HTTP/2 receive window of each stream.
    h2_stream_window: u32,
    /// HTTP/2 receive window of a connection, all its streams together.
    h2_connection_window: u32,
}

/// Serves POST /lint on a thread of its own with a single-threaded runtime at the lowest CPU
/// priority the lint pool also uses: reading, decrypting and answering /lint bodies (a flood of
/// them included) then competes with admission's threads only for what they leave idle, and its
/// connection buffers are bounded by its own connection limit.
fn spawn_lint_listener(
    listener: std::net::TcpListener,
    acceptor: TlsAcceptor,
    app: Arc<App>,
    limits: ConnLimits,
    max_connections: usize,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    listener
        .set_nonblocking(true)
        .context("cannot set up the /lint listener")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the /lint runtime")?;
    std::thread::Builder::new()
        .name("lint-listener".into())
        .spawn(move || {
            lint_pool::lower_priority();
            runtime.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(listener) => {
                        let memory = Arc::new(lint_pool::ListenerMemory::default());
                        tokio::spawn(memory.clone().return_when_idle());
                        let router = http::lint_router(app.clone()).layer(
                            axum::middleware::from_fn_with_state(memory, count_lint_request),
                        );
                        serve_tls(
                            "lint",
                            listener,
                            acceptor,
                            router,
                            app,
                            limits,
                            max_connections,
                            stop,
                        )
                        .await;
                    }
                    Err(e) => tracing::error!(error = %e, "cannot serve the /lint listener"),
                }
            });
            runtime.shutdown_timeout(Duration::from_millis(200));
        })
        .context("cannot start the /lint listener thread")
}

/// Counts a request on the /lint listener while it is answered, so that the listener can return
/// its memory when none is left.
async fn count_lint_request(
    axum::extract::State(memory): axum::extract::State<Arc<lint_pool::ListenerMemory>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let _in_flight = memory.enter();
    next.run(req).await
}

/// Accepts and serves TLS connections until `stop` turns true, then drains within the drain
/// timeout.
#[allow(clippy::too_many_arguments)]
async fn serve_tls(
    name: &'static str,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: axum::Router,
    app: Arc<App>,
    limits: ConnLimits,
    max_connections: usize,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .initial_stream_window_size(limits.h2_stream_window)
        .initial_connection_window_size(limits.h2_connection_window)
        // Detect dead peers on long-lived HTTP/2 connections (the API server keeps one open).
        .keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(20));
    let builder = Arc::new(builder);
    let service = TowerToHyperService::new(router);
    let graceful = GracefulShutdown::new();
    let limit = Arc::new(Semaphore::new(max_connections));
    let handshake_timeout = limits.header_read_timeout;

    loop {
        let (permit, tcp, peer) = tokio::select! {
            biased;
            _ = stop.wait_for(|stop| *stop) => break,
            next = accept_next(&listener, &limit) => match next {
                Some(Ok((permit, tcp, peer))) => (permit, tcp, peer),
                Some(Err(e)) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                None => break,
            },
        };
        // Without TCP_NODELAY, HTTP/2 responses wait on Nagle + delayed ACK (~40 ms).
        let _ = tcp.set_nodelay(true);
        let watcher = graceful.watcher();
        let (acceptor, builder, service, app) = (
            acceptor.clone(),
            builder.clone(),
            service.clone(),
            app.clone(),
        );
        tokio::spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(handshake_timeout, handshake(tcp, &acceptor)).await
            {
                Ok(Ok(Some(tls))) => tls,
                Ok(Ok(None)) => {
                    app.metrics.handshake_failed();
                    return;
                }
                Ok(Err(e)) => {
                    app.metrics.handshake_failed();
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    app.metrics.handshake_failed();
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let conn = builder.serve_connection(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "connection closed with an error");
            }
        });
    }
    drop(listener);
    tracing::info!(listener = name, connections = graceful.count(), timeout = ?limits.drain_timeout, "listener closed; draining in-flight requests");
    match tokio::time::timeout(limits.drain_timeout, graceful.shutdown()).await {
        Ok(()) => tracing::info!(listener = name, "all connections drained"),
        Err(_) => tracing::warn!(
            listener = name,
            "drain timeout reached; closing the remaining connections"
        ),
    }
}

/// Waits for a connection slot, then for a connection. `None` when the limit is closed.
async fn accept_next(
    listener: &TcpListener,
    limit: &Arc<Semaphore>,
) -> Option<std::io::Result<(tokio::sync::OwnedSemaphorePermit, TcpStream, SocketAddr)>> {
    let permit = limit.clone().acquire_owned().await.ok()?;
    Some(
        listener
            .accept()
            .await
            .map(|(tcp, peer)| (permit, tcp, peer)),
    )
}

/// Completes the TLS handshake; answers plain HTTP sent to the TLS port with a 400 that says so
/// (returns `None` then).
async fn handshake(
    tcp: TcpStream,
    acceptor: &TlsAcceptor,
) -> std::io::Result<Option<tokio_rustls::server::TlsStream<TcpStream>>> {
    let mut first = [0u8; 1];
    // A TLS ClientHello starts with record type 22; an HTTP request with an uppercase method.
    if tcp.peek(&mut first).await? == 1 && first[0].is_ascii_uppercase() {
        let mut tcp = tcp;
        const MSG: &str = "this port serves HTTPS; the client sent plain HTTP\n";
        let resp = format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{MSG}",
            MSG.len()
        );
        tcp.write_all(resp.as_bytes()).await?;
        let _ = tcp.shutdown().await;
        return Ok(None);
    }
    acceptor.accept(tcp).await.map(Some)
}

/// Serves the metrics router over plain HTTP until `stop` turns true.
async fn serve_metrics(
    listener: TcpListener,
    router: axum::Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    let builder = Arc::new(builder);
    let service = TowerToHyperService::new(router);
    let limit = Arc::new(Semaphore::new(64));
    loop {
        let permit = tokio::select! {
            _ = stop.changed() => return,
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let (tcp, _) = tokio::select! {
            _ = stop.changed() => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let (builder, service) = (builder.clone(), service.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
        });
    }
}

/// Resolves on SIGTERM or SIGINT with the signal's name.
async fn shutdown_signal() -> &'static str {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = term => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let a = Cli::parse_from(["x"]).serve;
        assert_eq!(a.listen.to_string(), "0.0.0.0:8443");
        assert_eq!(a.metrics_listen.to_string(), "0.0.0.0:9090");
        assert_eq!(a.max_body_bytes, 3_670_016);
        assert_eq!(a.max_buffered_body_bytes, 64 << 20);
        assert_eq!(a.reload_interval, Duration::from_secs(2));
        assert_eq!(a.header_read_timeout, Duration::from_secs(10));
        assert_eq!(a.drain_timeout, Duration::from_secs(20));
        assert!(a.tls_cert.is_none() && a.config.is_none() && a.log_format.is_none());
    }

    #[test]
    fn tls_cert_and_key_come_together() {
        assert!(Cli::try_parse_from(["x", "--tls-cert", "c"]).is_err());
        assert!(Cli::try_parse_from(["x", "--tls-key", "k"]).is_err());
        assert!(Cli::try_parse_from(["x", "--tls-cert", "c", "--tls-key", "k"]).is_ok());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").unwrap_err().contains("unknown unit"));
    }
}
