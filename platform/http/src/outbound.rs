//! The one door for HTTP calls the server makes on a municipality's behalf to an address a
//! municipality typed (webhook receivers, inquiry agencies). Every call:
//!
//! - checks the URL's rules (`desk_core::webhook::parse_target`: http/https, no credentials, no
//!   numeric host notations other than plain dotted IPv4 and bracketed IPv6, no internal names);
//! - resolves the host and refuses when any address is loopback, private, link-local, CGNAT,
//!   multicast, unspecified or otherwise not public, IPv4-mapped IPv6 included (unless the
//!   deployment allows private targets: the demo, development);
//! - connects only to the addresses it checked (the name is pinned in the client's resolver, so
//!   a second DNS answer cannot move the call), follows no redirect, and is bounded in time.
//!
//! The check runs again at every call, since DNS can change between saving a URL and using it.

use desk_core::webhook::{self, TargetUrl};
pub use ipnet::IpNet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Why a target was not called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The URL breaks the rules, or it points at a non-public address (never retried).
    Private(String),
    /// Its name did not resolve (worth retrying: DNS may be down).
    Unresolved(String),
}

/// The guarded client's settings. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Outbound {
    /// Whether loopback and private addresses may be called (demo, development).
    pub allow_private: bool,
    /// Private networks that may be called all the same (`webhooks.private_networks`: the
    /// government network inquiry agencies are reached over); empty by default.
    pub private_networks: Arc<[IpNet]>,
}

impl Outbound {
    /// The guard of a deployment: private addresses allowed everywhere (`allow_private`), or
    /// only in `private_networks`.
    pub fn new(allow_private: bool, private_networks: Vec<IpNet>) -> Self {
        Self {
            allow_private,
            private_networks: private_networks.into(),
        }
    }

    /// Checks `url` and resolves it: the target and the addresses a call may connect to.
    ///
    /// A URL the public rules refuse (a private address, or plain `http`) still passes when
    /// every address it resolves to lies in one of the allowed private networks.
    pub async fn check(&self, url: &str) -> Result<(TargetUrl, Vec<SocketAddr>), Refusal> {
        match webhook::parse_target(url, self.allow_private) {
            Ok(target) => {
                let addrs = checked_addresses(&target, self.allow_private).await;
                match addrs {
                    Ok(addrs) => Ok((target, addrs)),
                    Err(Refusal::Private(why)) => self.on_private_network(url, why).await,
                    Err(e) => Err(e),
                }
            }
            Err(e) => {
                self.on_private_network(url, format!("target refused: {e}"))
                    .await
            }
        }
    }

    /// `url` read by the loose rules, if every address it resolves to is in an allowed
    /// private network; else the refusal `why`.
    async fn on_private_network(
        &self,
        url: &str,
        why: String,
    ) -> Result<(TargetUrl, Vec<SocketAddr>), Refusal> {
        if self.private_networks.is_empty() {
            return Err(Refusal::Private(why));
        }
        let Ok(target) = webhook::parse_target(url, true) else {
            return Err(Refusal::Private(why));
        };
        let addrs = checked_addresses(&target, true).await?;
        let inside = |a: &SocketAddr| self.private_networks.iter().any(|n| n.contains(&a.ip()));
        if addrs.iter().all(inside) {
            Ok((target, addrs))
        } else {
            Err(Refusal::Private(why))
        }
    }

    /// A client that connects to `addrs` only, follows no redirect and gives up after
    /// `timeout`.
    pub fn client(
        &self,
        target: &TargetUrl,
        addrs: &[SocketAddr],
        timeout: Duration,
        user_agent: &str,
    ) -> Result<reqwest::Client, String> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(user_agent);
        if target.ip().is_none() {
            // Pin the name to the checked addresses: no second lookup can change where we go.
            builder = builder.resolve_to_addrs(&target.host, addrs);
        }
        builder.build().map_err(|e| format!("client: {e}"))
    }
}

/// Why a guarded call gave no answer.
#[derive(Debug)]
pub enum CallError {
    /// The target was refused before any connection (see [`Refusal`]).
    Refused(Refusal),
    /// The connection, the exchange or the answer failed (or the answer was too long).
    Failed(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(Refusal::Private(m) | Refusal::Unresolved(m)) | Self::Failed(m) => {
                f.write_str(m)
            }
        }
    }
}

impl std::error::Error for CallError {}

impl Outbound {
    /// Makes one call with the guard's rules: `request`'s URL checked and pinned, no redirect
    /// followed, `timeout` for the whole exchange and at most `max_body` bytes of answer. For
    /// protocol clients that build their own `http` requests (OpenID Connect).
    pub async fn send(
        &self,
        request: axum::http::Request<Vec<u8>>,
        timeout: Duration,
        user_agent: &str,
        max_body: usize,
    ) -> Result<axum::http::Response<Vec<u8>>, CallError> {
        let (target, addrs) = self
            .check(&request.uri().to_string())
            .await
            .map_err(CallError::Refused)?;
        let client = self
            .client(&target, &addrs, timeout, user_agent)
            .map_err(CallError::Failed)?;
        let (parts, body) = request.into_parts();
        let mut res = client
            .request(parts.method, &target.url)
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(|e| CallError::Failed(format!("{}: {e}", target.host)))?;
        let mut answer = axum::http::Response::builder().status(res.status());
        for (name, value) in res.headers() {
            answer = answer.header(name, value);
        }
        let body = read_limited(&mut res, max_body)
            .await
            .map_err(|e| CallError::Failed(format!("{}: {e}", target.host)))?;
        answer
            .body(body)
            .map_err(|e| CallError::Failed(format!("{}: {e}", target.host)))
    }
}

/// The body of `res`, refused past `max` bytes (an answer is never read whole into memory
/// before its size is known).
pub async fn read_limited(res: &mut reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > max {
            return Err(format!("answer longer than {max} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The addresses to connect to: the IP of the URL, or every address its name resolves to, each
/// of which must be public unless `allow_private`.
pub async fn checked_addresses(
    target: &TargetUrl,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, Refusal> {
    let addrs: Vec<SocketAddr> = match target.ip() {
        Some(ip) => vec![SocketAddr::new(ip, target.port)],
        None => tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|e| Refusal::Unresolved(format!("cannot resolve {}: {e}", target.host)))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(Refusal::Unresolved(format!(
            "{} has no address",
            target.host
        )));
    }
    if !allow_private && let Some(bad) = addrs.iter().find(|a| !webhook::is_public_ip(a.ip())) {
        return Err(Refusal::Private(format!(
            "{} resolves to {}, which is not a public address",
            target.host,
            bad.ip()
        )));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]
    use super::*;

    /// Internal addresses in the notations attackers use: every one is refused before any
    /// connection is made.
    #[tokio::test]
    async fn internal_addresses_are_refused_in_every_notation() {
        let guarded = Outbound::new(false, Vec::new());
        let mut urls: Vec<String> = [
            "http://127.0.0.1:9/x",
            "http://127.1/",
            "http://127.0.1.3/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[0:0:0:0:0:ffff:127.0.0.1]/",
            "http://[::]/",
            "http://0.0.0.0/",
            "http://0/",
            "http://localhost/",
            "http://localhost./",
            "http://LOCALHOST/",
            "http://foo.localhost/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://10.0.0.1:5432/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
            "http://0x7f000001/",
            "http://0x7f.0.0.1/",
            "http://0177.0.0.1/",
            "http://017700000001/",
            "http://2130706433/",
            "http://127.000.000.001/",
            "http://user:pass@127.0.0.1/",
            "http://example.com@127.0.0.1/",
            "ftp://127.0.0.1/",
            "file:///etc/passwd",
            "gopher://127.0.0.1:6379/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[64:ff9b::7f00:1]/",
            "http://[2002:7f00:1::]/",
            "http://metadata.google.internal/",
            "http://kubernetes.default.svc/",
            "http://desk-postgres.local/",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        // Every host of 127/8, 10/8, 169.254/16, 192.168/16 sampled, with ports.
        for i in 0..40u32 {
            urls.push(format!(
                "http://127.{}.{}.{}:{}/",
                i % 7,
                i % 5,
                i + 1,
                1000 + i
            ));
            urls.push(format!("http://10.{}.{}.{}/", i, i % 3, i + 2));
            urls.push(format!("http://169.254.{}.{}/", i, i + 1));
            urls.push(format!("http://192.168.{}.{}/", i, i + 3));
            urls.push(format!("http://[::ffff:10.0.{i}.1]/"));
        }
        assert!(urls.len() >= 200, "{}", urls.len());
        for url in &urls {
            match guarded.check(url).await {
                Err(Refusal::Private(_)) => {}
                other => panic!("{url} was not refused as private: {other:?}"),
            }
        }
    }

    /// The allowlist of private networks lets exactly those networks through (plain http
    /// included), and nothing else that the public rules refuse.
    #[tokio::test]
    async fn only_the_listed_private_networks_pass() {
        let guarded = Outbound::new(
            false,
            vec![
                "10.20.0.0/16".parse().unwrap(),
                "fd00:20::/32".parse().unwrap(),
            ],
        );
        for url in [
            "http://10.20.1.5/estelam",
            "https://10.20.255.254:8443/x",
            "http://[fd00:20::7]/x",
        ] {
            assert!(guarded.check(url).await.is_ok(), "{url} refused");
        }
        for url in [
            "http://10.21.0.1/",
            "http://127.0.0.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]/",
            "http://192.168.1.1/",
            "http://localhost/",
            "http://0x0a140105/",
            "ftp://10.20.1.5/",
            "http://user:pass@10.20.1.5/",
        ] {
            assert!(
                matches!(guarded.check(url).await, Err(Refusal::Private(_))),
                "{url} passed"
            );
        }
        // Plain http to a public address stays refused: the loose rules are for the list only.
        assert!(guarded.check("http://93.184.216.34/").await.is_err());
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // A receiver that answers 307 to a second address; the second must never be called.
        let second = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let second_addr = second.local_addr().unwrap();
        let first = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let first_addr = first.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = first.accept().await.unwrap();
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf).await;
            let answer = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://{second_addr}/\r\ncontent-length: 0\r\n\r\n"
            );
            s.write_all(answer.as_bytes()).await.unwrap();
        });
        let called = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = called.clone();
        tokio::spawn(async move {
            if second.accept().await.is_ok() {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        });
        let guarded = Outbound::new(true, Vec::new());
        let (target, addrs) = guarded
            .check(&format!("http://{first_addr}/hook"))
            .await
            .unwrap();
        let client = guarded
            .client(&target, &addrs, Duration::from_secs(5), "test")
            .unwrap();
        let res = client.post(&target.url).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 307);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !called.load(std::sync::atomic::Ordering::SeqCst),
            "the redirect was followed"
        );
    }
}
