//! The municipality's desk report in the staff portal: requests filed in a Jalali month, half
//! year (the guideline's six-monthly report) or year, by service, channel, state, unit and staff
//! member, with on-time rate, duration against the declared one, satisfaction per question and
//! SMS delivery; bar charts drawn as inline SVG on the server, a printable page and CSV.

use crate::WebState;
use crate::pages::{TenantView, render};
use crate::requests::local_today;
use crate::staff::{StaffSession, failure};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use desk_authz::{Action, Resource};
use desk_core::report::Period;
use desk_core::text::persian_digits;
use desk_core::{DomainError, FieldErrors};
use desk_db::reports::{self, Report, Tally};
use serde::Deserialize;
use serde_json::{Value, json};

pub(crate) fn report_routes() -> Router<WebState> {
    Router::new()
        .route("/staff/reports", get(show_report))
        .route("/staff/reports.csv", get(report_csv))
}

#[derive(Debug, Deserialize, Default)]
struct PeriodQuery {
    #[serde(default)]
    period: String,
}

fn period_of(q: &PeriodQuery) -> Result<Period, DomainError> {
    if q.period.trim().is_empty() {
        return Ok(Period::half_of(local_today()));
    }
    Period::parse(&q.period).ok_or_else(|| {
        FieldErrors::single(
            "period",
            "period",
            "دوره را به شکل ۱۴۰۵-۰۹ (ماه)، ۱۴۰۵-h2 (نیمه سال) یا ۱۴۰۵ (سال) بدهید.",
        )
        .into()
    })
}

async fn load(
    state: &WebState,
    me: &StaffSession,
    period: Period,
) -> Result<(Report, Vec<desk_core::survey::Question>), DomainError> {
    me.require_on(state, Resource::Report, Action::Read).await?;
    let (from, to) = period.days().ok_or(DomainError::NotFound)?;
    let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
    let report = reports::report(&mut tx, from, to, local_today()).await?;
    let questions = desk_db::surveys::questionnaire(&mut tx).await?;
    tx.commit().await?;
    Ok((report, questions))
}

fn one_decimal(x: Option<f64>) -> String {
    x.map_or_else(|| "—".to_owned(), |v| persian_digits(&format!("{v:.1}")))
}

fn tally_view(label: &str, t: &Tally) -> Value {
    json!({
        "label": label,
        "requests": t.requests, "requests_fa": persian_digits(&t.requests.to_string()),
        "closed_fa": persian_digits(&t.closed.to_string()),
        "overdue_fa": persian_digits(&t.overdue.to_string()),
        "on_time": one_decimal(t.on_time_percent()),
        "days": one_decimal(t.average_days()),
        "declared": one_decimal(t.average_declared()),
        "overall": one_decimal(t.overall()),
        "surveys_fa": persian_digits(&t.surveys.to_string()),
    })
}

/// Bars scaled to the largest value (percent of the chart's width), for the SVG charts.
fn bars(rows: &[(String, f64, String)]) -> Vec<Value> {
    let max = rows.iter().map(|r| r.1).fold(0.0_f64, f64::max);
    rows.iter()
        .enumerate()
        .map(|(i, (label, value, shown))| {
            let pct = if max > 0.0 { value / max * 100.0 } else { 0.0 };
            json!({ "label": label, "shown": shown, "width": format!("{pct:.1}"), "y": i * 28 })
        })
        .collect()
}

fn state_label(key: &str) -> String {
    desk_core::workflow::Workflow::default_municipal()
        .state(key)
        .map_or_else(|| key.to_owned(), |s| s.label_fa.clone())
}

fn question_label(questions: &[desk_core::survey::Question], key: &str) -> String {
    questions.iter().find(|q| q.key == key).map_or_else(
        || key.to_owned(),
        |q| q.axis_fa.map_or_else(|| q.text_fa.clone(), str::to_owned),
    )
}

fn report_view(report: &Report, questions: &[desk_core::survey::Question]) -> Value {
    let services: Vec<Value> = report
        .by_service
        .iter()
        .map(|(_, title, t)| tally_view(title, t))
        .collect();
    let channels: Vec<Value> = report
        .by_channel
        .iter()
        .map(|(k, t)| tally_view(desk_db::requests::Channel::label_fa(k), t))
        .collect();
    let units: Vec<Value> = report
        .by_unit
        .iter()
        .map(|(k, t)| tally_view(k.as_deref().unwrap_or("بدون واحد"), t))
        .collect();
    let closers: Vec<Value> = report
        .by_closer
        .iter()
        .map(|(k, t)| tally_view(k, t))
        .collect();
    let scores: Vec<(String, f64, String)> = report
        .scores
        .iter()
        .map(|q| {
            let mean = q.mean().unwrap_or(0.0);
            (
                question_label(questions, &q.key),
                mean,
                format!(
                    "{} از ۵ ({} پاسخ)",
                    one_decimal(q.mean()),
                    persian_digits(&q.n.to_string())
                ),
            )
        })
        .collect();
    let states: Vec<(String, f64, String)> = report
        .by_state
        .iter()
        .map(|(k, n)| (state_label(k), *n as f64, persian_digits(&n.to_string())))
        .collect();
    let service_bars: Vec<(String, f64, String)> = report
        .by_service
        .iter()
        .take(12)
        .map(|(_, title, t)| {
            (
                title.clone(),
                t.requests as f64,
                persian_digits(&t.requests.to_string()),
            )
        })
        .collect();
    let agencies: Vec<Value> = report
        .by_agency
        .iter()
        .map(|a| {
            json!({
                "agency": a.agency, "inquiries": persian_digits(&a.inquiries.to_string()),
                "answered": persian_digits(&a.answered.to_string()),
                "unanswered": persian_digits(&a.unanswered.to_string()),
                "open": persian_digits(&a.open.to_string()), "days": one_decimal(a.average_days()),
            })
        })
        .collect();
    let (sent, failed, queued) = report.sms;
    json!({
        "agencies": agencies,
        "total": tally_view("همه", &report.total),
        "services": services, "channels": channels, "units": units, "closers": closers,
        "registrars": report.by_registrar.iter().map(|(k, n)| json!({ "label": k, "n": persian_digits(&n.to_string()) })).collect::<Vec<_>>(),
        "score_bars": bars(&scores), "state_bars": bars(&states), "service_bars": bars(&service_bars),
        "sms": {
            "sent": persian_digits(&sent.to_string()), "failed": persian_digits(&failed.to_string()),
            "queued": persian_digits(&queued.to_string()),
            "rate": one_decimal(desk_core::report::percent(sent, sent + failed)),
            "parts": persian_digits(&report.sms_parts.0.to_string()),
            "cost": persian_digits(&report.sms_parts.1.to_string()),
        },
    })
}

async fn show_report(
    State(state): State<WebState>,
    me: StaffSession,
    Query(q): Query<PeriodQuery>,
) -> Response {
    let period = match period_of(&q) {
        Ok(p) => p,
        Err(e) => return failure(&state, &me.tenant, &e),
    };
    match load(&state, &me, period).await {
        Ok((report, questions)) => {
            let (from, to) = period.days().unwrap_or_default();
            let choices: Vec<Value> = std::iter::successors(
                Some(Period::half_of(local_today())),
                |p| Some(p.previous()),
            )
            .take(6)
            .chain(
                std::iter::successors(Some(Period::month_of(local_today())), |p| {
                    Some(p.previous())
                })
                .take(12),
            )
            .map(|p| json!({ "key": p.key(), "label": p.label_fa(), "selected": p == period }))
            .collect();
            render(
                &state,
                StatusCode::OK,
                "staff_reports.html.j2",
                json!({
                    "tenant": TenantView::of(&me.tenant), "period": period.key(),
                    "period_label": period.label_fa(), "choices": choices,
                    "from": crate::requests::jalali_fa(from), "to": crate::requests::jalali_fa(to),
                    "today": crate::requests::jalali_fa(local_today()),
                    "r": report_view(&report, &questions),
                }),
            )
        }
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

use crate::csv::field as csv_field;

fn number(x: Option<f64>) -> String {
    x.map_or_else(String::new, |v| format!("{v:.1}"))
}

/// The report as CSV: UTF-8 with a byte-order mark (so spreadsheet programs read the Persian
/// text), one row per group, ASCII digits.
fn csv(report: &Report, questions: &[desk_core::survey::Question], period: Period) -> String {
    let mut out = String::from("\u{feff}");
    out.push_str("بخش,عنوان,درخواست‌ها,بسته‌شده,به‌موقع (درصد),معوق,میانگین روز کاری,روز اعلام‌شده,رضایت کلی,نظرسنجی‌ها\r\n");
    let mut row = |section: &str, label: &str, t: &Tally| {
        let fields = [
            section.to_owned(),
            label.to_owned(),
            t.requests.to_string(),
            t.closed.to_string(),
            number(t.on_time_percent()),
            t.overdue.to_string(),
            number(t.average_days()),
            number(t.average_declared()),
            number(t.overall()),
            t.surveys.to_string(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    };
    row("کل", &period.label_fa(), &report.total);
    for (code, title, t) in &report.by_service {
        row("خدمت", &format!("{title} ({code})"), t);
    }
    for (k, t) in &report.by_channel {
        row("مجرا", desk_db::requests::Channel::label_fa(k), t);
    }
    for (k, t) in &report.by_unit {
        row("واحد", k.as_deref().unwrap_or("بدون واحد"), t);
    }
    for (k, t) in &report.by_closer {
        row("کارمند", k, t);
    }
    out.push_str("\r\nدستگاه,استعلام,پاسخ‌داده,بی‌پاسخ,باز,میانگین روز کاری تا پاسخ\r\n");
    for a in &report.by_agency {
        out.push_str(&format!(
            "{},{},{},{},{},{}\r\n",
            csv_field(&a.agency),
            a.inquiries,
            a.answered,
            a.unanswered,
            a.open,
            number(a.average_days())
        ));
    }
    out.push_str("\r\nپرسش,میانگین امتیاز,تعداد پاسخ\r\n");
    for q in &report.scores {
        out.push_str(&format!(
            "{},{},{}\r\n",
            csv_field(&question_label(questions, &q.key)),
            number(q.mean()),
            q.n
        ));
    }
    out
}

async fn report_csv(
    State(state): State<WebState>,
    me: StaffSession,
    Query(q): Query<PeriodQuery>,
) -> Response {
    let period = match period_of(&q) {
        Ok(p) => p,
        Err(e) => return failure(&state, &me.tenant, &e),
    };
    match load(&state, &me, period).await {
        Ok((report, questions)) => {
            let mut res = csv(&report, &questions, period).into_response();
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            if let Ok(v) = HeaderValue::from_str(&format!(
                "attachment; filename=\"miz-report-{}-{}.csv\"",
                me.tenant.slug.as_str(),
                period.key()
            )) {
                res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            res
        }
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest() {
        let b = bars(&[("a".into(), 2.0, "۲".into()), ("b".into(), 4.0, "۴".into())]);
        assert_eq!(b[0]["width"], "50.0");
        assert_eq!(b[1]["width"], "100.0");
        assert_eq!(b[1]["y"], 28);
        assert_eq!(bars(&[("a".into(), 0.0, "".into())])[0]["width"], "0.0");
    }
}
