//! The platform portal's sign-in and sign-out (argon2id, slowed guessing, login CSRF refused).

use super::*;

pub(super) async fn show_login(State(portal): State<PlatformPortal>) -> Response {
    portal
        .views
        .render(StatusCode::OK, "login.html.j2", context! {})
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    username: String,
    password: String,
}

pub(super) async fn sign_in(
    State(portal): State<PlatformPortal>,
    Source(source): Source,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return portal.views.render(
            StatusCode::BAD_REQUEST,
            "login.html.j2",
            context! { error => "نام کاربری و گذرواژه را وارد کنید." },
        );
    };
    let username = form.username.trim().to_lowercase();
    if let Err(wait) = portal.guesses.check(&username, &source) {
        let error = desk_core::limiter::SignInDelays::message(wait);
        return portal.views.render(
            StatusCode::TOO_MANY_REQUESTS,
            "login.html.j2",
            context! { error, username },
        );
    }
    let found = match portal.db.user_for_sign_in(&username).await {
        Ok(f) => f,
        Err(e) => return error_response(&portal.views, &e),
    };
    // Verify against a fixed hash when the user is unknown, so timing does not tell.
    // Verify against a fixed hash when the user is unknown, so timing does not tell.
    let (user, hash) = match found {
        Some((user, Some(hash))) => (Some(user), Some(hash)),
        _ => (None, DUMMY_HASH.clone()),
    };
    let verified = match (hash, portal.hashing.clone().acquire_owned().await) {
        (Some(hash), Ok(permit)) => {
            let password = form.password.clone();
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                auth::verify_password(&password, &hash)
            })
            .await
            .unwrap_or(false)
        }
        _ => false,
    };
    let ok = verified && user.is_some();
    portal.guesses.record(&username, &source, ok);
    let Some(user) = user.filter(|_| ok) else {
        tracing::info!(source = %source, "platform sign-in failed");
        return portal.views.render(
            StatusCode::UNAUTHORIZED,
            "login.html.j2",
            context! { error => "نام کاربری یا گذرواژه درست نیست.", username },
        );
    };
    let token = auth::new_token();
    let csrf = auth::new_token();
    if let Err(e) = portal
        .db
        .create_session(user.id, &token, &csrf, auth::SESSION_TTL, &source)
        .await
    {
        return error_response(&portal.views, &e);
    }
    tracing::info!(user.id = user.id, source = %source, "platform sign-in");
    let mut res = Redirect::to("/").into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        auth::session_cookie(&token, portal.secure_cookies),
    );
    res
}

/// An argon2 hash of a random string, checked when the username is unknown.
pub(super) static DUMMY_HASH: std::sync::LazyLock<Option<String>> =
    std::sync::LazyLock::new(|| auth::hash_password(&auth::new_token()).ok());

pub(super) async fn sign_out(
    State(portal): State<PlatformPortal>,
    me: SignedIn,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(e) = me.check_csrf(&form.csrf) {
        return error_response(&portal.views, &e);
    }
    if let Err(e) = portal.db.delete_session(&me.token).await {
        return error_response(&portal.views, &e);
    }
    let mut res = Redirect::to("/login").into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        auth::session_cookie("", portal.secure_cookies),
    );
    res
}
