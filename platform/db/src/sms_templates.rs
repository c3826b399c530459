//! Tenant repository: the municipality's SMS templates and the per-part prices its editor
//! estimates costs with. Rendering falls back to the shipped default if a stored template
//! cannot render (it was checked on saving, so that means a bug, which is logged).

use crate::internal;
use crate::settings::{get_setting, put_setting};
use crate::tenant_tx::TenantTx;
use desk_core::DomainError;
use desk_core::sms_templates::{self, Event, ProviderTemplate, SmsBody};
use serde_json::{Value, json};

/// The stored template of each event (`None`: the default is used).
pub async fn all(tx: &mut TenantTx) -> Result<Vec<(Event, Option<String>)>, DomainError> {
    let rows: Vec<(String, String)> = sqlx::query_as("select event, body from sms_templates")
        .fetch_all(&mut **tx)
        .await
        .map_err(internal)?;
    Ok(Event::ALL
        .into_iter()
        .map(|e| {
            let stored = rows
                .iter()
                .find(|(k, _)| k == e.key())
                .map(|(_, b)| b.clone());
            (e, stored)
        })
        .collect())
}

/// Saves a template after checking it renders its sample; an empty body restores the default.
pub async fn save(tx: &mut TenantTx, event: Event, body: &str) -> Result<(), DomainError> {
    let body = body.trim();
    if body.is_empty() {
        sqlx::query("delete from sms_templates where event = $1")
            .bind(event.key())
            .execute(&mut **tx)
            .await
            .map_err(internal)?;
        return Ok(());
    }
    sms_templates::preview(event, body)?;
    sqlx::query(
        "insert into sms_templates (event, body) values ($1, $2)
         on conflict (event) do update set body = excluded.body, updated_at = now()",
    )
    .bind(event.key())
    .bind(body)
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(())
}

/// The text of `event` for `vars`, from the municipality's template or the default, with the
/// event and variables kept for accounts that send the provider's own template.
pub async fn render(tx: &mut TenantTx, event: Event, vars: &Value) -> Result<SmsBody, DomainError> {
    let text = render_text(tx, event, vars).await?;
    Ok(SmsBody {
        text,
        event: Some(event),
        vars: vars.clone(),
    })
}

async fn render_text(tx: &mut TenantTx, event: Event, vars: &Value) -> Result<String, DomainError> {
    let stored: Option<String> =
        sqlx::query_scalar("select body from sms_templates where event = $1")
            .bind(event.key())
            .fetch_optional(&mut **tx)
            .await
            .map_err(internal)?;
    if let Some(source) = stored {
        match sms_templates::render(&source, vars) {
            Ok(text) => return Ok(text),
            Err(e) => {
                tracing::error!(event = event.key(), error = %e, "stored SMS template failed; using the default")
            }
        }
    }
    sms_templates::render(event.default_body(), vars).map_err(DomainError::Validation)
}

/// Rials per SMS part: (Latin / GSM-7, Persian / UCS-2).
pub async fn prices(tx: &mut TenantTx) -> Result<(u64, u64), DomainError> {
    let v = get_setting(tx, "sms_prices").await?.unwrap_or(Value::Null);
    Ok((
        v["gsm7"].as_u64().unwrap_or(0),
        v["ucs2"].as_u64().unwrap_or(0),
    ))
}

/// Sets the prices per part.
pub async fn set_prices(tx: &mut TenantTx, gsm7: u64, ucs2: u64) -> Result<(), DomainError> {
    put_setting(tx, "sms_prices", &json!({ "gsm7": gsm7, "ucs2": ucs2 })).await
}

/// A provider template's parameters as stored: (provider's name, our variable) pairs.
type Params = sqlx::types::Json<Vec<(String, String)>>;

/// Provider templates stored for an account (`Some`) or for an event (`None`s elsewhere):
/// (account, event, template) of each.
async fn stored_templates(
    tx: &mut TenantTx,
    account_id: Option<i64>,
    event: Option<Event>,
) -> Result<Vec<(i64, Event, ProviderTemplate)>, DomainError> {
    let rows: Vec<(i64, String, String, Params)> = sqlx::query_as(
        "select account_id, event, template, params from sms_provider_templates
          where ($1::int8 is null or account_id = $1) and ($2::text is null or event = $2)",
    )
    .bind(account_id)
    .bind(event.map(Event::key))
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(rows
        .into_iter()
        .filter_map(|(account, event, template, params)| {
            Some((
                account,
                Event::parse(&event)?,
                ProviderTemplate {
                    template,
                    params: params.0,
                },
            ))
        })
        .collect())
}

/// The provider templates of account `account_id`, by event.
pub async fn provider_templates(
    tx: &mut TenantTx,
    account_id: i64,
) -> Result<Vec<(Event, ProviderTemplate)>, DomainError> {
    Ok(stored_templates(tx, Some(account_id), None)
        .await?
        .into_iter()
        .map(|(_, event, t)| (event, t))
        .collect())
}

/// Sets (or with `None` removes) account `account_id`'s provider template for `event`.
pub async fn set_provider_template(
    tx: &mut TenantTx,
    account_id: i64,
    event: Event,
    template: Option<&ProviderTemplate>,
) -> Result<(), DomainError> {
    match template {
        None => {
            sqlx::query("delete from sms_provider_templates where account_id = $1 and event = $2")
                .bind(account_id)
                .bind(event.key())
                .execute(&mut **tx)
                .await
                .map_err(internal)?;
        }
        Some(t) => {
            sqlx::query(
                "insert into sms_provider_templates (account_id, event, template, params)
                 values ($1, $2, $3, $4)
                 on conflict (account_id, event)
                 do update set template = excluded.template, params = excluded.params, updated_at = now()",
            )
            .bind(account_id)
            .bind(event.key())
            .bind(&t.template)
            .bind(sqlx::types::Json(&t.params))
            .execute(&mut **tx)
            .await
            .map_err(internal)?;
        }
    }
    Ok(())
}

/// The provider templates for `event`, by account id.
pub async fn provider_templates_for(
    tx: &mut TenantTx,
    event: Event,
) -> Result<Vec<(i64, ProviderTemplate)>, DomainError> {
    Ok(stored_templates(tx, None, Some(event))
        .await?
        .into_iter()
        .map(|(account, _, t)| (account, t))
        .collect())
}
