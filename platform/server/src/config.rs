//! Typed configuration: defaults < file (`--config` or `DESK_CONFIG`) < `DESK_*` environment,
//! with `DESK_..._FILE` reading a secret from a file. `DATABASE_URL` is honoured too.
//! Bad configuration fails at start with a message that names the problem.

use anyhow::Context;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole configuration tree.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Database connection and pool.
    pub database: DatabaseConfig,
    /// HTTP listener and host names.
    pub http: HttpConfig,
    /// Themes and templates.
    pub web: WebConfig,
    /// Logging.
    pub log: LogConfig,
    /// `desk migrate`.
    pub migrate: MigrateConfig,
    /// Keys.
    pub secrets: SecretsConfig,
    /// SMS providers.
    pub sms: SmsConfig,
    /// Where uploaded documents are stored.
    pub storage: StorageConfig,
    /// Outgoing webhooks.
    pub webhooks: WebhooksConfig,
}

/// `[webhooks]`
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Let municipalities register receivers on loopback and private addresses (the demo and
    /// development only: in production this opens the internal network to them).
    pub allow_private_targets: bool,
    /// Private networks that calls may reach all the same, as comma-separated CIDRs
    /// (`10.20.0.0/16, fd00:20::/32`): the government network inquiry agencies are reached
    /// over. Empty by default.
    pub private_networks: String,
}

/// `[storage]`: uploads go to `web.uploads_dir` unless an S3-compatible endpoint is given.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// S3-compatible endpoint URL (`https://s3.example.ir`); unset: the local directory.
    pub s3_endpoint: Option<String>,
    /// Bucket (path-style addressing).
    pub s3_bucket: String,
    /// Signing region.
    pub s3_region: String,
    /// Access key id.
    pub s3_access_key: String,
    /// Secret key; give it as a file (`DESK_STORAGE__S3_SECRET_KEY_FILE`); never printed.
    pub s3_secret_key: Option<String>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            s3_endpoint: None,
            s3_bucket: "miz-uploads".to_owned(),
            s3_region: "us-east-1".to_owned(),
            s3_access_key: String::new(),
            s3_secret_key: None,
        }
    }
}

impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageConfig")
            .field("s3_endpoint", &self.s3_endpoint)
            .field("s3_bucket", &self.s3_bucket)
            .field("s3_region", &self.s3_region)
            .field("s3_access_key", &self.s3_access_key)
            .field(
                "s3_secret_key",
                &self.s3_secret_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// `[sms]`: where each provider's API is (the real services by default).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmsConfig {
    /// Kavenegar API base URL.
    pub kavenegar_url: String,
    /// SMS.ir API base URL.
    pub smsir_url: String,
    /// Ghasedak API base URL.
    pub ghasedak_url: String,
    /// Magfa API base URL.
    pub magfa_url: String,
}

impl Default for SmsConfig {
    fn default() -> Self {
        let real = desk_jobs::sms::Endpoints::default();
        Self {
            kavenegar_url: real.kavenegar,
            smsir_url: real.smsir,
            ghasedak_url: real.ghasedak,
            magfa_url: real.magfa,
        }
    }
}

/// `[secrets]`
#[derive(Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct SecretsConfig {
    /// 64 hex characters: seals municipalities' SMS credentials (AES-256-GCM). Give it as a
    /// file (`DESK_SECRETS__MASTER_KEY_FILE`); never printed.
    pub master_key: Option<String>,
}

impl std::fmt::Debug for SecretsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsConfig")
            .field(
                "master_key",
                &self.master_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// `[database]`
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// PostgreSQL URL; a secret (may carry a password), so never printed.
    pub url: Option<String>,
    /// Pool size.
    pub max_connections: u32,
    /// Recycle connections after this many seconds.
    pub max_lifetime_secs: u64,
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &self.url.as_ref().map(|_| "<redacted>"))
            .field("max_connections", &self.max_connections)
            .field("max_lifetime_secs", &self.max_lifetime_secs)
            .finish()
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 8,
            max_lifetime_secs: 600,
        }
    }
}

/// `[http]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Municipalities live at `<slug>.<base_domain>`.
    pub base_domain: String,
    /// The platform portal lives at `<platform_subdomain>.<base_domain>`.
    pub platform_subdomain: String,
    /// How long a host → municipality answer is cached, in milliseconds.
    pub site_cache_ttl_ms: u64,
    /// Mark session cookies `Secure` (set when served over HTTPS).
    pub secure_cookies: bool,
    /// Scheme of links sent to people (`https` in production).
    pub public_scheme: String,
    /// Port of links sent to people, when not the scheme's default.
    pub public_port: Option<u16>,
    /// Believe `X-Forwarded-For` for client addresses (only behind a proxy that sets it).
    pub trust_forwarded_for: bool,
    /// Where `/healthz`, `/readyz` and `/metrics` are served for probes and scraping (and a
    /// worker's `/healthz`); never on the public hosts.
    pub ops_listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            base_domain: "localhost".to_owned(),
            platform_subdomain: "admin".to_owned(),
            site_cache_ttl_ms: 5_000,
            secure_cookies: false,
            public_scheme: "https".to_owned(),
            public_port: None,
            trust_forwarded_for: false,
            ops_listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
        }
    }
}

/// `[web]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Directory holding `base/templates`.
    pub themes_dir: PathBuf,
    /// Re-read templates when they change (development).
    pub auto_reload: bool,
    /// Where uploaded documents are stored (local object store; one folder per municipality).
    pub uploads_dir: PathBuf,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            themes_dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../themes")),
            auto_reload: cfg!(debug_assertions),
            uploads_dir: PathBuf::from(".desk/uploads"),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Compact,
    /// JSON lines (production).
    Json,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Output format.
    pub format: LogFormat,
    /// `tracing` filter (`RUST_LOG` overrides it).
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Compact,
            filter: "info,sqlx=warn,apalis=warn".to_owned(),
        }
    }
}

/// `[migrate]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MigrateConfig {
    /// Tenants migrated at once.
    pub concurrency: usize,
    /// Per-tenant lock timeout in milliseconds.
    pub lock_timeout_ms: u64,
}

impl Default for MigrateConfig {
    fn default() -> Self {
        Self {
            concurrency: 4,
            lock_timeout_ms: 1_000,
        }
    }
}

impl Config {
    /// Loads the configuration from an optional file and the process environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        Self::load_from(file, std::env::vars())
    }

    /// Loads from an optional file and the given environment (testable).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Self> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        let file = file.map(Path::to_path_buf).or_else(|| {
            env.iter()
                .find(|(k, _)| k == "DESK_CONFIG")
                .map(|(_, v)| PathBuf::from(v))
        });
        let mut tree = match &file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                toml::from_str::<toml::Table>(&text)
                    .with_context(|| format!("config file {} is not valid TOML", path.display()))?
            }
            None => toml::Table::new(),
        };
        let mut database_url = None;
        for (key, value) in &env {
            if key == "DATABASE_URL" {
                database_url = Some(value.clone());
                continue;
            }
            let Some(rest) = key.strip_prefix("DESK_") else {
                continue;
            };
            if rest == "CONFIG" {
                continue;
            }
            let (rest, value) = match rest.strip_suffix("_FILE") {
                Some(rest) => {
                    let secret = std::fs::read_to_string(value)
                        .with_context(|| format!("{key}: cannot read {value}"))?;
                    (
                        rest,
                        toml::Value::String(secret.trim_end_matches(['\n', '\r']).to_owned()),
                    )
                }
                None => (rest, env_value(value)),
            };
            let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            insert(&mut tree, &path, value).with_context(|| format!("{key} cannot be applied"))?;
        }
        let mut config: Config = toml::Value::Table(tree)
            .try_into()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        if config.database.url.is_none() {
            config.database.url = database_url;
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        desk_core::Hostname::parse(&self.platform_host()).map_err(|_| {
            anyhow::anyhow!(
                "invalid configuration: http.base_domain {:?} / http.platform_subdomain {:?} do not form a host name",
                self.http.base_domain,
                self.http.platform_subdomain
            )
        })?;
        if self.database.max_connections == 0 {
            anyhow::bail!("invalid configuration: database.max_connections must be at least 1");
        }
        if let Some(key) = &self.secrets.master_key {
            desk_core::secret::MasterKey::from_hex(key)
                .map_err(|e| anyhow::anyhow!("invalid configuration: secrets.master_key: {e}"))?;
        }
        self.private_networks()?;
        if !matches!(self.http.public_scheme.as_str(), "http" | "https") {
            anyhow::bail!("invalid configuration: http.public_scheme must be http or https");
        }
        if self.migrate.concurrency == 0 {
            anyhow::bail!("invalid configuration: migrate.concurrency must be at least 1");
        }
        if let Some(endpoint) = &self.storage.s3_endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                anyhow::bail!("invalid configuration: storage.s3_endpoint must be an http(s) URL");
            }
            if self.storage.s3_access_key.is_empty() || self.storage.s3_secret_key.is_none() {
                anyhow::bail!(
                    "invalid configuration: storage.s3_endpoint needs storage.s3_access_key and storage.s3_secret_key"
                );
            }
        }
        Ok(())
    }

    /// The upload store: the S3-compatible bucket when configured, else the local directory.
    pub fn file_store(&self) -> desk_db::files::FileStore {
        match (&self.storage.s3_endpoint, &self.storage.s3_secret_key) {
            (Some(endpoint), Some(secret)) => {
                desk_db::files::FileStore::s3(desk_db::files::S3Config {
                    endpoint: endpoint.clone(),
                    bucket: self.storage.s3_bucket.clone(),
                    region: self.storage.s3_region.clone(),
                    access_key: self.storage.s3_access_key.clone(),
                    secret_key: secret.clone(),
                })
            }
            _ => desk_db::files::FileStore::local(&self.web.uploads_dir),
        }
    }

    /// The master key, if configured (validated at load, so an invalid one never gets here).
    pub fn master_key(&self) -> Option<desk_core::secret::MasterKey> {
        self.secrets
            .master_key
            .as_deref()
            .and_then(|k| desk_core::secret::MasterKey::from_hex(k).ok())
    }

    /// Where the SMS providers are.
    pub fn sms_endpoints(&self) -> desk_jobs::sms::Endpoints {
        desk_jobs::sms::Endpoints {
            kavenegar: self.sms.kavenegar_url.clone(),
            smsir: self.sms.smsir_url.clone(),
            ghasedak: self.sms.ghasedak_url.clone(),
            magfa: self.sms.magfa_url.clone(),
        }
    }

    /// Whether cookies are marked `Secure` (and HSTS sent): when asked, and always when the
    /// public scheme is https.
    pub fn secure_cookies(&self) -> bool {
        self.http.secure_cookies || self.http.public_scheme == "https"
    }

    /// `webhooks.private_networks`, parsed.
    fn private_networks(&self) -> anyhow::Result<Vec<desk_http::outbound::IpNet>> {
        self.webhooks
            .private_networks
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse().map_err(|_| {
                    anyhow::anyhow!(
                        "invalid configuration: webhooks.private_networks: {s:?} is not a CIDR such as 10.20.0.0/16"
                    )
                })
            })
            .collect()
    }

    /// The guard of calls made on municipalities' behalf (checked by `validate`).
    pub fn outbound(&self) -> desk_http::outbound::Outbound {
        desk_http::outbound::Outbound::new(
            self.webhooks.allow_private_targets,
            self.private_networks().unwrap_or_default(),
        )
    }

    /// How links to the public hosts look (scheme and port).
    pub fn public_urls(&self) -> desk_core::PublicUrls {
        desk_core::PublicUrls {
            scheme: self.http.public_scheme.clone(),
            port: self.http.public_port,
        }
    }

    /// The platform portal's host.
    pub fn platform_host(&self) -> String {
        format!("{}.{}", self.http.platform_subdomain, self.http.base_domain)
    }
}

/// Environment values are typed like TOML when they parse as a TOML value (`8`, `true`),
/// and are strings otherwise (`127.0.0.1:8080`, `info`).
fn env_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|v| !matches!(v, toml::Value::Table(_) | toml::Value::Array(_)))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

fn insert(tree: &mut toml::Table, path: &[String], value: toml::Value) -> anyhow::Result<()> {
    match path {
        [] => anyhow::bail!("empty key"),
        [leaf] => {
            tree.insert(leaf.clone(), value);
            Ok(())
        }
        [head, rest @ ..] => {
            let child = tree
                .entry(head.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match child {
                toml::Value::Table(t) => insert(t, rest, value),
                _ => anyhow::bail!("{head} is not a section"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_then_file_then_env() {
        let dir = std::env::temp_dir().join(format!("desk-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("desk.toml");
        std::fs::write(
            &file,
            "[http]\nlisten = \"0.0.0.0:9000\"\nbase_domain = \"miz.example\"\n[database]\nmax_connections = 4\n",
        )
        .unwrap();
        let secret = dir.join("db-url");
        std::fs::write(&secret, "postgres://desk:s3cret@db/desk\n").unwrap();

        let cfg = Config::load_from(Some(&file), env(&[])).unwrap();
        assert_eq!(cfg.http.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(cfg.database.max_connections, 4);
        assert_eq!(cfg.migrate.concurrency, 4, "untouched default");

        let cfg = Config::load_from(
            Some(&file),
            env(&[
                ("DESK_DATABASE__MAX_CONNECTIONS", "12"),
                ("DESK_HTTP__BASE_DOMAIN", "miz.ir"),
                ("DESK_DATABASE__URL_FILE", secret.to_str().unwrap()),
                ("DATABASE_URL", "postgres://ignored"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.database.max_connections, 12);
        assert_eq!(cfg.platform_host(), "admin.miz.ir");
        assert_eq!(
            cfg.database.url.as_deref(),
            Some("postgres://desk:s3cret@db/desk")
        );
        assert!(
            !format!("{cfg:?}").contains("s3cret"),
            "secrets never reach Debug output"
        );

        let cfg = Config::load_from(None, env(&[("DATABASE_URL", "postgres://x@y/z")])).unwrap();
        assert_eq!(cfg.database.url.as_deref(), Some("postgres://x@y/z"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_config_names_the_problem() {
        let cases = [
            (vec![("DESK_HTTP__LISTEN", "not-an-address")], "listen"),
            (vec![("DESK_HTTP__LISTNE", "127.0.0.1:1")], "listne"),
            (
                vec![("DESK_DATABASE__MAX_CONNECTIONS", "many")],
                "max_connections",
            ),
            (
                vec![("DESK_DATABASE__MAX_CONNECTIONS", "0")],
                "max_connections",
            ),
            (
                vec![("DESK_HTTP__BASE_DOMAIN", "bad domain")],
                "base_domain",
            ),
            (vec![("DESK_LOG__FORMAT", "xml")], "xml"),
            (
                vec![("DESK_STORAGE__S3_ENDPOINT", "https://s3.example.ir")],
                "s3_secret_key",
            ),
            (
                vec![("DESK_STORAGE__S3_ENDPOINT", "s3.example.ir")],
                "s3_endpoint",
            ),
            (vec![("DESK_SECRETS__MASTER_KEY", "short")], "master_key"),
            (
                vec![("DESK_DATABASE__URL_FILE", "/nonexistent/secret")],
                "DESK_DATABASE__URL_FILE",
            ),
        ];
        for (pairs, needle) in cases {
            let err = Config::load_from(None, env(&pairs)).unwrap_err();
            let text = format!("{err:#}");
            assert!(text.contains(needle), "{pairs:?}: {text}");
        }
        let err =
            Config::load_from(Some(Path::new("/nonexistent/desk.toml")), env(&[])).unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent/desk.toml"));
    }
}
