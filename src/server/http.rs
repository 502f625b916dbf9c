//! HTTP routes of both listeners. Handlers read the body, call [`admission::review`], and map
//! its result to a response; they decide nothing about DaemonSets.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::lint_pool::{LintPool, Refusal};
use super::metrics::Metrics;
use crate::admission::{self, Endpoint, Outcome, Policies};
use crate::policy::Mode;

/// Bodies larger than this are evaluated on the blocking pool, so a 3 MiB review does not hold
/// up other requests on the same worker thread.
const OFFLOAD_BYTES: usize = 256 * 1024;

/// State shared by every request.
#[derive(Debug)]
pub struct App {
    policies: RwLock<Arc<Policies>>,
    pub metrics: Metrics,
    ready: AtomicBool,
    shutting_down: AtomicBool,
    max_body_bytes: usize,
    request_timeout: Duration,
    /// Request bodies being read or evaluated, in KiB: bounds the memory held by bodies across
    /// all connections, whatever the connection and stream limits allow.
    body_budget: Arc<Semaphore>,
    body_budget_kib: u32,
    /// Threads, concurrency limit and memory budget of `/lint`, apart from admission's.
    lint: LintPool,
}

/// Holds a body's share of the budget until the request is answered.
type BodyPermit = OwnedSemaphorePermit;

impl App {
    /// `body_budget_bytes`: the most admission-request body bytes held at once across every
    /// connection. `lint` runs `/lint`, with limits of its own.
    pub fn new(
        policies: Policies,
        max_body_bytes: usize,
        body_budget_bytes: usize,
        request_timeout: Duration,
        lint: LintPool,
    ) -> Self {
        let body_budget_kib = u32::try_from(body_budget_bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, Semaphore::MAX_PERMITS as u32);
        App {
            policies: RwLock::new(Arc::new(policies)),
            metrics: Metrics::new(),
            ready: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            max_body_bytes,
            request_timeout,
            body_budget: Arc::new(Semaphore::new(body_budget_kib as usize)),
            body_budget_kib,
            lint,
        }
    }

    /// The policy in force; a reload swaps it for later requests only.
    pub fn policies(&self) -> Arc<Policies> {
        self.policies
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_policies(&self, policies: Policies) {
        *self.policies.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(policies);
    }

    /// Marks the server ready: TLS and policy are loaded and the listeners are bound.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    /// Readiness turns false for good.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        self.ready.store(false, Ordering::SeqCst);
    }
}

/// Routes of the HTTPS admission listener. `lint`: where `/lint` is served instead, for the
/// answer to a client that posts it here.
pub fn admission_router(app: Arc<App>, lint: Option<std::net::SocketAddr>) -> Router {
    let elsewhere: Arc<str> = match lint {
        Some(addr) => format!(
            "POST /lint is served on its own port, {} (--lint-listen), not on the admission port",
            addr.port()
        ),
        None => "POST /lint is switched off on this server (--lint-listen off)".to_string(),
    }
    .into();
    Router::new()
        .route("/validate", post(validate))
        .route("/mutate", post(mutate))
        .route(
            "/lint",
            post(move |State(app): State<Arc<App>>, req: Request| {
                let elsewhere = elsewhere.clone();
                async move {
                    // Answered with the body unread, as any early refusal.
                    let resp = status_response(StatusCode::NOT_FOUND, &elsewhere);
                    finish_early(req, resp, &app).await
                }
            }),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app)
}

/// Routes of the HTTPS `/lint` listener.
pub fn lint_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/lint", post(lint))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found_lint)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app)
}

/// Routes of the plain-HTTP metrics listener.
pub fn metrics_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app)
}

async fn validate(State(app): State<Arc<App>>, req: Request) -> Response {
    admit(app, Endpoint::Validate, req).await
}

async fn mutate(State(app): State<Arc<App>>, req: Request) -> Response {
    admit(app, Endpoint::Mutate, req).await
}

async fn admit(app: Arc<App>, endpoint: Endpoint, req: Request) -> Response {
    let start = Instant::now();
    let _in_flight = app.metrics.in_flight();
    let max = app.max_body_bytes;
    let too_large = || {
        status_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the request body is larger than {max} bytes (--max-body-bytes); the API server \
                 itself limits objects to 3 MiB"
            ),
        )
    };
    let budget = app.body_budget.clone();
    let (body, _budget) = match read_body(&app, req, max, Some(&budget), too_large).await {
        Ok(body) => body,
        Err(resp) => {
            app.metrics.rejected(endpoint, start.elapsed());
            return resp;
        }
    };
    let policies = app.policies();
    let offload = body.len() > OFFLOAD_BYTES;
    let run = move || {
        // A bug in a rule must fail this request with a 500, not take the connection down.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            admission::review(endpoint, &body, &policies)
        }))
    };
    let result = if offload {
        tokio::task::spawn_blocking(run)
            .await
            .unwrap_or_else(|e| Err(Box::new(e.to_string())))
    } else {
        run()
    };
    let elapsed = start.elapsed();
    match result {
        Ok(Ok(reviewed)) => {
            app.metrics.admitted(endpoint, &reviewed.outcome, elapsed);
            log_outcome(endpoint, &reviewed.outcome, elapsed);
            match serde_json::to_vec(&reviewed.reply) {
                Ok(json) => json_response(StatusCode::OK, json),
                Err(e) => status_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("could not serialize the AdmissionReview reply: {e}"),
                ),
            }
        }
        Ok(Err(e)) => {
            app.metrics.rejected(endpoint, elapsed);
            tracing::warn!(
                endpoint = endpoint.as_str(),
                error = %e,
                latency_us = micros(elapsed),
                "admission request rejected"
            );
            let code =
                StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            status_response(code, &e.to_string())
        }
        Err(panic) => {
            app.metrics.rejected(endpoint, elapsed);
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(endpoint = endpoint.as_str(), panic = %what, "admission evaluation panicked");
            status_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error while evaluating the request; see the webhook's log",
            )
        }
    }
}

/// `POST /lint`: the dry-run linter over raw manifests, with the policy in force. Read-only: it
/// stores nothing and answers only the caller. It runs on the lint pool, under its own body limit,
/// concurrency limit and memory budget, never on the threads or budget admission uses.
async fn lint(State(app): State<Arc<App>>, req: Request) -> Response {
    let start = Instant::now();
    let query = req.uri().query().unwrap_or("").to_string();
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let limit = app.lint.max_body_bytes(crate::lint::MAX_LINT_BODY_BYTES);
    let declared = declared_length(req.headers());
    if declared.is_some_and(|n| n > limit as u64) {
        return finish_early(req, lint_too_large(limit), &app).await;
    }
    // Reserve a thread and the memory the body expands into before reading any of it.
    let permit = match app.lint.try_admit(declared.map_or(limit, |n| n as usize)) {
        Ok(permit) => permit,
        Err(refusal) => {
            let resp = match refusal {
                Refusal::Busy | Refusal::NoMemory => {
                    app.metrics.lint_refused();
                    tracing::warn!(?refusal, "lint pool full; answering 503");
                    unavailable(&format!(
                        "/lint is busy: its {} thread(s) and {} MiB budget \
                         (--lint-concurrency, --lint-memory-bytes) are in use; retry shortly",
                        app.lint.threads(),
                        app.lint.budget_bytes() >> 20
                    ))
                }
                Refusal::TooLarge { max_body_bytes } => lint_too_large(max_body_bytes),
            };
            return finish_early(req, resp, &app).await;
        }
    };
    let body = match read_body(&app, req, limit, None, || lint_too_large(limit)).await {
        Ok((body, _)) => body,
        Err(resp) => return resp,
    };
    let query: crate::lint::LintQuery = match serde_urlencoded_query(&query) {
        Ok(q) => q,
        Err(message) => return status_response(StatusCode::BAD_REQUEST, &message),
    };
    let policies = app.policies();
    let answer = app
        .lint
        .run(move || {
            let answer = crate::lint::lint_http(&body, content_type.as_deref(), &query, &policies);
            drop(body);
            answer
        })
        .await;
    drop(permit);
    match answer {
        Some(answer) => {
            tracing::info!(
                status = answer.status,
                latency_us = micros(start.elapsed()),
                "lint request"
            );
            let code = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_REQUEST);
            (
                code,
                [(header::CONTENT_TYPE, answer.content_type)],
                answer.body,
            )
                .into_response()
        }
        None => {
            tracing::error!("lint evaluation panicked");
            status_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error while linting; see the webhook's log",
            )
        }
    }
}

fn lint_too_large(max: usize) -> Response {
    status_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!(
            "the request body is larger than {max} bytes, the most /lint accepts (at most 4 MiB, \
             and what --lint-memory-bytes leaves room for); split the manifests over several \
             requests"
        ),
    )
}

/// A 503 that tells the client when to come back.
fn unavailable(message: &str) -> Response {
    let mut resp = status_response(StatusCode::SERVICE_UNAVAILABLE, message);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

/// Parses `/lint`'s query string with axum's own query decoder.
fn serde_urlencoded_query(query: &str) -> Result<crate::lint::LintQuery, String> {
    let uri: axum::http::Uri = format!("/lint?{query}")
        .parse()
        .map_err(|e| format!("invalid query string: {e}"))?;
    axum::extract::Query::<crate::lint::LintQuery>::try_from_uri(&uri)
        .map(|q| q.0)
        .map_err(|e| format!("invalid query string: {}", e.body_text()))
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn declared_length(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Over HTTP/2, the most request-body bytes read and discarded before a 413 is sent.
const DRAIN_MAX_BYTES: u64 = 8 * 1024 * 1024;

/// Reads the body within `limit` and the request timeout; `budget`: reserve its bytes in the
/// shared admission body budget first.
async fn read_body(
    app: &App,
    req: Request,
    limit: usize,
    budget: Option<&Arc<Semaphore>>,
    too_large: impl Fn() -> Response,
) -> Result<(Bytes, Option<BodyPermit>), Response> {
    let (parts, mut body) = req.into_parts();
    match read_body_inner(app, &parts.headers, &mut body, limit, budget, &too_large).await {
        Ok(read) => Ok(read),
        Err(resp) => Err(finish_early(Request::from_parts(parts, body), resp, app).await),
    }
}

/// Makes an error response answered before the whole body was read arrive intact.
///
/// HTTP/1.1: the rest of the body is never read, so the connection cannot carry another
/// request; `Connection: close` keeps the client from reusing it.
///
/// HTTP/2: when a response is complete while the request stream is still open, h2 ends the
/// stream with RST_STREAM(NO_ERROR) right after the response's DATA frame (RFC 9113 section
/// 8.1). Clients still uploading, curl among them, then drop the response and report a stream
/// error, so a client that sent too much never learns why. A 413 therefore reads and discards
/// the rest of the body first (up to [`DRAIN_MAX_BYTES`] and the request timeout, holding none
/// of it), so the stream ends normally. A 503 does not: it has to stay cheap under a flood, and
/// the API server's client (Go) keeps a response that a NO_ERROR reset follows.
async fn finish_early(req: Request, mut resp: Response, app: &App) -> Response {
    if req.version() <= axum::http::Version::HTTP_11 {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return resp;
    }
    if resp.status() != StatusCode::PAYLOAD_TOO_LARGE
        || declared_length(req.headers()).is_some_and(|n| n > DRAIN_MAX_BYTES)
    {
        return resp;
    }
    let mut body = req.into_body();
    let drain = async {
        let mut seen = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                seen += data.len() as u64;
                if seen > DRAIN_MAX_BYTES {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(app.request_timeout, drain).await;
    resp
}

async fn read_body_inner(
    app: &App,
    headers: &axum::http::HeaderMap,
    body: &mut Body,
    limit: usize,
    budget: Option<&Arc<Semaphore>>,
    too_large: &impl Fn() -> Response,
) -> Result<(Bytes, Option<BodyPermit>), Response> {
    if let Some(enc) = headers.get(header::CONTENT_ENCODING) {
        if !enc.as_bytes().eq_ignore_ascii_case(b"identity") {
            return Err(status_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!(
                    "Content-Encoding {:?} is not supported; send the body uncompressed",
                    String::from_utf8_lossy(enc.as_bytes())
                ),
            ));
        }
    }
    let declared = declared_length(headers);
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    // Reserve the body's bytes before reading them: the declared length (the API server always
    // sends one, and HTTP enforces it), or the limit when the body is streamed. Without room the
    // answer is an immediate 503 rather than a wait: a waiting HTTP/2 stream would keep its
    // unread bytes in the connection's flow-control window and stall the streams that do have
    // room on the same connection.
    let expect = declared.map_or(limit, |n| n as usize);
    let permit = match budget {
        None => None,
        Some(budget) => {
            let kib = u32::try_from(expect.div_ceil(1024))
                .unwrap_or(u32::MAX)
                .clamp(1, app.body_budget_kib);
            let Ok(permit) = budget.clone().try_acquire_many_owned(kib) else {
                tracing::warn!(
                    body_kib = kib,
                    budget_kib = app.body_budget_kib,
                    "request body budget exhausted; answering 503"
                );
                return Err(unavailable(&format!(
                    "too many request bodies in flight: the {} KiB budget \
                     (--max-buffered-body-bytes) has no room for {kib} KiB more; retry shortly",
                    app.body_budget_kib
                )));
            };
            Some(permit)
        }
    };
    // One buffer of the announced size: no chunk list, no copy into a second buffer.
    let mut buf = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    let collect = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                status_response(
                    StatusCode::BAD_REQUEST,
                    &format!("could not read the request body: {e}"),
                )
            })?;
            if let Some(data) = frame.data_ref() {
                if buf.len() + data.len() > limit {
                    return Err(too_large());
                }
                buf.extend_from_slice(data);
            }
        }
        Ok(())
    };
    match tokio::time::timeout(app.request_timeout, collect).await {
        Ok(Ok(())) => Ok((Bytes::from(buf), permit)),
        Ok(Err(resp)) => Err(resp),
        Err(_) => Err(status_response(
            StatusCode::REQUEST_TIMEOUT,
            &format!(
                "the request body did not arrive within {:?} (--request-timeout)",
                app.request_timeout
            ),
        )),
    }
}

/// Rule ids of an outcome, comma-separated, without allocating.
struct Rules<'a>(&'a [(&'static str, Mode)]);

impl fmt::Display for Rules<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (rule, _)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(rule)?;
        }
        Ok(())
    }
}

fn log_outcome(endpoint: Endpoint, o: &Outcome, elapsed: Duration) {
    macro_rules! line {
        ($level:expr) => {
            tracing::event!(
                $level,
                endpoint = endpoint.as_str(),
                uid = %o.uid,
                namespace = %o.namespace,
                name = %o.name,
                operation = o.operation.as_str(),
                dry_run = o.dry_run,
                verdict = o.verdict.as_str(),
                rules = %Rules(&o.findings),
                latency_us = micros(elapsed),
                "admission"
            )
        };
    }
    // Other kinds only reach the webhook through a misconfigured rule; not worth a line each.
    if o.skip_reason == Some(admission::SKIP_NOT_DAEMONSET) {
        line!(tracing::Level::DEBUG);
    } else {
        line!(tracing::Level::INFO);
    }
}

async fn healthz() -> Response {
    text_response(StatusCode::OK, "ok\n")
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.shutting_down.load(Ordering::SeqCst) {
        text_response(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    } else if app.ready.load(Ordering::SeqCst) {
        text_response(StatusCode::OK, "ok\n")
    } else {
        text_response(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    match app.metrics.encode() {
        Ok(text) => {
            let mut resp = Response::new(Body::from(text));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            resp
        }
        Err(e) => status_response(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn not_found(req: Request) -> Response {
    status_response(
        StatusCode::NOT_FOUND,
        &format!(
            "no such path {:?}; the webhook serves POST /validate, POST /mutate, GET /healthz and GET /readyz",
            req.uri().path()
        ),
    )
}

async fn not_found_lint(req: Request) -> Response {
    status_response(
        StatusCode::NOT_FOUND,
        &format!(
            "no such path {:?}; this port serves POST /lint, GET /healthz and GET /readyz (admission \
             is on the --listen port)",
            req.uri().path()
        ),
    )
}

async fn method_not_allowed(req: Request) -> Response {
    status_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!(
            "method {} is not allowed on {}",
            req.method(),
            req.uri().path()
        ),
    )
}

fn text_response(code: StatusCode, text: &'static str) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

fn json_response(code: StatusCode, json: Vec<u8>) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], json).into_response()
}

/// An error as a Kubernetes `Status`: the API server shows its message when a webhook call fails.
fn status_response(code: StatusCode, message: &str) -> Response {
    let reason = match code {
        StatusCode::BAD_REQUEST => "BadRequest",
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowed",
        StatusCode::REQUEST_TIMEOUT => "Timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "RequestEntityTooLarge",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UnsupportedMediaType",
        StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
        _ => "InternalError",
    };
    let body = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    json_response(code, body.to_string().into_bytes())
}
