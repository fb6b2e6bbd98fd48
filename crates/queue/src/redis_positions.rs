//! [`PositionBoard`] on Redis.
//!
//! Key layout (prefix `P`):
//! - `P{pos}`: hash, nurse id → `lat,lng,accuracy_m,recorded_at_ms,cell,org`;
//! - `P{geo}:<org>`: geo set of the organisation's nurses (`GEOSEARCH`-able);
//! - `P{cell}:<cell hex>`: set of the nurses whose latest fix is in the cell;
//! - `P{trail}`: stream of fixes, trimmed to about `trail_max` entries.
//!
//! A batch is one pipeline: one round trip however many nurses moved. On a
//! Redis Cluster the four families (`pos`, `geo`, `cell`, `trail`: each
//! one hash tag, so one slot) are four pipelines sent at once, since a
//! pipeline's keys must share a slot there.

use async_trait::async_trait;

use crate::connection::{Conn, Pipes};
use crate::{PositionBoard, PositionRecord, QueueError};

/// Hash tags of the key families, one slot each on a cluster.
const POS: &str = "pos";
const GEO: &str = "geo";
const CELL: &str = "cell";
const TRAIL: &str = "trail";

/// Latest positions and the trail in Redis. Clones share the connection.
#[derive(Clone)]
pub struct RedisPositions {
    commands: Conn,
    command_timeout: std::time::Duration,
    prefix: String,
    trail_max: usize,
}

impl std::fmt::Debug for RedisPositions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPositions")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisPositions {
    pub(crate) fn new(
        commands: Conn,
        prefix: String,
        trail_max: usize,
        command_timeout: std::time::Duration,
    ) -> Self {
        Self {
            commands,
            command_timeout,
            prefix,
            trail_max,
        }
    }

    fn pos_key(&self) -> String {
        format!("{}{{{POS}}}", self.prefix)
    }

    fn geo_key(&self, org: &str) -> String {
        format!("{}{{{GEO}}}:{org}", self.prefix)
    }

    fn cell_key(&self, cell: u64) -> String {
        format!("{}{{{CELL}}}:{cell:x}", self.prefix)
    }

    fn trail_key(&self) -> String {
        format!("{}{{{TRAIL}}}", self.prefix)
    }

    fn pipes(&self) -> Pipes {
        Pipes::new(self.commands.is_cluster())
    }
}

fn encode(rec: &PositionRecord) -> String {
    format!(
        "{},{},{},{},{},{}",
        rec.lat, rec.lng, rec.accuracy_m, rec.recorded_at_unix_ms, rec.cell, rec.org_id
    )
}

fn decode(nurse_id: &str, value: &str) -> Option<PositionRecord> {
    let mut parts = value.splitn(6, ',');
    let lat = parts.next()?.parse().ok()?;
    let lng = parts.next()?.parse().ok()?;
    let accuracy_m = parts.next()?.parse().ok()?;
    let recorded_at_unix_ms = parts.next()?.parse().ok()?;
    let cell = parts.next()?.parse().ok()?;
    let org_id = parts.next()?.to_owned();
    Some(PositionRecord {
        nurse_id: nurse_id.to_owned(),
        org_id,
        lat,
        lng,
        accuracy_m,
        recorded_at_unix_ms,
        cell,
        previous_cell: None,
        cell_changed: false,
    })
}

fn failed(e: redis::RedisError) -> QueueError {
    QueueError::Unavailable(e.to_string())
}

#[async_trait]
impl PositionBoard for RedisPositions {
    async fn record(
        &self,
        latest: &[PositionRecord],
        trail: &[PositionRecord],
    ) -> Result<(), QueueError> {
        if latest.is_empty() && trail.is_empty() {
            return Ok(());
        }
        let mut pipes = self.pipes();
        if !latest.is_empty() {
            let pos = self.pos_key();
            let fields: Vec<(&str, String)> = latest
                .iter()
                .map(|r| (r.nurse_id.as_str(), encode(r)))
                .collect();
            pipes.tagged(POS).hset_multiple(&pos, &fields).ignore();
            // One GEOADD per organisation present in the batch.
            let mut by_org: std::collections::BTreeMap<&str, Vec<(f64, f64, &str)>> =
                std::collections::BTreeMap::new();
            for r in latest {
                by_org.entry(r.org_id.as_str()).or_default().push((
                    r.lng,
                    r.lat,
                    r.nurse_id.as_str(),
                ));
            }
            for (org, members) in by_org {
                let mut cmd = redis::cmd("GEOADD");
                cmd.arg(self.geo_key(org));
                for (lng, lat, id) in members {
                    cmd.arg(lng).arg(lat).arg(id);
                }
                pipes.tagged(GEO).add_command(cmd).ignore();
            }
            for r in latest {
                if let Some(prev) = r.previous_cell.filter(|p| *p != r.cell) {
                    pipes
                        .tagged(CELL)
                        .srem(self.cell_key(prev), &r.nurse_id)
                        .ignore();
                }
                if r.cell_changed {
                    pipes
                        .tagged(CELL)
                        .sadd(self.cell_key(r.cell), &r.nurse_id)
                        .ignore();
                }
            }
        }
        if !trail.is_empty() {
            let key = self.trail_key();
            for r in trail {
                let mut cmd = redis::cmd("XADD");
                cmd.arg(&key)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(self.trail_max)
                    .arg("*")
                    .arg("n")
                    .arg(&r.nurse_id)
                    .arg("p")
                    .arg(encode(r));
                pipes.tagged(TRAIL).add_command(cmd).ignore();
            }
        }
        pipes.run(&self.commands).await.map_err(failed)
    }

    async fn latest(
        &self,
        nurse_ids: &[String],
    ) -> Result<Vec<Option<PositionRecord>>, QueueError> {
        if nurse_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.commands.clone();
        // Read on request paths (an en-route nurse's position): bounded.
        let values: Vec<Option<String>> = crate::redis_queue::bounded(
            self.command_timeout,
            redis::cmd("HMGET")
                .arg(self.pos_key())
                .arg(nurse_ids)
                .query_async(&mut conn),
        )
        .await?;
        Ok(nurse_ids
            .iter()
            .zip(values)
            .map(|(id, v)| v.and_then(|v| decode(id, &v)))
            .collect())
    }

    async fn nurses_in_cell(&self, cell: u64) -> Result<Vec<String>, QueueError> {
        let mut conn = self.commands.clone();
        let mut ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.cell_key(cell))
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        ids.sort();
        Ok(ids)
    }

    async fn forget(
        &self,
        nurse_id: &str,
        org_id: &str,
        cell: Option<u64>,
    ) -> Result<(), QueueError> {
        let mut conn = self.commands.clone();
        let known: Option<String> = redis::cmd("HGET")
            .arg(self.pos_key())
            .arg(nurse_id)
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        let known_cell = known.and_then(|v| decode(nurse_id, &v)).map(|r| r.cell);
        let mut pipes = self.pipes();
        pipes.tagged(POS).hdel(self.pos_key(), nurse_id).ignore();
        pipes
            .tagged(GEO)
            .zrem(self.geo_key(org_id), nurse_id)
            .ignore();
        for c in [known_cell, cell].into_iter().flatten() {
            pipes.tagged(CELL).srem(self.cell_key(c), nurse_id).ignore();
        }
        pipes.run(&self.commands).await.map_err(failed)
    }

    async fn trail(&self, max: usize) -> Result<Vec<PositionRecord>, QueueError> {
        let mut conn = self.commands.clone();
        let reply: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(self.trail_key())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(max)
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        Ok(reply
            .ids
            .iter()
            .filter_map(|entry| {
                let n: String = entry.get("n")?;
                let p: String = entry.get("p")?;
                decode(&n, &p)
            })
            .collect())
    }
}
