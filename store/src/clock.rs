//! Where the manual clock (`serve --clock manual`) stands, kept across
//! restarts (the `manual_clock` table). Times are RFC 3339 UTC with fixed
//! nanoseconds, so text order is time order and the clock never moves
//! back through here.

use chrono::{DateTime, Utc};

use crate::sql;
use crate::{Store, StoreError};

fn text(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

impl Store {
    /// The manual clock's last recorded time, if it ever ran.
    pub async fn manual_clock(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let rows = sql::fetch(self, "SELECT now FROM manual_clock WHERE id = 1", &[]).await?;
        rows.first()
            .and_then(|r| r["now"].as_str())
            .map(|s| {
                s.parse().map_err(|e| StoreError::CorruptRow {
                    table: "manual_clock",
                    key: "1".into(),
                    reason: format!("{s:?}: {e}"),
                })
            })
            .transpose()
    }

    /// Records that the manual clock reached `now` (never moves it back).
    pub async fn record_manual_clock(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        sql::exec_pool(
            self,
            "INSERT INTO manual_clock (id, now) VALUES (1, ?) \
             ON CONFLICT (id) DO UPDATE SET now = excluded.now WHERE manual_clock.now < excluded.now",
            &[text(now).into()],
        )
        .await?;
        Ok(())
    }
}
