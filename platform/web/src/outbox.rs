//! The SMS outbox in the staff portal: the latest messages of the municipality with their
//! state (queued, sent, failed), the provider's delivery report, the account they went through
//! and the last error, so staff can tell a citizen what happened to a message. Numbers are
//! shown masked; secrets (sign-in codes, survey links) were never in the text.

use crate::WebState;
use crate::pages::{TenantView, render};
use crate::staff::{StaffSession, failure};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use desk_authz::{Action, Resource};
use desk_core::DomainError;
use desk_core::text::persian_digits;
use serde::Deserialize;
use serde_json::json;

/// Rows shown.
const SHOWN: i64 = 200;

pub(crate) fn outbox_routes() -> Router<WebState> {
    Router::new().route("/staff/outbox", get(show_outbox))
}

#[derive(Debug, Deserialize, Default)]
struct Filter {
    #[serde(default)]
    status: String,
}

/// `+989121234567` → `۰۹۱۲***۴۵۶۷`.
fn masked(mobile: &str) -> String {
    persian_digits(&desk_core::mobile::masked(mobile))
}

fn kind_fa(kind: &str) -> &'static str {
    match kind {
        "request_event" => "گردش درخواست",
        "sign_in_code" => "کد ورود",
        "appointment" => "نوبت",
        "survey" => "نظرسنجی",
        "staff_alert" => "هشدار به کارکنان",
        "staff_welcome" => "خوش‌آمد کارکنان",
        _ => "دیگر",
    }
}

fn status_fa(status: &str, delivery: Option<&str>) -> &'static str {
    match (status, delivery) {
        ("sent", Some("delivered")) => "به گوشی رسید",
        ("sent", Some("failed")) => "فرستاده شد، نرسید",
        ("sent", _) => "فرستاده شد",
        ("failed", _) => "ناموفق",
        _ => "در صف",
    }
}

async fn show_outbox(
    State(state): State<WebState>,
    me: StaffSession,
    Query(filter): Query<Filter>,
) -> Response {
    let status = match filter.status.as_str() {
        s @ ("queued" | "sent" | "failed") => Some(s),
        _ => None,
    };
    let listed = async {
        me.require_on(&state, Resource::Settings, Action::Read)
            .await?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        let rows = desk_db::notifications::recent(&mut tx, status, SHOWN).await?;
        tx.commit().await?;
        Ok::<_, DomainError>(rows)
    }
    .await;
    match listed {
        Ok(rows) => render(
            &state,
            StatusCode::OK,
            "staff_outbox.html.j2",
            json!({
                "tenant": TenantView::of(&me.tenant), "status": status,
                "rows": rows.iter().map(|r| json!({
                    "kind": kind_fa(&r.kind),
                    "to": r.recipient.as_deref().map(masked),
                    "body": r.body,
                    "state": status_fa(&r.status, r.delivery.as_deref()),
                    "failed": r.status == "failed" || r.delivery.as_deref() == Some("failed"),
                    "error": r.error_code,
                    "attempts": persian_digits(&r.attempts.to_string()),
                    "account": r.account,
                    "at": crate::requests::jalali_moment(r.created_at),
                })).collect::<Vec<_>>(),
            }),
        ),
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_masked() {
        assert_eq!(masked("+989121234567"), "۰۹۱۲***۴۵۶۷");
        assert_eq!(masked("+98912"), "***");
    }
}
