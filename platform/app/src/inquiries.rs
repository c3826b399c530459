//! Inter-agency inquiries (استعلام): what an agency's answer does to the request.

use desk_core::{DomainError, FieldErrors};
use desk_db::TenantTx;
use desk_db::inquiries::{self, Inquiry};
use desk_db::requests::{self, Actor, Change, EventInput};

/// Records the agency's answer once (a later answer to a closed inquiry is ignored: `false`).
/// The answer goes on the request's timeline; when no other inquiry of the request is still
/// open and its workflow allows, the request goes back to review.
pub async fn record_answer(
    tx: &mut TenantTx,
    id: i64,
    answer: &str,
    outcome: &str,
    actor: Actor,
) -> Result<bool, DomainError> {
    let answer: String = answer.trim().chars().take(4000).collect();
    if answer.is_empty() {
        return Err(FieldErrors::single("answer", "required", "متن پاسخ را بنویسید.").into());
    }
    let outcome = match outcome {
        "approved" | "rejected" => outcome,
        _ => "info",
    };
    let Some(inq) = inquiries::mark_answered(tx, id, &answer, outcome).await? else {
        return Ok(false);
    };
    let Some(request) = requests::request_by_id(tx, inq.request_id).await? else {
        return Ok(false);
    };
    if request.closed {
        // Decided meanwhile: the answer is kept on the inquiry, the request stays as it is.
        return Ok(true);
    }
    let still_open = inquiries::of_request(tx, request.id)
        .await?
        .iter()
        .any(Inquiry::open);
    let outcome_fa = match outcome {
        "approved" => "موافق",
        "rejected" => "مخالف",
        _ => "پاسخ",
    };
    let short: String = answer.chars().take(300).collect();
    let note = format!("پاسخ استعلام «{}» ({outcome_fa}): {short}", inq.agency_name);
    let workflow = desk_db::catalog::card_by_id(tx, request.service_id)
        .await?
        .map(|c| c.workflow())
        .unwrap_or_else(desk_core::workflow::Workflow::default_municipal);
    let back = (!still_open)
        .then(|| {
            workflow
                .transition(&request.state, "inquiry_answered", &["system"], None)
                .ok()
                .map(|t| t.to.clone())
        })
        .flatten();
    let to_state = back.clone().unwrap_or_else(|| request.state.clone());
    crate::effects::change(
        tx,
        &request,
        &Change {
            event: EventInput {
                actor,
                action: "inquiry_answered",
                from_state: Some(&request.state),
                to_state: &to_state,
                note: Some(&note),
                unit_id: None,
            },
            state_due_on: if back.is_some() {
                None
            } else {
                request.state_due_on
            },
            closes: false,
            files: Vec::new(),
        },
        None,
    )
    .await?;
    Ok(true)
}
