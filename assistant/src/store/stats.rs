//! Daily aggregates (`daily_stats`): counters per day, metric and key, added to with one
//! portable upsert, so concurrent writers never lose a count. They hold no personal data and
//! outlive the retention purge, so the dashboard keeps its history.

use serde::Serialize;
use sqlx::Row;

use super::{Db, Result};

/// One aggregate.
#[derive(Debug, Clone, Serialize)]
pub struct StatRow {
    /// `YYYY-MM-DD`, server local time.
    pub day: String,
    /// What is counted.
    pub metric: String,
    /// Which one (an intent, a reason, a bucket…; empty for plain counts).
    pub key: String,
    /// The count (or sum, or peak).
    pub value: i64,
}

/// The day of a time (ms), in the server's local time.
pub fn day_of(ms: i64) -> String {
    use chrono::TimeZone;
    chrono::Local
        .timestamp_millis_opt(ms)
        .single()
        .unwrap_or_else(chrono::Local::now)
        .format("%Y-%m-%d")
        .to_string()
}

impl Db {
    /// Adds `by` to a counter of `day`.
    pub async fn bump_stat(&self, day: &str, metric: &str, key: &str, by: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO daily_stats (day, metric, key, value) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (day, metric, key) DO UPDATE SET value = daily_stats.value + excluded.value",
        )
        .bind(day)
        .bind(metric)
        .bind(key)
        .bind(by)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Raises a value of `day` to `value` if it is lower (peaks).
    pub async fn raise_stat(&self, day: &str, metric: &str, key: &str, value: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO daily_stats (day, metric, key, value) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (day, metric, key) DO UPDATE SET value = \
             CASE WHEN excluded.value > daily_stats.value THEN excluded.value ELSE daily_stats.value END",
        )
        .bind(day)
        .bind(metric)
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Counts now, logging instead of failing: a statistic never breaks a citizen's request.
    pub async fn count(&self, metric: &str, key: &str) {
        let day = day_of(super::now_ms());
        if let Err(e) = self.bump_stat(&day, metric, key, 1).await {
            tracing::warn!(error = %e, metric, "daily statistic not counted");
        }
    }

    /// Every aggregate from `from_day` on, by day.
    pub async fn stats_since(&self, from_day: &str) -> Result<Vec<StatRow>> {
        let rows = sqlx::query(
            "SELECT day, metric, key, value FROM daily_stats WHERE day >= $1 ORDER BY day, metric, key",
        )
        .bind(from_day)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StatRow {
                    day: r.try_get("day")?,
                    metric: r.try_get("metric")?,
                    key: r.try_get("key")?,
                    value: r.try_get("value")?,
                })
            })
            .collect()
    }

    /// Waiting escalations now (the queue sampler).
    pub async fn waiting_count(&self) -> Result<i64> {
        Ok(
            sqlx::query("SELECT COUNT(*) FROM escalations WHERE status = 'waiting'")
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?,
        )
    }
}
