//! Requests in the tenant API: the public status lookup (tracking code + mobile), and for
//! integrators with an API key of this municipality: filing requests (with file uploads),
//! listing them (Relay-style pages), polling changes, and workflow actions as the key's role.

use crate::{Caller, Services, gql_error};
use async_graphql::{
    Context, ErrorExtensions, InputObject, Json, Object, SimpleObject, Subscription, Upload,
};
use desk_app::intake::{self, Intake, Submission};
use desk_core::jalali::JalaliDate;
use desk_core::tracking::TrackingCode;
use desk_core::{DomainError, MobileNumber};
use desk_db::Tenant;
use desk_db::api_keys::ApiKey;
use desk_db::requests::{self, Actor, Channel, Request, Scope};
use std::io::Read;
use std::sync::Arc;

/// One step on a request's timeline.
#[derive(Debug, SimpleObject)]
pub struct RequestEvent {
    /// When (RFC 3339).
    pub at: String,
    /// Workflow action key (`submit`, `accept`, ...).
    pub action: String,
    /// State after the step.
    pub state: String,
    /// Persian name of that state.
    pub state_label: String,
    /// Note to the citizen, if any.
    pub note: Option<String>,
}

/// Where a request stands, as its citizen may see it.
#[derive(Debug, SimpleObject)]
pub struct RequestStatus {
    /// Twelve-digit tracking code.
    pub tracking_code: String,
    /// Service code.
    pub service_code: String,
    /// Service title.
    pub service_title: String,
    /// State key.
    pub state: String,
    /// Persian name of the state.
    pub state_label: String,
    /// `web`, `in_person`, `api` or `open311`.
    pub channel: String,
    /// Day filed, Jalali (`1404/01/15`).
    pub submitted_on: String,
    /// Promised answer date, Jalali.
    pub promised_on: String,
    /// Past the promised date and not closed.
    pub overdue: bool,
    /// Every step, oldest first.
    pub timeline: Vec<RequestEvent>,
}

/// A request as an integrator with `requests:read` sees it.
#[derive(Debug, SimpleObject)]
pub struct RequestRecord {
    /// Twelve-digit tracking code.
    pub tracking_code: String,
    /// Service code.
    pub service_code: String,
    /// State key.
    pub state: String,
    /// `web`, `in_person`, `api` or `open311`.
    pub channel: String,
    /// Day filed (ISO `yyyy-mm-dd`).
    pub submitted_on: String,
    /// Promised answer date (ISO).
    pub promised_on: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
    /// Applicant's name.
    pub applicant_name: Option<String>,
    /// Applicant's national code.
    pub national_code: Option<String>,
    /// Mobile (`+989...`).
    pub mobile: String,
    /// Form values as filed.
    pub form: Json<serde_json::Value>,
    /// Responsible unit.
    pub unit: Option<String>,
    /// Responsible staff member.
    pub assignee: Option<String>,
}

/// An edge of a request page.
#[derive(Debug, SimpleObject)]
pub struct RequestEdge {
    /// Opaque cursor of this edge.
    pub cursor: String,
    /// The request.
    pub node: RequestRecord,
}

/// Where a page stands.
#[derive(Debug, SimpleObject)]
pub struct PageInfo {
    /// Whether earlier items exist (pages go forward only: always false, as Relay allows).
    pub has_previous_page: bool,
    /// Whether more follow.
    pub has_next_page: bool,
    /// Cursor of the first edge.
    pub start_cursor: Option<String>,
    /// Cursor of the last edge.
    pub end_cursor: Option<String>,
}

/// A page of requests.
#[derive(Debug, SimpleObject)]
pub struct RequestConnection {
    /// The requests.
    pub edges: Vec<RequestEdge>,
    /// Paging.
    pub page_info: PageInfo,
}

/// A file for a file field of the service's form (multipart request).
#[derive(InputObject)]
pub struct FileInput {
    /// The form field it answers (`doc_1`).
    pub field: String,
    /// The file.
    pub file: Upload,
}

/// A request to file.
#[derive(InputObject)]
pub struct SubmitRequestInput {
    /// Service code.
    pub service_code: String,
    /// The applicant's mobile (any usual form; updates go there).
    pub mobile: String,
    /// Form values by field name: a string, or a list of strings for a multi-select.
    pub values: Json<serde_json::Map<String, serde_json::Value>>,
    /// Makes retries safe: the same key returns the first request.
    pub idempotency_key: Option<String>,
    /// Files for the form's file fields.
    #[graphql(default)]
    pub files: Vec<FileInput>,
}

/// What filing gave.
#[derive(Debug, SimpleObject)]
pub struct SubmitRequestResult {
    /// Tracking code.
    pub tracking_code: String,
    /// Promised answer date, Jalali.
    pub promised_on: String,
    /// Whether this was a replay of an earlier submission with the same key.
    pub replayed: bool,
}

pub(crate) fn require<'a>(caller: &'a Caller, scope: &str) -> async_graphql::Result<&'a ApiKey> {
    match &caller.key {
        None => Err(
            async_graphql::Error::new("an API key of this municipality is required")
                .extend_with(|_, e| e.set("code", "UNAUTHENTICATED")),
        ),
        Some(k) if k.has(scope) => Ok(k),
        Some(_) => Err(gql_error(DomainError::Forbidden)),
    }
}

pub(crate) fn context<'a>(
    ctx: &'a Context<'_>,
) -> async_graphql::Result<(&'a Arc<Tenant>, &'a Services, &'a Caller)> {
    Ok((
        ctx.data::<Arc<Tenant>>()?,
        ctx.data::<Services>()?,
        ctx.data::<Caller>()?,
    ))
}

fn record(r: Request) -> RequestRecord {
    RequestRecord {
        tracking_code: r.tracking_code,
        service_code: r.service_code,
        state: r.state,
        channel: r.channel,
        submitted_on: r.submitted_on.to_string(),
        promised_on: r.promised_on.to_string(),
        updated_at: r.updated_at.to_rfc3339(),
        applicant_name: r.applicant_name,
        national_code: r.national_code,
        mobile: r.mobile,
        form: Json(r.form),
        unit: r.unit.map(|u| u.1),
        assignee: r.assignee.map(|a| a.1),
    }
}

async fn status(
    services: &Services,
    tenant: &Tenant,
    request: Request,
) -> Result<RequestStatus, DomainError> {
    let mut tx = services.platform.tenant_db().begin(tenant.scope()).await?;
    let card = desk_db::catalog::card_by_id(&mut tx, request.service_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let events = requests::events(&mut tx, request.id).await?;
    tx.commit().await?;
    let workflow = card.workflow();
    let label = |key: &str| {
        workflow
            .state(key)
            .map_or_else(|| key.to_owned(), |s| s.label_fa.clone())
    };
    Ok(RequestStatus {
        state_label: label(&request.state),
        overdue: desk_core::calendar::is_overdue(
            request.promised_on,
            desk_core::calendar::today_in_iran(),
        ) && !workflow.state(&request.state).is_some_and(|s| s.terminal),
        tracking_code: request.tracking_code,
        service_code: request.service_code,
        service_title: request.service_title,
        state: request.state,
        channel: request.channel,
        submitted_on: JalaliDate::from_gregorian(request.submitted_on).to_string(),
        promised_on: JalaliDate::from_gregorian(request.promised_on).to_string(),
        timeline: events
            .into_iter()
            .map(|e| RequestEvent {
                at: e.at.to_rfc3339(),
                state_label: label(&e.to_state),
                action: e.action,
                state: e.to_state,
                note: e.note,
            })
            .collect(),
    })
}

fn parse_after<T>(
    after: Option<&str>,
    parse: impl Fn(&str) -> Option<T>,
) -> async_graphql::Result<Option<T>> {
    match after {
        None => Ok(None),
        Some(raw) => parse(raw).map(Some).ok_or_else(|| {
            gql_error(
                desk_core::FieldErrors::single(
                    "after",
                    "cursor",
                    "cursor is not one this API gave",
                )
                .into(),
            )
        }),
    }
}

fn page(
    rows: Vec<Request>,
    first: usize,
    cursor: impl Fn(&Request) -> String,
) -> RequestConnection {
    let has_next_page = rows.len() > first;
    let edges: Vec<RequestEdge> = rows
        .into_iter()
        .take(first)
        .map(|r| RequestEdge {
            cursor: cursor(&r),
            node: record(r),
        })
        .collect();
    RequestConnection {
        page_info: PageInfo {
            has_previous_page: false,
            has_next_page,
            start_cursor: edges.first().map(|e| e.cursor.clone()),
            end_cursor: edges.last().map(|e| e.cursor.clone()),
        },
        edges,
    }
}

/// Request queries of the tenant API.
#[derive(Debug, Default)]
pub struct RequestQuery;

#[Object]
impl RequestQuery {
    /// Where a request stands: needs its tracking code and the mobile number it was filed
    /// with (no key needed; lookups are limited per client address, and each costs 50 of the
    /// query's complexity budget of 500).
    #[graphql(complexity = 50)]
    async fn request(
        &self,
        ctx: &Context<'_>,
        tracking_code: String,
        mobile: String,
    ) -> async_graphql::Result<Option<RequestStatus>> {
        let (tenant, services, caller) = context(ctx)?;
        let limit_key = format!("{}:{}", tenant.id, caller.source);
        if !services.lookups.may_try(&limit_key) {
            return Err(gql_error(DomainError::RateLimited {
                retry_after: services.lookups.retry_after(&limit_key),
                message: "too many lookups".into(),
            }));
        }
        // Counted before it runs, so aliased fields resolving concurrently cannot slip past.
        services.lookups.record(&limit_key, false);
        let code = TrackingCode::parse(&tracking_code).map_err(|e| gql_error(e.into()))?;
        let mobile = MobileNumber::parse(&mobile).map_err(|e| gql_error(e.into()))?;
        let found = async {
            let mut tx = services.platform.tenant_db().begin(tenant.scope()).await?;
            let found =
                requests::request_by_tracking(&mut tx, code.as_str(), mobile.as_str()).await?;
            tx.commit().await?;
            Ok::<_, DomainError>(found)
        }
        .await
        .map_err(gql_error)?;
        match found {
            Some(r) => Ok(Some(status(services, tenant, r).await.map_err(gql_error)?)),
            None => Ok(None),
        }
    }

    /// Open requests (or those in `state`), overdue and due soon first. Needs `requests:read`.
    async fn requests(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20, validator(minimum = 1, maximum = 100))] first: i32,
        after: Option<String>,
        state: Option<String>,
    ) -> async_graphql::Result<RequestConnection> {
        let (tenant, services, caller) = context(ctx)?;
        require(caller, "requests:read")?;
        let after = parse_after(after.as_deref(), |raw| {
            let (day, id) = raw.split_once(':')?;
            Some((day.parse().ok()?, id.parse().ok()?))
        })?;
        let first = usize::try_from(first).unwrap_or(20);
        let rows = async {
            let mut tx = services.platform.tenant_db().begin(tenant.scope()).await?;
            // A key reaches the whole municipality: the admin who made it chose its scopes.
            let rows = requests::inbox(
                &mut tx,
                Scope::All,
                None,
                state.as_deref(),
                after,
                i64::try_from(first).unwrap_or(20) + 1,
            )
            .await?;
            tx.commit().await?;
            Ok::<_, DomainError>(rows)
        }
        .await
        .map_err(gql_error)?;
        Ok(page(rows, first, |r| format!("{}:{}", r.promised_on, r.id)))
    }

    /// Requests changed since the cursor, oldest change first: poll with the last
    /// `endCursor` to follow every status change. Needs `requests:read`.
    async fn request_changes(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50, validator(minimum = 1, maximum = 200))] first: i32,
        after: Option<String>,
    ) -> async_graphql::Result<RequestConnection> {
        let (tenant, services, caller) = context(ctx)?;
        require(caller, "requests:read")?;
        let after = parse_after(after.as_deref(), parse_change_cursor)?;
        let first = usize::try_from(first).unwrap_or(50);
        let rows = async {
            let mut tx = services.platform.tenant_db().begin(tenant.scope()).await?;
            let rows =
                requests::changed_after(&mut tx, after, i64::try_from(first).unwrap_or(50) + 1)
                    .await?;
            tx.commit().await?;
            Ok::<_, DomainError>(rows)
        }
        .await
        .map_err(gql_error)?;
        Ok(page(rows, first, change_cursor))
    }
}

/// The cursor of a change: when and which (the keyset of `requests::changed_after`).
fn change_cursor(r: &Request) -> String {
    format!(
        "{}|{}",
        r.updated_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        r.id
    )
}

fn parse_change_cursor(raw: &str) -> Option<(chrono::DateTime<chrono::Utc>, i64)> {
    let (at, id) = raw.rsplit_once('|')?;
    Some((
        chrono::DateTime::parse_from_rfc3339(at).ok()?.to_utc(),
        id.parse().ok()?,
    ))
}

/// How often a subscription looks for new changes.
const SUBSCRIPTION_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Request subscriptions of the tenant API (GraphQL over WebSocket at `/graphql/ws`).
#[derive(Debug, Default)]
pub struct RequestSubscription;

#[Subscription]
impl RequestSubscription {
    /// Every change of this municipality's requests (filed, moved, answered) as it happens, in
    /// order; each edge's cursor resumes after it (`after`), so a client that reconnects misses
    /// nothing. Without `after`, starts from now. Needs `requests:read`.
    async fn request_changed(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
    ) -> async_graphql::Result<
        impl futures::Stream<Item = async_graphql::Result<RequestEdge>> + use<>,
    > {
        let (tenant, services, caller) = context(ctx)?;
        require(caller, "requests:read")?;
        let start = parse_after(after.as_deref(), parse_change_cursor)?.unwrap_or_else(|| {
            // Changes from now on: everything older than the lag is behind the cursor.
            let lag = chrono::Duration::from_std(requests::CHANGES_LAG).unwrap_or_default();
            (chrono::Utc::now() - lag, i64::MAX)
        });
        let (tenant, services) = (tenant.clone(), services.clone());
        // The state is `None` once an error ended the stream (the client resubscribes with the
        // last cursor it got).
        let state = Some((Some(start), std::collections::VecDeque::<Request>::new()));
        Ok(futures::stream::unfold(state, move |state| {
            let (tenant, services) = (tenant.clone(), services.clone());
            async move {
                let (mut cursor, mut buffer) = state?;
                loop {
                    if let Some(r) = buffer.pop_front() {
                        let edge = RequestEdge {
                            cursor: change_cursor(&r),
                            node: record(r),
                        };
                        return Some((Ok(edge), Some((cursor, buffer))));
                    }
                    let rows = async {
                        let mut tx = services.platform.tenant_db().begin(tenant.scope()).await?;
                        let rows = requests::changed_after(&mut tx, cursor, 200).await?;
                        tx.commit().await?;
                        Ok::<_, DomainError>(rows)
                    }
                    .await;
                    match rows {
                        Ok(rows) if rows.is_empty() => {
                            tokio::time::sleep(SUBSCRIPTION_POLL).await;
                        }
                        Ok(rows) => {
                            cursor = rows.last().map(|r| (r.updated_at, r.id)).or(cursor);
                            buffer.extend(rows);
                        }
                        Err(e) => return Some((Err(gql_error(e)), None)),
                    }
                }
            }
        }))
    }
}

/// Request mutations of the tenant API.
#[derive(Debug, Default)]
pub struct RequestMutation;

#[Object]
impl RequestMutation {
    /// Files a request for a citizen (channel `api`). Needs `requests:submit`. Send files as a
    /// GraphQL multipart request.
    async fn submit_request(
        &self,
        ctx: &Context<'_>,
        input: SubmitRequestInput,
    ) -> async_graphql::Result<SubmitRequestResult> {
        let (tenant, services, caller) = context(ctx)?;
        require(caller, "requests:submit")?;
        let mobile = MobileNumber::parse(&input.mobile).map_err(|e| gql_error(e.into()))?;
        let mut submission = Submission::default();
        for (name, value) in input.values.0 {
            let values = match value {
                serde_json::Value::String(s) => vec![s],
                serde_json::Value::Number(n) => vec![n.to_string()],
                serde_json::Value::Array(items) => items
                    .into_iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => continue,
            };
            submission.values.insert(name, values);
        }
        if let Some(key) = input.idempotency_key {
            submission
                .values
                .insert("idempotency_key".into(), vec![key]);
        }
        for f in input.files {
            let upload = f.file.value(ctx)?;
            let mut bytes = Vec::new();
            upload
                .into_read()
                .take(desk_core::form::MAX_FILE_BYTES + 1)
                .read_to_end(&mut bytes)?;
            submission.files.insert(f.field, (String::new(), bytes));
        }
        let service = async {
            let mut tx = services.platform.tenant_db().begin(tenant.scope()).await?;
            let found = desk_db::catalog::published_service(&mut tx, &input.service_code).await?;
            tx.commit().await?;
            found.ok_or(DomainError::NotFound)
        }
        .await
        .map_err(gql_error)?;
        let done = intake::file_request(
            &services.platform,
            &services.files,
            tenant,
            &service,
            &submission,
            Intake {
                citizen_id: None,
                mobile: mobile.as_str().to_owned(),
                channel: Channel::Api,
                registered_by: None,
            },
        )
        .await
        .map_err(gql_error)?;
        let replayed = matches!(done, requests::Submitted::Replayed(_));
        let request = done.request();
        Ok(SubmitRequestResult {
            tracking_code: request.tracking_code.clone(),
            promised_on: JalaliDate::from_gregorian(request.promised_on).to_string(),
            replayed,
        })
    }

    /// Takes a workflow action on a request as the key's role. Needs `requests:act`.
    async fn transition_request(
        &self,
        ctx: &Context<'_>,
        tracking_code: String,
        action: String,
        note: Option<String>,
        unit_id: Option<i64>,
    ) -> async_graphql::Result<RequestStatus> {
        let (tenant, services, caller) = context(ctx)?;
        let key = require(caller, "requests:act")?;
        let role = key.role.clone().unwrap_or_default();
        let code =
            TrackingCode::parse(&tracking_code).map_err(|_| gql_error(DomainError::NotFound))?;
        let (request, card) = async {
            let mut tx = services.platform.tenant_db().begin(tenant.scope()).await?;
            let request = requests::request_by_code(&mut tx, code.as_str())
                .await?
                .ok_or(DomainError::NotFound)?;
            let card = desk_db::catalog::card_by_id(&mut tx, request.service_id)
                .await?
                .ok_or(DomainError::NotFound)?;
            tx.commit().await?;
            Ok::<_, DomainError>((request, card))
        }
        .await
        .map_err(gql_error)?;
        let note = note.as_deref().map(str::trim).filter(|n| !n.is_empty());
        intake::act(
            &services.platform,
            &services.files,
            tenant,
            &request,
            &card.workflow(),
            &intake::Act {
                action: &action,
                roles: &[role.as_str()],
                actor: Actor::ApiKey(key.id),
                note,
                unit_id,
                files: &Submission::default(),
            },
        )
        .await
        .map_err(gql_error)?;
        let updated = async {
            let mut tx = services.platform.tenant_db().begin(tenant.scope()).await?;
            let r = requests::request_by_id(&mut tx, request.id)
                .await?
                .ok_or(DomainError::NotFound)?;
            tx.commit().await?;
            Ok::<_, DomainError>(r)
        }
        .await
        .map_err(gql_error)?;
        status(services, tenant, updated).await.map_err(gql_error)
    }
}
