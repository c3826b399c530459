//! Open311 GeoReport v2 on each municipality's host, under `/open311/v2` (JSON only).
//!
//! Services and their attributes (from the request form) are public. Requests carry citizens'
//! personal data, so unlike a pothole tracker every request endpoint needs an `api_key` of
//! this municipality: `requests:submit` to file, `requests:read` to read. On POST the key may
//! also come in the query string, which is checked before the body is read. Files for the
//! form's document fields may be sent as `multipart/form-data` parts named
//! `attribute[doc_1]` (GeoReport v2 has no upload of its own).

use crate::WebState;
use crate::requests::read_multipart;
use axum::Router;
use axum::extract::{ConnectInfo, Extension, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use desk_app::intake::{self, Intake, Submission};
use desk_core::form::FieldKind;
use desk_core::{DomainError, MobileNumber};
use desk_db::api_keys::ApiKey;
use desk_db::requests::{self, Channel, Request as DeskRequest};
use desk_db::{Tenant, catalog};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

pub(crate) fn open311_routes() -> Router<WebState> {
    Router::new()
        .route("/open311/v2/services.json", get(services))
        .route("/open311/v2/services/{code}", get(service))
        .route(
            "/open311/v2/requests.json",
            get(list_requests)
                .post(create_request)
                .layer(axum::extract::DefaultBodyLimit::max(
                    crate::requests::UPLOAD_BODY_LIMIT,
                )),
        )
        .route("/open311/v2/requests/{id}", get(one_request))
        .route("/open311/v2/tokens/{token}", get(token))
}

/// A GeoReport error: `[{"code": …, "description": …}]` with its HTTP status.
fn error(status: StatusCode, description: &str) -> Response {
    (
        status,
        axum::Json(json!([{ "code": status.as_u16(), "description": description }])),
    )
        .into_response()
}

fn domain_error(e: &DomainError) -> Response {
    match e {
        DomainError::NotFound => error(StatusCode::NOT_FOUND, "not found"),
        DomainError::Forbidden => error(StatusCode::FORBIDDEN, "the api_key may not do this"),
        DomainError::Validation(f) => error(StatusCode::BAD_REQUEST, &f.to_string()),
        DomainError::Conflict(m) => error(StatusCode::CONFLICT, m),
        DomainError::RateLimited { message, .. } => error(StatusCode::TOO_MANY_REQUESTS, message),
        DomainError::Unavailable => retry_later(
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily unavailable; retry",
            ),
            DomainError::UNAVAILABLE_RETRY_AFTER,
        ),
        DomainError::Internal(cause) => {
            tracing::error!(error = %cause, "Open311 request failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

/// `r` with a `Retry-After` of `seconds`.
fn retry_later(mut r: Response, seconds: u64) -> Response {
    if let Ok(v) = header::HeaderValue::from_str(&seconds.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// `429` with `Retry-After` when a caller went over its rate (see `desk_core::limiter::ApiRates`).
fn too_many(seconds: u64) -> Response {
    retry_later(
        error(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("rate limit exceeded; retry after {seconds} s"),
        ),
        seconds,
    )
}

/// Takes one request of a caller without a key from its address (`Err`: seconds to wait).
fn anonymous_rate(
    state: &WebState,
    tenant: &Tenant,
    peer: Option<&Extension<ConnectInfo<SocketAddr>>>,
    headers: &HeaderMap,
) -> Result<(), u64> {
    let source =
        crate::limits::client_address(state.trust_forwarded_for, peer.map(|p| &p.0), headers);
    state.limits.api.take(tenant.id, None, &source)
}

fn json_ok(v: Value) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(v)).into_response()
}

/// `name.json` → `name`; other formats are not served.
fn strip_json(raw: &str) -> Option<&str> {
    raw.strip_suffix(".json")
}

async fn services(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    if let Err(seconds) = anonymous_rate(&state, &tenant, peer.as_ref(), &headers) {
        return too_many(seconds);
    }
    let found = async {
        let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
        let found = catalog::published_services(&mut tx, None, None).await?;
        tx.commit().await?;
        Ok::<_, DomainError>(found)
    }
    .await;
    match found {
        Ok(list) => json_ok(Value::Array(
            list.iter()
                .map(|s| {
                    json!({
                        "service_code": s.card.code,
                        "service_name": s.card.title_fa,
                        "description": s.card.description_fa,
                        "metadata": true,
                        "type": "batch",
                        "keywords": "",
                        "group": desk_core::catalog::category_label(&s.card.category),
                    })
                })
                .collect(),
        )),
        Err(e) => domain_error(&e),
    }
}

/// GeoReport datatype of a form field.
fn datatype(kind: &FieldKind) -> &'static str {
    match kind {
        FieldKind::Number { .. } => "number",
        FieldKind::JalaliDate { .. } => "datetime",
        FieldKind::Address { .. } => "text",
        FieldKind::Select { .. } => "singlevaluelist",
        FieldKind::MultiSelect { .. } => "multivaluelist",
        _ => "string",
    }
}

async fn service(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    Path(raw): Path<String>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    if let Err(seconds) = anonymous_rate(&state, &tenant, peer.as_ref(), &headers) {
        return too_many(seconds);
    }
    let Some(code) = strip_json(&raw) else {
        return error(StatusCode::NOT_FOUND, "only .json is served");
    };
    let found = async {
        let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
        let found = catalog::published_service(&mut tx, code).await?;
        tx.commit().await?;
        found.ok_or(DomainError::NotFound)
    }
    .await;
    match found {
        Ok(s) => {
            let attributes: Vec<Value> = s
                .card
                .form_schema()
                .fields
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let values: Vec<Value> = match &f.kind {
                        FieldKind::Select { options } | FieldKind::MultiSelect { options } => {
                            options
                                .iter()
                                .map(|o| json!({ "key": o.value, "name": o.label_fa }))
                                .collect()
                        }
                        _ => Vec::new(),
                    };
                    let note = match &f.kind {
                        FieldKind::File { .. } => {
                            "file: send as a multipart part named attribute[<code>]"
                        }
                        FieldKind::JalaliDate { .. } => "Jalali date, yyyy/mm/dd",
                        FieldKind::NationalCode => "Iranian national code (10 digits)",
                        FieldKind::PostalCode => "Iranian postal code (10 digits)",
                        FieldKind::Mobile => "Iranian mobile number",
                        _ => "",
                    };
                    json!({
                        "variable": true,
                        "code": f.name,
                        "datatype": datatype(&f.kind),
                        "required": f.required,
                        "datatype_description": note,
                        "order": i + 1,
                        "description": f.label_fa,
                        "values": values,
                    })
                })
                .collect();
            json_ok(json!({ "service_code": s.card.code, "attributes": attributes }))
        }
        Err(e) => domain_error(&e),
    }
}

/// The live key of this municipality named by `api_key`, carrying `scope`.
async fn key_with(
    state: &WebState,
    tenant: &Tenant,
    api_key: Option<&str>,
    scope: &str,
) -> Result<ApiKey, Response> {
    let Some(raw) = api_key else {
        return Err(error(StatusCode::FORBIDDEN, "api_key is required"));
    };
    let found = async {
        let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
        let key = desk_db::api_keys::authenticate(&mut tx, raw).await?;
        tx.commit().await?;
        Ok::<_, DomainError>(key)
    }
    .await;
    match found {
        Ok(Some(k)) if k.has(scope) => {
            state
                .limits
                .api
                .take(tenant.id, Some(k.id), "")
                .map_err(too_many)?;
            Ok(k)
        }
        Ok(Some(_)) => Err(error(StatusCode::FORBIDDEN, "the api_key may not do this")),
        Ok(None) => Err(error(StatusCode::FORBIDDEN, "api_key is not valid here")),
        Err(e) => Err(domain_error(&e)),
    }
}

fn request_view(r: &DeskRequest) -> Value {
    let label = desk_core::workflow::Workflow::default_municipal()
        .state(&r.state)
        .map_or(r.state.clone(), |s| s.label_fa.clone());
    json!({
        "service_request_id": r.tracking_code,
        "status": if r.closed { "closed" } else { "open" },
        "status_notes": label,
        "service_name": r.service_title,
        "service_code": r.service_code,
        "agency_responsible": r.unit.as_ref().map(|u| u.1.clone()),
        "requested_datetime": r.submitted_at.to_rfc3339(),
        "updated_datetime": r.updated_at.to_rfc3339(),
        "expected_datetime": r
            .promised_on
            .succ_opt()
            .map(|d| (desk_core::calendar::start_of_iran_day(d) - chrono::Duration::seconds(1))
                    .with_timezone(&desk_core::calendar::IRAN)
                    .to_rfc3339()),
    })
}

async fn list_requests(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = key_with(
        &state,
        &tenant,
        q.get("api_key").map(String::as_str),
        "requests:read",
    )
    .await
    {
        return r;
    }
    let ids: Vec<&str> = q
        .get("service_request_id")
        .map(|s| s.split(',').map(str::trim).collect())
        .unwrap_or_default();
    let listed = async {
        let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
        let mut rows = Vec::new();
        if ids.is_empty() {
            let closed = q.get("status").map(|s| s == "closed");
            rows = requests::recent(
                &mut tx,
                q.get("service_code").map(String::as_str),
                closed,
                1000,
            )
            .await?;
        } else {
            for id in ids.iter().take(50) {
                if let Some(r) = requests::request_by_code(&mut tx, id).await? {
                    rows.push(r);
                }
            }
        }
        tx.commit().await?;
        Ok::<_, DomainError>(rows)
    }
    .await;
    match listed {
        Ok(rows) => {
            let wanted_code = q.get("service_code");
            let wanted_status = q.get("status");
            json_ok(Value::Array(
                rows.iter()
                    .filter(|r| wanted_code.is_none_or(|c| &r.service_code == c))
                    .filter(|r| wanted_status.is_none_or(|s| (s == "closed") == r.closed))
                    .take(1000)
                    .map(request_view)
                    .collect(),
            ))
        }
        Err(e) => domain_error(&e),
    }
}

/// A read of one thing by the `{x}.json` in its path, for a key with `requests:read`:
/// `find` looks it up in the municipality's transaction, `view` answers with it.
async fn read_one<T>(
    state: &WebState,
    tenant: &Tenant,
    raw: &str,
    q: &HashMap<String, String>,
    find: impl AsyncFnOnce(&mut desk_db::TenantTx, &str) -> Result<Option<T>, DomainError>,
    view: impl FnOnce(&str, T) -> Value,
) -> Response {
    let Some(id) = strip_json(raw) else {
        return error(StatusCode::NOT_FOUND, "only .json is served");
    };
    if let Err(r) = key_with(
        state,
        tenant,
        q.get("api_key").map(String::as_str),
        "requests:read",
    )
    .await
    {
        return r;
    }
    let found = async {
        let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
        let found = find(&mut tx, id).await?;
        tx.commit().await?;
        found.ok_or(DomainError::NotFound)
    }
    .await;
    match found {
        Ok(thing) => json_ok(view(id, thing)),
        Err(e) => domain_error(&e),
    }
}

async fn one_request(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    Path(raw): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    read_one(
        &state,
        &tenant,
        &raw,
        &q,
        async |tx, id| requests::request_by_code(tx, id).await,
        |_, r| json!([request_view(&r)]),
    )
    .await
}

async fn token(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    Path(raw): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    read_one(
        &state,
        &tenant,
        &raw,
        &q,
        async |tx, token| requests::tracking_by_idempotency_key(tx, token).await,
        |token, code| json!([{ "token": token, "service_request_id": code }]),
    )
    .await
}

/// Reads a POST body (urlencoded or multipart); `attribute[x]` becomes the form field `x`.
async fn read_post(state: &WebState, req: Request) -> Result<Submission, Response> {
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("multipart/form-data"));
    let raw = if multipart {
        let m = Multipart::from_request(req, state)
            .await
            .map_err(|_| error(StatusCode::BAD_REQUEST, "malformed multipart body"))?;
        read_multipart(m).await.map_err(|e| domain_error(&e))?
    } else {
        let axum::extract::RawForm(body) =
            axum::extract::RawForm::from_request(req, state)
                .await
                .map_err(|_| error(StatusCode::BAD_REQUEST, "malformed form body"))?;
        let mut s = Submission::default();
        for (k, v) in crate::api_keys::form_pairs(&body) {
            s.values.entry(k).or_default().push(v);
        }
        s
    };
    let unwrap = |k: String| {
        k.strip_prefix("attribute[")
            .and_then(|r| r.strip_suffix(']'))
            .map_or(k.clone(), str::to_owned)
    };
    Ok(Submission {
        values: raw
            .values
            .into_iter()
            .map(|(k, v)| (unwrap(k), v))
            .collect(),
        files: raw.files.into_iter().map(|(k, v)| (unwrap(k), v)).collect(),
    })
}

async fn create_request(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> Response {
    // A key in the query string is checked before the body is read (uploads can be large).
    let query_key = q.get("api_key").filter(|k| !k.is_empty());
    if let Some(key) = query_key
        && let Err(r) = key_with(&state, &tenant, Some(key), "requests:submit").await
    {
        return r;
    }
    let mut submission = match read_post(&state, req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if query_key.is_none()
        && let Err(r) = key_with(
            &state,
            &tenant,
            Some(submission.value("api_key")).filter(|k| !k.is_empty()),
            "requests:submit",
        )
        .await
    {
        return r;
    }
    let mobile = match MobileNumber::parse(submission.value("phone")) {
        Ok(m) => m,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "phone: an Iranian mobile number is required",
            );
        }
    };
    // Open311's `description` is the form's own free-text field; the token makes retries safe.
    let token = match submission.value("idempotency_key") {
        "" => desk_core::secret::new_token()[..32].to_owned(),
        k => k.to_owned(),
    };
    submission
        .values
        .insert("idempotency_key".into(), vec![token.clone()]);
    let code = submission.value("service_code").to_owned();
    let service = async {
        let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
        let found = catalog::published_service(&mut tx, &code).await?;
        tx.commit().await?;
        found.ok_or(DomainError::NotFound)
    }
    .await;
    let service = match service {
        Ok(s) => s,
        Err(e) => return domain_error(&e),
    };
    let filed = intake::file_request(
        &state.platform,
        &state.files,
        &tenant,
        &service,
        &submission,
        Intake {
            citizen_id: None,
            mobile: mobile.as_str().to_owned(),
            channel: Channel::Open311,
            registered_by: None,
        },
    )
    .await;
    match filed {
        Ok(done) => {
            let r = done.request();
            (
                StatusCode::CREATED,
                axum::Json(json!([{
                    "service_request_id": r.tracking_code,
                    "token": token,
                    "service_notice": format!(
                        "موعد پاسخ: {}",
                        crate::requests::jalali_fa(r.promised_on)
                    ),
                    "account_id": null,
                }])),
            )
                .into_response()
        }
        Err(e) => domain_error(&e),
    }
}
