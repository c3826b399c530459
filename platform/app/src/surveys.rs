//! Satisfaction surveys (نظرسنجی): a citizen's (or the desk's) answer and what follows from it.

use desk_core::DomainError;
use desk_core::survey::Answer;
use desk_db::TenantTx;
use desk_db::surveys::{self, Via};

/// Stores an answer (once per survey) and queues what follows: the dashboard's indicators and
/// the `survey.answered` webhook. Returns the survey's id.
pub async fn answer(tx: &mut TenantTx, via: Via<'_>, answer: &Answer) -> Result<i64, DomainError> {
    let desk = matches!(via, Via::Desk { .. });
    let answered = surveys::answer(tx, via, answer).await?;
    crate::effects::dispatch(
        tx,
        crate::effects::Happened::SurveyAnswered {
            answered: &answered,
            answer,
            desk,
        },
    )
    .await?;
    Ok(answered.id)
}
