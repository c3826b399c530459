//! The GraphQL APIs of Miz: the tenant API at `/graphql` on each municipality's host (GraphiQL
//! on GET). Queries run for the tenant the host resolved to, found in the request extensions.
//!
//! Must not depend on the web, jobs or tenant-admin crates. The SDL is committed in
//! `graphql/schema.graphql`; a test fails when code and file drift.

use async_graphql::http::GraphiQLSource;
use async_graphql::{
    Context, EmptyMutation, EmptySubscription, ErrorExtensions, Object, Schema, SimpleObject,
};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::Router;
use axum::extract::{Extension, State};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use desk_db::{Tenant, TenantDb};
use std::sync::Arc;

/// The tenant API schema.
pub type TenantSchema = Schema<TenantQuery, EmptyMutation, EmptySubscription>;

/// Builds the tenant schema with depth and complexity limits.
pub fn tenant_schema() -> TenantSchema {
    Schema::build(TenantQuery, EmptyMutation, EmptySubscription)
        .limit_depth(12)
        .limit_complexity(500)
        .finish()
}

/// Root of the tenant API.
#[derive(Debug, Default)]
pub struct TenantQuery;

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
impl TenantQuery {
    /// Published services, optionally in one category and matching `search` (Persian text is
    /// normalized: Arabic yeh/kaf, digits, ZWNJ).
    async fn services(
        &self,
        ctx: &Context<'_>,
        search: Option<String>,
        category: Option<String>,
    ) -> async_graphql::Result<Vec<Service>> {
        let tenant = ctx.data::<Arc<Tenant>>()?;
        let db = ctx.data::<TenantDb>()?;
        let folded = search.as_deref().map(desk_core::text::normalize_for_search);
        let mut tx = db.begin(tenant.scope()).await.map_err(internal)?;
        let found =
            desk_db::catalog::published_services(&mut tx, category.as_deref(), folded.as_deref())
                .await
                .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        Ok(found.into_iter().map(service).collect())
    }

    /// One published service by code.
    async fn service(
        &self,
        ctx: &Context<'_>,
        code: String,
    ) -> async_graphql::Result<Option<Service>> {
        let tenant = ctx.data::<Arc<Tenant>>()?;
        let db = ctx.data::<TenantDb>()?;
        let mut tx = db.begin(tenant.scope()).await.map_err(internal)?;
        let found = desk_db::catalog::published_service(&mut tx, &code)
            .await
            .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        Ok(found.map(service))
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
    db: TenantDb,
}

/// `/graphql` for a municipality's host: GraphiQL on GET, queries on POST.
pub fn tenant_router(schema: TenantSchema, db: TenantDb) -> Router {
    Router::new()
        .route("/graphql", get(graphiql).post(execute))
        .with_state(ApiState { schema, db })
}

async fn graphiql() -> impl IntoResponse {
    Html(GraphiQLSource::build().endpoint("/graphql").finish())
}

async fn execute(
    State(state): State<ApiState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    req: GraphQLRequest,
) -> GraphQLResponse {
    state
        .schema
        .execute(req.into_inner().data(tenant).data(state.db.clone()))
        .await
        .into()
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
