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
use chrono::{NaiveDate, Utc};
use desk_core::catalog::ServiceCard;
use desk_core::form::{FieldKind, FormField, FormSchema};
use desk_core::jalali::JalaliDate;
use desk_core::text::persian_digits;
use desk_core::tracking::TrackingCode;
use desk_core::workflow::Workflow;
use desk_core::{DomainError, FieldError, FieldErrors, TenantId};
use desk_db::requests::{self, Actor, Change, EventInput, NewFile, Request, StoredFile};
use desk_db::{Tenant, TenantTx};
use serde_json::{Value, json};
use sha2::Digest;
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

/// Today in the municipality's calendar (Iran Standard Time, UTC+03:30, no daylight saving).
pub(crate) fn local_today() -> NaiveDate {
    (Utc::now() + chrono::Duration::minutes(210)).date_naive()
}

/// A date as Iranians read it: `۱۴۰۴/۰۱/۱۵`.
pub(crate) fn jalali_fa(d: NaiveDate) -> String {
    persian_digits(&JalaliDate::from_gregorian(d).to_string())
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
        "overdue": r.promised_on < local_today(),
        "channel": desk_db::requests::Channel::label_fa(&r.channel),
        "assignee": r.assignee.as_ref().map(|a| &a.1),
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
                "at": persian_digits(&format!(
                    "{} {}",
                    JalaliDate::from_gregorian((e.at + chrono::Duration::minutes(210)).date_naive()),
                    (e.at + chrono::Duration::minutes(210)).format("%H:%M")
                )),
                "action": action_label(&d.workflow, &e.action),
                "state": state_label(&d.workflow, &e.to_state),
                "note": e.note,
                "unit": e.unit_name,
                "staff": if for_staff { e.staff_name.clone() } else { None },
                "sms": e.sms_status.as_deref().map(|s| match s {
                    "sent" => "پیامک فرستاده شد",
                    "failed" => "ارسال پیامک ناموفق بود",
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
        "overdue": r.promised_on < local_today(),
        "channel": desk_db::requests::Channel::label_fa(&r.channel),
        "fee": d.card.fee_description_fa,
        "steps": d.card.steps,
        "unit": r.unit.as_ref().map(|u| &u.1),
        "assignee": r.assignee.as_ref().map(|a| &a.1),
        "registered_by": if for_staff { r.registered_by.as_ref().map(|a| a.1.clone()) } else { None },
        "applicant": r.applicant_name,
        "national_code": r.national_code.as_deref().map(persian_digits),
        "mobile": persian_digits(&format!("0{}", r.mobile.trim_start_matches("+98"))),
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

async fn published_card(
    state: &WebState,
    tenant: &Tenant,
    code: &str,
) -> Result<Option<desk_db::catalog::PublishedService>, DomainError> {
    let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
    let found = desk_db::catalog::published_service(&mut tx, code).await?;
    tx.commit().await?;
    Ok(found)
}

fn no_service(state: &WebState, tenant: &Tenant) -> Response {
    error_page(
        state,
        StatusCode::NOT_FOUND,
        Some(tenant),
        "خدمت پیدا نشد",
        "این خدمت در میز خدمت این شهرداری نیست. فهرست خدمات را ببینید.",
    )
}

fn form_page(
    state: &WebState,
    tenant: &Tenant,
    service: &ServiceCard,
    csrf: &str,
    idempotency_key: &str,
    values: &HashMap<String, Vec<String>>,
    errors: &[FieldError],
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
            )
        }
        Ok(None) => no_service(&state, &me.tenant),
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

/// A multipart form as sent: text values per name, and files per name.
#[derive(Default)]
pub(crate) struct Submission {
    pub(crate) values: HashMap<String, Vec<String>>,
    pub(crate) files: HashMap<String, (String, Vec<u8>)>,
}

impl Submission {
    /// The first value of a text field (or empty).
    pub(crate) fn value(&self, name: &str) -> &str {
        self.values
            .get(name)
            .and_then(|v| v.first())
            .map_or("", String::as_str)
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

/// A file that passed its field's checks: the field, what was learnt, the bytes.
pub(crate) type Accepted<'a> = (&'a FormField, desk_core::form::StoredFileMeta, &'a [u8]);

/// Checks the files a form asks for; returns the accepted ones (field, meta, bytes) or the
/// errors. `only` limits the check to some fields (documents added later).
pub(crate) fn check_files<'a>(
    schema: &'a FormSchema,
    submission: &'a Submission,
    only: Option<&[&str]>,
) -> Result<Vec<Accepted<'a>>, Vec<FieldError>> {
    let mut accepted = Vec::new();
    let mut errors = Vec::new();
    for field in schema.file_fields() {
        if only.is_some_and(|names| !names.contains(&field.name.as_str())) {
            continue;
        }
        match submission.files.get(&field.name) {
            Some((name, bytes)) => match field.check_file(name, bytes) {
                Ok(meta) => accepted.push((field, meta, bytes.as_slice())),
                Err(e) => errors.push(e),
            },
            None if field.required && only.is_none() => errors.push(FieldError {
                field: field.name.clone(),
                code: "required",
                message: format!("«{}» لازم است.", field.label_fa),
            }),
            None => {}
        }
    }
    if errors.is_empty() {
        Ok(accepted)
    } else {
        Err(errors)
    }
}

/// Writes accepted files to the store; on any failure removes what was written.
pub(crate) async fn store_files(
    state: &WebState,
    tenant: TenantId,
    accepted: &[Accepted<'_>],
) -> Result<Vec<NewFile>, DomainError> {
    let mut stored: Vec<NewFile> = Vec::new();
    for (field, meta, bytes) in accepted {
        match state.files.put(tenant, bytes).await {
            Ok(key) => stored.push(NewFile {
                field: field.name.clone(),
                file_name: meta.safe_name.clone(),
                content_type: meta.content_type.to_owned(),
                size: i64::try_from(meta.size).unwrap_or(i64::MAX),
                sha256: sha2::Sha256::digest(bytes).to_vec(),
                storage_key: key,
            }),
            Err(e) => {
                remove_files(state, tenant, &stored).await;
                return Err(e);
            }
        }
    }
    Ok(stored)
}

/// Removes stored files whose records did not commit.
pub(crate) async fn remove_files(state: &WebState, tenant: TenantId, files: &[NewFile]) {
    for f in files {
        state.files.delete(tenant, &f.storage_key).await;
    }
}

/// What a submission needs besides the form: who files it and how.
pub(crate) struct Intake {
    pub(crate) citizen_id: Option<i64>,
    pub(crate) mobile: String,
    pub(crate) channel: requests::Channel,
    pub(crate) registered_by: Option<i64>,
}

/// Validates and stores a submission of `service` (form values and files), in one transaction
/// with its first event and SMS. Files are written first and removed again if the transaction
/// fails, so nothing partial remains. `Err(Ok(errors))` are the citizen's mistakes.
pub(crate) async fn file_request(
    state: &WebState,
    tenant: &Tenant,
    service: &desk_db::catalog::PublishedService,
    submission: &Submission,
    intake: Intake,
) -> Result<requests::Submitted, Result<Vec<FieldError>, DomainError>> {
    let schema = service.card.form_schema();
    let mut errors = Vec::new();
    let values = schema
        .validate(&submission.values)
        .map_err(|e| errors.extend(e.0));
    let files = check_files(&schema, submission, None).map_err(|e| errors.extend(e));
    let idempotency_key = submission.value("idempotency_key").trim().to_owned();
    if !idempotency_key.is_empty() && !(16..=100).contains(&idempotency_key.len()) {
        errors.push(FieldError {
            field: "idempotency_key".to_owned(),
            code: "idempotency_key",
            message: "فرم نامعتبر است؛ صفحه را دوباره باز کنید.".to_owned(),
        });
    }
    let (Ok(values), Ok(files)) = (values, files) else {
        return Err(Ok(errors));
    };
    if !errors.is_empty() {
        return Err(Ok(errors));
    }
    let stored = store_files(state, tenant.id, &files).await.map_err(Err)?;
    let text = |name: &str| values.get(name).and_then(Value::as_str).map(str::to_owned);
    let submitted = async {
        let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
        let today = local_today();
        let calendar = desk_db::settings::working_calendar(&mut tx, today).await?;
        let workflow = service.card.workflow();
        let initial_sla = workflow.state(&workflow.initial).and_then(|s| s.sla_days);
        let promised_on = calendar.promised_date(today, service.card.duration_days);
        let new = requests::NewRequest {
            service_id: service.id,
            service_code: service.card.code.clone(),
            citizen_id: intake.citizen_id,
            mobile: intake.mobile.clone(),
            national_code: text("applicant_national_code"),
            applicant_name: text("full_name"),
            channel: intake.channel,
            form: values.clone(),
            submitted_on: today,
            promised_on,
            state: workflow.initial.clone(),
            state_due_on: initial_sla.map(|d| calendar.promised_date(today, d)),
            registered_by: intake.registered_by,
            idempotency_key: (!idempotency_key.is_empty()).then(|| idempotency_key.clone()),
            files: stored.clone(),
            sms_body: Some(format!(
                "درخواست «{}» شما در میز خدمت {} ثبت شد. کد رهگیری: {{tracking}} — موعد پاسخ: {}",
                service.card.title_fa,
                tenant.name_fa,
                jalali_fa(promised_on)
            )),
        };
        let submitted = requests::submit(&mut tx, &new).await?;
        if let (Some(citizen), requests::Submitted::Created(_)) = (intake.citizen_id, &submitted) {
            desk_db::citizens::update_citizen_identity(
                &mut tx,
                citizen,
                new.national_code.as_deref(),
                new.applicant_name.as_deref(),
            )
            .await?;
        }
        tx.commit().await?;
        Ok::<_, DomainError>(submitted)
    }
    .await;
    match submitted {
        Ok(s) => {
            if matches!(s, requests::Submitted::Replayed(_)) {
                // The first submission already has its files.
                remove_files(state, tenant.id, &stored).await;
            }
            Ok(s)
        }
        Err(e) => {
            remove_files(state, tenant.id, &stored).await;
            Err(Err(e))
        }
    }
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
    match file_request(&state, &tenant, &service, &submission, intake).await {
        Ok(done) => {
            Redirect::to(&format!("/requests/{}", done.request().tracking_code)).into_response()
        }
        Err(Ok(errors)) => form_page(
            &state,
            &tenant,
            &service.card,
            &me.csrf,
            submission.value("idempotency_key"),
            &submission.values,
            &errors,
        ),
        Err(Err(e)) => failure(&state, &tenant, &e),
    }
}

/// The citizen's own request by tracking code; anyone else's is "not found".
async fn own_request(
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
    let transition = match detail.workflow.transition(
        &detail.request.state,
        "provide_documents",
        &["citizen"],
        None,
    ) {
        Ok(t) => t.clone(),
        Err(e) => {
            return failure(
                &state,
                &tenant,
                &FieldErrors::single("action", e.code(), e.message_fa()).into(),
            );
        }
    };
    // The added documents come in one file field, checked like the form's own.
    let schema = FormSchema {
        fields: vec![FormField {
            name: "extra".to_owned(),
            label_fa: "مدرک تکمیلی".to_owned(),
            help_fa: None,
            required: true,
            kind: FieldKind::File {
                accept: ["application/pdf", "image/jpeg", "image/png"]
                    .map(str::to_owned)
                    .to_vec(),
                max_bytes: desk_core::form::DEFAULT_FILE_BYTES,
            },
        }],
    };
    let accepted = match check_files(&schema, &submission, None) {
        Ok(a) => a,
        Err(errors) => return failure(&state, &tenant, &FieldErrors(errors).into()),
    };
    let stored = match store_files(&state, tenant.id, &accepted).await {
        Ok(s) => s,
        Err(e) => return failure(&state, &tenant, &e),
    };
    let done = async {
        let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
        let calendar = desk_db::settings::working_calendar(&mut tx, local_today()).await?;
        let due = detail
            .workflow
            .state(&transition.to)
            .and_then(|s| s.sla_days)
            .map(|d| calendar.promised_date(local_today(), d));
        requests::apply_change(
            &mut tx,
            &detail.request,
            &Change {
                event: EventInput {
                    actor: Actor::Citizen,
                    action: &transition.action,
                    from_state: Some(&detail.request.state),
                    to_state: &transition.to,
                    note: (!note.is_empty()).then_some(note.as_str()),
                    unit_id: None,
                },
                state_due_on: due,
                sms_body: None,
                files: stored.clone(),
            },
        )
        .await?;
        tx.commit().await
    }
    .await;
    match done {
        Ok(()) => {
            Redirect::to(&format!("/requests/{}", detail.request.tracking_code)).into_response()
        }
        Err(e) => {
            remove_files(&state, tenant.id, &stored).await;
            failure(&state, &tenant, &e)
        }
    }
}
