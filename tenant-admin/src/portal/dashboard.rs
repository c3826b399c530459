//! The province and nation dashboard: each municipality's indicators against the median.

use super::*;

#[derive(Debug, Deserialize, Default)]
pub(super) struct DashboardQuery {
    #[serde(default)]
    period: String,
    #[serde(default)]
    province: String,
}

pub(super) fn fmt1(x: Option<f64>) -> String {
    x.map_or_else(|| "—".to_owned(), |v| persian_digits(&format!("{v:.1}")))
}

pub(super) fn fmt0(x: f64) -> String {
    persian_digits(&format!("{x:.0}"))
}

/// `▲`/`▼` against the province median (higher is better for these figures), else empty.
pub(super) fn versus(value: Option<f64>, median: Option<f64>) -> &'static str {
    match (value, median) {
        (Some(v), Some(m)) if v > m + 1e-9 => "▲",
        (Some(v), Some(m)) if v + 1e-9 < m => "▼",
        _ => "",
    }
}

pub(super) fn kpi_view(
    k: &crate::dashboard::Kpis,
    median: Option<&crate::dashboard::Kpis>,
) -> minijinja::Value {
    let overall = k.axes[5];
    context! {
        requests => fmt0(k.requests), in_person => fmt1(k.in_person), on_time => fmt1(k.on_time),
        on_time_vs => versus(k.on_time, median.and_then(|m| m.on_time)),
        overdue => fmt0(k.overdue), days => fmt1(k.days), declared => fmt1(k.declared),
        overall => fmt1(overall), overall_vs => versus(overall, median.and_then(|m| m.axes[5])),
        axes => k.axes.iter().map(|a| fmt1(*a)).collect::<Vec<_>>(),
        surveys => fmt0(k.surveys), sms => fmt1(k.sms),
    }
}

pub(super) async fn show_dashboard(
    State(portal): State<PlatformPortal>,
    me: SignedIn,
    Query(q): Query<DashboardQuery>,
) -> Response {
    let today = desk_core::calendar::today_in_iran();
    let period = if q.period.trim().is_empty() {
        desk_core::report::Period::half_of(today)
    } else {
        match desk_core::report::Period::parse(&q.period) {
            Some(p) => p,
            None => {
                return error_response(
                    &portal.views,
                    &DomainError::Validation(FieldErrors::single(
                        "period",
                        "period",
                        "دوره را به شکل ۱۴۰۵-۰۹، ۱۴۰۵-h2 یا ۱۴۰۵ بدهید.",
                    )),
                );
            }
        }
    };
    let province: Option<i16> = q.province.parse().ok();
    let loaded = async {
        let board =
            crate::dashboard::dashboard(&portal.db, &portal.authz, &actor(&me), province, period)
                .await?;
        let provinces = portal.db.province_summaries().await?;
        Ok::<_, DomainError>((board, provinces))
    }
    .await;
    let (board, provinces) = match loaded {
        Ok(x) => x,
        Err(e) => return error_response(&portal.views, &e),
    };
    let province_name = |id: i16| {
        provinces
            .iter()
            .find(|p| p.id == id)
            .map_or_else(String::new, |p| p.name_fa.clone())
    };
    let rows: Vec<minijinja::Value> = board
        .rows
        .iter()
        .map(|r| {
            context! {
                slug => r.slug.clone(), name => r.name_fa.clone(), province => province_name(r.province_id),
                k => kpi_view(&r.kpis, board.province_medians.get(&r.province_id)),
            }
        })
        .collect();
    let medians: Vec<minijinja::Value> = board
        .province_medians
        .iter()
        .map(|(id, k)| context! { province => province_name(*id), k => kpi_view(k, None) })
        .collect();
    let choices: Vec<minijinja::Value> =
        std::iter::successors(Some(desk_core::report::Period::half_of(today)), |p| {
            Some(p.previous())
        })
        .take(6)
        .chain(
            std::iter::successors(Some(desk_core::report::Period::month_of(today)), |p| {
                Some(p.previous())
            })
            .take(12),
        )
        .map(|p| context! { key => p.key(), label => p.label_fa(), selected => p == period })
        .collect();
    let province_choices: Vec<minijinja::Value> = provinces
        .iter()
        .filter(|p| p.tenants > 0)
        .map(|p| context! { id => p.id, name => p.name_fa.clone(), selected => province == Some(p.id) })
        .collect();
    let axes: Vec<&str> = desk_core::survey::AXES.iter().map(|a| a.name_fa).collect();
    portal.views.render(
        StatusCode::OK,
        "dashboard.html.j2",
        context! {
            me => Serde(user_view(&me)), period => period.key(), period_label => period.label_fa(),
            choices, provinces => province_choices, rows, medians, axes,
            total => kpi_view(&board.total, None), count => persian_digits(&board.rows.len().to_string()),
        },
    )
}
