//! The municipality's desk report for integrators (a provincial portal, the city's own
//! dashboards): counts and averages for a Jalali period, no personal data. Needs a key with
//! `reports:read`.

use crate::gql_error;
use crate::requests::{context, require};
use async_graphql::{Context, Object, SimpleObject};
use desk_core::DomainError;
use desk_core::report::Period;
use desk_db::reports::{self, Tally};

/// Counts and averages of a group of requests (filed in the period).
#[derive(Debug, SimpleObject)]
pub struct ReportTally {
    /// Requests filed.
    pub requests: i64,
    /// Of which closed.
    pub closed: i64,
    /// Closed on or before the promised date on the receipt.
    pub closed_on_time: i64,
    /// Open past the promised date.
    pub overdue: i64,
    /// `closedOnTime / closed` in percent; null without closed requests.
    pub on_time_percent: Option<f64>,
    /// Average working days taken by the closed requests.
    pub average_days: Option<f64>,
    /// Average working days their service cards declared.
    pub average_declared_days: Option<f64>,
    /// Surveys answered.
    pub surveys: i64,
    /// Average overall satisfaction (1 to 5).
    pub overall_satisfaction: Option<f64>,
}

impl From<&Tally> for ReportTally {
    fn from(t: &Tally) -> Self {
        Self {
            requests: t.requests,
            closed: t.closed,
            closed_on_time: t.on_time,
            overdue: t.overdue,
            on_time_percent: t.on_time_percent(),
            average_days: t.average_days(),
            average_declared_days: t.average_declared(),
            surveys: t.surveys,
            overall_satisfaction: t.overall(),
        }
    }
}

/// One group of the report.
#[derive(Debug, SimpleObject)]
pub struct ReportGroup {
    /// Key: service code, channel (`web`, `in_person`, `api`, `open311`) or unit name.
    pub key: String,
    /// Persian label.
    pub label: String,
    /// Its figures.
    pub tally: ReportTally,
}

/// Satisfaction with one survey question.
#[derive(Debug, SimpleObject)]
pub struct QuestionSatisfaction {
    /// Question key (the six national axes: `transparency`, `responsiveness`, `mastery`,
    /// `time`, `systematic`, `overall`; a municipality's own: `c1`, ...).
    pub key: String,
    /// Mean score (1 to 5).
    pub mean: Option<f64>,
    /// Number of answers.
    pub answers: i64,
}

/// How one agency answered inquiries.
#[derive(Debug, SimpleObject)]
pub struct AgencyTurnaround {
    /// Agency name.
    pub agency: String,
    /// Inquiries sent.
    pub inquiries: i64,
    /// Answered.
    pub answered: i64,
    /// Failed or timed out.
    pub unanswered: i64,
    /// Still open.
    pub open: i64,
    /// Average working days from asking to the answer.
    pub average_days: Option<f64>,
}

/// The desk report of a period.
#[derive(Debug, SimpleObject)]
pub struct DeskReport {
    /// The period key (`1405-09`, `1405-h2`, `1405`).
    pub period: String,
    /// Its Persian name.
    pub label: String,
    /// First day (ISO 8601).
    pub from: String,
    /// Last day (ISO 8601).
    pub to: String,
    /// All requests filed in the period.
    pub total: ReportTally,
    /// By service.
    pub by_service: Vec<ReportGroup>,
    /// By channel.
    pub by_channel: Vec<ReportGroup>,
    /// By responsible unit.
    pub by_unit: Vec<ReportGroup>,
    /// Satisfaction per question.
    pub satisfaction: Vec<QuestionSatisfaction>,
    /// Inquiries of these requests per agency.
    pub by_agency: Vec<AgencyTurnaround>,
    /// SMS about these requests delivered to the provider.
    pub sms_sent: i64,
    /// SMS the provider refused.
    pub sms_failed: i64,
}

/// Report queries of the tenant API.
#[derive(Debug, Default)]
pub struct ReportQuery;

#[Object]
impl ReportQuery {
    /// The desk report of requests filed in `period` (`1405-09` a month, `1405-h1`/`1405-h2` a
    /// half year, `1405` a year; Jalali). Needs `reports:read`.
    #[graphql(complexity = 50)]
    async fn report(&self, ctx: &Context<'_>, period: String) -> async_graphql::Result<DeskReport> {
        let (tenant, services, caller) = context(ctx)?;
        require(caller, "reports:read")?;
        let invalid = || {
            gql_error(DomainError::Validation(desk_core::FieldErrors::single(
                "period",
                "period",
                "use 1405-09 (month), 1405-h2 (half year) or 1405 (year)",
            )))
        };
        let period = Period::parse(&period).ok_or_else(invalid)?;
        let (from, to) = period.days().ok_or_else(invalid)?;
        let report = async {
            let mut tx = services.platform.tenant_db().begin(tenant.scope()).await?;
            let r =
                reports::report(&mut tx, from, to, desk_core::calendar::today_in_iran()).await?;
            tx.commit().await?;
            Ok::<_, DomainError>(r)
        }
        .await
        .map_err(gql_error)?;
        Ok(DeskReport {
            period: period.key(),
            label: period.label_fa(),
            from: from.to_string(),
            to: to.to_string(),
            total: (&report.total).into(),
            by_service: report
                .by_service
                .iter()
                .map(|(code, title, t)| ReportGroup {
                    key: code.clone(),
                    label: title.clone(),
                    tally: t.into(),
                })
                .collect(),
            by_channel: report
                .by_channel
                .iter()
                .map(|(k, t)| ReportGroup {
                    key: k.clone(),
                    label: desk_db::requests::Channel::label_fa(k).to_owned(),
                    tally: t.into(),
                })
                .collect(),
            by_unit: report
                .by_unit
                .iter()
                .map(|(k, t)| ReportGroup {
                    key: k.clone().unwrap_or_default(),
                    label: k.clone().unwrap_or_else(|| "بدون واحد".to_owned()),
                    tally: t.into(),
                })
                .collect(),
            satisfaction: report
                .scores
                .iter()
                .map(|q| QuestionSatisfaction {
                    key: q.key.clone(),
                    mean: q.mean(),
                    answers: q.n,
                })
                .collect(),
            by_agency: report
                .by_agency
                .iter()
                .map(|a| AgencyTurnaround {
                    agency: a.agency.clone(),
                    inquiries: a.inquiries,
                    answered: a.answered,
                    unanswered: a.unanswered,
                    open: a.open,
                    average_days: a.average_days(),
                })
                .collect(),
            sms_sent: report.sms.0,
            sms_failed: report.sms.1,
        })
    }
}
