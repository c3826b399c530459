//! Catalog mutations of the tenant API: an integrator's key with `catalog:write` edits service
//! cards (a draft, published separately, as in the staff portal) and the general FAQ, acting as
//! the key's role; casbin decides whether that role may update the catalog.

use crate::requests::{context, require};
use crate::{Caller, Services, gql_error};
use async_graphql::{Context, InputObject, Object, SimpleObject};
use desk_authz::{Action, Domain, Resource};
use desk_core::DomainError;
use desk_core::catalog::Faq;
use desk_db::Tenant;
use std::sync::Arc;

/// A question and its answer.
#[derive(Debug, InputObject)]
pub struct FaqInput {
    /// Question.
    pub question: String,
    /// Answer.
    pub answer: String,
}

/// Changes to a service card's draft; a field left out keeps its value.
#[derive(Debug, InputObject)]
pub struct ServiceDraftInput {
    /// Persian title.
    pub title: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Typical duration in working days.
    pub duration_days: Option<u32>,
    /// Fees, as text.
    pub fee_description: Option<String>,
    /// Ordered steps.
    pub steps: Option<Vec<String>>,
    /// Required documents.
    pub documents: Option<Vec<String>>,
    /// Laws and regulations.
    pub legal_basis: Option<Vec<String>>,
    /// Frequently asked questions.
    pub faq: Option<Vec<FaqInput>>,
}

/// Where a card's versions stand.
#[derive(Debug, SimpleObject)]
pub struct CardVersions {
    /// Service code.
    pub code: String,
    /// Published version, if any.
    pub published: Option<i32>,
    /// Draft version, if any.
    pub draft: Option<i32>,
}

/// Catalog mutations.
#[derive(Debug, Default)]
pub struct CatalogMutation;

/// The key, if it carries `catalog:write` and its role may update this municipality's catalog.
async fn editor(
    services: &Services,
    tenant: &Tenant,
    caller: &Caller,
) -> async_graphql::Result<()> {
    let key = require(caller, "catalog:write")?;
    let role = key.role.as_deref().unwrap_or_default();
    let allowed = services
        .authz
        .role_allowed(
            role,
            Domain::Tenant(tenant.id),
            Resource::Catalog,
            Action::Update,
        )
        .await
        .map_err(gql_error)?;
    if allowed {
        Ok(())
    } else {
        Err(gql_error(DomainError::Forbidden))
    }
}

fn faq(items: Vec<FaqInput>) -> Vec<Faq> {
    items
        .into_iter()
        .map(|f| Faq {
            q: f.question.trim().to_owned(),
            a: f.answer.trim().to_owned(),
        })
        .collect()
}

async fn versions(
    services: &Services,
    tenant: &Arc<Tenant>,
    code: &str,
) -> Result<CardVersions, DomainError> {
    let mut tx = services.platform.tenant_db().begin(tenant.scope()).await?;
    let entry = desk_db::catalog::editor_services(&mut tx)
        .await?
        .into_iter()
        .find(|s| s.code == code)
        .ok_or(DomainError::NotFound)?;
    tx.commit().await?;
    Ok(CardVersions {
        code: entry.code,
        published: entry.published,
        draft: entry.draft,
    })
}

#[Object]
impl CatalogMutation {
    /// Saves changes to a service card as its draft (the published card is unchanged until
    /// `publishService`). Needs `catalog:write` and a key role that may update the catalog.
    async fn save_service_draft(
        &self,
        ctx: &Context<'_>,
        code: String,
        input: ServiceDraftInput,
    ) -> async_graphql::Result<CardVersions> {
        let (tenant, services, caller) = context(ctx)?;
        editor(services, tenant, caller).await?;
        async {
            let mut tx = services.platform.tenant_db().begin(tenant.scope()).await?;
            let mut card = desk_db::catalog::editable_card(&mut tx, &code)
                .await?
                .ok_or(DomainError::NotFound)?;
            if let Some(v) = input.title {
                card.title_fa = v.trim().to_owned();
            }
            if let Some(v) = input.description {
                card.description_fa = v.trim().to_owned();
            }
            if let Some(v) = input.duration_days {
                card.duration_days = v;
            }
            if let Some(v) = input.fee_description {
                card.fee_description_fa = v.trim().to_owned();
            }
            if let Some(v) = input.steps {
                card.steps = v;
            }
            if let Some(v) = input.documents {
                card.documents = v;
            }
            if let Some(v) = input.legal_basis {
                card.legal_basis = v;
            }
            if let Some(v) = input.faq {
                card.faq = faq(v);
            }
            desk_db::catalog::save_draft(&mut tx, &card).await?;
            tx.commit().await
        }
        .await
        .map_err(gql_error)?;
        versions(services, tenant, &code).await.map_err(gql_error)
    }

    /// Publishes a service's draft. Needs `catalog:write` and a key role that may update the
    /// catalog.
    async fn publish_service(
        &self,
        ctx: &Context<'_>,
        code: String,
    ) -> async_graphql::Result<CardVersions> {
        let (tenant, services, caller) = context(ctx)?;
        editor(services, tenant, caller).await?;
        async {
            let mut tx = services.platform.tenant_db().begin(tenant.scope()).await?;
            desk_db::catalog::publish_draft(&mut tx, &code).await?;
            tx.commit().await
        }
        .await
        .map_err(gql_error)?;
        versions(services, tenant, &code).await.map_err(gql_error)
    }

    /// Replaces the municipality's general FAQ. Needs `catalog:write` and a key role that may
    /// update the catalog. Returns how many questions it now has.
    async fn set_general_faq(
        &self,
        ctx: &Context<'_>,
        items: Vec<FaqInput>,
    ) -> async_graphql::Result<i32> {
        let (tenant, services, caller) = context(ctx)?;
        editor(services, tenant, caller).await?;
        let items = faq(items);
        if let Some(bad) = items.iter().find(|f| f.q.is_empty() || f.a.is_empty()) {
            return Err(gql_error(DomainError::from(
                desk_core::FieldErrors::single(
                    "items",
                    "faq",
                    format!("پرسش «{}» پرسش یا پاسخ خالی دارد.", bad.q),
                ),
            )));
        }
        async {
            let mut tx = services.platform.tenant_db().begin(tenant.scope()).await?;
            desk_db::catalog::put_general_faq(&mut tx, &items).await?;
            tx.commit().await
        }
        .await
        .map_err(gql_error)?;
        Ok(i32::try_from(items.len()).unwrap_or(i32::MAX))
    }
}
