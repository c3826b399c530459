//! The request use cases every surface shares (citizen portal, in-person desk, GraphQL,
//! Open311): filing a request (form validated by the service's schema, files checked by
//! content and stored, one transaction with its first event and what follows from it) and
//! moving a request through its workflow. Citizens' mistakes come back as `DomainError::Validation` with a
//! Persian message per field; nothing partial is ever left behind.

use desk_core::form::{FieldKind, FormField, FormSchema, StoredFileMeta};
use desk_core::jalali::JalaliDate;
use desk_core::sms_templates::Event;
use desk_core::workflow::{TransitionError, Workflow};
use desk_core::{DomainError, FieldError, FieldErrors, TenantId};
use desk_db::catalog::PublishedService;
use desk_db::files::FileStore;
use desk_db::requests::{self, Actor, Change, Channel, EventInput, NewFile, Request, Submitted};
use desk_db::{PlatformDb, Tenant};
use serde_json::Value;
use sha2::Digest;
use std::collections::HashMap;

/// A form as sent: text values per name, and files (name as sent, bytes) per field.
#[derive(Debug, Default, Clone)]
pub struct Submission {
    /// Text values (a multi-select may have several).
    pub values: HashMap<String, Vec<String>>,
    /// Files by field.
    pub files: HashMap<String, (String, Vec<u8>)>,
}

impl Submission {
    /// The first value of a text field (or empty).
    pub fn value(&self, name: &str) -> &str {
        self.values
            .get(name)
            .and_then(|v| v.first())
            .map_or("", String::as_str)
    }
}

/// A file that passed its field's checks: the field, what was learnt, the bytes.
pub type Accepted<'a> = (&'a FormField, StoredFileMeta, &'a [u8]);

/// Checks the files `schema` asks for; returns the accepted ones or an error per field.
pub fn check_files<'a>(
    schema: &'a FormSchema,
    submission: &'a Submission,
) -> Result<Vec<Accepted<'a>>, Vec<FieldError>> {
    let mut accepted = Vec::new();
    let mut errors = Vec::new();
    for field in schema.file_fields() {
        match submission.files.get(&field.name) {
            Some((name, bytes)) => match field.check_file(name, bytes) {
                Ok(meta) => accepted.push((field, meta, bytes.as_slice())),
                Err(e) => errors.push(e),
            },
            None if field.required => errors.push(FieldError {
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
pub async fn store_files(
    store: &FileStore,
    tenant: TenantId,
    accepted: &[Accepted<'_>],
) -> Result<Vec<NewFile>, DomainError> {
    let mut stored: Vec<NewFile> = Vec::new();
    for (field, meta, bytes) in accepted {
        match store.put(tenant, bytes).await {
            Ok(key) => stored.push(NewFile {
                field: field.name.clone(),
                file_name: meta.safe_name.clone(),
                content_type: meta.content_type.to_owned(),
                size: i64::try_from(meta.size).unwrap_or(i64::MAX),
                sha256: sha2::Sha256::digest(bytes).to_vec(),
                storage_key: key,
            }),
            Err(e) => {
                remove_files(store, tenant, &stored).await;
                return Err(e);
            }
        }
    }
    Ok(stored)
}

/// Removes stored files whose records did not commit.
pub async fn remove_files(store: &FileStore, tenant: TenantId, files: &[NewFile]) {
    for f in files {
        store.delete(tenant, &f.storage_key).await;
    }
}

/// Who files a request and how.
#[derive(Debug, Clone)]
pub struct Intake {
    /// The signed-in citizen, if any.
    pub citizen_id: Option<i64>,
    /// Canonical mobile for updates and lookup.
    pub mobile: String,
    /// Channel.
    pub channel: Channel,
    /// Staff member registering it at the desk.
    pub registered_by: Option<i64>,
}

/// Validates and stores a submission of `service`, in one transaction with its first event
/// and SMS. Files are written first and removed again if the transaction fails (or if the
/// idempotency key shows the submission is a replay), so nothing partial remains.
pub async fn file_request(
    db: &PlatformDb,
    store: &FileStore,
    tenant: &Tenant,
    service: &PublishedService,
    submission: &Submission,
    intake: Intake,
) -> Result<Submitted, DomainError> {
    let schema = service.card.form_schema();
    let mut errors = Vec::new();
    let values = schema
        .validate(&submission.values)
        .map_err(|e| errors.extend(e.0));
    let files = check_files(&schema, submission).map_err(|e| errors.extend(e));
    let idempotency_key = submission.value("idempotency_key").trim().to_owned();
    if !idempotency_key.is_empty() && !(16..=100).contains(&idempotency_key.len()) {
        errors.push(FieldError {
            field: "idempotency_key".to_owned(),
            code: "idempotency_key",
            message: "کلید یکتایی درخواست باید ۱۶ تا ۱۰۰ نویسه باشد؛ صفحه را دوباره باز کنید."
                .to_owned(),
        });
    }
    let (Ok(values), Ok(files), true) = (values, files, errors.is_empty()) else {
        return Err(FieldErrors(errors).into());
    };
    let stored = store_files(store, tenant.id, &files).await?;
    // The applicant's national code and name are kept beside the form when the form asks
    // for them with the right kind (a municipality's own form may use the names otherwise).
    let text = |name: &str, kind_ok: fn(&FieldKind) -> bool, max: usize| {
        schema
            .field(name)
            .filter(|f| kind_ok(&f.kind))
            .and_then(|_| values.get(name))
            .and_then(Value::as_str)
            .map(|v| v.chars().take(max).collect::<String>())
    };
    let national_code = text(
        "applicant_national_code",
        |k| matches!(k, FieldKind::NationalCode),
        10,
    );
    let applicant_name = text("full_name", |k| matches!(k, FieldKind::Text { .. }), 100);
    let submitted = async {
        let mut tx = db.tenant_db().begin(tenant.scope()).await?;
        let today = desk_core::calendar::today_in_iran();
        let calendar = desk_db::settings::working_calendar(&mut tx, today).await?;
        let workflow = service.card.workflow();
        let initial_sla = workflow.state(&workflow.initial).and_then(|s| s.sla_days);
        let promised_on = calendar.promised_date(today, service.card.duration_days);
        let sms_body = desk_db::sms_templates::render(
            &mut tx,
            Event::RequestRegistered,
            &serde_json::json!({
                "municipality": tenant.name_fa, "service": service.card.title_fa,
                // Filled in by the submission, which draws the tracking code.
                "tracking_code": "{tracking}", "promised_date": JalaliDate::persian_of(promised_on),
            }),
        )
        .await?;
        let new = requests::NewRequest {
            service_id: service.id,
            service_code: service.card.code.clone(),
            citizen_id: intake.citizen_id,
            mobile: intake.mobile.clone(),
            national_code,
            applicant_name,
            channel: intake.channel,
            form: values.clone(),
            submitted_on: today,
            promised_on,
            state: workflow.initial.clone(),
            state_due_on: initial_sla.map(|d| calendar.promised_date(today, d)),
            registered_by: intake.registered_by,
            unit_name: Some(service.card.unit_fa.trim())
                .filter(|u| !u.is_empty())
                .map(str::to_owned),
            idempotency_key: (!idempotency_key.is_empty()).then(|| idempotency_key.clone()),
            files: stored.clone(),
        };
        let (submitted, first_event) = requests::submit(&mut tx, &new).await?;
        if let (Submitted::Created(request), Some(event_id)) = (&submitted, first_event) {
            crate::effects::dispatch(
                &mut tx,
                crate::effects::Happened::Filed {
                    request,
                    event_id,
                    sms: Some(sms_body),
                },
            )
            .await?;
        }
        if let (Some(citizen), Submitted::Created(_)) = (intake.citizen_id, &submitted) {
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
    if !matches!(submitted, Ok(Submitted::Created(_))) {
        // A failure, or a replay whose first submission already has its files.
        remove_files(store, tenant.id, &stored).await;
    }
    submitted
}

/// The one file field documents added later come in (checked like the form's own files).
pub fn extra_documents_form() -> FormSchema {
    FormSchema {
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
    }
}

/// A workflow action to take on a request.
#[derive(Debug, Clone)]
pub struct Act<'a> {
    /// The action key (`accept`, `approve`, ...).
    pub action: &'a str,
    /// The roles of whoever acts (`citizen`, staff role keys).
    pub roles: &'a [&'a str],
    /// Who acts.
    pub actor: Actor,
    /// A note (reason, message to the citizen).
    pub note: Option<&'a str>,
    /// Unit to forward to (`forward`).
    pub unit_id: Option<i64>,
    /// Files that come with the step (documents the citizen adds).
    pub files: &'a Submission,
}

/// The domain error for a refused transition: the role's refusal is `Forbidden`, the rest
/// a Persian message on the `action` field.
pub fn transition_error(e: &TransitionError) -> DomainError {
    match e {
        TransitionError::RoleNotAllowed => DomainError::Forbidden,
        other => FieldErrors::single("action", other.code(), other.message_fa()).into(),
    }
}

/// Moves `request` through `workflow` (refusing what the workflow does not allow from its
/// state for these roles), records the event, the files and the SMS if the transition
/// notifies. Returns the new state's key.
pub async fn act(
    db: &PlatformDb,
    store: &FileStore,
    tenant: &Tenant,
    request: &Request,
    workflow: &Workflow,
    act: &Act<'_>,
) -> Result<String, DomainError> {
    if act.note.is_some_and(|n| n.chars().count() > 2000) {
        return Err(FieldErrors::single(
            "note",
            "note_too_long",
            "توضیح باید حداکثر ۲۰۰۰ نویسه باشد.",
        )
        .into());
    }
    let transition = workflow
        .transition(&request.state, act.action, act.roles, act.note)
        .map_err(|e| transition_error(&e))?
        .clone();
    // Only forwarding moves a request to another unit, whatever else the caller sent.
    let unit_id = act.unit_id.filter(|_| transition.action == "forward");
    if transition.action == "forward" && unit_id.is_none() {
        return Err(FieldErrors::single(
            "unit_id",
            "unit",
            "واحدی را که درخواست به آن ارجاع می‌شود انتخاب کنید.",
        )
        .into());
    }
    let accepted = if transition.action == "provide_documents" {
        let schema = extra_documents_form();
        let accepted = check_files(&schema, act.files).map_err(FieldErrors)?;
        store_files(store, tenant.id, &accepted).await?
    } else {
        Vec::new()
    };
    let done = async {
        let mut tx = db.tenant_db().begin(tenant.scope()).await?;
        if let Some(unit) = unit_id
            && !requests::units(&mut tx).await?.iter().any(|u| u.id == unit)
        {
            return Err(DomainError::NotFound);
        }
        let today = desk_core::calendar::today_in_iran();
        let calendar = desk_db::settings::working_calendar(&mut tx, today).await?;
        let to = workflow.state(&transition.to);
        let due = to
            .and_then(|s| s.sla_days)
            .map(|d| calendar.promised_date(today, d));
        let to_label = to.map_or(transition.to.as_str(), |s| s.label_fa.as_str());
        let sms = if transition.notify_citizen {
            let event = if transition.to == "awaiting_documents" {
                Event::DocumentsNeeded
            } else if to.is_some_and(|s| s.terminal) {
                Event::AnswerReady
            } else {
                Event::StepChanged
            };
            Some(
                desk_db::sms_templates::render(
                    &mut tx,
                    event,
                    &serde_json::json!({
                        "municipality": tenant.name_fa, "service": request.service_title,
                        "tracking_code": request.tracking_code, "state": to_label,
                        "note": act.note.unwrap_or_default(),
                    }),
                )
                .await?,
            )
        } else {
            None
        };
        crate::effects::change(
            &mut tx,
            request,
            &Change {
                event: EventInput {
                    actor: act.actor,
                    action: &transition.action,
                    from_state: Some(&request.state),
                    to_state: &transition.to,
                    note: act.note,
                    unit_id,
                },
                state_due_on: due,
                closes: to.is_some_and(|s| s.terminal),
                files: accepted.clone(),
            },
            sms,
        )
        .await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = done {
        remove_files(store, tenant.id, &accepted).await;
        return Err(e);
    }
    Ok(transition.to)
}
