//! The catalog editor at `/staff/catalog`: a municipality admin edits service cards as drafts,
//! publishes them (the published card changes only then), hides services, and sees which cards
//! differ from the national template.

use crate::WebState;
use crate::pages::{TenantView, render};
use crate::staff::{StaffSession, failure};
use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use desk_authz::{Action, Resource};
use desk_core::DomainError;
use desk_core::catalog::ServiceCard;
use desk_db::catalog;
use serde::Deserialize;
use serde_json::json;

pub(crate) fn editor_routes() -> Router<WebState> {
    Router::new()
        .route("/staff/catalog", get(list_cards).post(add_card))
        .route("/staff/catalog-faq", axum::routing::post(save_general_faq))
        .route("/staff/catalog/{code}", get(show_card).post(change_card))
}

async fn list_cards(State(state): State<WebState>, me: StaffSession) -> Response {
    let result = async {
        me.require_on(&state, Resource::Catalog, Action::Read)
            .await?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        let services = catalog::editor_services(&mut tx).await?;
        let general = catalog::general_faq(&mut tx).await?;
        tx.commit().await?;
        Ok::<_, DomainError>((services, general))
    }
    .await;
    match result {
        Ok((services, general)) => {
            let rows: Vec<_> = services
                .iter()
                .map(|s| {
                    let template = desk_core::template::template_card(&s.code);
                    json!({
                        "code": s.code, "title": s.title, "published": s.published, "draft": s.draft, "hidden": s.hidden,
                        "origin": match (s.from_template, template) {
                            (true, Some(t)) if s.published_card.as_ref() == Some(t) => "مطابق الگوی ملی",
                            (true, Some(_)) => "تغییریافته نسبت به الگوی ملی",
                            _ => "خدمت ویژه این شهرداری",
                        },
                    })
                })
                .collect();
            render(
                &state,
                StatusCode::OK,
                "staff_catalog.html.j2",
                json!({
                    "tenant": TenantView::of(&me.tenant), "services": rows, "csrf": me.csrf(),
                    "categories": desk_core::catalog::CATEGORIES,
                    "general_faq": desk_core::catalog::faq_to_text(&general),
                    "can_edit": me.require_on(&state, Resource::Catalog, Action::Update).await.is_ok(),
                }),
            )
        }
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

async fn show_card(
    State(state): State<WebState>,
    me: StaffSession,
    Path(code): Path<String>,
) -> Response {
    let result = async {
        me.require_on(&state, Resource::Catalog, Action::Read)
            .await?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        let card = catalog::editable_card(&mut tx, &code).await?;
        let listing = catalog::editor_services(&mut tx).await?;
        tx.commit().await?;
        let card = card.ok_or(DomainError::NotFound)?;
        let entry = listing.into_iter().find(|s| s.code == code);
        Ok::<_, DomainError>((card, entry))
    }
    .await;
    match result {
        Ok((card, entry)) => {
            let can_edit = me
                .require_on(&state, Resource::Catalog, Action::Update)
                .await
                .is_ok();
            render(
                &state,
                StatusCode::OK,
                "staff_card.html.j2",
                json!({
                    "tenant": TenantView::of(&me.tenant), "csrf": me.csrf(), "card": card, "can_edit": can_edit,
                    "steps": card.steps.join("\n"), "documents": card.documents.join("\n"),
                    "legal_basis": card.legal_basis.join("\n"), "faq": desk_core::catalog::faq_to_text(&card.faq),
                    "form_json": serde_json::to_string_pretty(&card.form_schema().to_json_schema()).unwrap_or_default(),
                    "workflow_json": serde_json::to_string_pretty(&card.workflow()).unwrap_or_default(),
                    "published": entry.as_ref().and_then(|e| e.published), "draft": entry.as_ref().and_then(|e| e.draft),
                    "hidden": entry.as_ref().is_some_and(|e| e.hidden),
                }),
            )
        }
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

#[derive(Deserialize)]
struct CardForm {
    #[serde(default)]
    csrf: String,
    op: String,
    #[serde(default)]
    title_fa: String,
    #[serde(default)]
    description_fa: String,
    #[serde(default)]
    duration_days: String,
    #[serde(default)]
    fee_description_fa: String,
    #[serde(default)]
    steps: String,
    #[serde(default)]
    documents: String,
    #[serde(default)]
    unit_fa: String,
    /// Laws and regulations, one per line.
    #[serde(default)]
    legal_basis: String,
    /// FAQ blocks (see `desk_core::catalog::faq_from_text`).
    #[serde(default)]
    faq: String,
    /// The request form as JSON Schema (empty: the default form).
    #[serde(default)]
    form_json: String,
    /// The workflow as JSON (empty: the default workflow).
    #[serde(default)]
    workflow_json: String,
}

/// Parses an optional JSON text field of the editor; a syntax error names the field.
fn json_field(
    raw: &str,
    field: &str,
    what: &str,
) -> Result<Option<serde_json::Value>, DomainError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(raw).map(Some).map_err(|e| {
        desk_core::FieldErrors::single(
            field,
            "json",
            format!(
                "{what} JSON درستی نیست (سطر {}، ستون {}).",
                e.line(),
                e.column()
            ),
        )
        .into()
    })
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

async fn change_card(
    State(state): State<WebState>,
    me: StaffSession,
    Path(code): Path<String>,
    Form(form): Form<CardForm>,
) -> Response {
    let result = async {
        me.csrf_ok(&form.csrf)?;
        me.require_on(&state, Resource::Catalog, Action::Update)
            .await?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        match form.op.as_str() {
            "save" => {
                let base = catalog::editable_card(&mut tx, &code)
                    .await?
                    .ok_or(DomainError::NotFound)?;
                let duration_days = desk_core::mobile::ascii_digits(form.duration_days.trim())
                    .parse()
                    .map_err(|_| {
                        DomainError::Validation(desk_core::FieldErrors::single(
                            "duration_days",
                            "duration",
                            "مدت انجام را به روز کاری و با رقم وارد کنید.",
                        ))
                    })?;
                let documents = lines(&form.documents);
                // What equals the default is not stored, so the default form follows the
                // documents and the default workflow follows new releases.
                let form_schema =
                    json_field(&form.form_json, "form_json", "فرم درخواست")?.filter(|v| {
                        desk_core::form::FormSchema::from_json_schema(v).map_or(true, |f| {
                            f != desk_core::form::FormSchema::default_for(&base.documents)
                                && f != desk_core::form::FormSchema::default_for(&documents)
                        })
                    });
                let workflow = match json_field(&form.workflow_json, "workflow_json", "گردش کار")?
                {
                    Some(v) => Some(
                        serde_json::from_value::<desk_core::workflow::Workflow>(v).map_err(
                            |e| {
                                DomainError::from(desk_core::FieldErrors::single(
                                    "workflow_json",
                                    "workflow",
                                    format!("ساختار گردش کار نادرست است: {e}"),
                                ))
                            },
                        )?,
                    ),
                    None => None,
                }
                .filter(|w| *w != desk_core::workflow::Workflow::default_municipal());
                let card = ServiceCard {
                    title_fa: form.title_fa.trim().to_owned(),
                    description_fa: form.description_fa.trim().to_owned(),
                    duration_days,
                    fee_description_fa: form.fee_description_fa.trim().to_owned(),
                    steps: lines(&form.steps),
                    documents,
                    unit_fa: form.unit_fa.trim().to_owned(),
                    legal_basis: lines(&form.legal_basis),
                    faq: desk_core::catalog::faq_from_text(&form.faq)?,
                    form: form_schema,
                    workflow,
                    ..base
                };
                catalog::save_draft(&mut tx, &card).await?;
            }
            "publish" => catalog::publish_draft(&mut tx, &code).await?,
            "hide" => catalog::set_hidden(&mut tx, &code, true).await?,
            "show" => catalog::set_hidden(&mut tx, &code, false).await?,
            _ => return Err(DomainError::NotFound),
        }
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => Redirect::to(&format!("/staff/catalog/{code}")).into_response(),
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

#[derive(Deserialize)]
struct GeneralFaqForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    faq: String,
}

async fn save_general_faq(
    State(state): State<WebState>,
    me: StaffSession,
    Form(form): Form<GeneralFaqForm>,
) -> Response {
    let result = async {
        me.csrf_ok(&form.csrf)?;
        me.require_on(&state, Resource::Catalog, Action::Update)
            .await?;
        let faq = desk_core::catalog::faq_from_text(&form.faq)?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        catalog::put_general_faq(&mut tx, &faq).await?;
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => Redirect::to("/staff/catalog").into_response(),
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

#[derive(Deserialize)]
struct NewCardForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    title_fa: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    description_fa: String,
    #[serde(default)]
    duration_days: String,
}

/// A service of the municipality's own: starts as a draft.
async fn add_card(
    State(state): State<WebState>,
    me: StaffSession,
    Form(form): Form<NewCardForm>,
) -> Response {
    let code = form.code.trim().to_uppercase();
    let result = async {
        me.csrf_ok(&form.csrf)?;
        me.require_on(&state, Resource::Catalog, Action::Update)
            .await?;
        let duration_days = desk_core::mobile::ascii_digits(form.duration_days.trim())
            .parse()
            .map_err(|_| {
                DomainError::Validation(desk_core::FieldErrors::single(
                    "duration_days",
                    "duration",
                    "مدت انجام را به روز کاری و با رقم وارد کنید.",
                ))
            })?;
        if !desk_core::catalog::CATEGORIES
            .iter()
            .any(|(c, _)| *c == form.category)
        {
            return Err(DomainError::Validation(desk_core::FieldErrors::single(
                "category",
                "category",
                "دسته خدمت را انتخاب کنید.",
            )));
        }
        let card = ServiceCard {
            code: code.clone(),
            title_fa: form.title_fa.trim().to_owned(),
            title_en: String::new(),
            category: form.category.clone(),
            service_type: vec!["G2C".into()],
            in_person_visits: None,
            description_fa: form.description_fa.trim().to_owned(),
            steps: Vec::new(),
            documents: Vec::new(),
            inquiries: Vec::new(),
            legal_basis: Vec::new(),
            duration_days,
            fee_description_fa: String::new(),
            faq: Vec::new(),
            national_service_id: None,
            sources: Vec::new(),
            form: None,
            workflow: None,
            unit_fa: String::new(),
        };
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        if catalog::editable_card(&mut tx, &card.code).await?.is_some() {
            return Err(DomainError::Validation(desk_core::FieldErrors::single(
                "code",
                "code_taken",
                "خدمتی با این کد هست.",
            )));
        }
        catalog::save_draft(&mut tx, &card).await?;
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => Redirect::to(&format!("/staff/catalog/{code}")).into_response(),
        Err(e) => failure(&state, &me.tenant, &e),
    }
}
