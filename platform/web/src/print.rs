//! Print-ready pages of a request: the receipt (رسید خدمت) and, once decided, the answer
//! letter, each on the municipality's letterhead (its name, logo, brand colour and contact
//! details from its theme settings), in an A4 layout and a narrow layout for 80 mm receipt
//! printers. Citizens print their own requests; staff print any request of their municipality.

use crate::WebState;
use crate::citizen::CitizenSession;
use crate::inbox::staff_request;
use crate::pages::{TenantView, render};
use crate::requests::{Detail, detail_view, jalali_fa, own_request};
use crate::staff::StaffSession;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use desk_authz::Action;
use desk_core::DomainError;
use desk_db::Tenant;
use serde::Deserialize;
use serde_json::{Value, json};

pub(crate) fn print_routes() -> Router<WebState> {
    Router::new()
        .route("/requests/{tracking}/receipt", get(citizen_doc::<false>))
        .route("/requests/{tracking}/letter", get(citizen_doc::<true>))
        .route(
            "/staff/requests/{tracking}/receipt",
            get(staff_doc::<false>),
        )
        .route("/staff/requests/{tracking}/letter", get(staff_doc::<true>))
}

/// Which paper: `a4` (the default) or `narrow` (an 80 mm receipt roll).
#[derive(Debug, Deserialize, Default)]
struct Layout {
    #[serde(default)]
    layout: String,
}

impl Layout {
    fn narrow(&self) -> bool {
        self.layout == "narrow"
    }
}

/// The letterhead of a municipality: name, province, logo, brand colour, contact details.
async fn letterhead(state: &WebState, tenant: &Tenant) -> Result<Value, DomainError> {
    let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
    let contact = desk_db::settings::get_setting(&mut tx, "contact").await?;
    tx.commit().await?;
    let contact = contact.unwrap_or_default();
    let text = |v: &Value, key: &str| {
        v[key]
            .as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(desk_core::text::persian_digits)
    };
    Ok(json!({
        "brand": tenant.design.brand.as_deref().unwrap_or(desk_core::design::DEFAULT_BRAND),
        "logo": tenant.design.logo,
        "phone": text(&contact, "phone"),
        "address": text(&contact, "address"),
        "email": contact["email"].as_str().filter(|s| !s.trim().is_empty()),
    }))
}

/// What the answer letter says: the decision (the terminal state), its date, the note staff
/// wrote with it, and the unit and (for staff) the person who decided. `None` while the request
/// is still open.
fn decision(d: &Detail) -> Option<Value> {
    let state = d.workflow.state(&d.request.state)?;
    if !state.terminal {
        return None;
    }
    let last = d
        .events
        .iter()
        .rev()
        .find(|e| e.to_state == d.request.state)?;
    Some(json!({
        "label": state.label_fa,
        "on": jalali_fa(desk_core::calendar::iran_time(last.at).date()),
        "note": last.note,
        "unit": last.unit_name.clone().or_else(|| d.request.unit.as_ref().map(|u| u.1.clone())),
        "by": last.staff_name,
    }))
}

/// The host the page was asked on (already resolved to this municipality), for the follow-up
/// address printed on paper.
fn host_of(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(desk_core::Hostname::from_header)
        .map(|h| h.as_str().to_owned())
        .unwrap_or_default()
}

async fn page(
    state: &WebState,
    tenant: &Tenant,
    host: &str,
    d: &Detail,
    for_staff: bool,
    template: &str,
    layout: &Layout,
) -> Response {
    let head = match letterhead(state, tenant).await {
        Ok(h) => h,
        Err(e) => return crate::staff::failure(state, tenant, &e),
    };
    let decision = decision(d);
    if template == "print_letter.html.j2" && decision.is_none() {
        return crate::pages::error_page(
            state,
            StatusCode::CONFLICT,
            Some(tenant),
            "نامه پاسخ هنوز آماده نیست",
            "نامه پاسخ پس از پایان رسیدگی به درخواست آماده می‌شود.",
        );
    }
    render(
        state,
        StatusCode::OK,
        template,
        json!({
            "tenant": TenantView::of(tenant),
            "head": head,
            "r": detail_view(d, for_staff),
            "decision": decision,
            "narrow": layout.narrow(),
            "printed": jalali_fa(crate::requests::local_today()),
            "track_url": format!("{host}/track"),
        }),
    )
}

/// A citizen's own receipt, or (with `LETTER`) answer letter.
async fn citizen_doc<const LETTER: bool>(
    State(state): State<WebState>,
    me: CitizenSession,
    Path(tracking): Path<String>,
    Query(layout): Query<Layout>,
    headers: HeaderMap,
) -> Response {
    match own_request(&state, &me, &tracking).await {
        Ok(d) => {
            page(
                &state,
                &me.tenant,
                &host_of(&headers),
                &d,
                false,
                template(LETTER),
                &layout,
            )
            .await
        }
        Err(e) => crate::citizen::failure(&state, &me.tenant, &e),
    }
}

/// A receipt or (with `LETTER`) answer letter of any request of the staff member's municipality.
async fn staff_doc<const LETTER: bool>(
    State(state): State<WebState>,
    me: StaffSession,
    Path(tracking): Path<String>,
    Query(layout): Query<Layout>,
    headers: HeaderMap,
) -> Response {
    match staff_request(&state, &me, &tracking, Action::Read).await {
        Ok(d) => {
            page(
                &state,
                &me.tenant,
                &host_of(&headers),
                &d,
                true,
                template(LETTER),
                &layout,
            )
            .await
        }
        Err(e) => crate::staff::failure(&state, &me.tenant, &e),
    }
}

fn template(letter: bool) -> &'static str {
    if letter {
        "print_letter.html.j2"
    } else {
        "print_receipt.html.j2"
    }
}
