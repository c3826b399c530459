//! The GraphQL APIs of Miz: the tenant API at `/graphql` on each municipality's host (GraphiQL
//! on GET). Queries run for the tenant the host resolved to, found in the request extensions.
//!
//! Must not depend on the web, jobs or tenant-admin crates. The SDL is committed in
//! `graphql/schema.graphql`; a test fails when code and file drift.

use async_graphql::http::GraphiQLSource;
use async_graphql::{Context, EmptyMutation, EmptySubscription, Object, Schema, SimpleObject};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::Router;
use axum::extract::{Extension, State};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use desk_db::Tenant;
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

#[Object]
impl TenantQuery {
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

/// `/graphql` for a municipality's host: GraphiQL on GET, queries on POST.
pub fn tenant_router(schema: TenantSchema) -> Router {
    Router::new()
        .route("/graphql", get(graphiql).post(execute))
        .with_state(schema)
}

async fn graphiql() -> impl IntoResponse {
    Html(GraphiQLSource::build().endpoint("/graphql").finish())
}

async fn execute(
    State(schema): State<TenantSchema>,
    Extension(tenant): Extension<Arc<Tenant>>,
    req: GraphQLRequest,
) -> GraphQLResponse {
    schema.execute(req.into_inner().data(tenant)).await.into()
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
