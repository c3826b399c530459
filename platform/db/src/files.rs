//! Where uploaded documents live: an object store keyed under each municipality's own prefix
//! (`t<tenant id>/…`). The local filesystem is the default; any S3-compatible store (MinIO,
//! ArvanCloud, AWS) can be configured instead, spoken to with AWS Signature Version 4. Keys
//! are random, never derived from what a citizen typed, and a key is only honoured under the
//! prefix of the tenant asking.

use desk_core::{DomainError, TenantId};
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::PathBuf;

/// An object store for uploads. Cheap to clone.
#[derive(Debug, Clone)]
pub struct FileStore {
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    Local(PathBuf),
    S3(S3Store),
}

/// Where an S3-compatible bucket is and how to sign for it.
#[derive(Clone)]
pub struct S3Config {
    /// Endpoint URL, e.g. `https://s3.ir-thr-at1.arvanstorage.ir` or `http://127.0.0.1:9000`.
    pub endpoint: String,
    /// Bucket (path-style addressing: `{endpoint}/{bucket}/{key}`).
    pub bucket: String,
    /// Signing region (`us-east-1` for most S3-compatible stores).
    pub region: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key; never printed.
    pub secret_key: String,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone)]
struct S3Store {
    config: S3Config,
    http: reqwest::Client,
}

fn io_error(what: &str, e: impl fmt::Display) -> DomainError {
    DomainError::Internal(anyhow::anyhow!("file store {what}: {e}"))
}

impl FileStore {
    /// A store writing under `root` (created on first write).
    pub fn local(root: impl Into<PathBuf>) -> Self {
        Self {
            backend: Backend::Local(root.into()),
        }
    }

    /// A store in an S3-compatible bucket.
    pub fn s3(config: S3Config) -> Self {
        Self {
            backend: Backend::S3(S3Store {
                config,
                http: reqwest::Client::builder()
                    .timeout(std::time::Duration::from_secs(30))
                    .build()
                    .unwrap_or_default(),
            }),
        }
    }

    fn prefix(tenant: TenantId) -> String {
        format!("t{tenant}/")
    }

    /// The name part of `key`, only if it is a well-formed key under `tenant`'s prefix.
    fn name_of(tenant: TenantId, key: &str) -> Result<&str, DomainError> {
        key.strip_prefix(&Self::prefix(tenant))
            .filter(|n| n.len() == 32 && n.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or(DomainError::NotFound)
    }

    fn local_path(root: &std::path::Path, tenant: TenantId, name: &str) -> PathBuf {
        root.join(format!("t{tenant}")).join(&name[..2]).join(name)
    }

    /// Stores `bytes` for `tenant` and returns the new key. A reader never sees half a file.
    pub async fn put(&self, tenant: TenantId, bytes: &[u8]) -> Result<String, DomainError> {
        let key = format!("{}{}", Self::prefix(tenant), uuid::Uuid::new_v4().simple());
        let name = Self::name_of(tenant, &key)?;
        match &self.backend {
            Backend::Local(root) => {
                let path = Self::local_path(root, tenant, name);
                if let Some(dir) = path.parent() {
                    tokio::fs::create_dir_all(dir)
                        .await
                        .map_err(|e| io_error("mkdir", e))?;
                }
                let tmp = path.with_extension("part");
                tokio::fs::write(&tmp, bytes)
                    .await
                    .map_err(|e| io_error("write", e))?;
                tokio::fs::rename(&tmp, &path)
                    .await
                    .map_err(|e| io_error("rename", e))?;
            }
            Backend::S3(s3) => {
                let response = s3.send(reqwest::Method::PUT, &key, bytes.to_vec()).await?;
                if !response.status().is_success() {
                    return Err(io_error("S3 PUT", response.status()));
                }
            }
        }
        Ok(key)
    }

    /// The content of `key`; `NotFound` for a key of another tenant or a missing object.
    pub async fn get(&self, tenant: TenantId, key: &str) -> Result<Vec<u8>, DomainError> {
        let name = Self::name_of(tenant, key)?;
        match &self.backend {
            Backend::Local(root) => match tokio::fs::read(Self::local_path(root, tenant, name))
                .await
            {
                Ok(bytes) => Ok(bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(DomainError::NotFound),
                Err(e) => Err(io_error("read", e)),
            },
            Backend::S3(s3) => {
                let response = s3.send(reqwest::Method::GET, key, Vec::new()).await?;
                match response.status() {
                    s if s.is_success() => Ok(response
                        .bytes()
                        .await
                        .map_err(|e| io_error("S3 GET", e))?
                        .to_vec()),
                    reqwest::StatusCode::NOT_FOUND => Err(DomainError::NotFound),
                    s => Err(io_error("S3 GET", s)),
                }
            }
        }
    }

    /// Removes `key` (files of a submission that did not commit). Missing is fine.
    pub async fn delete(&self, tenant: TenantId, key: &str) {
        let Ok(name) = Self::name_of(tenant, key) else {
            return;
        };
        let failed = match &self.backend {
            Backend::Local(root) => {
                match tokio::fs::remove_file(Self::local_path(root, tenant, name)).await {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Some(e.to_string()),
                    _ => None,
                }
            }
            Backend::S3(s3) => match s3.send(reqwest::Method::DELETE, key, Vec::new()).await {
                Ok(r) if r.status().is_success() || r.status() == 404 => None,
                Ok(r) => Some(r.status().to_string()),
                Err(e) => Some(e.to_string()),
            },
        };
        if let Some(e) = failed {
            tracing::warn!(error = %e, "removing an orphaned upload failed");
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// HMAC-SHA256 (RFC 2104).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Who signs S3 requests, and where.
struct Signer<'a> {
    region: &'a str,
    access_key: &'a str,
    secret_key: &'a str,
}

impl Signer<'_> {
    /// The AWS Signature Version 4 of one request without a query string, for service `s3`.
    /// `headers` are (lowercase name, value), all of them signed; returns the
    /// `Authorization` header value.
    fn sign(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        payload_sha256: &str,
        amz_date: &str,
    ) -> String {
        let Signer {
            region,
            access_key,
            secret_key,
        } = self;
        let mut sorted: Vec<(&str, &str)> = headers.to_vec();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        let canonical_headers: String = sorted
            .iter()
            .map(|(k, v)| format!("{k}:{}\n", v.trim()))
            .collect();
        let signed_headers = sorted.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(";");
        let canonical_request =
            format!("{method}\n{path}\n\n{canonical_headers}\n{signed_headers}\n{payload_sha256}");
        let date = &amz_date[..8];
        let scope = format!("{date}/{region}/s3/aws4_request");
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex(&Sha256::digest(canonical_request.as_bytes()))
        );
        let k_date = hmac_sha256(format!("AWS4{secret_key}").as_bytes(), date.as_bytes());
        let k_region = hmac_sha256(&k_date, region.as_bytes());
        let k_service = hmac_sha256(&k_region, b"s3");
        let k_signing = hmac_sha256(&k_service, b"aws4_request");
        let signature = hex(&hmac_sha256(&k_signing, string_to_sign.as_bytes()));
        format!(
            "AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"
        )
    }
}

impl S3Store {
    async fn send(
        &self,
        method: reqwest::Method,
        key: &str,
        body: Vec<u8>,
    ) -> Result<reqwest::Response, DomainError> {
        let c = &self.config;
        let endpoint = c.endpoint.trim_end_matches('/');
        let url = reqwest::Url::parse(&format!("{endpoint}/{}/{key}", c.bucket))
            .map_err(|e| io_error("S3 URL", e))?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => return Err(io_error("S3 URL", "no host")),
        };
        let payload = hex(&Sha256::digest(&body));
        let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let signer = Signer {
            region: &c.region,
            access_key: &c.access_key,
            secret_key: &c.secret_key,
        };
        let authorization = signer.sign(
            method.as_str(),
            url.path(),
            &[
                ("host", &host),
                ("x-amz-content-sha256", &payload),
                ("x-amz-date", &amz_date),
            ],
            &payload,
            &amz_date,
        );
        self.http
            .request(method, url)
            .header("x-amz-content-sha256", payload)
            .header("x-amz-date", amz_date)
            .header("authorization", authorization)
            .body(body)
            .send()
            .await
            .map_err(|e| io_error("S3 request", e))
    }
}

/// A fake S3-compatible server for tests: a real HTTP server on loopback that keeps objects in
/// memory, refuses requests whose SigV4 signature does not verify with its one secret, and
/// speaks path-style `PUT`/`GET`/`DELETE /{bucket}/{key}`.
pub mod fake_s3 {
    use super::{Signer, hex};
    use sha2::{Digest, Sha256};
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    /// Objects by `bucket/key`.
    pub type Objects = Arc<Mutex<HashMap<String, Vec<u8>>>>;

    /// Starts the server; returns its endpoint and its objects.
    pub async fn spawn(access_key: &str, secret_key: &str) -> anyhow::Result<(String, Objects)> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let objects: Objects = Arc::default();
        let (access, secret, store) = (
            access_key.to_owned(),
            secret_key.to_owned(),
            objects.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (access, secret, store) = (access.clone(), secret.clone(), store.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, &access, &secret, &store).await;
                });
            }
        });
        Ok((endpoint, objects))
    }

    /// One HTTP/1.1 request per connection (what the client sends with no keep-alive reuse
    /// assumed): parse, verify, answer.
    async fn serve(
        mut stream: tokio::net::TcpStream,
        access: &str,
        secret: &str,
        store: &Objects,
    ) -> anyhow::Result<()> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let mut buf = Vec::new();
            let head_end = loop {
                let mut chunk = [0u8; 8192];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(());
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
            let mut lines = head.split("\r\n");
            let request_line = lines.next().unwrap_or_default().to_owned();
            let mut parts = request_line.split(' ');
            let (method, path) = (
                parts.next().unwrap_or_default().to_owned(),
                parts.next().unwrap_or_default().to_owned(),
            );
            let headers: HashMap<String, String> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            let length: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = buf[head_end..].to_vec();
            while body.len() < length {
                let mut chunk = vec![0u8; length - body.len()];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
            let header = |k: &str| headers.get(k).map_or("", String::as_str);
            let payload = hex(&Sha256::digest(&body));
            let signer = Signer {
                region: "us-east-1",
                access_key: access,
                secret_key: secret,
            };
            let expected = signer.sign(
                &method,
                &path,
                &[
                    ("host", header("host")),
                    ("x-amz-content-sha256", header("x-amz-content-sha256")),
                    ("x-amz-date", header("x-amz-date")),
                ],
                header("x-amz-content-sha256"),
                header("x-amz-date"),
            );
            let key = path.trim_start_matches('/').to_owned();
            let (status, reply) = if header("authorization") != expected
                || header("x-amz-content-sha256") != payload
                || header("x-amz-date").len() != 16
            {
                (
                    "403 Forbidden",
                    b"<Error><Code>SignatureDoesNotMatch</Code></Error>".to_vec(),
                )
            } else {
                let mut objects = store.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                match method.as_str() {
                    "PUT" => {
                        objects.insert(key, body);
                        ("200 OK", Vec::new())
                    }
                    "GET" => match objects.get(&key) {
                        Some(b) => ("200 OK", b.clone()),
                        None => (
                            "404 Not Found",
                            b"<Error><Code>NoSuchKey</Code></Error>".to_vec(),
                        ),
                    },
                    "DELETE" => {
                        objects.remove(&key);
                        ("204 No Content", Vec::new())
                    }
                    _ => ("405 Method Not Allowed", Vec::new()),
                }
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\n\r\n",
                reply.len()
            );
            stream.write_all(response.as_bytes()).await?;
            stream.write_all(&reply).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_aws_example_request() {
        // "GET Object" example of the S3 SigV4 documentation.
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let signer = Signer {
            region: "us-east-1",
            access_key: "AKIAIOSFODNN7EXAMPLE",
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        };
        let auth = signer.sign(
            "GET",
            "/test.txt",
            &[
                ("host", "examplebucket.s3.amazonaws.com"),
                ("range", "bytes=0-9"),
                ("x-amz-content-sha256", empty),
                ("x-amz-date", "20130524T000000Z"),
            ],
            empty,
            "20130524T000000Z",
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    async fn keys_stay_under_their_tenant(store: FileStore) {
        let a = TenantId::new();
        let b = TenantId::new();
        let key = store.put(a, b"%PDF-1.4 x").await.unwrap();
        assert!(key.starts_with(&format!("t{a}/")));
        assert_eq!(store.get(a, &key).await.unwrap(), b"%PDF-1.4 x");
        assert!(matches!(
            store.get(b, &key).await,
            Err(DomainError::NotFound)
        ));
        let forged = key.replacen(&a.to_string(), &b.to_string(), 1);
        assert!(matches!(
            store.get(b, &forged).await,
            Err(DomainError::NotFound)
        ));
        for bad in [
            format!("t{a}/../t{b}/x"),
            format!("t{a}/"),
            "/etc/passwd".to_owned(),
            format!("t{a}/../../etc/passwd"),
        ] {
            assert!(
                matches!(store.get(a, &bad).await, Err(DomainError::NotFound)),
                "{bad}"
            );
        }
        store.delete(a, &key).await;
        assert!(matches!(
            store.get(a, &key).await,
            Err(DomainError::NotFound)
        ));
    }

    #[tokio::test]
    async fn local_keys_stay_under_their_tenant() {
        let dir = std::env::temp_dir().join(format!("desk-store-{}", uuid::Uuid::new_v4()));
        keys_stay_under_their_tenant(FileStore::local(&dir)).await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn s3_keys_stay_under_their_tenant_and_requests_are_signed() {
        let (endpoint, objects) = fake_s3::spawn("miz-access", "miz-secret").await.unwrap();
        let config = S3Config {
            endpoint: endpoint.clone(),
            bucket: "uploads".into(),
            region: "us-east-1".into(),
            access_key: "miz-access".into(),
            secret_key: "miz-secret".into(),
        };
        assert!(!format!("{config:?}").contains("miz-secret"));
        keys_stay_under_their_tenant(FileStore::s3(config.clone())).await;
        let tenant = TenantId::new();
        let key = FileStore::s3(config.clone())
            .put(tenant, b"x")
            .await
            .unwrap();
        assert!(
            objects
                .lock()
                .unwrap()
                .contains_key(&format!("uploads/{key}"))
        );
        // A wrong secret is refused by the store, and surfaces as an error, not a file.
        let wrong = FileStore::s3(S3Config {
            secret_key: "guess".into(),
            ..config
        });
        assert!(wrong.put(tenant, b"y").await.is_err());
        assert!(matches!(
            wrong.get(tenant, &key).await,
            Err(DomainError::Internal(_))
        ));
    }
}
