//! Platform repository: the municipalities' desk indicators (`platform.tenant_indicators`),
//! written by the `refresh_indicators` job and read by the province and platform dashboards.
//! The table holds counts and sums per municipality and Jalali month, never a citizen's data.

use crate::PlatformDb;
use crate::internal;
use crate::reports::MonthIndicators;
use desk_core::{DomainError, TenantId};
use sqlx::Row;

/// One municipality's indicators summed over a range of months.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantIndicators {
    /// The municipality.
    pub tenant_id: TenantId,
    /// Its slug.
    pub slug: String,
    /// Its Persian name.
    pub name_fa: String,
    /// Province id.
    pub province_id: i16,
    /// The sums (`month` is the range's last month).
    pub sums: MonthIndicators,
}

const COLUMNS: [&str; 25] = [
    "requests",
    "web",
    "in_person",
    "api",
    "closed",
    "closed_on_time",
    "open_overdue",
    "duration_days_sum",
    "declared_days_sum",
    "surveys",
    "transparency_sum",
    "transparency_n",
    "responsiveness_sum",
    "responsiveness_n",
    "mastery_sum",
    "mastery_n",
    "time_sum",
    "time_n",
    "systematic_sum",
    "systematic_n",
    "overall_sum",
    "overall_n",
    "sms_sent",
    "sms_failed",
    "month",
];

fn values(m: &MonthIndicators) -> [i64; 24] {
    let a = m.axes;
    [
        m.requests,
        m.web,
        m.in_person,
        m.api,
        m.closed,
        m.closed_on_time,
        m.open_overdue,
        m.duration_days_sum,
        m.declared_days_sum,
        m.surveys,
        a[0].0,
        a[0].1,
        a[1].0,
        a[1].1,
        a[2].0,
        a[2].1,
        a[3].0,
        a[3].1,
        a[4].0,
        a[4].1,
        a[5].0,
        a[5].1,
        m.sms_sent,
        m.sms_failed,
    ]
}

fn from_values(v: &[i64], month: i32) -> MonthIndicators {
    let g = |i: usize| v.get(i).copied().unwrap_or(0);
    MonthIndicators {
        month,
        requests: g(0),
        web: g(1),
        in_person: g(2),
        api: g(3),
        closed: g(4),
        closed_on_time: g(5),
        open_overdue: g(6),
        duration_days_sum: g(7),
        declared_days_sum: g(8),
        surveys: g(9),
        axes: [
            (g(10), g(11)),
            (g(12), g(13)),
            (g(14), g(15)),
            (g(16), g(17)),
            (g(18), g(19)),
            (g(20), g(21)),
        ],
        sms_sent: g(22),
        sms_failed: g(23),
    }
}

impl PlatformDb {
    /// Replaces a municipality's indicators with `months` (one transaction, this tenant only).
    pub async fn store_indicators(
        &self,
        tenant: TenantId,
        months: &[MonthIndicators],
    ) -> Result<(), DomainError> {
        let mut tx = self.pool.begin().await.map_err(internal)?;
        sqlx::query("delete from platform.tenant_indicators where tenant_id = $1")
            .bind(tenant.0)
            .execute(&mut *tx)
            .await
            .map_err(internal)?;
        let cols = COLUMNS[..24].join(", ");
        // One row per month: unnest one array per column.
        let arrays: Vec<Vec<i64>> = (0..24)
            .map(|i| months.iter().map(|m| values(m)[i]).collect())
            .collect();
        let unnest: Vec<String> = (0..24).map(|i| format!("${}::int8[]", i + 3)).collect();
        let sql = format!(
            "insert into platform.tenant_indicators (tenant_id, month, {cols})
             select $1, * from unnest($2::int4[], {})",
            unnest.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.0)
            .bind(months.iter().map(|m| m.month).collect::<Vec<i32>>());
        for a in &arrays {
            q = q.bind(a);
        }
        q.execute(&mut *tx).await.map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        Ok(())
    }

    /// Active and suspended municipalities (of one province, or all) with their indicators
    /// summed over the months `first..=last` (`year * 100 + month`); zero where none.
    pub async fn indicators(
        &self,
        province_id: Option<i16>,
        first: i32,
        last: i32,
    ) -> Result<Vec<TenantIndicators>, DomainError> {
        let sums: Vec<String> = COLUMNS[..24]
            .iter()
            .map(|c| format!("coalesce(sum(i.{c}), 0)::int8 as {c}"))
            .collect();
        let sql = format!(
            "select t.id, t.slug, t.name_fa, t.province_id, {}
               from platform.tenants t
               left join platform.tenant_indicators i
                 on i.tenant_id = t.id and i.month between $2 and $3
              where t.status <> 'archived' and ($1::smallint is null or t.province_id = $1)
              group by t.id
              order by t.slug",
            sums.join(", ")
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(province_id)
            .bind(first)
            .bind(last)
            .fetch_all(&self.pool)
            .await
            .map_err(internal)?;
        rows.iter()
            .map(|r| {
                let v: Vec<i64> = COLUMNS[..24]
                    .iter()
                    .map(|c| r.try_get::<i64, _>(*c))
                    .collect::<Result<_, _>>()
                    .map_err(internal)?;
                Ok(TenantIndicators {
                    tenant_id: TenantId(r.try_get("id").map_err(internal)?),
                    slug: r.try_get("slug").map_err(internal)?,
                    name_fa: r.try_get("name_fa").map_err(internal)?,
                    province_id: r.try_get("province_id").map_err(internal)?,
                    sums: from_values(&v, last),
                })
            })
            .collect()
    }
}
