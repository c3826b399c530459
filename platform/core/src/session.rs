//! Session cookies, shared by the platform portal and the staff portal: reading a token out of
//! `Cookie` headers strictly, and writing the `Set-Cookie` value.

/// The token named `name` among the request's `Cookie` header values, if it looks like one of
/// ours (64 hex characters, as made by [`crate::secret::new_token`]).
pub fn token_from_cookies<'a>(
    headers: impl IntoIterator<Item = &'a str>,
    name: &str,
) -> Option<String> {
    headers
        .into_iter()
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            kv.trim()
                .strip_prefix(name)?
                .strip_prefix('=')
                .map(str::to_owned)
        })
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A `Set-Cookie` value: host-only (no `Domain`), `HttpOnly`, `SameSite=Lax`; an empty token
/// removes the cookie.
pub fn set_cookie(name: &str, token: &str, path: &str, max_age_secs: u64, secure: bool) -> String {
    let max_age = if token.is_empty() { 0 } else { max_age_secs };
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={token}; Path={path}; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_read_strictly() {
        let token = crate::secret::new_token();
        let header = format!("a=1; s={token}; b=2");
        assert_eq!(
            token_from_cookies([header.as_str()], "s").as_deref(),
            Some(token.as_str())
        );
        assert_eq!(token_from_cookies(["s=short"], "s"), None);
        assert_eq!(token_from_cookies(["ss=0; x=1"], "s"), None);
        assert!(set_cookie("s", "", "/", 60, true).contains("Max-Age=0; Secure"));
    }
}
