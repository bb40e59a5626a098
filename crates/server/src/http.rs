//! The HTTP listener (`serve --http`): `GET /metrics` in the Prometheus text format, and the
//! status pages of [`crate::web`] (`/`, `/job/ID`, `/jobs`).
//!
//! HTTP/1.1 only (hyper), `GET` and `HEAD` only (else 405). Every page needs HTTP Basic
//! authentication as the admin identity ([`crate::ServerConfig::admin`]), checked by the
//! server's [`crate::Authenticator`] like a `hello` with method `password`; a failed login
//! is answered after the configured failure delay. [`crate::HttpConfig::metrics_no_auth`]
//! opens `/metrics` (and only it) to anyone.

use crate::config::HttpConfig;
use crate::metrics::Live;
use crate::state::Shared;
use crate::web;
use base64::Engine as _;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    HeaderValue, ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE,
    LOCATION, REFERRER_POLICY, WWW_AUTHENTICATE, X_CONTENT_TYPE_OPTIONS,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

/// The content type of the text encoding `prometheus-client` writes.
const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Most HTTP connections served at once; more are closed at once.
const MAX_HTTP_CONNECTIONS: usize = 64;

/// Accept HTTP connections until the task is aborted (server shutdown).
pub(crate) async fn accept_loop(sh: Arc<Shared>, listener: TcpListener, cfg: HttpConfig) {
    let cfg = Arc::new(cfg);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HTTP_CONNECTIONS));
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "http accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            debug!(%from, "too many http connections, closing");
            continue;
        };
        let sh = sh.clone();
        let cfg = cfg.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req| {
                let sh = sh.clone();
                let cfg = cfg.clone();
                async move { Ok::<_, Infallible>(handle(&sh, &cfg, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                debug!(%from, error = %e, "http connection ended with an error");
            }
        });
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn handle(sh: &Shared, cfg: &HttpConfig, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let open = cfg.metrics_no_auth && path == "/metrics";
    if !open && !authorized(sh, &req).await {
        let mut r = text(StatusCode::UNAUTHORIZED, "authentication required\n");
        r.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"jobcenter\", charset=\"UTF-8\""),
        );
        return r;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    if path != "/metrics" {
        return match web::route(sh, path, req.uri().query()).await {
            web::Page::Html(status, body) => html(status, body),
            web::Page::Redirect(to) => {
                let mut r = text(StatusCode::SEE_OTHER, "see other\n");
                if let Ok(v) = HeaderValue::from_str(&to) {
                    r.headers_mut().insert(LOCATION, v);
                }
                r
            }
        };
    }
    let live = {
        let connections = sh.conns.lock().len();
        let d = sh.dispatch.lock();
        let (slots_total, slots_used) = d.slot_totals();
        (connections, d.worker_count(), slots_total, slots_used)
    };
    let body = sh.metrics.render(Live {
        connections: live.0,
        workers: live.1,
        slots_total: live.2,
        slots_used: live.3,
        ready_counts: sh.backend.ready_counts().await,
    });
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(METRICS_CONTENT_TYPE));
    r
}

/// An HTML page, never cached, with no script allowed to run and no framing.
fn html(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r
}

/// The `user:password` of a `Basic` authorization header.
fn basic_credentials(req: &Request<Incoming>) -> Option<(String, String)> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (user, pass) = raw.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

/// Whether the request carries the admin's valid credentials. A request that carried
/// wrong ones is answered only after the failure delay, as a failed `hello`.
async fn authorized(sh: &Shared, req: &Request<Incoming>) -> bool {
    let Some((user, pass)) = basic_credentials(req) else {
        return false;
    };
    let ok = user == sh.config.admin
        && sh
            .auth
            .authenticate("password", &user, &pass, None)
            .await
            .is_ok();
    if !ok {
        info!(user = %user, "http login failed");
        tokio::time::sleep(sh.auth.config().failure_delay).await;
    }
    ok
}
