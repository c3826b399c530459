//! The platform API's keys: made (shown once), listed, revoked.

use super::*;

/// The signed-in user's own API keys (for provincial systems): each acts as this user, with
/// the same role and province.
pub(super) async fn keys_page(
    portal: &PlatformPortal,
    me: &SignedIn,
    new_key: Option<&str>,
) -> Response {
    match portal.db.platform_keys(me.user.id).await {
        Ok(keys) => {
            let now = chrono::Utc::now();
            let day = |d: chrono::DateTime<chrono::Utc>| {
                desk_core::jalali::JalaliDate::persian_of(desk_core::calendar::iran_time(d).date())
            };
            let rows: Vec<_> = keys
                .iter()
                .map(|k| {
                    context! {
                        id => k.id, name => k.name.clone(), prefix => k.prefix.clone(),
                        created => day(k.created_at), expires => k.expires_at.map(day),
                        last_used => k.last_used_at.map(day),
                        live => k.revoked_at.is_none() && k.expires_at.is_none_or(|e| e > now),
                    }
                })
                .collect();
            portal.views.render(
                if new_key.is_some() {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                "api_keys.html.j2",
                context! { me => Serde(user_view(me)), keys => rows, new_key => new_key },
            )
        }
        Err(e) => error_response(&portal.views, &e),
    }
}

pub(super) async fn show_keys(State(portal): State<PlatformPortal>, me: SignedIn) -> Response {
    keys_page(&portal, &me, None).await
}

#[derive(Debug, Deserialize)]
pub(super) struct KeyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    /// Days until it expires; empty for never.
    #[serde(default)]
    days: String,
}

pub(super) async fn create_key(
    State(portal): State<PlatformPortal>,
    me: SignedIn,
    Form(form): Form<KeyForm>,
) -> Response {
    let made = async {
        me.check_csrf(&form.csrf)?;
        let expires = match desk_core::mobile::ascii_digits(form.days.trim()).as_str() {
            "" => None,
            d => Some(
                chrono::Utc::now()
                    + chrono::Duration::days(
                        d.parse::<i64>()
                            .ok()
                            .filter(|n| (1..=3650).contains(n))
                            .ok_or_else(|| {
                                DomainError::from(desk_core::FieldErrors::single(
                                    "days",
                                    "days",
                                    "اعتبار کلید را بین ۱ تا ۳۶۵۰ روز وارد کنید یا خالی بگذارید.",
                                ))
                            })?,
                    ),
            ),
        };
        let (key, _) = portal
            .db
            .create_platform_key(me.user.id, &form.name, expires)
            .await?;
        Ok::<_, DomainError>(key)
    }
    .await;
    match made {
        Ok(key) => keys_page(&portal, &me, Some(&key)).await,
        Err(e) => error_response(&portal.views, &e),
    }
}

pub(super) async fn revoke_key(
    State(portal): State<PlatformPortal>,
    me: SignedIn,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let done = async {
        me.check_csrf(&form.csrf)?;
        portal.db.revoke_platform_key(me.user.id, id).await
    }
    .await;
    match done {
        Ok(()) => Redirect::to("/api-keys").into_response(),
        Err(e) => error_response(&portal.views, &e),
    }
}
