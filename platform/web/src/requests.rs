//! Electronic requests on a municipality's site: the request form of a service, submission
//! (validated on the server, files checked by content, one transaction, idempotent), the
//! receipt with tracking code and promised date, the citizen's view of a request with its
//! timeline, documents added later, and file downloads for those allowed to see the request.

use crate::WebState;
use crate::citizen::{CitizenSession, failure};
use crate::pages::{TenantView, error_page, render};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use chrono::NaiveDate;
use desk_app::intake::{self, Intake, Submission};
use desk_core::catalog::ServiceCard;
use desk_core::form::{FieldKind, FormSchema};
use desk_core::jalali::JalaliDate;
use desk_core::text::persian_digits;
use desk_core::tracking::TrackingCode;
use desk_core::workflow::Workflow;
use desk_core::{DomainError, FieldError, FieldErrors};
use desk_db::requests::{self, Actor, Request, StoredFile};
use desk_db::{Tenant, TenantTx};
use serde_json::{Value, json};
use std::collections::HashMap;

/// The largest request body a form with files may send (per-field limits are checked too).
pub(crate) const UPLOAD_BODY_LIMIT: usize = 64 * 1024 * 1024;

pub(crate) fn request_routes() -> Router<WebState> {
    Router::new()
        .route(
            "/services/{code}/apply",
            get(show_form)
                .post(submit)
                .layer(DefaultBodyLimit::max(UPLOAD_BODY_LIMIT)),
        )
        .route("/requests/{tracking}", get(show_request))
        .route(
            "/requests/{tracking}/documents",
            axum::routing::post(provide_documents).layer(DefaultBodyLimit::max(UPLOAD_BODY_LIMIT)),
        )
        .route("/requests/{tracking}/files/{id}", get(download))
}

pub(crate) use desk_core::calendar::today_in_iran as local_today;

/// A date as Iranians read it: `۱۴۰۴/۰۱/۱۵`.
pub(crate) fn jalali_fa(d: NaiveDate) -> String {
    JalaliDate::persian_of(d)
}

/// The Jalali date and time in Iran of an instant, in Persian digits (`۱۴۰۵/۰۹/۱۶ ۲۱:۳۰`).
pub(crate) fn jalali_moment(at: chrono::DateTime<chrono::Utc>) -> String {
    let t = desk_core::calendar::iran_time(at);
    persian_digits(&format!(
        "{} {}",
        JalaliDate::from_gregorian(t.date()),
        t.format("%H:%M")
    ))
}

fn state_label(workflow: &Workflow, key: &str) -> String {
    workflow
        .state(key)
        .map_or_else(|| key.to_owned(), |s| s.label_fa.clone())
}

/// One line of "my requests" and the inbox.
pub(crate) fn summary_view(r: &Request) -> Value {
    json!({
        "tracking": r.tracking_code,
        "tracking_fa": persian_digits(&r.tracking_code),
        "service": r.service_title,
        "state": r.state,
        "submitted": jalali_fa(r.submitted_on),
        "promised": jalali_fa(r.promised_on),
        "overdue": desk_core::calendar::is_overdue(r.promised_on, local_today()),
        "channel": desk_db::requests::Channel::label_fa(&r.channel),
        "assignee": r.assignee.as_ref().map(|a| &a.1),
        "assignee_id": r.assignee.as_ref().map(|a| a.0),
        "unit": r.unit.as_ref().map(|u| &u.1),
    })
}

/// A request with what its pages show.
pub(crate) struct Detail {
    pub(crate) request: Request,
    pub(crate) card: ServiceCard,
    pub(crate) workflow: Workflow,
    pub(crate) events: Vec<requests::Event>,
    pub(crate) files: Vec<StoredFile>,
}

/// Loads the card version, timeline and files of a request.
pub(crate) async fn load_detail(
    tx: &mut TenantTx,
    request: Request,
) -> Result<Detail, DomainError> {
    let card = desk_db::catalog::card_by_id(tx, request.service_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let workflow = card.workflow();
    let events = requests::events(tx, request.id).await?;
    let files = requests::files(tx, request.id).await?;
    Ok(Detail {
        request,
        card,
        workflow,
        events,
        files,
    })
}

fn action_label(workflow: &Workflow, action: &str) -> String {
    match action {
        "submit" => "ثبت درخواست".to_owned(),
        "claim" => "برداشتن درخواست".to_owned(),
        "assign" => "واگذاری به کارشناس".to_owned(),
        "inquiry_failed" => "استعلام ناموفق".to_owned(),
        "inquiry_timed_out" => "پایان مهلت استعلام".to_owned(),
        "sla_warning" => "هشدار موعد".to_owned(),
        "escalated" => "ارجاع به مدیر واحد".to_owned(),
        other => workflow
            .transitions
            .iter()
            .find(|t| t.action == other)
            .map_or_else(|| other.to_owned(), |t| t.label_fa.clone()),
    }
}

/// The view of a request. Citizens see the timeline without staff names; staff see everything.
pub(crate) fn detail_view(d: &Detail, for_staff: bool) -> Value {
    let r = &d.request;
    let events: Vec<Value> = d
        .events
        .iter()
        .map(|e| {
            json!({
                "at": jalali_moment(e.at),
                "action": action_label(&d.workflow, &e.action),
                "state": state_label(&d.workflow, &e.to_state),
                "note": e.note,
                "unit": e.unit_name,
                "staff": if for_staff { e.staff_name.clone() } else { None },
                "sms": e.sms_status.as_deref().map(|s| match (s, e.sms_delivery.as_deref()) {
                    ("sent", Some("delivered")) => "پیامک به گوشی رسید",
                    ("sent", Some("failed")) => "پیامک فرستاده شد ولی به گوشی نرسید",
                    ("sent", _) => "پیامک فرستاده شد",
                    ("failed", _) => "ارسال پیامک ناموفق بود",
                    _ => "پیامک در صف ارسال",
                }),
            })
        })
        .collect();
    let files: Vec<Value> = d
        .files
        .iter()
        .map(|f| {
            json!({
                "id": f.id, "name": f.file_name, "field": f.field,
                "size_kb": persian_digits(&((f.size + 1023) / 1024).to_string()),
            })
        })
        .collect();
    let schema = d.card.form_schema();
    let answers: Vec<Value> = schema
        .fields
        .iter()
        .filter(|f| !matches!(f.kind, FieldKind::File { .. }))
        .filter_map(|f| {
            let v = r.form.get(&f.name)?;
            let shown = match (&f.kind, v) {
                (FieldKind::Select { options }, Value::String(s)) => options
                    .iter()
                    .find(|o| &o.value == s)
                    .map_or_else(|| s.clone(), |o| o.label_fa.clone()),
                (FieldKind::MultiSelect { options }, Value::Array(items)) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|s| {
                        options
                            .iter()
                            .find(|o| o.value == s)
                            .map_or_else(|| s.to_owned(), |o| o.label_fa.clone())
                    })
                    .collect::<Vec<_>>()
                    .join("، "),
                (_, Value::String(s)) => persian_digits(s),
                (_, other) => persian_digits(&other.to_string()),
            };
            Some(json!({ "label": f.label_fa, "value": shown }))
        })
        .collect();
    json!({
        "tracking": r.tracking_code,
        "tracking_fa": TrackingCode::parse(&r.tracking_code).map(|t| t.grouped_fa()).unwrap_or_default(),
        "service": r.service_title,
        "service_code": r.service_code,
        "state": r.state,
        "state_label": state_label(&d.workflow, &r.state),
        "terminal": d.workflow.state(&r.state).is_some_and(|s| s.terminal),
        "submitted": jalali_fa(r.submitted_on),
        "promised": jalali_fa(r.promised_on),
        "duration": persian_digits(&d.card.duration_days.to_string()),
        "overdue": desk_core::calendar::is_overdue(r.promised_on, local_today()),
        "channel": desk_db::requests::Channel::label_fa(&r.channel),
        "fee": d.card.fee_description_fa,
        "steps": d.card.steps,
        "unit": r.unit.as_ref().map(|u| &u.1),
        "assignee": r.assignee.as_ref().map(|a| &a.1),
        "assignee_id": r.assignee.as_ref().map(|a| a.0),
        "registered_by": if for_staff { r.registered_by.as_ref().map(|a| a.1.clone()) } else { None },
        "applicant": r.applicant_name,
        "national_code": r.national_code.as_deref().map(persian_digits),
        "mobile": persian_digits(&desk_core::mobile::local_form(&r.mobile)),
        "answers": answers,
        "events": events,
        "files": files,
        "awaiting_documents": r.state == "awaiting_documents",
    })
}

/// The citizen's page of a request (also what a successful public lookup shows, without
/// the forms that need a session).
pub(crate) fn render_detail(
    state: &WebState,
    tenant: &Tenant,
    d: &Detail,
    csrf: Option<&str>,
) -> Response {
    render(
        state,
        StatusCode::OK,
        "request.html.j2",
        json!({ "tenant": TenantView::of(tenant), "r": detail_view(d, false), "csrf": csrf,
                "signed_in": csrf.is_some() }),
    )
}

/// The form's fields as the template renders them, with what was typed and its errors.
pub(crate) fn form_view(
    schema: &FormSchema,
    values: &HashMap<String, Vec<String>>,
    errors: &[FieldError],
) -> Vec<Value> {
    schema
        .fields
        .iter()
        .map(|f| {
            let (kind, extra) = match &f.kind {
                FieldKind::Text { max_length } => ("text", json!({ "max": max_length })),
                FieldKind::Address { max_length } => ("address", json!({ "max": max_length })),
                FieldKind::Number { min, max } => ("number", json!({ "min": min, "max": max })),
                FieldKind::JalaliDate { .. } => ("jalali_date", json!({})),
                FieldKind::Select { options } => ("select", json!({ "options": options })),
                FieldKind::MultiSelect { options } => {
                    ("multi_select", json!({ "options": options }))
                }
                FieldKind::NationalCode => ("national_code", json!({})),
                FieldKind::Mobile => ("mobile", json!({})),
                FieldKind::PostalCode => ("postal_code", json!({})),
                FieldKind::File { accept, max_bytes } => (
                    "file",
                    json!({
                        "accept": accept.join(","),
                        "max_mb": persian_digits(&(max_bytes / (1024 * 1024)).to_string()),
                    }),
                ),
            };
            let typed = values.get(&f.name).cloned().unwrap_or_default();
            json!({
                "name": f.name, "label": f.label_fa, "help": f.help_fa, "required": f.required,
                "kind": kind, "extra": extra,
                "value": typed.first().cloned().unwrap_or_default(), "values": typed,
                "errors": errors.iter().filter(|e| e.field == f.name).map(|e| &e.message).collect::<Vec<_>>(),
            })
        })
        .collect()
}

pub(crate) async fn published_card(
    state: &WebState,
    tenant: &Tenant,
    code: &str,
) -> Result<Option<desk_db::catalog::PublishedService>, DomainError> {
    let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
    let found = desk_db::catalog::published_service(&mut tx, code).await?;
    tx.commit().await?;
    Ok(found)
}

pub(crate) fn no_service(state: &WebState, tenant: &Tenant) -> Response {
    error_page(
        state,
        StatusCode::NOT_FOUND,
        Some(tenant),
        "خدمت پیدا نشد",
        "این خدمت در میز خدمت این شهرداری نیست. فهرست خدمات را ببینید.",
    )
}

/// Where a request form is posted, and for whom.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FormFor {
    /// The signed-in citizen, on the public site.
    Citizen,
    /// A walk-in at the in-person desk, registered by staff (asks for the citizen's mobile).
    Desk,
}

/// The request form page of a service, with what was typed and its errors.
#[allow(clippy::too_many_arguments)]
pub(crate) fn form_page(
    state: &WebState,
    tenant: &Tenant,
    service: &ServiceCard,
    csrf: &str,
    idempotency_key: &str,
    values: &HashMap<String, Vec<String>>,
    errors: &[FieldError],
    target: FormFor,
) -> Response {
    let schema = service.form_schema();
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    render(
        state,
        status,
        "apply.html.j2",
        json!({
            "tenant": TenantView::of(tenant),
            "s": { "code": service.code, "title": service.title_fa,
                   "duration": persian_digits(&service.duration_days.to_string()),
                   "fee": service.fee_description_fa },
            "fields": form_view(&schema, values, errors),
            "errors": errors.iter().map(|e| &e.message).collect::<Vec<_>>(),
            "csrf": csrf,
            "idempotency_key": idempotency_key,
            "action": match target {
                FormFor::Citizen => format!("/services/{}/apply", service.code),
                FormFor::Desk => format!("/staff/desk/{}", service.code),
            },
            "walk_in": matches!(target, FormFor::Desk),
            "mobile_input": values.get("citizen_mobile").and_then(|v| v.first()),
            "mobile_errors": errors.iter().filter(|e| e.field == "citizen_mobile").map(|e| &e.message).collect::<Vec<_>>(),
        }),
    )
}

async fn show_form(
    State(state): State<WebState>,
    me: CitizenSession,
    Path(code): Path<String>,
) -> Response {
    match published_card(&state, &me.tenant, &code).await {
        Ok(Some(service)) => {
            let mut values = HashMap::new();
            if let Some(n) = &me.citizen.national_code {
                values.insert("applicant_national_code".to_owned(), vec![n.clone()]);
            }
            if let Some(n) = &me.citizen.full_name {
                values.insert("full_name".to_owned(), vec![n.clone()]);
            }
            let key = desk_core::secret::new_token();
            form_page(
                &state,
                &me.tenant,
                &service.card,
                &me.csrf,
                &key[..32],
                &values,
                &[],
                FormFor::Citizen,
            )
        }
        Ok(None) => no_service(&state, &me.tenant),
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

fn bad_body() -> DomainError {
    FieldErrors::single(
        "form",
        "body",
        "فرم به درستی فرستاده نشد یا پرونده‌ها بیش از اندازه مجاز بودند.",
    )
    .into()
}

/// Reads a multipart body. An empty file input (no file chosen) is skipped.
pub(crate) async fn read_multipart(mut multipart: Multipart) -> Result<Submission, DomainError> {
    let mut out = Submission::default();
    let mut parts = 0;
    while let Some(field) = multipart.next_field().await.map_err(|_| bad_body())? {
        parts += 1;
        if parts > 200 {
            return Err(bad_body());
        }
        let name = field.name().unwrap_or_default().to_owned();
        match field.file_name().map(str::to_owned) {
            Some(file_name) => {
                let bytes = field.bytes().await.map_err(|_| bad_body())?;
                if !bytes.is_empty() || !file_name.is_empty() {
                    out.files.insert(name, (file_name, bytes.to_vec()));
                }
            }
            None => {
                let text = field.text().await.map_err(|_| bad_body())?;
                out.values.entry(name).or_default().push(text);
            }
        }
    }
    Ok(out)
}

async fn submit(
    State(state): State<WebState>,
    me: CitizenSession,
    Path(code): Path<String>,
    multipart: Multipart,
) -> Response {
    let tenant = me.tenant.clone();
    let submission = match read_multipart(multipart).await {
        Ok(s) => s,
        Err(e) => return failure(&state, &tenant, &e),
    };
    if let Err(e) = me.check_csrf(submission.value("csrf")) {
        return failure(&state, &tenant, &e);
    }
    let service = match published_card(&state, &tenant, &code).await {
        Ok(Some(s)) => s,
        Ok(None) => return no_service(&state, &tenant),
        Err(e) => return failure(&state, &tenant, &e),
    };
    let intake = Intake {
        citizen_id: Some(me.citizen.id),
        mobile: me.citizen.mobile.clone(),
        channel: requests::Channel::Web,
        registered_by: None,
    };
    match intake::file_request(
        &state.platform,
        &state.files,
        &tenant,
        &service,
        &submission,
        intake,
    )
    .await
    {
        Ok(done) => {
            Redirect::to(&format!("/requests/{}", done.request().tracking_code)).into_response()
        }
        Err(DomainError::Validation(errors)) => form_page(
            &state,
            &tenant,
            &service.card,
            &me.csrf,
            submission.value("idempotency_key"),
            &submission.values,
            &errors.0,
            FormFor::Citizen,
        ),
        Err(e) => failure(&state, &tenant, &e),
    }
}

/// The citizen's own request by tracking code; anyone else's is "not found".
pub(crate) async fn own_request(
    state: &WebState,
    me: &CitizenSession,
    tracking: &str,
) -> Result<Detail, DomainError> {
    let code = TrackingCode::parse(tracking).map_err(|_| DomainError::NotFound)?;
    let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
    let found = requests::request_by_tracking(&mut tx, code.as_str(), &me.citizen.mobile)
        .await?
        .ok_or(DomainError::NotFound)?;
    let detail = load_detail(&mut tx, found).await?;
    tx.commit().await?;
    Ok(detail)
}

async fn show_request(
    State(state): State<WebState>,
    me: CitizenSession,
    Path(tracking): Path<String>,
) -> Response {
    match own_request(&state, &me, &tracking).await {
        Ok(d) => render_detail(&state, &me.tenant, &d, Some(&me.csrf)),
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

/// Serves a stored file: type from the record, never sniffed by the browser, always as a
/// download, never cached by shared caches.
pub(crate) async fn serve_file(state: &WebState, tenant: &Tenant, file: &StoredFile) -> Response {
    match state.files.get(tenant.id, &file.storage_key).await {
        Ok(bytes) => {
            let ascii: String = file
                .file_name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let encoded: String = file
                .file_name
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b == b'.' {
                        char::from(b).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            (
                [
                    (header::CONTENT_TYPE, file.content_type.clone()),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
                    (header::CACHE_CONTROL, "private, no-store".to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"),
                    ),
                ],
                bytes,
            )
                .into_response()
        }
        Err(e) => failure(state, tenant, &e),
    }
}

async fn download(
    State(state): State<WebState>,
    me: CitizenSession,
    Path((tracking, id)): Path<(String, i64)>,
) -> Response {
    match own_request(&state, &me, &tracking).await {
        Ok(d) => match d.files.iter().find(|f| f.id == id) {
            Some(f) => serve_file(&state, &me.tenant, f).await,
            None => failure(&state, &me.tenant, &DomainError::NotFound),
        },
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

/// The citizen adds the documents staff asked for; the request goes back to review.
async fn provide_documents(
    State(state): State<WebState>,
    me: CitizenSession,
    Path(tracking): Path<String>,
    multipart: Multipart,
) -> Response {
    let tenant = me.tenant.clone();
    let submission = match read_multipart(multipart).await {
        Ok(s) => s,
        Err(e) => return failure(&state, &tenant, &e),
    };
    if let Err(e) = me.check_csrf(submission.value("csrf")) {
        return failure(&state, &tenant, &e);
    }
    let detail = match own_request(&state, &me, &tracking).await {
        Ok(d) => d,
        Err(e) => return failure(&state, &tenant, &e),
    };
    let note = submission.value("note").trim().to_owned();
    let done = intake::act(
        &state.platform,
        &state.files,
        &tenant,
        &detail.request,
        &detail.workflow,
        &intake::Act {
            action: "provide_documents",
            roles: &["citizen"],
            actor: Actor::Citizen,
            note: (!note.is_empty()).then_some(note.as_str()),
            unit_id: None,
            files: &submission,
        },
    )
    .await;
    match done {
        Ok(_) => {
            Redirect::to(&format!("/requests/{}", detail.request.tracking_code)).into_response()
        }
        Err(e) => failure(&state, &tenant, &e),
    }
}
