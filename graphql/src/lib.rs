//! The GraphQL APIs of Miz: the tenant API at `/graphql` on each municipality's host (GraphiQL
//! on GET). Queries run for the tenant the host resolved to, found in the request extensions.
//!
//! Must not depend on the web, jobs or tenant-admin crates. The SDL is committed in
//! `graphql/schema.graphql`; a test fails when code and file drift.

mod catalog_admin;
mod reports;
mod requests;

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::http::GraphiQLSource;
use async_graphql::{Context, ErrorExtensions, MergedObject, Object, Schema, SimpleObject};
use async_graphql_axum::{GraphQLProtocol, GraphQLResponse, GraphQLWebSocket};
use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Extension, State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use desk_core::DomainError;
use desk_core::limiter::{ApiRates, AttemptLimiter};
use desk_db::api_keys::ApiKey;
use desk_db::files::FileStore;
use desk_db::{PlatformDb, Tenant};
pub use desk_http::api_error::gql_error;
use std::net::SocketAddr;
use std::sync::Arc;

/// The tenant API schema.
pub type TenantSchema = Schema<TenantQuery, TenantMutation, requests::RequestSubscription>;

/// Builds the tenant schema with depth and complexity limits.
pub fn tenant_schema() -> TenantSchema {
    Schema::build(
        TenantQuery::default(),
        TenantMutation::default(),
        requests::RequestSubscription,
    )
    .limit_depth(12)
    .limit_complexity(500)
    .finish()
}

/// Root of the tenant API's queries.
#[derive(Debug, Default, MergedObject)]
pub struct TenantQuery(CatalogQuery, requests::RequestQuery, reports::ReportQuery);

/// Root of the tenant API's mutations.
#[derive(Debug, Default, MergedObject)]
pub struct TenantMutation(requests::RequestMutation, catalog_admin::CatalogMutation);

/// Catalog queries.
#[derive(Debug, Default)]
pub struct CatalogQuery;

/// What the API works with, shared by every request.
#[derive(Debug, Clone)]
pub struct Services {
    /// Registry and tenant transactions.
    pub platform: PlatformDb,
    /// Uploaded documents.
    pub files: FileStore,
    /// Failed public lookups per client address.
    pub lookups: Arc<AttemptLimiter>,
    /// Take the client address from `X-Forwarded-For`.
    pub trust_forwarded_for: bool,
    /// Request rates per key and per address without one (shared with Open311).
    pub rates: Arc<ApiRates>,
    /// Policies (an API key acting as a role is checked against them).
    pub authz: desk_authz::Authorizer,
}

/// Who is calling: the API key of this municipality they presented (if valid), and from
/// where.
#[derive(Debug, Clone)]
pub struct Caller {
    /// A live key found in this municipality's schema.
    pub key: Option<ApiKey>,
    /// Client address.
    pub source: String,
}

/// A province of Iran.
#[derive(Debug, SimpleObject)]
pub struct Province {
    /// Numeric id (1..=31).
    pub id: i32,
    /// Persian name.
    pub name: String,
}

/// The municipality this API serves.
#[derive(Debug, SimpleObject)]
pub struct Municipality {
    /// Fixed slug (`isfahan`).
    pub slug: String,
    /// Persian name.
    pub name: String,
    /// English name (may be empty).
    pub name_en: String,
    /// The province it belongs to.
    pub province: Province,
}

/// A question and its answer.
#[derive(Debug, SimpleObject)]
pub struct FaqItem {
    /// Question.
    pub question: String,
    /// Answer.
    pub answer: String,
}

/// A frequently asked question of the municipality.
#[derive(Debug, SimpleObject)]
pub struct FaqEntry {
    /// The service it is about; `null` for a general question.
    pub service_code: Option<String>,
    /// Question.
    pub question: String,
    /// Answer.
    pub answer: String,
}

/// An inquiry to another agency that the service needs.
#[derive(Debug, SimpleObject)]
pub struct AgencyInquiry {
    /// The agency asked.
    pub agency: String,
    /// What is asked.
    pub subject: String,
}

/// A published service identity card.
#[derive(Debug, SimpleObject)]
pub struct Service {
    /// Code (`MUN-BLD-001`).
    pub code: String,
    /// Published version.
    pub version: i32,
    /// Persian title.
    pub title: String,
    /// English title.
    pub title_en: String,
    /// Category code.
    pub category: String,
    /// What the service is.
    pub description: String,
    /// Ordered steps.
    pub steps: Vec<String>,
    /// Required documents.
    pub documents: Vec<String>,
    /// Laws and regulations.
    pub legal_basis: Vec<String>,
    /// Inquiries to other agencies.
    pub inquiries: Vec<AgencyInquiry>,
    /// Typical duration in working days (0: at once).
    pub duration_days: i32,
    /// Fees, as text.
    pub fees: String,
    /// Frequently asked questions.
    pub faq: Vec<FaqItem>,
}

fn service(p: desk_db::catalog::PublishedService) -> Service {
    let c = p.card;
    Service {
        code: c.code,
        version: p.version,
        title: c.title_fa,
        title_en: c.title_en,
        category: c.category,
        description: c.description_fa,
        steps: c.steps,
        documents: c.documents,
        legal_basis: c.legal_basis,
        inquiries: c
            .inquiries
            .into_iter()
            .map(|i| AgencyInquiry {
                agency: i.agency,
                subject: i.subject,
            })
            .collect(),
        duration_days: i32::try_from(c.duration_days).unwrap_or(i32::MAX),
        fees: c.fee_description_fa,
        faq: c
            .faq
            .into_iter()
            .map(|f| FaqItem {
                question: f.q,
                answer: f.a,
            })
            .collect(),
    }
}

fn internal(e: desk_core::DomainError) -> async_graphql::Error {
    tracing::error!(error = %e, "tenant API request failed");
    async_graphql::Error::new("internal error").extend_with(|_, ext| ext.set("code", "INTERNAL"))
}

#[Object]
impl CatalogQuery {
    /// Published services, optionally in one category and matching `search` (Persian text is
    /// normalized: Arabic yeh/kaf, digits, ZWNJ).
    async fn services(
        &self,
        ctx: &Context<'_>,
        search: Option<String>,
        category: Option<String>,
    ) -> async_graphql::Result<Vec<Service>> {
        let tenant = ctx.data::<Arc<Tenant>>()?;
        let db = ctx.data::<Services>()?.platform.tenant_db();
        let folded = search.as_deref().map(desk_core::text::normalize_for_search);
        let mut tx = db.begin(tenant.scope()).await.map_err(internal)?;
        let found =
            desk_db::catalog::published_services(&mut tx, category.as_deref(), folded.as_deref())
                .await
                .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        Ok(found.into_iter().map(service).collect())
    }

    /// Published services matching `query` (Persian-normalized: Arabic yeh and kaf, Persian
    /// and Arabic digits, ZWNJ), best matches as `services(search:)` orders them.
    async fn search_services(
        &self,
        ctx: &Context<'_>,
        query: String,
    ) -> async_graphql::Result<Vec<Service>> {
        self.services(ctx, Some(query), None).await
    }

    /// One published service by code.
    async fn service(
        &self,
        ctx: &Context<'_>,
        code: String,
    ) -> async_graphql::Result<Option<Service>> {
        let tenant = ctx.data::<Arc<Tenant>>()?;
        let db = ctx.data::<Services>()?.platform.tenant_db();
        let mut tx = db.begin(tenant.scope()).await.map_err(internal)?;
        let found = desk_db::catalog::published_service(&mut tx, &code)
            .await
            .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        Ok(found.map(service))
    }

    /// Frequently asked questions: the municipality's general ones first (no service), then
    /// each published service's, optionally only those matching `search` (Persian-normalized).
    async fn faqs(
        &self,
        ctx: &Context<'_>,
        search: Option<String>,
    ) -> async_graphql::Result<Vec<FaqEntry>> {
        let tenant = ctx.data::<Arc<Tenant>>()?;
        let db = ctx.data::<Services>()?.platform.tenant_db();
        let mut tx = db.begin(tenant.scope()).await.map_err(internal)?;
        let general = desk_db::catalog::general_faq(&mut tx)
            .await
            .map_err(internal)?;
        let services = desk_db::catalog::published_services(&mut tx, None, None)
            .await
            .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        let needle = search
            .as_deref()
            .map(desk_core::text::normalize_for_search)
            .unwrap_or_default();
        let matches = |f: &desk_core::catalog::Faq| f.matches(&needle);
        let entry = |f: &desk_core::catalog::Faq, service: Option<&str>| FaqEntry {
            service_code: service.map(str::to_owned),
            question: f.q.clone(),
            answer: f.a.clone(),
        };
        let mut out: Vec<FaqEntry> = general
            .iter()
            .filter(|f| matches(f))
            .map(|f| entry(f, None))
            .collect();
        for s in &services {
            out.extend(
                s.card
                    .faq
                    .iter()
                    .filter(|f| matches(f))
                    .map(|f| entry(f, Some(&s.card.code))),
            );
        }
        Ok(out)
    }

    /// The municipality whose host received this request.
    async fn tenant(&self, ctx: &Context<'_>) -> async_graphql::Result<Municipality> {
        let tenant = ctx.data::<Arc<Tenant>>()?;
        Ok(Municipality {
            slug: tenant.slug.to_string(),
            name: tenant.name_fa.clone(),
            name_en: tenant.name_en.clone(),
            province: Province {
                id: i32::from(tenant.province_id),
                name: tenant.province_name_fa.clone(),
            },
        })
    }
}

#[derive(Clone)]
struct ApiState {
    schema: TenantSchema,
    services: Services,
}

/// The largest API request (a multipart request carries files).
const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// `/graphql` for a municipality's host: GraphiQL on GET, queries on POST (multipart for
/// uploads). `Authorization: Bearer <key>` authenticates with a key of this municipality.
pub fn tenant_router(schema: TenantSchema, services: Services) -> Router {
    Router::new()
        .route("/graphql", get(graphiql).post(execute))
        .route("/graphql/ws", get(subscribe))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(ApiState { schema, services })
}

async fn graphiql() -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_SECURITY_POLICY,
            desk_http::csp::GRAPHIQL,
        )],
        Html(
            GraphiQLSource::build()
                .endpoint("/graphql")
                .subscription_endpoint("/graphql/ws")
                .finish(),
        ),
    )
}

/// GraphQL over WebSocket (`graphql-transport-ws`, or the older `graphql-ws`) for
/// subscriptions. The key comes in `Authorization: Bearer …` on the upgrade request or as
/// `{"authorization": "Bearer …"}` in the `connection_init` payload (browsers cannot set
/// headers on a WebSocket); it is checked against this municipality's keys, and the
/// connection counts once against the key's request rate.
async fn subscribe(
    State(state): State<ApiState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    headers: HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> axum::response::Response {
    let header_key = bearer(&headers).map(str::to_owned);
    let source = desk_core::limiter::client_address(
        state.services.trust_forwarded_for,
        peer.as_ref().map(|p| p.0.0.ip()),
        headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()),
    );
    let ApiState { schema, services } = state;
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            GraphQLWebSocket::new(socket, schema, protocol)
                .on_connection_init(move |payload| async move {
                    let presented = header_key.or_else(|| {
                        payload["authorization"]
                            .as_str()
                            .and_then(|v| v.strip_prefix("Bearer "))
                            .map(|v| v.trim().to_owned())
                    });
                    let key = match presented {
                        Some(k) => {
                            let mut tx = services
                                .platform
                                .tenant_db()
                                .begin(tenant.scope())
                                .await
                                .map_err(gql_error)?;
                            let key = desk_db::api_keys::authenticate(&mut tx, &k)
                                .await
                                .map_err(gql_error)?;
                            tx.commit().await.map_err(gql_error)?;
                            key
                        }
                        None => None,
                    };
                    if let Err(seconds) =
                        services
                            .rates
                            .take(tenant.id, key.as_ref().map(|k| k.id), &source)
                    {
                        return Err(async_graphql::Error::new(format!(
                            "rate limit exceeded; retry after {seconds} s"
                        ))
                        .extend_with(|_, e| e.set("code", "RATE_LIMITED")));
                    }
                    let mut data = async_graphql::Data::default();
                    data.insert(tenant);
                    data.insert(services);
                    data.insert(Caller { key, source });
                    Ok(data)
                })
                .serve()
        })
}

/// The key presented as `Authorization: Bearer …` (the scheme in any case).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())?;
    let (scheme, key) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| key.trim())
        .filter(|k| !k.is_empty())
}

/// Gives every error a stable `extensions.code`: the engine's own refusals (parse and
/// validation errors, the depth and complexity limits) come without one.
fn with_codes(batch: async_graphql::BatchResponse) -> async_graphql::BatchResponse {
    fn coded(mut r: async_graphql::Response) -> async_graphql::Response {
        for e in &mut r.errors {
            let ext = e.extensions.get_or_insert_with(Default::default);
            if ext.get("code").is_none() {
                let code = if e.message.contains("nested too deep") {
                    "QUERY_TOO_DEEP"
                } else if e.message.contains("too complex") {
                    "QUERY_TOO_COMPLEX"
                } else {
                    "GRAPHQL_VALIDATION_FAILED"
                };
                ext.set("code", code);
            }
        }
        r
    }
    match batch {
        async_graphql::BatchResponse::Single(r) => async_graphql::BatchResponse::Single(coded(r)),
        async_graphql::BatchResponse::Batch(rs) => {
            async_graphql::BatchResponse::Batch(rs.into_iter().map(coded).collect())
        }
    }
}

/// The key presented in `Authorization: Bearer …`, looked up in this municipality's schema.
async fn caller(
    services: &Services,
    tenant: &Tenant,
    headers: &HeaderMap,
    peer: Option<&ConnectInfo<SocketAddr>>,
) -> Result<Caller, DomainError> {
    let source = desk_core::limiter::client_address(
        services.trust_forwarded_for,
        peer.map(|c| c.0.ip()),
        headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()),
    );
    let key = match bearer(headers) {
        Some(k) => {
            let mut tx = services.platform.tenant_db().begin(tenant.scope()).await?;
            let key = desk_db::api_keys::authenticate(&mut tx, k).await?;
            tx.commit().await?;
            key
        }
        None => None,
    };
    Ok(Caller { key, source })
}

/// Files per multipart request, and the size of each (the body as a whole is bounded by
/// `BODY_LIMIT`, which axum enforces while reading it).
const MAX_FILES: usize = 30;

async fn execute(
    State(state): State<ApiState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    headers: HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let options = async_graphql::http::MultipartOptions::default()
        .max_file_size(usize::try_from(desk_core::form::MAX_FILE_BYTES).unwrap_or(usize::MAX))
        .max_num_files(MAX_FILES);
    let batch = match async_graphql::http::receive_batch_body(
        content_type,
        futures::io::Cursor::new(body),
        options,
    )
    .await
    {
        Ok(batch) => batch,
        Err(e) => {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                format!("invalid GraphQL request: {e}"),
            )
                .into_response();
        }
    };
    let response: GraphQLResponse = match caller(
        &state.services,
        &tenant,
        &headers,
        peer.as_ref().map(|p| &p.0),
    )
    .await
    {
        Ok(caller) => {
            // Each operation of a batch counts, as separate requests would.
            let operations = match &batch {
                async_graphql::BatchRequest::Single(_) => 1,
                async_graphql::BatchRequest::Batch(v) => u32::try_from(v.len()).unwrap_or(u32::MAX),
            };
            if let Err(seconds) = state.services.rates.take_many(
                tenant.id,
                caller.key.as_ref().map(|k| k.id),
                &caller.source,
                operations,
            ) {
                return rate_limited(seconds);
            }
            if bearer(&headers).is_some() && caller.key.is_none() {
                // A key was presented but is unknown here, revoked or expired: say so rather
                // than answer as if no key had been sent.
                let e = async_graphql::Error::new(
                    "the API key is not valid for this municipality (unknown, revoked or expired)",
                )
                .extend_with(|_, ext| ext.set("code", "INVALID_API_KEY"));
                async_graphql::Response::from_errors(vec![
                    e.into_server_error(async_graphql::Pos::default()),
                ])
                .into()
            } else {
                with_codes(
                    state
                        .schema
                        .execute_batch(batch.data(tenant).data(state.services.clone()).data(caller))
                        .await,
                )
                .into()
            }
        }
        Err(e) => async_graphql::Response::from_errors(vec![
            gql_error(e).into_server_error(async_graphql::Pos::default()),
        ])
        .into(),
    };
    response.into_response()
}

/// `429 Too Many Requests` with `Retry-After`, and the GraphQL error a client can act on
/// (`extensions.code` = `RATE_LIMITED`, `extensions.retryAfter` in seconds).
fn rate_limited(seconds: u64) -> axum::response::Response {
    let body = serde_json::json!({
        "errors": [{
            "message": format!("rate limit exceeded; retry after {seconds} s"),
            "extensions": { "code": "RATE_LIMITED", "retryAfter": seconds },
        }],
    });
    (
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        [(axum::http::header::RETRY_AFTER, seconds.to_string())],
        axum::Json(body),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn committed_sdl_matches_the_code() {
        let sdl = super::tenant_schema().sdl();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
        if std::env::var_os("UPDATE_SDL").is_some() {
            std::fs::write(path, &sdl).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert_eq!(
            committed, sdl,
            "graphql/schema.graphql is stale: run `UPDATE_SDL=1 cargo test -p desk-graphql` and commit it"
        );
    }
}
