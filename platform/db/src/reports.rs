//! Tenant repository: the municipality's desk report (requests filed in a period, by service,
//! state, channel, unit and staff member; on-time rate; duration against the declared one;
//! satisfaction per axis; SMS delivery), and its monthly indicators for the province and
//! platform dashboards (counts and sums only, no citizen's data).
//!
//! A request belongs to the period it was filed in; "on time" means closed on or before the
//! promised date on its receipt; durations are in working days of the municipality's calendar.

use crate::internal;
use crate::tenant_tx::TenantTx;
use chrono::NaiveDate;
use desk_core::DomainError;
use desk_core::calendar::WorkingCalendar;
use sqlx::Row;
use std::collections::{BTreeMap, HashMap};

/// One request as the report counts it.
#[derive(Debug, Clone)]
struct Fact {
    id: i64,
    service_code: String,
    service_title: String,
    channel: String,
    state: String,
    closed: bool,
    submitted_on: NaiveDate,
    promised_on: NaiveDate,
    closed_on: Option<NaiveDate>,
    declared_days: i64,
    unit: Option<String>,
    closed_by: Option<String>,
    registered_by: Option<String>,
}

async fn facts(
    tx: &mut TenantTx,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Fact>, DomainError> {
    let rows = sqlx::query(
        "select r.id, r.service_code, s.title, r.channel, r.state, r.closed, r.submitted_on,
                r.promised_on, r.closed_on,
                coalesce((s.card ->> 'duration_days')::bigint, 0) as declared_days,
                u.name as unit_name, g.display_name as registered_by,
                (select st.display_name from request_events e join staff st on st.id = e.staff_id
                  where r.closed and e.request_id = r.id and e.to_state = r.state
                  order by e.id desc limit 1) as closed_by
           from requests r
           join services s on s.id = r.service_id
           left join units u on u.id = r.unit_id
           left join staff g on g.id = r.registered_by
          where r.submitted_on between $1 and $2",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)?;
    rows.iter()
        .map(|r| {
            Ok(Fact {
                id: r.try_get("id").map_err(internal)?,
                service_code: r.try_get("service_code").map_err(internal)?,
                service_title: r.try_get("title").map_err(internal)?,
                channel: r.try_get("channel").map_err(internal)?,
                state: r.try_get("state").map_err(internal)?,
                closed: r.try_get("closed").map_err(internal)?,
                submitted_on: r.try_get("submitted_on").map_err(internal)?,
                promised_on: r.try_get("promised_on").map_err(internal)?,
                closed_on: r.try_get("closed_on").map_err(internal)?,
                declared_days: r.try_get("declared_days").map_err(internal)?,
                unit: r.try_get("unit_name").map_err(internal)?,
                closed_by: r.try_get("closed_by").map_err(internal)?,
                registered_by: r.try_get("registered_by").map_err(internal)?,
            })
        })
        .collect()
}

/// Scores of the surveys of requests filed in the period: (request id, question key, score).
async fn scores(
    tx: &mut TenantTx,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<(i64, String, i16)>, DomainError> {
    sqlx::query_as(
        "select v.request_id, a.question_key, a.score
           from surveys v
           join survey_answers a on a.survey_id = v.id
           join requests r on r.id = v.request_id
          where r.submitted_on between $1 and $2",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)
}

/// Counts shared by every row of the report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Requests filed.
    pub requests: i64,
    /// Of which closed.
    pub closed: i64,
    /// Closed on or before the promised date.
    pub on_time: i64,
    /// Open past the promised date.
    pub overdue: i64,
    /// Sum of working days taken by the closed ones.
    pub days_sum: i64,
    /// Sum of the working days their cards declared.
    pub declared_sum: i64,
    /// Surveys answered.
    pub surveys: i64,
    /// Sum and count of the `overall` scores.
    pub overall_sum: i64,
    /// Count of `overall` scores.
    pub overall_n: i64,
}

impl Tally {
    fn add(
        &mut self,
        f: &Fact,
        taken: Option<i64>,
        today: NaiveDate,
        overall: Option<i16>,
        surveyed: bool,
    ) {
        self.requests += 1;
        if let (true, Some(closed_on)) = (f.closed, f.closed_on) {
            self.closed += 1;
            if closed_on <= f.promised_on {
                self.on_time += 1;
            }
            self.days_sum += taken.unwrap_or(0);
            self.declared_sum += f.declared_days;
        } else if !f.closed && f.promised_on < today {
            self.overdue += 1;
        }
        if surveyed {
            self.surveys += 1;
        }
        if let Some(s) = overall {
            self.overall_sum += i64::from(s);
            self.overall_n += 1;
        }
    }

    /// Percentage of closed requests closed on time.
    pub fn on_time_percent(&self) -> Option<f64> {
        desk_core::report::percent(self.on_time, self.closed)
    }

    /// Average working days taken by the closed requests.
    pub fn average_days(&self) -> Option<f64> {
        (self.closed > 0).then(|| self.days_sum as f64 / self.closed as f64)
    }

    /// Average working days their cards declared.
    pub fn average_declared(&self) -> Option<f64> {
        (self.closed > 0).then(|| self.declared_sum as f64 / self.closed as f64)
    }

    /// Average overall satisfaction (1-5).
    pub fn overall(&self) -> Option<f64> {
        (self.overall_n > 0).then(|| self.overall_sum as f64 / self.overall_n as f64)
    }
}

/// Average score of one question over the period.
#[derive(Debug, Clone, PartialEq)]
pub struct QuestionScore {
    /// Question key.
    pub key: String,
    /// Sum of scores.
    pub sum: i64,
    /// Number of answers.
    pub n: i64,
}

impl QuestionScore {
    /// Mean score.
    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum as f64 / self.n as f64)
    }
}

/// The municipality's report for a period.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Everything.
    pub total: Tally,
    /// By service code (with its title).
    pub by_service: Vec<(String, String, Tally)>,
    /// By channel key.
    pub by_channel: Vec<(String, Tally)>,
    /// Requests by current state key.
    pub by_state: Vec<(String, i64)>,
    /// By responsible unit (`None`: none).
    pub by_unit: Vec<(Option<String>, Tally)>,
    /// By the staff member who closed the request.
    pub by_closer: Vec<(String, Tally)>,
    /// Walk-ins registered per staff member.
    pub by_registrar: Vec<(String, i64)>,
    /// Satisfaction per question.
    pub scores: Vec<QuestionScore>,
    /// SMS about requests of the period: sent, failed, waiting.
    pub sms: (i64, i64, i64),
    /// Inquiries of these requests, per agency.
    pub by_agency: Vec<AgencyTally>,
    /// SMS parts sent about these requests, and their estimated cost in rials at the
    /// municipality's prices.
    pub sms_parts: (i64, u64),
}

/// How one agency answered the inquiries of a period's requests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgencyTally {
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
    /// Working days from asking to the answer, summed over the answered ones.
    pub days_sum: i64,
}

impl AgencyTally {
    /// Average working days to an answer.
    pub fn average_days(&self) -> Option<f64> {
        (self.answered > 0).then(|| self.days_sum as f64 / self.answered as f64)
    }
}

async fn agency_tallies(
    tx: &mut TenantTx,
    from: NaiveDate,
    to: NaiveDate,
    calendar: &WorkingCalendar,
) -> Result<Vec<AgencyTally>, DomainError> {
    let rows: Vec<(String, String, NaiveDate, Option<NaiveDate>)> = sqlx::query_as(
        "select a.name, i.status,
                (i.created_at at time zone 'UTC' + interval '3 hours 30 minutes')::date,
                (i.answered_at at time zone 'UTC' + interval '3 hours 30 minutes')::date
           from inquiries i
           join agencies a on a.id = i.agency_id
           join requests r on r.id = i.request_id
          where r.submitted_on between $1 and $2",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)?;
    let mut by: BTreeMap<String, AgencyTally> = BTreeMap::new();
    for (agency, status, asked, answered) in rows {
        let t = by.entry(agency.clone()).or_insert_with(|| AgencyTally {
            agency,
            ..AgencyTally::default()
        });
        t.inquiries += 1;
        match (status.as_str(), answered) {
            ("answered", Some(day)) => {
                t.answered += 1;
                t.days_sum += i64::from(calendar.working_days_between(asked, day));
            }
            ("failed" | "timed_out", _) => t.unanswered += 1,
            _ => t.open += 1,
        }
    }
    Ok(by.into_values().collect())
}

fn group<K: Ord + Clone>(
    facts: &[Fact],
    key: impl Fn(&Fact) -> Option<K>,
    tally: impl Fn(&mut Tally, &Fact),
) -> Vec<(K, Tally)> {
    let mut out: BTreeMap<K, Tally> = BTreeMap::new();
    for f in facts {
        if let Some(k) = key(f) {
            tally(out.entry(k).or_default(), f);
        }
    }
    let mut v: Vec<(K, Tally)> = out.into_iter().collect();
    v.sort_by(|a, b| b.1.requests.cmp(&a.1.requests).then_with(|| a.0.cmp(&b.0)));
    v
}

/// The report of requests filed from `from` to `to` (inclusive), as of `today`.
pub async fn report(
    tx: &mut TenantTx,
    from: NaiveDate,
    to: NaiveDate,
    today: NaiveDate,
) -> Result<Report, DomainError> {
    let facts = facts(tx, from, to).await?;
    let scores = scores(tx, from, to).await?;
    let calendar = crate::settings::working_calendar(tx, from).await?;
    let sms: (i64, i64, i64) = sqlx::query_as(
        "select count(*) filter (where n.status = 'sent'), count(*) filter (where n.status = 'failed'),
                count(*) filter (where n.status = 'queued')
           from notifications n join requests r on r.id = n.request_id
          where r.submitted_on between $1 and $2",
    )
    .bind(from)
    .bind(to)
    .fetch_one(&mut **tx)
    .await
    .map_err(internal)?;
    let mut report = build(&facts, &scores, &calendar, today, sms);
    report.by_agency = agency_tallies(tx, from, to, &calendar).await?;
    let bodies: Vec<String> = sqlx::query_scalar(
        "select n.body from notifications n join requests r on r.id = n.request_id
          where n.status = 'sent' and r.submitted_on between $1 and $2",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)?;
    let (gsm7, ucs2) = crate::sms_templates::prices(tx).await?;
    for body in &bodies {
        let s = desk_core::sms_text::segments(body);
        report.sms_parts.0 += i64::try_from(s.parts).unwrap_or(0);
        report.sms_parts.1 = report
            .sms_parts
            .1
            .saturating_add(desk_core::sms_text::cost_rials(&s, gsm7, ucs2));
    }
    Ok(report)
}

fn build(
    facts: &[Fact],
    scores: &[(i64, String, i16)],
    calendar: &WorkingCalendar,
    today: NaiveDate,
    sms: (i64, i64, i64),
) -> Report {
    let mut overall: HashMap<i64, i16> = HashMap::new();
    let mut surveyed: HashMap<i64, ()> = HashMap::new();
    let mut per_question: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for (request, key, score) in scores {
        surveyed.insert(*request, ());
        if key == "overall" {
            overall.insert(*request, *score);
        }
        let e = per_question.entry(key.as_str()).or_default();
        e.0 += i64::from(*score);
        e.1 += 1;
    }
    let taken: HashMap<i64, i64> = facts
        .iter()
        .filter_map(|f| {
            let closed_on = f.closed_on.filter(|_| f.closed)?;
            Some((
                f.id,
                i64::from(calendar.working_days_between(f.submitted_on, closed_on)),
            ))
        })
        .collect();
    let add = |t: &mut Tally, f: &Fact| {
        t.add(
            f,
            taken.get(&f.id).copied(),
            today,
            overall.get(&f.id).copied(),
            surveyed.contains_key(&f.id),
        );
    };
    let mut total = Tally::default();
    for f in facts {
        add(&mut total, f);
    }
    let by_service = group(
        facts,
        |f| Some((f.service_code.clone(), f.service_title.clone())),
        add,
    )
    .into_iter()
    .map(|((code, title), t)| (code, title, t))
    .collect();
    let mut by_state: BTreeMap<&str, i64> = BTreeMap::new();
    let mut by_registrar: BTreeMap<&str, i64> = BTreeMap::new();
    for f in facts {
        *by_state.entry(f.state.as_str()).or_default() += 1;
        if let Some(name) = &f.registered_by {
            *by_registrar.entry(name.as_str()).or_default() += 1;
        }
    }
    Report {
        total,
        by_service,
        by_channel: group(facts, |f| Some(f.channel.clone()), add),
        by_state: by_state
            .into_iter()
            .map(|(k, n)| (k.to_owned(), n))
            .collect(),
        by_unit: group(facts, |f| Some(f.unit.clone()), add),
        by_closer: group(facts, |f| f.closed_by.clone(), add),
        by_registrar: by_registrar
            .into_iter()
            .map(|(k, n)| (k.to_owned(), n))
            .collect(),
        scores: per_question
            .into_iter()
            .map(|(key, (sum, n))| QuestionScore {
                key: key.to_owned(),
                sum,
                n,
            })
            .collect(),
        sms,
        by_agency: Vec::new(),
        sms_parts: (0, 0),
    }
}

/// One month of a municipality's indicators, as `platform.tenant_indicators` stores them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonthIndicators {
    /// `year * 100 + month` (Jalali).
    pub month: i32,
    /// Requests filed.
    pub requests: i64,
    /// Filed on the web.
    pub web: i64,
    /// Filed at the desk.
    pub in_person: i64,
    /// Filed through the API or Open311.
    pub api: i64,
    /// Closed.
    pub closed: i64,
    /// Closed on time.
    pub closed_on_time: i64,
    /// Open past the promised date.
    pub open_overdue: i64,
    /// Working days taken by the closed ones.
    pub duration_days_sum: i64,
    /// Working days their cards declared.
    pub declared_days_sum: i64,
    /// Surveys answered.
    pub surveys: i64,
    /// Per national axis (in `survey::AXES` order): sum of scores and count.
    pub axes: [(i64, i64); 6],
    /// SMS sent.
    pub sms_sent: i64,
    /// SMS failed.
    pub sms_failed: i64,
}

/// Every month's indicators of the municipality (by the month requests were filed), as of
/// `today`. Reads only this tenant's schema.
pub async fn monthly_indicators(
    tx: &mut TenantTx,
    today: NaiveDate,
) -> Result<Vec<MonthIndicators>, DomainError> {
    // PostgreSQL dates start in 4713 BC; the desk's start well after 1900.
    let (start, end) = (
        NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or_default(),
        NaiveDate::from_ymd_opt(9999, 12, 31).unwrap_or_default(),
    );
    let facts = facts(tx, start, end).await?;
    let scores = scores(tx, start, end).await?;
    let sms: Vec<(i64, String)> = sqlx::query_as(
        "select request_id, status from notifications where request_id is not null and status <> 'queued'",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)?;
    let first = facts.iter().map(|f| f.submitted_on).min().unwrap_or(today);
    let calendar = crate::settings::working_calendar(tx, first).await?;
    let month_of: HashMap<i64, i32> = facts
        .iter()
        .map(|f| (f.id, desk_core::report::month_key(f.submitted_on)))
        .collect();
    let mut months: BTreeMap<i32, MonthIndicators> = BTreeMap::new();
    for f in facts.iter() {
        let m = months.entry(month_of[&f.id]).or_default();
        m.requests += 1;
        match f.channel.as_str() {
            "web" => m.web += 1,
            "in_person" => m.in_person += 1,
            _ => m.api += 1,
        }
        match f.closed_on.filter(|_| f.closed) {
            Some(closed_on) => {
                m.closed += 1;
                if closed_on <= f.promised_on {
                    m.closed_on_time += 1;
                }
                m.duration_days_sum +=
                    i64::from(calendar.working_days_between(f.submitted_on, closed_on));
                m.declared_days_sum += f.declared_days;
            }
            None if !f.closed && f.promised_on < today => m.open_overdue += 1,
            None => {}
        }
    }
    let mut surveyed = std::collections::HashSet::new();
    for (request, key, score) in &scores {
        let Some(month) = month_of.get(request) else {
            continue;
        };
        let m = months.entry(*month).or_default();
        if surveyed.insert(*request) {
            m.surveys += 1;
        }
        if let Some(i) = desk_core::survey::AXES.iter().position(|a| a.key == key) {
            m.axes[i].0 += i64::from(*score);
            m.axes[i].1 += 1;
        }
    }
    for (request, status) in &sms {
        let Some(month) = month_of.get(request) else {
            continue;
        };
        let m = months.entry(*month).or_default();
        if status == "sent" {
            m.sms_sent += 1;
        } else {
            m.sms_failed += 1;
        }
    }
    Ok(months
        .into_iter()
        .map(|(month, mut m)| {
            m.month = month;
            m
        })
        .collect())
}
