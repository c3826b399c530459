//! Where uploaded documents live: an object store keyed under each municipality's own prefix
//! (`t<tenant id>/…`). The local filesystem is the default. Keys are random, never derived from
//! what a citizen typed, and a key is only honoured under the prefix of the tenant asking.

use desk_core::{DomainError, TenantId};
use std::path::{Path, PathBuf};

/// A local-filesystem object store rooted at one directory.
#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
}

fn io_error(what: &str, e: std::io::Error) -> DomainError {
    DomainError::Internal(anyhow::anyhow!("file store {what}: {e}"))
}

impl FileStore {
    /// A store writing under `root` (created on first write).
    pub fn local(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory files live under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn prefix(tenant: TenantId) -> String {
        format!("t{tenant}/")
    }

    /// The path of `key`, only if it is a well-formed key under `tenant`'s prefix.
    fn path_of(&self, tenant: TenantId, key: &str) -> Result<PathBuf, DomainError> {
        let name = key
            .strip_prefix(&Self::prefix(tenant))
            .filter(|n| n.len() == 32 && n.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or(DomainError::NotFound)?;
        Ok(self
            .root
            .join(format!("t{tenant}"))
            .join(&name[..2])
            .join(name))
    }

    /// Stores `bytes` for `tenant` and returns the new key. Written to a temporary name first,
    /// so a reader never sees half a file.
    pub async fn put(&self, tenant: TenantId, bytes: &[u8]) -> Result<String, DomainError> {
        let key = format!("{}{}", Self::prefix(tenant), uuid::Uuid::new_v4().simple());
        let path = self.path_of(tenant, &key)?;
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
        Ok(key)
    }

    /// The content of `key`; `NotFound` for a key of another tenant or a missing file.
    pub async fn get(&self, tenant: TenantId, key: &str) -> Result<Vec<u8>, DomainError> {
        let path = self.path_of(tenant, key)?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(DomainError::NotFound),
            Err(e) => Err(io_error("read", e)),
        }
    }

    /// Removes `key` (files of a submission that did not commit). Missing is fine.
    pub async fn delete(&self, tenant: TenantId, key: &str) {
        if let Ok(path) = self.path_of(tenant, key)
            && let Err(e) = tokio::fs::remove_file(&path).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, "removing an orphaned upload failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_stay_under_their_tenant() {
        let dir = std::env::temp_dir().join(format!("desk-store-{}", uuid::Uuid::new_v4()));
        let store = FileStore::local(&dir);
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
        let _ = std::fs::remove_dir_all(&dir);
    }
}
