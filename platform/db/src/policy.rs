//! Storage of casbin policies in `platform.casbin_rule` (same layout as casbin's sqlx-adapter).

use crate::internal;
use crate::platform::PlatformDb;
use desk_core::DomainError;
use sqlx::Row;

/// One stored casbin rule: its type (`p`, `g`, `g2`) and up to six values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PolicyRule {
    /// `p`, `g`, `g2`, ...
    pub ptype: String,
    /// The rule's values, without trailing empty ones.
    pub values: Vec<String>,
}

fn padded(values: &[String]) -> Result<[&str; 6], DomainError> {
    if values.len() > 6 {
        return Err(DomainError::Internal(anyhow::anyhow!(
            "a policy rule has more than 6 values"
        )));
    }
    let mut out = [""; 6];
    for (slot, v) in out.iter_mut().zip(values) {
        *slot = v.as_str();
    }
    Ok(out)
}

impl PlatformDb {
    /// Every stored rule.
    pub async fn policy_rules(&self) -> Result<Vec<PolicyRule>, DomainError> {
        let rows = sqlx::query(
            "select ptype, v0, v1, v2, v3, v4, v5 from platform.casbin_rule order by id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(internal)?;
        rows.iter()
            .map(|r| {
                let mut values = Vec::with_capacity(6);
                for col in ["v0", "v1", "v2", "v3", "v4", "v5"] {
                    values.push(r.try_get::<String, _>(col).map_err(internal)?);
                }
                while values.last().is_some_and(String::is_empty) {
                    values.pop();
                }
                Ok(PolicyRule {
                    ptype: r.try_get("ptype").map_err(internal)?,
                    values,
                })
            })
            .collect()
    }

    /// Stores rules; existing ones are left alone. Returns whether any row was added.
    pub async fn insert_policy_rules(&self, rules: &[PolicyRule]) -> Result<bool, DomainError> {
        let mut tx = self.pool.begin().await.map_err(internal)?;
        let added = insert_rules(&mut tx, rules).await?;
        tx.commit().await.map_err(internal)?;
        Ok(added)
    }

    /// Deletes exactly these rules. Returns whether any row was removed.
    pub async fn delete_policy_rules(&self, rules: &[PolicyRule]) -> Result<bool, DomainError> {
        let mut tx = self.pool.begin().await.map_err(internal)?;
        let mut removed = 0;
        for rule in rules {
            let v = padded(&rule.values)?;
            removed += sqlx::query(
                "delete from platform.casbin_rule
                 where ptype = $1 and v0 = $2 and v1 = $3 and v2 = $4 and v3 = $5 and v4 = $6 and v5 = $7",
            )
            .bind(&rule.ptype)
            .bind(v[0])
            .bind(v[1])
            .bind(v[2])
            .bind(v[3])
            .bind(v[4])
            .bind(v[5])
            .execute(&mut *tx)
            .await
            .map_err(internal)?
            .rows_affected();
        }
        tx.commit().await.map_err(internal)?;
        Ok(removed > 0)
    }

    /// Deletes the rules of `ptype` whose values from `field_index` on equal `values`
    /// (an empty value matches anything).
    pub async fn delete_policy_filtered(
        &self,
        ptype: &str,
        field_index: usize,
        values: &[String],
    ) -> Result<bool, DomainError> {
        let mut wanted: Vec<Option<&str>> = vec![None; 6];
        for (i, v) in values.iter().enumerate() {
            let slot = wanted.get_mut(field_index + i).ok_or_else(|| {
                DomainError::Internal(anyhow::anyhow!("policy filter reaches past v5"))
            })?;
            if !v.is_empty() {
                *slot = Some(v.as_str());
            }
        }
        let done = sqlx::query(
            "delete from platform.casbin_rule where ptype = $1
               and ($2::text is null or v0 = $2) and ($3::text is null or v1 = $3)
               and ($4::text is null or v2 = $4) and ($5::text is null or v3 = $5)
               and ($6::text is null or v4 = $6) and ($7::text is null or v5 = $7)",
        )
        .bind(ptype)
        .bind(wanted[0])
        .bind(wanted[1])
        .bind(wanted[2])
        .bind(wanted[3])
        .bind(wanted[4])
        .bind(wanted[5])
        .execute(&self.pool)
        .await
        .map_err(internal)?;
        Ok(done.rows_affected() > 0)
    }

    /// Replaces every stored rule with `rules`.
    pub async fn replace_policy_rules(&self, rules: &[PolicyRule]) -> Result<(), DomainError> {
        let mut tx = self.pool.begin().await.map_err(internal)?;
        sqlx::query("delete from platform.casbin_rule")
            .execute(&mut *tx)
            .await
            .map_err(internal)?;
        insert_rules(&mut tx, rules).await?;
        tx.commit().await.map_err(internal)
    }
}

pub(crate) async fn insert_rules(
    conn: &mut sqlx::PgConnection,
    rules: &[PolicyRule],
) -> Result<bool, DomainError> {
    let mut added = 0;
    for rule in rules {
        let v = padded(&rule.values)?;
        added += sqlx::query(
            "insert into platform.casbin_rule (ptype, v0, v1, v2, v3, v4, v5)
                 values ($1, $2, $3, $4, $5, $6, $7) on conflict do nothing",
        )
        .bind(&rule.ptype)
        .bind(v[0])
        .bind(v[1])
        .bind(v[2])
        .bind(v[3])
        .bind(v[4])
        .bind(v[5])
        .execute(&mut *conn)
        .await
        .map_err(internal)?
        .rows_affected();
    }
    Ok(added > 0)
}

impl crate::PlatformDb {
    /// Ids of the staff members holding `role` (a role key such as `department_head`) in the
    /// municipality `tenant`, read from the stored policies.
    pub async fn staff_with_role(
        &self,
        tenant: desk_core::TenantId,
        role: &str,
    ) -> Result<Vec<i64>, DomainError> {
        let subjects: Vec<String> = sqlx::query_scalar(
            "select v0 from platform.casbin_rule where ptype = 'g' and v1 = $1 and v2 = $2",
        )
        .bind(role)
        .bind(format!("tenant:{tenant}"))
        .fetch_all(&self.pool)
        .await
        .map_err(crate::internal)?;
        let prefix = format!("staff:{tenant}:");
        Ok(subjects
            .iter()
            .filter_map(|s| s.strip_prefix(&prefix)?.parse().ok())
            .collect())
    }
}
