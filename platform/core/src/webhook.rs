//! Outgoing webhooks: the events a municipality admin can subscribe a URL to, the signature on
//! every delivery, and the checks on the target URL (the SSRF guard).
//!
//! Everything here is pure: no IO, no clock, no network. Callers pass the time and do the
//! resolving and sending themselves.
//!
//! # Signing
//!
//! Every delivery carries [`SIGNATURE_HEADER`] in the style of Stripe:
//! `t=<unix_time>,v1=<hex HMAC-SHA256(secret, "<unix_time>." ++ body)>`, built by
//! [`signature_header`]. A receiver checks it with [`verify`] (or its own port of it): it
//! recomputes the MAC over the exact raw body, compares in constant time and refuses timestamps
//! outside a tolerance, which limits replays. [`DELIVERY_HEADER`] carries a unique id per
//! delivery so that receivers can also drop duplicates; [`EVENT_HEADER`] names the event.
//!
//! # SSRF guard
//!
//! [`parse_target`] checks a URL when the admin saves it and again before each delivery. It only
//! sees the text of the URL, so for a host name it cannot know where the name points. The
//! delivering code must therefore:
//!
//! 1. resolve the host name itself;
//! 2. call [`is_public_ip`] on **every** resolved address and refuse the delivery if any of them
//!    is not public;
//! 3. connect to one of the addresses it checked (pin it in the HTTP client) instead of letting
//!    the client resolve the name again — otherwise a name that answers with a public address to
//!    the check and a private one to the connection (DNS rebinding) slips through;
//! 4. not follow redirects (or run every redirect target through the same steps).
//!
//! `allow_private` exists for the demo and for development, where receivers run on the same
//! machine; production passes `false`.

use sha2::{Digest, Sha256};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Name of the HTTP header that carries the signature of a delivery.
pub const SIGNATURE_HEADER: &str = "X-Miz-Signature";

/// Name of the HTTP header that carries the event name (`request.filed`, ...).
pub const EVENT_HEADER: &str = "X-Miz-Event";

/// Name of the HTTP header that carries the unique id of a delivery (the same on retries).
pub const DELIVERY_HEADER: &str = "X-Miz-Delivery";

/// Longest target URL accepted, in bytes.
pub const MAX_URL_LEN: usize = 2000;

// ---------------------------------------------------------------------------------------------
// Signing
// ---------------------------------------------------------------------------------------------

/// HMAC-SHA256 of `message` under `key` (RFC 2104, block size 64 bytes).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;

    // Keys longer than a block are hashed first; shorter keys are padded with zeros.
    let mut key_block = [0u8; BLOCK];
    if key.len() > BLOCK {
        key_block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        key_block[..key.len()].copy_from_slice(key);
    }

    let inner_pad = key_block.map(|b| b ^ 0x36);
    let outer_pad = key_block.map(|b| b ^ 0x5c);

    let mut inner = Sha256::new();
    inner.update(inner_pad);
    inner.update(message);
    let inner_hash = inner.finalize();

    let mut outer = Sha256::new();
    outer.update(outer_pad);
    outer.update(inner_hash);
    outer.finalize().into()
}

/// The MAC of one delivery: HMAC-SHA256 over `"<unix_time>." ++ body`.
fn delivery_mac(secret: &[u8], unix_time: i64, body: &[u8]) -> [u8; 32] {
    let mut message = format!("{unix_time}.").into_bytes();
    message.extend_from_slice(body);
    hmac_sha256(secret, &message)
}

/// The value of [`SIGNATURE_HEADER`] for a delivery of `body` sent at `unix_time`:
/// `t=<unix_time>,v1=<lowercase hex HMAC-SHA256(secret, "<unix_time>." ++ body)>`.
pub fn signature_header(secret: &[u8], unix_time: i64, body: &[u8]) -> String {
    format!(
        "t={unix_time},v1={}",
        to_hex(&delivery_mac(secret, unix_time, body))
    )
}

/// Why a signature header was refused by [`verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is not a comma-separated list of `key=value` parts, or `t` is not a number.
    #[error("malformed signature header")]
    Malformed,
    /// The header has no `t=` part.
    #[error("signature header has no timestamp")]
    MissingTimestamp,
    /// The header has no `v1=` part.
    #[error("signature header has no v1 signature")]
    MissingSignature,
    /// The timestamp is further from now (in the past or the future) than the tolerance.
    #[error("signature timestamp outside the tolerance")]
    TimestampOutOfTolerance,
    /// No `v1` signature matches the body.
    #[error("signature does not match")]
    Mismatch,
}

/// Checks a [`SIGNATURE_HEADER`] value against the raw `body`.
///
/// Accepts the header when one of its `v1` signatures (there may be several while a secret is
/// rotated) matches and its timestamp is at most `tolerance_secs` away from `now_unix` in either
/// direction. Unknown parts (a future `v2`, say) are ignored. The MAC is compared in constant
/// time. A negative tolerance counts as zero.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match key.trim() {
            "t" => {
                let t = value
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| SignatureError::Malformed)?;
                timestamp = Some(t);
            }
            "v1" => signatures.push(value.trim()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::MissingTimestamp)?;
    if signatures.is_empty() {
        return Err(SignatureError::MissingSignature);
    }

    let expected = delivery_mac(secret, timestamp, body);
    // Check every candidate (no early exit) so that timing does not tell which one matched.
    let matched = signatures.iter().fold(false, |found, candidate| {
        let ok = from_hex_32(candidate).is_some_and(|given| constant_time_eq(&given, &expected));
        found | ok
    });
    if !matched {
        return Err(SignatureError::Mismatch);
    }

    let tolerance = u64::try_from(tolerance_secs).unwrap_or(0);
    if now_unix.abs_diff(timestamp) > tolerance {
        return Err(SignatureError::TimestampOutOfTolerance);
    }
    Ok(())
}

/// Equality of two MACs in time that does not depend on where they differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// Lowercase hex of `bytes`.
fn to_hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

/// Decodes exactly 64 hex digits (either case) into 32 bytes.
fn from_hex_32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(text.as_bytes())
        .ok()?
        .try_into()
        .ok()
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// Something that happened in a municipality and that a webhook can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookEvent {
    /// A citizen filed a new request.
    RequestFiled,
    /// A request moved to another workflow state.
    RequestStatusChanged,
    /// A request received its final answer.
    RequestAnswered,
    /// A citizen answered a satisfaction survey.
    SurveyAnswered,
}

impl WebhookEvent {
    /// Every event, in the order the admin form lists them.
    pub const ALL: [WebhookEvent; 4] = [
        Self::RequestFiled,
        Self::RequestStatusChanged,
        Self::RequestAnswered,
        Self::SurveyAnswered,
    ];

    /// The stable wire name, sent in [`EVENT_HEADER`] and stored with the subscription.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RequestFiled => "request.filed",
            Self::RequestStatusChanged => "request.status_changed",
            Self::RequestAnswered => "request.answered",
            Self::SurveyAnswered => "survey.answered",
        }
    }

    /// The event with this wire name, if any (exact match).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == name)
    }

    /// The Persian label shown to admins.
    pub fn label_fa(self) -> &'static str {
        match self {
            Self::RequestFiled => "ثبت درخواست",
            Self::RequestStatusChanged => "تغییر وضعیت درخواست",
            Self::RequestAnswered => "پاسخ نهایی درخواست",
            Self::SurveyAnswered => "پاسخ نظرسنجی",
        }
    }
}

impl fmt::Display for WebhookEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// Target URLs
// ---------------------------------------------------------------------------------------------

/// A webhook URL that passed [`parse_target`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUrl {
    /// `https`, or `http` where private targets are allowed.
    pub scheme: String,
    /// Lowercase host name without a trailing dot, or the IP address (IPv6 without brackets).
    pub host: String,
    /// The port to connect to (443 for https and 80 for http unless the URL names another).
    pub port: u16,
    /// The URL to send to, rebuilt from the checked parts: `scheme://host[:port]` followed by
    /// the path and query exactly as given. The port is written only when it is not the default.
    pub url: String,
}

impl TargetUrl {
    /// The address when the host is an IP literal; `None` for a host name, which the caller
    /// must resolve and check with [`is_public_ip`].
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

/// Why a webhook URL was refused by [`parse_target`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Nothing was entered.
    #[error("webhook URL is empty")]
    Empty,
    /// The URL is longer than [`MAX_URL_LEN`].
    #[error("webhook URL is too long")]
    TooLong,
    /// Not `scheme://...`, or it contains spaces, control characters or backslashes.
    #[error("webhook URL is malformed")]
    Malformed,
    /// The scheme is not https (or http where private targets are allowed).
    #[error("webhook URL scheme not allowed")]
    Scheme,
    /// The URL has user name or password (`user:pass@`).
    #[error("webhook URL must not contain credentials")]
    UserInfo,
    /// There is no host after `://`.
    #[error("webhook URL has no host")]
    MissingHost,
    /// The host is not a valid ASCII host name or IP address.
    #[error("webhook URL host is invalid")]
    InvalidHost,
    /// The port is not a number in 1..=65535.
    #[error("webhook URL port is invalid")]
    InvalidPort,
    /// The host is an IP address that is not public (loopback, private, reserved, ...).
    #[error("webhook URL points to a non-public address")]
    PrivateAddress,
    /// The host is a name reserved for local networks (`localhost`, `*.local`, `*.internal`).
    #[error("webhook URL points to an internal host name")]
    InternalHost,
}

impl TargetError {
    /// The stable machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "WEBHOOK_URL_EMPTY",
            Self::TooLong => "WEBHOOK_URL_TOO_LONG",
            Self::Malformed => "WEBHOOK_URL_MALFORMED",
            Self::Scheme => "WEBHOOK_URL_SCHEME",
            Self::UserInfo => "WEBHOOK_URL_USERINFO",
            Self::MissingHost => "WEBHOOK_URL_HOST_MISSING",
            Self::InvalidHost => "WEBHOOK_URL_HOST",
            Self::InvalidPort => "WEBHOOK_URL_PORT",
            Self::PrivateAddress => "WEBHOOK_URL_PRIVATE",
            Self::InternalHost => "WEBHOOK_URL_INTERNAL_HOST",
        }
    }

    /// A Persian message for the admin form.
    pub fn message_fa(&self) -> &'static str {
        match self {
            Self::Empty => "نشانی وب‌هوک را وارد کنید.",
            Self::TooLong => "نشانی وب‌هوک بیش از حد طولانی است (حداکثر ۲۰۰۰ نویسه).",
            Self::Malformed => {
                "نشانی وب‌هوک معتبر نیست؛ آن را کامل و بدون فاصله وارد کنید، مانند https://example.ir/webhook"
            }
            Self::Scheme => "نشانی وب‌هوک باید با https:// شروع شود.",
            Self::UserInfo => {
                "نام کاربری یا گذرواژه را در نشانی وب‌هوک ننویسید؛ درستی درخواست‌ها با امضای آن‌ها سنجیده می‌شود."
            }
            Self::MissingHost => "نشانی وب‌هوک نام دامنه ندارد.",
            Self::InvalidHost => {
                "نام دامنهٔ نشانی وب‌هوک معتبر نیست؛ دامنه‌های غیرلاتین را به شکل punycode (xn--...) وارد کنید."
            }
            Self::InvalidPort => "درگاه (پورت) نشانی وب‌هوک باید عددی از ۱ تا ۶۵۵۳۵ باشد.",
            Self::PrivateAddress => {
                "نشانی وب‌هوک به یک نشانی IP داخلی یا رزروشده اشاره می‌کند؛ فقط نشانی‌های عمومی اینترنت پذیرفته می‌شوند."
            }
            Self::InternalHost => {
                "نشانی وب‌هوک به یک نام داخلی (مانند localhost) اشاره می‌کند؛ فقط دامنه‌های عمومی اینترنت پذیرفته می‌شوند."
            }
        }
    }
}

/// Checks a webhook URL as an admin entered it (surrounding whitespace is ignored).
///
/// Accepts `https://host[:port][/path][?query]`, and `http://` too when `allow_private` is true.
/// Refuses user info, ports outside 1..=65535, hosts that are not plain ASCII names or IP
/// literals, and, unless `allow_private`, IP literals that fail [`is_public_ip`] and local names
/// (`localhost`, `*.localhost`, `*.local`, `*.internal`). Numeric hosts that browsers and URL
/// libraries read as IPv4 in other spellings (`2130706433`, `0x7f.1`, `0177.0.0.1`) are refused
/// as invalid, so the address checked here is the address the HTTP client will use.
///
/// A host name passing here says nothing about where it resolves; see the module docs.
pub fn parse_target(url: &str, allow_private: bool) -> Result<TargetUrl, TargetError> {
    let url = url.trim();
    if url.is_empty() {
        return Err(TargetError::Empty);
    }
    if url.len() > MAX_URL_LEN {
        return Err(TargetError::TooLong);
    }
    // URL libraries drop tabs and newlines and read `\` as `/`; refuse them rather than guess.
    if url
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
    {
        return Err(TargetError::Malformed);
    }

    let (scheme, rest) = url.split_once("://").ok_or(TargetError::Malformed)?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => 443,
        "http" if allow_private => 80,
        _ => return Err(TargetError::Scheme),
    };

    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path_and_query) = rest.split_at(authority_end);
    if authority.contains('@') {
        return Err(TargetError::UserInfo);
    }
    if authority.is_empty() {
        return Err(TargetError::MissingHost);
    }

    let (host, port_text) = split_host_port(authority)?;
    let port = match port_text {
        None => default_port,
        Some(text) => parse_port(text)?,
    };
    let host = parse_host(host)?;

    if !allow_private {
        match host {
            Host::Ip(ip) if !is_public_ip(ip) => return Err(TargetError::PrivateAddress),
            Host::Name(ref name) if is_internal_name(name) => {
                return Err(TargetError::InternalHost);
            }
            _ => {}
        }
    }

    let (host_text, host_in_url) = match host {
        Host::Ip(IpAddr::V6(ip)) => (ip.to_string(), format!("[{ip}]")),
        Host::Ip(IpAddr::V4(ip)) => (ip.to_string(), ip.to_string()),
        Host::Name(name) => (name.clone(), name),
    };
    let port_in_url = if port == default_port {
        String::new()
    } else {
        format!(":{port}")
    };
    Ok(TargetUrl {
        url: format!("{scheme}://{host_in_url}{port_in_url}{path_and_query}"),
        scheme,
        host: host_text,
        port,
    })
}

/// A checked host: an IP literal or a lowercase host name.
enum Host {
    Ip(IpAddr),
    Name(String),
}

/// Splits `host[:port]` or `[v6][:port]`; the host keeps its brackets.
fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), TargetError> {
    if authority.starts_with('[') {
        let close = authority.find(']').ok_or(TargetError::InvalidHost)?;
        let (host, after) = authority.split_at(close + 1);
        if after.is_empty() {
            return Ok((host, None));
        }
        let port = after.strip_prefix(':').ok_or(TargetError::InvalidHost)?;
        return Ok((host, Some(port)));
    }
    match authority.split_once(':') {
        None => Ok((authority, None)),
        // A second colon means an IPv6 address without brackets, or garbage.
        Some((_, port)) if port.contains(':') => Err(TargetError::InvalidHost),
        Some((host, port)) => Ok((host, Some(port))),
    }
}

/// A port as written after the host: decimal digits, 1..=65535.
fn parse_port(text: &str) -> Result<u16, TargetError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TargetError::InvalidPort);
    }
    match text.parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(TargetError::InvalidPort),
    }
}

/// Parses the host part of the authority: a bracketed IPv6 literal, a dotted-quad IPv4 literal
/// or an ASCII host name.
fn parse_host(raw: &str) -> Result<Host, TargetError> {
    if let Some(inner) = raw.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or(TargetError::InvalidHost)?;
        let ip: Ipv6Addr = inner.parse().map_err(|_| TargetError::InvalidHost)?;
        return Ok(Host::Ip(IpAddr::V6(ip)));
    }

    let lower = raw.to_ascii_lowercase();
    let name = lower.strip_suffix('.').unwrap_or(&lower);
    if name.is_empty() {
        return Err(TargetError::MissingHost);
    }

    // URL libraries (WHATWG) treat a host whose last label is a number as IPv4, in decimal,
    // octal or hex spellings. Accept only the plain dotted-quad form, which we can check.
    let last_label = name.rsplit('.').next().unwrap_or(name);
    if looks_numeric(last_label) {
        let ip: Ipv4Addr = name.parse().map_err(|_| TargetError::InvalidHost)?;
        return Ok(Host::Ip(IpAddr::V4(ip)));
    }

    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(TargetError::InvalidHost);
    }
    Ok(Host::Name(name.to_owned()))
}

/// Whether a host label is a number to a WHATWG URL parser: decimal digits, or `0x` and hex.
fn looks_numeric(label: &str) -> bool {
    if let Some(hex) = label.strip_prefix("0x") {
        return hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    !label.is_empty() && label.bytes().all(|b| b.is_ascii_digit())
}

/// Host names that only make sense inside a network (`localhost`, mDNS, internal zones).
fn is_internal_name(name: &str) -> bool {
    name == "localhost"
        || [".localhost", ".local", ".internal"]
            .iter()
            .any(|suffix| name.ends_with(suffix))
}

// ---------------------------------------------------------------------------------------------
// IP addresses
// ---------------------------------------------------------------------------------------------

/// Whether a webhook may be delivered to this address: false for every address that is not
/// globally reachable (loopback, private, link-local, shared, documentation, benchmarking,
/// multicast, reserved, ...). IPv6 addresses that embed an IPv4 address (IPv4-mapped,
/// IPv4-compatible, NAT64, 6to4) are judged by the embedded address.
///
/// Call it on every address a host name resolves to; see the module docs.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let not_public = match (a, b, c) {
        // "This network", including the unspecified 0.0.0.0.
        (0, _, _) => true,
        // Private.
        (10, _, _) => true,
        // Shared address space for carrier-grade NAT (100.64.0.0/10).
        (100, 64..=127, _) => true,
        // Loopback.
        (127, _, _) => true,
        // Link-local (cloud metadata services live here).
        (169, 254, _) => true,
        // Private (172.16.0.0/12).
        (172, 16..=31, _) => true,
        // IETF protocol assignments.
        (192, 0, 0) => true,
        // Documentation (TEST-NET-1).
        (192, 0, 2) => true,
        // Private.
        (192, 168, _) => true,
        // Benchmarking (198.18.0.0/15).
        (198, 18..=19, _) => true,
        // Documentation (TEST-NET-2).
        (198, 51, 100) => true,
        // Documentation (TEST-NET-3).
        (203, 0, 113) => true,
        // Multicast (224.0.0.0/4).
        (224..=239, _, _) => true,
        // Reserved (240.0.0.0/4), including the broadcast 255.255.255.255.
        (240..=255, _, _) => true,
        _ => false,
    };
    !not_public
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if ip.is_unspecified() || ip.is_loopback() {
        return false;
    }
    // IPv4-mapped (::ffff:a.b.c.d) and the deprecated IPv4-compatible (::a.b.c.d).
    if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) {
        return is_public_v4(embedded_v4(s[6], s[7]));
    }
    // NAT64 well-known prefix (64:ff9b::/96): the gateway connects to the embedded address.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(embedded_v4(s[6], s[7]));
    }
    // Local-use NAT64 (64:ff9b:1::/48) only exists inside a network.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        return false;
    }
    // 6to4 (2002::/16) embeds the IPv4 address of the tunnel end.
    if s[0] == 0x2002 {
        return is_public_v4(embedded_v4(s[1], s[2]));
    }
    let not_public =
        // Unique local (fc00::/7).
        (s[0] & 0xfe00) == 0xfc00
        // Link-local (fe80::/10).
        || (s[0] & 0xffc0) == 0xfe80
        // Deprecated site-local (fec0::/10).
        || (s[0] & 0xffc0) == 0xfec0
        // Multicast (ff00::/8).
        || (s[0] & 0xff00) == 0xff00
        // Documentation (2001:db8::/32).
        || (s[0] == 0x2001 && s[1] == 0x0db8);
    !not_public
}

/// The IPv4 address in two IPv6 segments.
fn embedded_v4(high: u16, low: u16) -> Ipv4Addr {
    let [a, b] = high.to_be_bytes();
    let [c, d] = low.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        to_hex(bytes)
    }

    // --- HMAC (RFC 4231) ---

    #[test]
    fn hmac_rfc4231_case_1() {
        let key = [0x0b; 20];
        assert_eq!(
            hex(&hmac_sha256(&key, b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }

    #[test]
    fn hmac_rfc4231_case_2() {
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn hmac_rfc4231_case_6_long_key() {
        let key = [0xaa; 131];
        assert_eq!(
            hex(&hmac_sha256(
                &key,
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn hmac_key_of_exactly_one_block_is_not_hashed() {
        // A 64-byte key is used as is; hashing it would give a different MAC.
        let key = [0x11; 64];
        let hashed: [u8; 32] = Sha256::digest(key).into();
        assert_ne!(hmac_sha256(&key, b"x"), hmac_sha256(&hashed, b"x"));
        // A 65-byte key is hashed first, so it equals HMAC under its digest.
        let long = [0x11; 65];
        let long_hashed: [u8; 32] = Sha256::digest(long).into();
        assert_eq!(hmac_sha256(&long, b"x"), hmac_sha256(&long_hashed, b"x"));
    }

    // --- Signature header ---

    const SECRET: &[u8] = b"whsec_test";
    const BODY: &[u8] = br#"{"event":"request.filed"}"#;
    const T: i64 = 1_700_000_000;

    #[test]
    fn signature_header_format_and_value() {
        // Value computed independently with Python's hmac module.
        assert_eq!(
            signature_header(SECRET, T, BODY),
            "t=1700000000,v1=07fdef9b0561a58cffcf97b65a56a366c02b5b340829ce16e79a0966c5f8d4e7"
        );
    }

    #[test]
    fn verify_round_trip() {
        let header = signature_header(SECRET, T, BODY);
        assert_eq!(verify(SECRET, &header, BODY, T, 300), Ok(()));
        assert_eq!(verify(SECRET, &header, BODY, T + 300, 300), Ok(()));
        assert_eq!(verify(SECRET, &header, BODY, T - 300, 300), Ok(()));
    }

    #[test]
    fn verify_accepts_spaces_uppercase_hex_and_unknown_parts() {
        let sig = to_hex(&delivery_mac(SECRET, T, BODY)).to_ascii_uppercase();
        let header = format!("t={T}, v0=abc, v1={sig}");
        assert_eq!(verify(SECRET, &header, BODY, T, 300), Ok(()));
    }

    #[test]
    fn verify_accepts_any_of_several_signatures() {
        let good = to_hex(&delivery_mac(SECRET, T, BODY));
        let other = to_hex(&delivery_mac(b"old secret", T, BODY));
        let header = format!("t={T},v1={other},v1={good}");
        assert_eq!(verify(SECRET, &header, BODY, T, 300), Ok(()));
    }

    #[test]
    fn verify_rejects_stale_and_future_timestamps() {
        let header = signature_header(SECRET, T, BODY);
        assert_eq!(
            verify(SECRET, &header, BODY, T + 301, 300),
            Err(SignatureError::TimestampOutOfTolerance)
        );
        assert_eq!(
            verify(SECRET, &header, BODY, T - 301, 300),
            Err(SignatureError::TimestampOutOfTolerance)
        );
        // A negative tolerance counts as zero.
        assert_eq!(verify(SECRET, &header, BODY, T, -5), Ok(()));
        assert_eq!(
            verify(SECRET, &header, BODY, T + 1, -5),
            Err(SignatureError::TimestampOutOfTolerance)
        );
    }

    #[test]
    fn verify_survives_extreme_timestamps() {
        let header = signature_header(SECRET, i64::MIN, BODY);
        assert_eq!(
            verify(SECRET, &header, BODY, i64::MAX, 300),
            Err(SignatureError::TimestampOutOfTolerance)
        );
    }

    #[test]
    fn verify_rejects_mismatches() {
        let header = signature_header(SECRET, T, BODY);
        // Other body.
        assert_eq!(
            verify(SECRET, &header, b"{}", T, 300),
            Err(SignatureError::Mismatch)
        );
        // Other secret.
        assert_eq!(
            verify(b"other", &header, BODY, T, 300),
            Err(SignatureError::Mismatch)
        );
        // Timestamp changed after signing.
        let sig = to_hex(&delivery_mac(SECRET, T, BODY));
        let moved = format!("t={},v1={sig}", T + 1);
        assert_eq!(
            verify(SECRET, &moved, BODY, T, 300),
            Err(SignatureError::Mismatch)
        );
        // Not hex, wrong length.
        for bad in ["zz", "", &sig[..62], &format!("{sig}00")] {
            let header = format!("t={T},v1={bad}");
            assert_eq!(
                verify(SECRET, &header, BODY, T, 300),
                Err(SignatureError::Mismatch),
                "{bad}"
            );
        }
    }

    #[test]
    fn verify_rejects_missing_parts_and_garbage() {
        let sig = to_hex(&delivery_mac(SECRET, T, BODY));
        let cases = [
            (format!("v1={sig}"), SignatureError::MissingTimestamp),
            (format!("t={T}"), SignatureError::MissingSignature),
            (format!("t={T},v0={sig}"), SignatureError::MissingSignature),
            (String::new(), SignatureError::Malformed),
            (format!("t=abc,v1={sig}"), SignatureError::Malformed),
            (format!("t={T};v1={sig}"), SignatureError::Malformed),
            (format!("t={T},,v1={sig}"), SignatureError::Malformed),
            ("garbage".to_owned(), SignatureError::Malformed),
        ];
        for (header, expected) in cases {
            assert_eq!(
                verify(SECRET, &header, BODY, T, 300),
                Err(expected),
                "{header}"
            );
        }
    }

    #[test]
    fn hex_round_trip() {
        let mac = hmac_sha256(b"k", b"m");
        assert_eq!(from_hex_32(&to_hex(&mac)), Some(mac));
        assert_eq!(from_hex_32(&"g".repeat(64)), None);
        assert_eq!(from_hex_32("+f".repeat(32).as_str()), None);
    }

    // --- Events ---

    #[test]
    fn events_round_trip_and_labels() {
        let names: Vec<&str> = WebhookEvent::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(
            names,
            [
                "request.filed",
                "request.status_changed",
                "request.answered",
                "survey.answered"
            ]
        );
        for event in WebhookEvent::ALL {
            assert_eq!(WebhookEvent::parse(event.as_str()), Some(event));
            assert_eq!(event.to_string(), event.as_str());
            assert!(!event.label_fa().is_empty());
        }
        assert_eq!(WebhookEvent::RequestFiled.label_fa(), "ثبت درخواست");
        assert_eq!(WebhookEvent::SurveyAnswered.label_fa(), "پاسخ نظرسنجی");
        assert_eq!(WebhookEvent::parse("Request.Filed"), None);
        assert_eq!(WebhookEvent::parse(""), None);
        assert_eq!(WebhookEvent::parse("request.deleted"), None);
    }

    // --- IP ranges ---

    #[test]
    fn ipv4_ranges() {
        let cases = [
            // Public neighbours of reserved ranges and common public addresses.
            ("8.8.8.8", true),
            ("1.1.1.1", true),
            // 0.0.0.0/8
            ("0.0.0.0", false),
            ("0.255.255.255", false),
            ("1.0.0.0", true),
            // 10.0.0.0/8
            ("9.255.255.255", true),
            ("10.0.0.0", false),
            ("10.255.255.255", false),
            ("11.0.0.0", true),
            // 100.64.0.0/10
            ("100.63.255.255", true),
            ("100.64.0.0", false),
            ("100.127.255.255", false),
            ("100.128.0.0", true),
            // 127.0.0.0/8
            ("126.255.255.255", true),
            ("127.0.0.1", false),
            ("127.255.255.255", false),
            ("128.0.0.0", true),
            // 169.254.0.0/16
            ("169.253.255.255", true),
            ("169.254.0.0", false),
            ("169.254.169.254", false),
            ("169.254.255.255", false),
            ("169.255.0.0", true),
            // 172.16.0.0/12
            ("172.15.255.255", true),
            ("172.16.0.0", false),
            ("172.31.255.255", false),
            ("172.32.0.0", true),
            // 192.0.0.0/24 and 192.0.2.0/24
            ("191.255.255.255", true),
            ("192.0.0.0", false),
            ("192.0.0.255", false),
            ("192.0.1.0", true),
            ("192.0.1.255", true),
            ("192.0.2.0", false),
            ("192.0.2.255", false),
            ("192.0.3.0", true),
            // 192.168.0.0/16
            ("192.167.255.255", true),
            ("192.168.0.0", false),
            ("192.168.255.255", false),
            ("192.169.0.0", true),
            // 198.18.0.0/15
            ("198.17.255.255", true),
            ("198.18.0.0", false),
            ("198.19.255.255", false),
            ("198.20.0.0", true),
            // 198.51.100.0/24
            ("198.51.99.255", true),
            ("198.51.100.0", false),
            ("198.51.100.255", false),
            ("198.51.101.0", true),
            // 203.0.113.0/24
            ("203.0.112.255", true),
            ("203.0.113.0", false),
            ("203.0.113.255", false),
            ("203.0.114.0", true),
            // 224.0.0.0/4 multicast, 240.0.0.0/4 reserved, broadcast
            ("223.255.255.255", true),
            ("224.0.0.0", false),
            ("239.255.255.255", false),
            ("240.0.0.0", false),
            ("255.255.255.255", false),
        ];
        for (text, public) in cases {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(is_public_ip(ip), public, "{text}");
        }
    }

    #[test]
    fn ipv6_ranges() {
        let cases = [
            ("2001:4860:4860::8888", true),
            ("2a00:1450:4001::1", true),
            // Unspecified and loopback.
            ("::", false),
            ("::1", false),
            // Unique local fc00::/7.
            ("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("fc00::", false),
            ("fd12:3456::1", false),
            ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("fe00::", true),
            // Link-local fe80::/10.
            ("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("fe80::", false),
            ("fe80::1", false),
            ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            // Site-local fec0::/10 (deprecated).
            ("fec0::1", false),
            // Multicast ff00::/8.
            ("ff00::", false),
            ("ff02::1", false),
            // Documentation 2001:db8::/32.
            ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("2001:db8::", false),
            ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("2001:db9::", true),
            // IPv4-mapped.
            ("::ffff:127.0.0.1", false),
            ("::ffff:10.0.0.1", false),
            ("::ffff:169.254.169.254", false),
            ("::ffff:8.8.8.8", true),
            // IPv4-compatible.
            ("::127.0.0.1", false),
            ("::192.168.1.1", false),
            ("::8.8.8.8", true),
            // NAT64 64:ff9b::/96.
            ("64:ff9b::127.0.0.1", false),
            ("64:ff9b::10.1.2.3", false),
            ("64:ff9b::8.8.8.8", true),
            // Local-use NAT64 64:ff9b:1::/48.
            ("64:ff9b:1::808:808", false),
            // 6to4 2002::/16.
            ("2002:7f00:1::", false),
            ("2002:808:808::1", true),
        ];
        for (text, public) in cases {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(is_public_ip(ip), public, "{text}");
        }
    }

    // --- Target URLs ---

    #[test]
    fn parses_https_targets() {
        let t = parse_target("https://hooks.Example.ir/miz?token=abc", false).unwrap();
        assert_eq!(t.scheme, "https");
        assert_eq!(t.host, "hooks.example.ir");
        assert_eq!(t.port, 443);
        assert_eq!(t.url, "https://hooks.example.ir/miz?token=abc");
        assert_eq!(t.ip(), None);

        let t = parse_target("  HTTPS://example.ir:8443  ", false).unwrap();
        assert_eq!(t.port, 8443);
        assert_eq!(t.url, "https://example.ir:8443");

        let t = parse_target("https://example.ir:443/a/b", false).unwrap();
        assert_eq!(t.url, "https://example.ir/a/b");

        let t = parse_target("https://example.ir./x", false).unwrap();
        assert_eq!(t.host, "example.ir");

        let t = parse_target("https://xn--mgba3a4f16a.ir?x=1", false).unwrap();
        assert_eq!(t.host, "xn--mgba3a4f16a.ir");
        assert_eq!(t.url, "https://xn--mgba3a4f16a.ir?x=1");
    }

    #[test]
    fn parses_ip_literals() {
        let t = parse_target("https://8.8.8.8/hook", false).unwrap();
        assert_eq!(t.host, "8.8.8.8");
        assert_eq!(t.ip(), Some("8.8.8.8".parse().unwrap()));

        let t = parse_target("https://[2001:4860:4860::8888]:8443/hook", false).unwrap();
        assert_eq!(t.host, "2001:4860:4860::8888");
        assert_eq!(t.port, 8443);
        assert_eq!(t.url, "https://[2001:4860:4860::8888]:8443/hook");
        assert_eq!(t.ip(), Some("2001:4860:4860::8888".parse().unwrap()));
    }

    #[test]
    fn http_and_private_only_when_allowed() {
        let t = parse_target("http://localhost:8080/hook", true).unwrap();
        assert_eq!(t.scheme, "http");
        assert_eq!(t.host, "localhost");
        assert_eq!(t.port, 8080);
        assert_eq!(t.url, "http://localhost:8080/hook");

        let t = parse_target("http://127.0.0.1/hook", true).unwrap();
        assert_eq!(t.port, 80);
        assert_eq!(t.url, "http://127.0.0.1/hook");

        let t = parse_target("https://[::1]/hook", true).unwrap();
        assert_eq!(t.host, "::1");

        assert_eq!(
            parse_target("http://example.ir/hook", false),
            Err(TargetError::Scheme)
        );
    }

    #[test]
    fn refuses_bad_targets() {
        let long = format!("https://example.ir/{}", "a".repeat(MAX_URL_LEN));
        let cases: Vec<(&str, TargetError)> = vec![
            ("", TargetError::Empty),
            ("   ", TargetError::Empty),
            (&long, TargetError::TooLong),
            ("example.ir/hook", TargetError::Malformed),
            ("https:/example.ir", TargetError::Malformed),
            ("https://exa mple.ir", TargetError::Malformed),
            ("https://example.ir/\thook", TargetError::Malformed),
            ("https://example.ir\\@127.0.0.1/", TargetError::Malformed),
            ("ftp://example.ir", TargetError::Scheme),
            ("javascript://example.ir", TargetError::Scheme),
            ("://example.ir", TargetError::Scheme),
            ("https://user:pass@example.ir/", TargetError::UserInfo),
            ("https://user@example.ir/", TargetError::UserInfo),
            ("https://example.ir@127.0.0.1/", TargetError::UserInfo),
            ("https:///hook", TargetError::MissingHost),
            ("https://", TargetError::MissingHost),
            ("https://:443/", TargetError::MissingHost),
            ("https://./", TargetError::MissingHost),
            ("https://example.ir:0/", TargetError::InvalidPort),
            ("https://example.ir:65536/", TargetError::InvalidPort),
            ("https://example.ir:/", TargetError::InvalidPort),
            ("https://example.ir:http/", TargetError::InvalidPort),
            ("https://example.ir:-1/", TargetError::InvalidPort),
            ("https://exa_mple..ir/", TargetError::InvalidHost),
            ("https://-example.ir/", TargetError::InvalidHost),
            ("https://شهرداری.ir/", TargetError::InvalidHost),
            ("https://127.0.0.%31/", TargetError::InvalidHost),
            ("https://::1/", TargetError::InvalidHost),
            ("https://[::1/", TargetError::InvalidHost),
            ("https://[::1]x/", TargetError::InvalidHost),
            ("https://[1.2.3.4]/", TargetError::InvalidHost),
            ("https://[fe80::1%25eth0]/", TargetError::InvalidHost),
            // Other spellings of 127.0.0.1 that URL libraries accept.
            ("https://2130706433/", TargetError::InvalidHost),
            ("https://0x7f000001/", TargetError::InvalidHost),
            ("https://0x7f.1/", TargetError::InvalidHost),
            ("https://127.1/", TargetError::InvalidHost),
            ("https://0177.0.0.1/", TargetError::InvalidHost),
            ("https://1.2.3.4.5/", TargetError::InvalidHost),
            ("https://example.0x10/", TargetError::InvalidHost),
            // Private addresses.
            ("https://127.0.0.1/", TargetError::PrivateAddress),
            ("https://127.0.0.1./", TargetError::PrivateAddress),
            ("https://10.0.0.5:8443/", TargetError::PrivateAddress),
            (
                "https://169.254.169.254/latest/",
                TargetError::PrivateAddress,
            ),
            ("https://0.0.0.0/", TargetError::PrivateAddress),
            ("https://[::1]/", TargetError::PrivateAddress),
            ("https://[::ffff:192.168.1.1]/", TargetError::PrivateAddress),
            ("https://[fd00::1]:443/", TargetError::PrivateAddress),
            // Internal names.
            ("https://localhost/", TargetError::InternalHost),
            ("https://LOCALHOST./", TargetError::InternalHost),
            ("https://api.localhost/", TargetError::InternalHost),
            ("https://printer.local/", TargetError::InternalHost),
            (
                "https://metadata.google.internal/",
                TargetError::InternalHost,
            ),
        ];
        for (url, expected) in cases {
            assert_eq!(parse_target(url, false), Err(expected), "{url}");
        }
    }

    #[test]
    fn allow_private_still_checks_form() {
        assert_eq!(
            parse_target("ftp://localhost/", true),
            Err(TargetError::Scheme)
        );
        assert_eq!(
            parse_target("http://u:p@localhost/", true),
            Err(TargetError::UserInfo)
        );
        assert_eq!(
            parse_target("http://2130706433/", true),
            Err(TargetError::InvalidHost)
        );
        assert_eq!(
            parse_target("http://localhost:99999/", true),
            Err(TargetError::InvalidPort)
        );
    }

    #[test]
    fn names_that_only_contain_internal_words_are_public() {
        for url in [
            "https://localhost.ir/",
            "https://local.example.ir/",
            "https://internal.example.ir/",
            "https://mylocal/",
        ] {
            assert!(parse_target(url, false).is_ok(), "{url}");
        }
    }

    #[test]
    fn url_length_limit_is_inclusive() {
        let prefix = "https://example.ir/";
        let exact = format!("{prefix}{}", "a".repeat(MAX_URL_LEN - prefix.len()));
        assert!(parse_target(&exact, false).is_ok());
        let over = format!("{exact}a");
        assert_eq!(parse_target(&over, false), Err(TargetError::TooLong));
    }

    #[test]
    fn target_errors_have_codes_and_persian_messages() {
        let all = [
            TargetError::Empty,
            TargetError::TooLong,
            TargetError::Malformed,
            TargetError::Scheme,
            TargetError::UserInfo,
            TargetError::MissingHost,
            TargetError::InvalidHost,
            TargetError::InvalidPort,
            TargetError::PrivateAddress,
            TargetError::InternalHost,
        ];
        let mut codes: Vec<&str> = all.iter().map(|e| e.code()).collect();
        for e in all {
            assert!(e.code().starts_with("WEBHOOK_URL_"), "{e:?}");
            // Every message is written in Persian script.
            assert!(
                e.message_fa()
                    .chars()
                    .any(|c| ('\u{0600}'..='\u{06FF}').contains(&c)),
                "{e:?}"
            );
        }
        assert_eq!(TargetError::Scheme.code(), "WEBHOOK_URL_SCHEME");
        assert_eq!(TargetError::PrivateAddress.code(), "WEBHOOK_URL_PRIVATE");
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }
}
