//! The outermost router: health and metrics on any host, then routing by `Host`.

use crate::WebState;
use crate::pages::error_page;
use crate::resolve::Site;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use desk_core::{DomainError, Hostname, TenantStatus};
use std::time::Instant;
use tower::ServiceExt;
use tracing::Instrument;

#[derive(Clone)]
struct Dispatch {
    web: WebState,
    tenant_app: Router,
    platform_app: Router,
}

/// Builds the whole application: `tenant_app` serves municipalities' hosts (it finds the
/// `Arc<Tenant>` in the request extensions), `platform_app` the platform portal's host.
pub fn app(web: WebState, tenant_app: Router, platform_app: Router) -> Router {
    let dispatch = Dispatch {
        web: web.clone(),
        tenant_app,
        platform_app,
    };
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(web)
        .fallback_service(
            Router::new()
                .fallback(dispatch_by_host)
                .with_state(dispatch),
        )
}

/// The operations listener's routes (`/healthz`, `/readyz`, `/metrics`): served on their own
/// address (`http.ops_listen`, loopback or the pod network), never on the public hosts.
pub fn ops_app(web: WebState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(web)
}

async fn readyz(State(web): State<WebState>) -> Response {
    match web.platform.ping().await {
        Ok(()) => "ready".into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "database not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

async fn metrics(State(web): State<WebState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        web.metrics
            .render(web.platform.pool_stats(), web.sites.cached_hosts()),
    )
        .into_response()
}

fn request_host(req: &Request) -> Option<Hostname> {
    let raw = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))?;
    Hostname::from_header(raw)
}

/// Paths served to machines: they get JSON errors with stable codes instead of pages.
fn is_api_path(path: &str) -> bool {
    path.starts_with("/graphql") || path.starts_with("/open311") || path.starts_with("/api")
}

fn api_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code } }]
    });
    (status, axum::Json(body)).into_response()
}

/// Whether a browser says this request comes from another site or a sibling host: its
/// `Sec-Fetch-Site` is `cross-site` or `same-site` (another municipality under the same domain is
/// same-site, not same-origin), or its `Origin` names a host other than the request's own.
/// Requests without either header are not from a browser's page.
pub(crate) fn foreign_origin(headers: &axum::http::HeaderMap) -> bool {
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if fetch_site.is_some_and(|s| s != "same-origin" && s != "none") {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest);
    !matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// A state change a browser page of another site (or a sibling municipality) asks for: refused
/// for every unsafe method, sign-in forms included. Token-authenticated API calls without
/// cookies (a municipality's app calling GraphQL or Open311 from its own origin) are not
/// cookie-borne, so not forgeable this way, and pass.
fn forged(req: &Request) -> bool {
    let unsafe_method = !matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    let token_api = is_api_path(req.uri().path()) && !req.headers().contains_key(header::COOKIE);
    unsafe_method && !token_api && foreign_origin(req.headers())
}

/// Headers every answer carries: no framing (clickjacking), no content sniffing, no referrer
/// to other sites, no powerful browser features, and HSTS behind HTTPS.
fn secure_headers(res: &mut Response, https: bool, nonce: &str) {
    use axum::http::HeaderValue;
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
    );
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        let target = res
            .extensions()
            .get::<desk_http::csp::FormTarget>()
            .map(|t| t.0.clone());
        let policy = desk_http::csp::policy(nonce, target.as_deref());
        if let Ok(value) = HeaderValue::from_str(&policy) {
            res.headers_mut()
                .insert(header::CONTENT_SECURITY_POLICY, value);
        }
    }
    let h = res.headers_mut();
    if https {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
}

async fn dispatch_by_host(State(d): State<Dispatch>, req: Request) -> Response {
    let https = d.web.secure_cookies;
    let nonce = desk_http::csp::new_nonce();
    let answer = async move {
        if forged(&req) {
            tracing::info!(http.path = %loggable_path(req.uri().path()), "cross-origin state change refused");
            if is_api_path(req.uri().path()) {
                api_error(
                    StatusCode::FORBIDDEN,
                    "CROSS_ORIGIN",
                    "state changes from another site's page are refused",
                )
            } else {
                error_page(
                    &d.web,
                    StatusCode::FORBIDDEN,
                    None,
                    "درخواست پذیرفته نشد",
                    "این فرم از صفحه سایت دیگری فرستاده شده است. صفحه را از نشانی خود میز خدمت باز کنید و دوباره بفرستید.",
                )
            }
        } else {
            route_by_host(d, req).await
        }
    };
    let mut res = desk_http::csp::with_nonce(nonce.clone(), answer).await;
    secure_headers(&mut res, https, &nonce);
    res
}

async fn route_by_host(d: Dispatch, mut req: Request) -> Response {
    let started = Instant::now();
    let request_id = uuid::Uuid::new_v4();
    let api = is_api_path(req.uri().path());
    let site = match request_host(&req) {
        Some(host) => d.web.sites.resolve(&host).await,
        None => Ok(Site::Unknown),
    };
    let span = tracing::info_span!(
        "request",
        request.id = %request_id,
        tenant.slug = tracing::field::Empty,
        http.method = %req.method(),
        http.path = %loggable_path(req.uri().path()),
    );
    let response = async {
        match site {
            Ok(Site::Platform) => d.platform_app.oneshot(req).await.into_response(),
            Ok(Site::Tenant(tenant)) => {
                tracing::Span::current().record("tenant.slug", tenant.slug.as_str());
                match tenant.status {
                    TenantStatus::Active => {
                        req.extensions_mut().insert(tenant);
                        d.tenant_app.oneshot(req).await.into_response()
                    }
                    TenantStatus::Suspended if api => api_error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "TENANT_SUSPENDED",
                        "this municipality's service desk is suspended",
                    ),
                    TenantStatus::Suspended => error_page(
                        &d.web,
                        StatusCode::SERVICE_UNAVAILABLE,
                        Some(&tenant),
                        "خدمات موقتاً در دسترس نیست",
                        "میز خدمت الکترونیکی این شهرداری موقتاً غیرفعال است. اطلاعات شما محفوظ است؛ لطفاً بعداً مراجعه کنید یا با شهرداری تماس بگیرید.",
                    ),
                    TenantStatus::Archived => not_found(&d.web, api),
                }
            }
            Ok(Site::Unknown) => not_found(&d.web, api),
            Err(DomainError::Unavailable) if api => api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "temporarily unavailable; retry",
            ),
            Err(DomainError::Unavailable) => error_page(
                &d.web,
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "کمی صبر کنید",
                DomainError::UNAVAILABLE_FA,
            ),
            Err(e) => {
                tracing::error!(error = %e, "resolving the host failed");
                if api {
                    api_error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "internal error")
                } else {
                    error_page(
                        &d.web,
                        StatusCode::INTERNAL_SERVER_ERROR,
                        None,
                        "خطای سامانه",
                        "خطایی رخ داد. لطفاً دوباره تلاش کنید.",
                    )
                }
            }
        }
    }
    .instrument(span.clone())
    .await;
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    d.web.metrics.observe(response.status().as_u16(), micros);
    span.in_scope(|| {
        tracing::info!(
            http.status = response.status().as_u16(),
            duration_ms = micros as f64 / 1000.0,
            "request"
        );
    });
    response
}

/// The path with secrets masked: a segment that looks like a token (32+ hex characters, as in
/// one-time sign-in links) is logged as `<token>`.
fn loggable_path(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.len() >= 32 && seg.bytes().all(|b| b.is_ascii_hexdigit()) {
                "<token>"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn not_found(web: &WebState, api: bool) -> Response {
    if api {
        api_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "no municipality serves this host",
        )
    } else {
        error_page(
            web,
            StatusCode::NOT_FOUND,
            None,
            "پیدا نشد",
            "هیچ شهرداری‌ای در این نشانی میز خدمت ندارد. نشانی را بررسی کنید.",
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_this_host_is_same_origin() {
        let same_origin = |h: &axum::http::HeaderMap| !super::foreign_origin(h);
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            axum::http::header::HOST,
            axum::http::HeaderValue::from_static("alpha.test"),
        );
        assert!(same_origin(&h), "no browser headers");
        h.insert(
            axum::http::header::ORIGIN,
            axum::http::HeaderValue::from_static("http://alpha.test"),
        );
        assert!(same_origin(&h));
        h.insert(
            axum::http::header::ORIGIN,
            axum::http::HeaderValue::from_static("http://beta.test"),
        );
        assert!(!same_origin(&h), "a sibling municipality");
        h.insert(
            axum::http::header::ORIGIN,
            axum::http::HeaderValue::from_static("null"),
        );
        assert!(!same_origin(&h));
        h.insert(
            axum::http::header::ORIGIN,
            axum::http::HeaderValue::from_static("http://alpha.test"),
        );
        h.insert(
            "sec-fetch-site",
            axum::http::HeaderValue::from_static("same-site"),
        );
        assert!(!same_origin(&h), "same-site is a sibling, not us");
        h.insert(
            "sec-fetch-site",
            axum::http::HeaderValue::from_static("same-origin"),
        );
        assert!(same_origin(&h));
    }

    #[test]
    fn tokens_are_masked_in_logged_paths() {
        let token = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(
            super::loggable_path(&format!("/staff/sign-in/{token}")),
            "/staff/sign-in/<token>"
        );
        assert_eq!(
            super::loggable_path("/staff/settings/sms/12"),
            "/staff/settings/sms/12"
        );
    }
}
