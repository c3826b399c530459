//! The platform GraphQL API at `/graphql` on the platform host: provinces, municipalities
//! (filtered, paginated) and their lifecycle, with the same casbin scoping as the portal.
//! Callers authenticate with the portal's session cookie (API keys arrive with issue #9).
//!
//! It lives here rather than in `desk-graphql` because it is a face of the tenant-admin
//! services (onboarding, lifecycle), and crates at this level never depend on each other.

use crate::auth;
use crate::lifecycle::{self, Actor, Lifecycle};
use crate::portal::PlatformPortal;
use crate::{FirstAdmin, Onboarding};
use async_graphql::connection::{Connection, Edge};
use async_graphql::{
    Context, EmptySubscription, ErrorExtensions, InputObject, Object, Schema, SimpleObject,
};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use desk_core::{DomainError, Hostname, MobileNumber, TenantSlug};
use desk_db::tenants::TenantFilter;
use desk_db::{NewTenant, Tenant};

/// The platform API schema.
pub type PlatformSchema = Schema<PlatformQuery, PlatformMutation, EmptySubscription>;

/// Builds the platform schema with depth and complexity limits.
pub fn platform_schema() -> PlatformSchema {
    Schema::build(PlatformQuery, PlatformMutation, EmptySubscription)
        .limit_depth(10)
        .limit_complexity(500)
        .finish()
}

use desk_http::api_error::gql_error;

struct Caller {
    actor: Actor,
    source: String,
}

fn caller<'a>(ctx: &'a Context<'_>) -> async_graphql::Result<&'a Caller> {
    ctx.data_opt::<Caller>().ok_or_else(|| {
        async_graphql::Error::new("sign in first")
            .extend_with(|_, e| e.set("code", "UNAUTHENTICATED"))
    })
}

fn portal<'a>(ctx: &'a Context<'_>) -> async_graphql::Result<&'a PlatformPortal> {
    ctx.data::<PlatformPortal>()
}

/// A province of Iran.
#[derive(Debug, SimpleObject)]
pub struct ProvinceNode {
    /// Id (1..=31).
    pub id: i32,
    /// Code (`isfahan`).
    pub code: String,
    /// Persian name.
    pub name: String,
    /// Municipalities that are not archived.
    pub municipalities: i64,
}

/// A municipality as the platform sees it (no citizens' data).
#[derive(Debug, SimpleObject)]
pub struct MunicipalityNode {
    /// Fixed slug.
    pub slug: String,
    /// Persian name.
    pub name: String,
    /// English name.
    pub name_en: String,
    /// Province id.
    pub province_id: i32,
    /// Province's Persian name.
    pub province: String,
    /// `active`, `suspended` or `archived`.
    pub status: String,
}

fn node(t: &Tenant) -> MunicipalityNode {
    MunicipalityNode {
        slug: t.slug.to_string(),
        name: t.name_fa.clone(),
        name_en: t.name_en.clone(),
        province_id: i32::from(t.province_id),
        province: t.province_name_fa.clone(),
        status: t.status.as_str().to_owned(),
    }
}

/// Root of the platform API's queries.
#[derive(Debug, Default)]
pub struct PlatformQuery;

#[Object]
impl PlatformQuery {
    /// All provinces.
    async fn provinces(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ProvinceNode>> {
        caller(ctx)?;
        let rows = portal(ctx)?
            .db
            .province_summaries()
            .await
            .map_err(gql_error)?;
        Ok(rows
            .into_iter()
            .map(|p| ProvinceNode {
                id: i32::from(p.id),
                code: p.code,
                name: p.name_fa,
                municipalities: p.tenants,
            })
            .collect())
    }

    /// Municipalities the caller may see, by slug; `first` at most 100 (default 50), `after`
    /// a cursor from a previous page.
    async fn municipalities(
        &self,
        ctx: &Context<'_>,
        province_id: Option<i32>,
        status: Option<String>,
        search: Option<String>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, MunicipalityNode>> {
        let who = caller(ctx)?;
        let p = portal(ctx)?;
        let status = status
            .map(|s| s.parse())
            .transpose()
            .map_err(|e| gql_error(DomainError::Validation(e)))?;
        let filter = TenantFilter {
            province_id: province_id.and_then(|id| i16::try_from(id).ok()),
            status,
        };
        let first = usize::try_from(first.unwrap_or(50).clamp(1, 100)).unwrap_or(50);
        let visible = lifecycle::list(&p.db, &p.authz, &who.actor, &filter, search.as_deref())
            .await
            .map_err(gql_error)?;
        let rest: Vec<&Tenant> = visible
            .iter()
            .filter(|t| after.as_deref().is_none_or(|a| t.slug.as_str() > a))
            .collect();
        let mut connection = Connection::new(after.is_some(), rest.len() > first);
        connection.edges.extend(
            rest.into_iter()
                .take(first)
                .map(|t| Edge::new(t.slug.to_string(), node(t))),
        );
        Ok(connection)
    }

    /// One municipality by slug.
    async fn municipality(
        &self,
        ctx: &Context<'_>,
        slug: String,
    ) -> async_graphql::Result<MunicipalityNode> {
        let who = caller(ctx)?;
        let p = portal(ctx)?;
        let slug = TenantSlug::parse(&slug).map_err(|_| gql_error(DomainError::NotFound))?;
        let t = lifecycle::find(&p.db, &p.authz, &who.actor, &slug)
            .await
            .map_err(gql_error)?;
        Ok(node(&t))
    }
}

/// Input of `createMunicipality`.
#[derive(Debug, InputObject)]
pub struct CreateMunicipalityInput {
    /// Persian name (required, in Persian letters).
    pub name: String,
    /// English name.
    #[graphql(default)]
    pub name_en: String,
    /// Slug; suggested from the names when omitted.
    pub slug: Option<String>,
    /// Province id.
    pub province_id: i32,
    /// Custom domains besides `<slug>.<base-domain>`.
    #[graphql(default)]
    pub domains: Vec<String>,
    /// First admin's username.
    pub admin_username: Option<String>,
    /// First admin's display name.
    pub admin_name: Option<String>,
    /// First admin's mobile.
    pub admin_mobile: Option<String>,
}

/// Root of the platform API's mutations.
#[derive(Debug, Default)]
pub struct PlatformMutation;

async fn change(
    ctx: &Context<'_>,
    slug: &str,
    change: Lifecycle,
) -> async_graphql::Result<MunicipalityNode> {
    let who = caller(ctx)?;
    let p = portal(ctx)?;
    let slug = TenantSlug::parse(slug).map_err(|_| gql_error(DomainError::NotFound))?;
    let t = lifecycle::change_status(&p.db, &p.authz, &who.actor, &slug, change, &who.source)
        .await
        .map_err(gql_error)?;
    Ok(node(&t))
}

#[Object]
impl PlatformMutation {
    /// Onboards a municipality (schema, role, migrations, first admin) in one transaction.
    async fn create_municipality(
        &self,
        ctx: &Context<'_>,
        input: CreateMunicipalityInput,
    ) -> async_graphql::Result<MunicipalityNode> {
        let who = caller(ctx)?;
        let p = portal(ctx)?;
        let invalid = |e: desk_core::FieldErrors| gql_error(DomainError::Validation(e));
        let slug_text = input
            .slug
            .clone()
            .or_else(|| desk_core::text::suggest_slug(&input.name_en, &input.name))
            .unwrap_or_default();
        let slug = TenantSlug::parse(&slug_text).map_err(invalid)?;
        let mut domains =
            vec![Hostname::parse(&format!("{slug}.{}", p.base_domain)).map_err(invalid)?];
        for d in &input.domains {
            let host = Hostname::parse(d).map_err(invalid)?;
            lifecycle::check_custom_domain(&host, &p.base_domain).map_err(gql_error)?;
            domains.push(host);
        }
        let first_admin = match (&input.admin_username, &input.admin_mobile) {
            (Some(username), Some(mobile)) => Some(FirstAdmin {
                username: username.trim().to_lowercase(),
                display_name: input
                    .admin_name
                    .clone()
                    .unwrap_or_else(|| "مدیر میز خدمت".to_owned()),
                mobile: MobileNumber::parse(mobile).map_err(invalid)?,
            }),
            _ => None,
        };
        let req = Onboarding {
            theme: crate::DEFAULT_THEME.to_owned(),
            tenant: NewTenant {
                slug,
                name_fa: input.name.clone(),
                name_en: input.name_en.clone(),
                province_id: i16::try_from(input.province_id).unwrap_or(-1),
                domains,
            },
            first_admin,
        };
        let (t, _) = crate::onboard(&p.db, &p.authz, &who.actor, &who.source, &req)
            .await
            .map_err(gql_error)?;
        Ok(node(&t))
    }

    /// Suspends a municipality.
    async fn suspend_municipality(
        &self,
        ctx: &Context<'_>,
        slug: String,
    ) -> async_graphql::Result<MunicipalityNode> {
        change(ctx, &slug, Lifecycle::Suspend).await
    }

    /// Resumes a suspended municipality.
    async fn resume_municipality(
        &self,
        ctx: &Context<'_>,
        slug: String,
    ) -> async_graphql::Result<MunicipalityNode> {
        change(ctx, &slug, Lifecycle::Resume).await
    }

    /// Archives a municipality (hidden, data kept).
    async fn archive_municipality(
        &self,
        ctx: &Context<'_>,
        slug: String,
    ) -> async_graphql::Result<MunicipalityNode> {
        change(ctx, &slug, Lifecycle::Archive).await
    }

    /// Restores an archived municipality.
    async fn restore_municipality(
        &self,
        ctx: &Context<'_>,
        slug: String,
    ) -> async_graphql::Result<MunicipalityNode> {
        change(ctx, &slug, Lifecycle::Restore).await
    }
}

#[derive(Clone)]
struct ApiState {
    portal: PlatformPortal,
    schema: PlatformSchema,
    /// Request rates per platform key (and per address for sessions and anonymous callers).
    rates: std::sync::Arc<desk_core::limiter::ApiRates>,
}

/// `/graphql` on the platform host: GraphiQL on GET, queries on POST (JSON only, which
/// browsers cannot send cross-site without a preflight: the CSRF guard of the API).
pub fn platform_api_router(portal: PlatformPortal) -> Router {
    Router::new()
        .route("/graphql", get(graphiql).post(execute))
        .with_state(ApiState {
            portal,
            schema: platform_schema(),
            rates: std::sync::Arc::default(),
        })
}

async fn graphiql() -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_SECURITY_POLICY,
            desk_http::csp::GRAPHIQL,
        )],
        Html(
            async_graphql::http::GraphiQLSource::build()
                .endpoint("/graphql")
                .finish(),
        ),
    )
}

async fn execute(
    State(state): State<ApiState>,
    crate::portal::Peer(peer): crate::portal::Peer,
    headers: HeaderMap,
    req: GraphQLRequest,
) -> Response {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send GraphQL requests as application/json",
        )
            .into_response();
    }
    let mut request = req.into_inner().data(state.portal.clone());
    let source =
        desk_http::client_address(state.portal.trust_forwarded_for, peer.as_ref(), &headers);
    // A platform key (`Authorization: Bearer mizp_…`) acts as the user who made it; otherwise
    // the session cookie of a signed-in user.
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let (user, key_id) = match bearer {
        Some(key) => match state.portal.db.platform_key_user(key).await {
            // A key that is not valid counts against the address, like no key.
            Ok(found) => found.map_or((None, None), |(user, id)| (Some(user), Some(id))),
            Err(e) => {
                tracing::error!(error = %e, "platform key lookup failed");
                (None, None)
            }
        },
        None => match auth::session_token(&headers) {
            Some(token) => (
                state
                    .portal
                    .db
                    .session_user(&token)
                    .await
                    .ok()
                    .flatten()
                    .map(|(u, _)| u),
                None,
            ),
            None => (None, None),
        },
    };
    if let Err(seconds) = state.rates.take("platform", key_id, &source) {
        let body = serde_json::json!({ "errors": [{
            "message": format!("rate limit exceeded; retry after {seconds} s"),
            "extensions": { "code": "RATE_LIMITED", "retryAfter": seconds },
        }] });
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, seconds.to_string())],
            axum::Json(body),
        )
            .into_response();
    }
    if let Some(user) = user {
        request = request.data(Caller {
            actor: Actor::User {
                id: user.id,
                username: user.username,
            },
            source,
        });
    }
    GraphQLResponse::from(state.schema.execute(request).await).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn committed_platform_sdl_matches_the_code() {
        let sdl = super::platform_schema().sdl();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../graphql/platform.graphql");
        if std::env::var_os("UPDATE_SDL").is_some() {
            std::fs::write(path, &sdl).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert_eq!(
            committed, sdl,
            "graphql/platform.graphql is stale: run `UPDATE_SDL=1 cargo test -p desk-tenant-admin` and commit it"
        );
    }
}
