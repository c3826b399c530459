//! Tenant repository: satisfaction surveys. A closed request gets one survey; its personal link
//! carries a random token of which only the sha256 is kept, works once and expires. Staff at
//! the desk may record the citizen's answers instead (recorded as such, with their name).

use crate::internal;
use crate::tenant_tx::TenantTx;
use chrono::{DateTime, Utc};
use desk_core::survey::{self, Answer, Question, QuestionRow};
use desk_core::{DomainError, FieldErrors};
use sqlx::Row;

/// How long a survey link works.
pub const LINK_TTL_DAYS: i64 = 30;

/// The municipality's stored changes to the questionnaire.
pub async fn question_rows(tx: &mut TenantTx) -> Result<Vec<QuestionRow>, DomainError> {
    let rows = sqlx::query("select key, label_fa, position, hidden from survey_questions")
        .fetch_all(&mut **tx)
        .await
        .map_err(internal)?;
    rows.iter()
        .map(|r| {
            Ok(QuestionRow {
                key: r.try_get("key").map_err(internal)?,
                label_fa: r.try_get("label_fa").map_err(internal)?,
                position: r.try_get("position").map_err(internal)?,
                hidden: r.try_get("hidden").map_err(internal)?,
            })
        })
        .collect()
}

/// The municipality's questionnaire (hidden questions included, marked).
pub async fn questionnaire(tx: &mut TenantTx) -> Result<Vec<Question>, DomainError> {
    Ok(survey::questionnaire(&question_rows(tx).await?))
}

/// Adds an own question at the end; returns its key.
pub async fn add_question(tx: &mut TenantTx, text: &str) -> Result<String, DomainError> {
    let text = survey::check_question_text(text)?;
    let questions = questionnaire(tx).await?;
    if questions.iter().filter(|q| q.axis_fa.is_none()).count() >= 20 {
        return Err(FieldErrors::single(
            "label_fa",
            "too_many_questions",
            "حداکثر ۲۰ پرسش افزوده می‌توان داشت.",
        )
        .into());
    }
    let next = questions.iter().map(|q| q.position).max().unwrap_or(0) + 10;
    // Own questions are never deleted (answers keep their key), so the count names the next.
    let n: i64 =
        sqlx::query_scalar("select count(*) from survey_questions where label_fa is not null")
            .fetch_one(&mut **tx)
            .await
            .map_err(internal)?;
    let key = format!("c{}", n + 1);
    sqlx::query("insert into survey_questions (key, label_fa, position) values ($1, $2, $3)")
        .bind(&key)
        .bind(&text)
        .bind(next)
        .execute(&mut **tx)
        .await
        .map_err(internal)?;
    Ok(key)
}

/// Hides or shows a question (national or own). Unknown keys are `NotFound`.
pub async fn set_hidden(tx: &mut TenantTx, key: &str, hidden: bool) -> Result<(), DomainError> {
    let questions = questionnaire(tx).await?;
    let q = questions
        .iter()
        .find(|q| q.key == key)
        .ok_or(DomainError::NotFound)?;
    if hidden && questions.iter().filter(|q| !q.hidden).count() <= 1 && !q.hidden {
        return Err(
            FieldErrors::single("key", "last_question", "نظرسنجی دست‌کم یک پرسش لازم دارد.").into(),
        );
    }
    sqlx::query(
        "insert into survey_questions (key, position, hidden) values ($1, $2, $3)
         on conflict (key) do update set hidden = excluded.hidden",
    )
    .bind(&q.key)
    .bind(q.position)
    .bind(hidden)
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(())
}

/// Creates the survey of a closed request with the link token `token`; `false` when the
/// request already has one (an earlier run of the invitation, or answered at the desk).
pub async fn invite(tx: &mut TenantTx, request_id: i64, token: &str) -> Result<bool, DomainError> {
    let id: Option<i64> = sqlx::query_scalar(
        "insert into surveys (request_id, token_hash, expires_at)
         values ($1, sha256(convert_to($2, 'UTF8')), now() + make_interval(days => $3))
         on conflict (request_id) do nothing returning id",
    )
    .bind(request_id)
    .bind(token)
    .bind(i32::try_from(LINK_TTL_DAYS).unwrap_or(30))
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(id.is_some())
}

/// A survey with its request, as its pages show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Survey {
    /// Row id.
    pub id: i64,
    /// The request.
    pub request_id: i64,
    /// Its tracking code.
    pub tracking_code: String,
    /// The service's title.
    pub service_title: String,
    /// Until when the link works.
    pub expires_at: DateTime<Utc>,
    /// When it was answered.
    pub answered_at: Option<DateTime<Utc>>,
    /// `link` or `desk`.
    pub answered_via: Option<String>,
    /// Who recorded a desk answer.
    pub recorded_by: Option<String>,
    /// The citizen's comment.
    pub comment: Option<String>,
    /// Scores by question key.
    pub scores: Vec<(String, i16)>,
}

impl Survey {
    /// Whether the link still takes an answer.
    pub fn open(&self) -> bool {
        self.answered_at.is_none() && self.expires_at > Utc::now()
    }
}

const SURVEY_SELECT: &str =
    "select v.id, v.request_id, r.tracking_code, s.title as service_title, v.expires_at,
            v.answered_at, v.answered_via, g.display_name as recorded_by, v.comment
       from surveys v
       join requests r on r.id = v.request_id
       join services s on s.id = r.service_id
       left join staff g on g.id = v.recorded_by";

async fn load(
    tx: &mut TenantTx,
    row: Option<sqlx::postgres::PgRow>,
) -> Result<Option<Survey>, DomainError> {
    let Some(r) = row else {
        return Ok(None);
    };
    let id: i64 = r.try_get("id").map_err(internal)?;
    let scores: Vec<(String, i16)> = sqlx::query_as(
        "select question_key, score from survey_answers where survey_id = $1 order by question_key",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(Some(Survey {
        id,
        request_id: r.try_get("request_id").map_err(internal)?,
        tracking_code: r.try_get("tracking_code").map_err(internal)?,
        service_title: r.try_get("service_title").map_err(internal)?,
        expires_at: r.try_get("expires_at").map_err(internal)?,
        answered_at: r.try_get("answered_at").map_err(internal)?,
        answered_via: r.try_get("answered_via").map_err(internal)?,
        recorded_by: r.try_get("recorded_by").map_err(internal)?,
        comment: r.try_get("comment").map_err(internal)?,
        scores,
    }))
}

/// The survey a link token opens, in this municipality only.
pub async fn by_token(tx: &mut TenantTx, token: &str) -> Result<Option<Survey>, DomainError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SURVEY_SELECT} where v.token_hash = sha256(convert_to($1, 'UTF8'))"
    )))
    .bind(token)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)?;
    load(tx, row).await
}

/// The survey of a request, if it has one.
pub async fn for_request(
    tx: &mut TenantTx,
    request_id: i64,
) -> Result<Option<Survey>, DomainError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SURVEY_SELECT} where v.request_id = $1"
    )))
    .bind(request_id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)?;
    load(tx, row).await
}

/// Who answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via<'a> {
    /// The citizen, through the link with this token.
    Link(&'a str),
    /// A staff member at the desk, for the citizen of this (closed) request.
    Desk {
        /// The request.
        request_id: i64,
        /// The staff member.
        staff_id: i64,
    },
}

/// The refusal of a second answer or an expired link (Persian, for the page).
pub fn already_answered() -> DomainError {
    DomainError::Conflict("این نظرسنجی پیش‌تر پاسخ داده شده یا مهلت آن گذشته است.".into())
}

/// Stores one answer. The survey is claimed first (answered only once, within its time), so
/// two submissions racing on one link store exactly one answer. What follows (indicators, the
/// webhook) is the use case's (`desk_app::surveys::answer`).
pub async fn answer(
    tx: &mut TenantTx,
    via: Via<'_>,
    answer: &Answer,
) -> Result<Answered, DomainError> {
    let id: Option<i64> = match via {
        Via::Link(token) => sqlx::query_scalar(
            "update surveys set answered_at = now(), answered_via = 'link', comment = $2
              where token_hash = sha256(convert_to($1, 'UTF8'))
                and answered_at is null and expires_at > now()
          returning id",
        )
        .bind(token)
        .bind(&answer.comment)
        .fetch_optional(&mut **tx)
        .await
        .map_err(internal)?,
        Via::Desk {
            request_id,
            staff_id,
        } => sqlx::query_scalar(
            "insert into surveys (request_id, expires_at, answered_at, answered_via, recorded_by, comment)
             values ($1, now(), now(), 'desk', $2, $3)
             on conflict (request_id) do update
                set answered_at = now(), answered_via = 'desk', recorded_by = $2, comment = $3
              where surveys.answered_at is null
          returning id",
        )
        .bind(request_id)
        .bind(staff_id)
        .bind(&answer.comment)
        .fetch_optional(&mut **tx)
        .await
        .map_err(internal)?,
    };
    let id = id.ok_or_else(already_answered)?;
    let (keys, scores): (Vec<&str>, Vec<i16>) =
        answer.scores.iter().map(|(k, s)| (k.as_str(), *s)).unzip();
    sqlx::query(
        "insert into survey_answers (survey_id, question_key, score)
         select $1, k, s from unnest($2::text[], $3::int2[]) as t(k, s)",
    )
    .bind(id)
    .bind(&keys)
    .bind(&scores)
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    let (tracking, service): (String, String) = sqlx::query_as(
        "select r.tracking_code, r.service_code from surveys s join requests r on r.id = s.request_id
          where s.id = $1",
    )
    .bind(id)
    .fetch_one(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(Answered {
        id,
        tracking_code: tracking,
        service_code: service,
    })
}

/// A stored survey answer, and the request it is about.
#[derive(Debug, Clone)]
pub struct Answered {
    /// The survey's id.
    pub id: i64,
    /// The request's tracking code.
    pub tracking_code: String,
    /// The request's service.
    pub service_code: String,
}
