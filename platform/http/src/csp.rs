//! The Content-Security-Policy every page is served with, and the per-response nonce that lets
//! the theme's own `<style>` (and any `<script>`) run while nothing injected does.
//!
//! The dispatcher makes a nonce for each request and runs the handler inside [`with_nonce`];
//! templates ask for it (`csp_nonce()`), and the dispatcher writes the header from the same
//! nonce when the answer leaves. A page whose forms lead elsewhere on purpose (the staff
//! single sign-on button, which redirects to the municipality's identity provider) names that
//! origin with a [`FormTarget`] in the response's extensions.

use std::future::Future;

tokio::task_local! {
    static NONCE: String;
}

/// An origin (`https://login.example.ir`) a form of this page may be redirected to.
#[derive(Debug, Clone)]
pub struct FormTarget(pub String);

/// A fresh nonce (a random v4 UUID: 122 random bits, hex).
pub fn new_nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Runs `f` with `nonce` as the page's nonce.
pub async fn with_nonce<F: Future>(nonce: String, f: F) -> F::Output {
    NONCE.scope(nonce, f).await
}

/// The nonce of the request being answered (empty outside one).
pub fn nonce() -> String {
    NONCE.try_with(Clone::clone).unwrap_or_default()
}

/// The policy of the GraphiQL page (async-graphql's, which loads its scripts and styles from
/// unpkg.com and starts with an inline script): still no framing, no plugins, forms and
/// connections to this host only.
pub const GRAPHIQL: &str = "default-src 'self'; script-src 'self' 'unsafe-inline' https://unpkg.com; \
     style-src 'self' 'unsafe-inline' https://unpkg.com; img-src 'self' data:; \
     font-src 'self' https://unpkg.com; connect-src 'self' ws: wss:; frame-ancestors 'none'; \
     base-uri 'self'; object-src 'none'; form-action 'self'";

/// The policy for a page with `nonce`, whose forms may also lead to `form_target`.
pub fn policy(nonce: &str, form_target: Option<&str>) -> String {
    let scripts = if nonce.is_empty() {
        "'self'".to_owned()
    } else {
        format!("'self' 'nonce-{nonce}'")
    };
    let forms = match form_target {
        Some(origin) if is_origin(origin) => format!("'self' {origin}"),
        _ => "'self'".to_owned(),
    };
    format!(
        "default-src 'self'; script-src {scripts}; style-src {scripts}; img-src 'self' data:; \
         font-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; \
         object-src 'none'; form-action {forms}"
    )
}

/// `scheme://host[:port]` with nothing that could end the directive.
fn is_origin(s: &str) -> bool {
    (s.starts_with("https://") || s.starts_with("http://"))
        && s.split_once("://").is_some_and(|(_, rest)| {
            !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
}

/// The origin of `url` (`https://host[:port]`), if it has one.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    let origin = format!("{scheme}://{host}");
    is_origin(&origin).then_some(origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_targets_are_origins_only() {
        assert_eq!(
            origin_of("https://login.example.ir:8443/realms/city?x=1").as_deref(),
            Some("https://login.example.ir:8443")
        );
        assert_eq!(origin_of("javascript:alert(1)"), None);
        let p = policy("ab12", Some("https://idp.example; script-src *"));
        assert!(p.ends_with("form-action 'self'"), "{p}");
        let p = policy("ab12", Some("http://127.0.0.1:4000"));
        assert!(
            p.ends_with("form-action 'self' http://127.0.0.1:4000"),
            "{p}"
        );
        assert!(p.contains("script-src 'self' 'nonce-ab12'"));
    }

    #[tokio::test]
    async fn the_nonce_is_the_requests_own() {
        assert_eq!(nonce(), "");
        let n = new_nonce();
        assert_eq!(n.len(), 32);
        assert_ne!(n, new_nonce());
        let seen = with_nonce(n.clone(), async { nonce() }).await;
        assert_eq!(seen, n);
    }
}
