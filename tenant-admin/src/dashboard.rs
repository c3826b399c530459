//! Province and platform dashboards: the desk indicators of every municipality the operator may
//! report on, for a Jalali period, with each province's median to compare against. Reads only
//! `platform.tenant_indicators` (counts and sums the `refresh_indicators` job keeps), so a page
//! view touches no tenant schema and can show no citizen's data.

use crate::lifecycle::{Actor, allowed};
use desk_authz::{Action, Authorizer, Domain, Resource};
use desk_core::DomainError;
use desk_core::report::{Period, median, percent};
use desk_db::PlatformDb;
use desk_db::indicators::TenantIndicators;
use desk_db::reports::MonthIndicators;
use serde::Serialize;
use std::collections::BTreeMap;

/// The figures of one municipality (or a province's medians) as the dashboard compares them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Kpis {
    /// Requests filed.
    pub requests: f64,
    /// Share filed at the in-person desk (%).
    pub in_person: Option<f64>,
    /// Closed on time (% of closed).
    pub on_time: Option<f64>,
    /// Open past the promised date.
    pub overdue: f64,
    /// Average working days taken.
    pub days: Option<f64>,
    /// Average working days declared.
    pub declared: Option<f64>,
    /// Mean score per national axis (1-5), in `survey::AXES` order.
    pub axes: [Option<f64>; 6],
    /// Surveys answered.
    pub surveys: f64,
    /// SMS delivered (% of sent + failed).
    pub sms: Option<f64>,
}

impl Kpis {
    /// The figures of summed indicators.
    pub fn of(m: &MonthIndicators) -> Self {
        let avg = |sum: i64, n: i64| (n > 0).then(|| sum as f64 / n as f64);
        Self {
            requests: m.requests as f64,
            in_person: percent(m.in_person, m.requests),
            on_time: percent(m.closed_on_time, m.closed),
            overdue: m.open_overdue as f64,
            days: avg(m.duration_days_sum, m.closed),
            declared: avg(m.declared_days_sum, m.closed),
            axes: m.axes.map(|(sum, n)| avg(sum, n)),
            surveys: m.surveys as f64,
            sms: percent(m.sms_sent, m.sms_sent + m.sms_failed),
        }
    }

    /// The median of each figure over `rows` (figures a municipality does not have are left
    /// out of that figure's median).
    pub fn median_of(rows: &[Kpis]) -> Self {
        let m = |f: &dyn Fn(&Kpis) -> Option<f64>| {
            let mut v: Vec<f64> = rows.iter().filter_map(f).collect();
            median(&mut v)
        };
        Self {
            requests: m(&|k| Some(k.requests)).unwrap_or(0.0),
            in_person: m(&|k| k.in_person),
            on_time: m(&|k| k.on_time),
            overdue: m(&|k| Some(k.overdue)).unwrap_or(0.0),
            days: m(&|k| k.days),
            declared: m(&|k| k.declared),
            axes: std::array::from_fn(|i| m(&|k| k.axes[i])),
            surveys: m(&|k| Some(k.surveys)).unwrap_or(0.0),
            sms: m(&|k| k.sms),
        }
    }
}

/// One municipality on the dashboard.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Slug.
    pub slug: String,
    /// Persian name.
    pub name_fa: String,
    /// Province id.
    pub province_id: i16,
    /// Its figures.
    pub kpis: Kpis,
}

/// The dashboard for a period.
#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    /// Municipalities the actor may report on.
    pub rows: Vec<Row>,
    /// Median figures per province id (over the rows shown).
    pub province_medians: BTreeMap<i16, Kpis>,
    /// Figures of all rows summed.
    pub total: Kpis,
}

/// The dashboard of `period` for `actor`: every municipality (of `province`, if given) whose
/// reports the actor may read; provincial operators see only their province's.
pub async fn dashboard(
    db: &PlatformDb,
    authz: &Authorizer,
    actor: &Actor,
    province: Option<i16>,
    period: Period,
) -> Result<Dashboard, DomainError> {
    let (first, last) = period.month_range();
    let mut visible: Vec<TenantIndicators> = Vec::new();
    for t in db.indicators(province, first, last).await? {
        if allowed(
            authz,
            actor,
            Domain::Tenant(t.tenant_id),
            Resource::Report,
            Action::Read,
        )
        .await?
        {
            visible.push(t);
        }
    }
    let mut sum = MonthIndicators::default();
    for t in &visible {
        add(&mut sum, &t.sums);
    }
    let rows: Vec<Row> = visible
        .iter()
        .map(|t| Row {
            slug: t.slug.clone(),
            name_fa: t.name_fa.clone(),
            province_id: t.province_id,
            kpis: Kpis::of(&t.sums),
        })
        .collect();
    let mut by_province: BTreeMap<i16, Vec<Kpis>> = BTreeMap::new();
    for r in &rows {
        by_province
            .entry(r.province_id)
            .or_default()
            .push(r.kpis.clone());
    }
    Ok(Dashboard {
        province_medians: by_province
            .into_iter()
            .map(|(p, k)| (p, Kpis::median_of(&k)))
            .collect(),
        total: Kpis::of(&sum),
        rows,
    })
}

fn add(to: &mut MonthIndicators, m: &MonthIndicators) {
    to.requests += m.requests;
    to.web += m.web;
    to.in_person += m.in_person;
    to.api += m.api;
    to.closed += m.closed;
    to.closed_on_time += m.closed_on_time;
    to.open_overdue += m.open_overdue;
    to.duration_days_sum += m.duration_days_sum;
    to.declared_days_sum += m.declared_days_sum;
    to.surveys += m.surveys;
    for (a, b) in to.axes.iter_mut().zip(m.axes.iter()) {
        a.0 += b.0;
        a.1 += b.1;
    }
    to.sms_sent += m.sms_sent;
    to.sms_failed += m.sms_failed;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kpis_and_medians() {
        let m = MonthIndicators {
            requests: 10,
            in_person: 4,
            closed: 8,
            closed_on_time: 6,
            duration_days_sum: 40,
            declared_days_sum: 32,
            axes: [(8, 2), (0, 0), (0, 0), (0, 0), (0, 0), (9, 2)],
            sms_sent: 9,
            sms_failed: 1,
            ..Default::default()
        };
        let k = Kpis::of(&m);
        assert_eq!(k.in_person, Some(40.0));
        assert_eq!(k.on_time, Some(75.0));
        assert_eq!(k.days, Some(5.0));
        assert_eq!(k.declared, Some(4.0));
        assert_eq!(k.axes[0], Some(4.0));
        assert_eq!(k.axes[1], None);
        assert_eq!(k.axes[5], Some(4.5));
        assert_eq!(k.sms, Some(90.0));
        let empty = Kpis::of(&MonthIndicators::default());
        let med = Kpis::median_of(&[k.clone(), empty.clone(), k.clone()]);
        assert_eq!(med.requests, 10.0);
        // The municipality without closed requests is left out of the on-time median.
        assert_eq!(med.on_time, Some(75.0));
        assert_eq!(Kpis::median_of(&[k, empty]).requests, 5.0);
    }
}
