//! Demand forecast and repositioning in the live platform (issue 18):
//!
//! - the [`ForecastBoard`]: each organisation's forecast of orders per
//!   resolution-7 H3 cell and hour, learnt from its own order history
//!   (the core's [`DemandForecast`]: exponential smoothing per cell and
//!   local hour, complete days only) and learnt again every
//!   `dispatch.reposition_relearn_s`; and the suggestions standing now;
//! - the [`Repositioner`], a worker that every `dispatch.reposition_every_s`
//!   takes the idle nurses of each organisation (on shift, a fresh fix,
//!   connected, no offer and no job — the fleet's view, checked against the
//!   database), asks the core's [`suggest_by_kind`] where they should wait so
//!   that most of the next hour's expected orders are within reach of a
//!   nurse who holds their skills (the kinds of orders and their shares by
//!   hour: the board's [`SkillMix`], learnt with the forecast; each nurse's
//!   skills: the fleet's), and sends each
//!   nurse whose spot is far enough a `suggestion` frame through her channel;
//!   the same spot is not sent again until its `until` has passed; a nurse
//!   who gets work or leaves the shift is sent `suggestion_cleared`. Nurses
//!   may ignore suggestions: nothing else depends on them;
//! - `GET /v1/dispatch/forecast`: the next hour's expected orders per cell
//!   and the suggestions standing, for the caller's organisation only.
//!
//! The pure parts (the forecast, the covering model and its greedy) are
//! `yixin-dispatch-core`'s, shared with the simulator that reports the
//! forecast's error. The board lives in this instance's memory: with several
//! dispatcher instances each one learns the same forecast from the same
//! database, and each sends its suggestions (a phone just replaces its card).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix_web::{get, web};
use chrono::{DateTime, TimeDelta, Utc};
use h3o::{CellIndex, LatLng};
use serde::Serialize;
use tokio::sync::watch;
use utoipa::ToSchema;
use yixin_auth::CoordinatorCaller;
use yixin_contracts::reposition::{
    ClearedReason, WaitingSpot, suggestion_cleared, suggestion_to_nurse,
};
use yixin_dispatch_core::forecast::{DemandForecast, ForecastSettings, SkillMix};
use yixin_dispatch_core::reposition::{IdleNurse, RepositionSettings, suggest_by_kind};
use yixin_dispatch_core::{EtaSettings, Fleet, InvalidSettings};
use yixin_domain::{GeoPoint, NurseId, OrgId, Skill};
use yixin_platform::{ApiError, ErrorBody, WorkerHandle, Workers};
use yixin_queue::Queue;
use yixin_store::{Store, StoreError};

use crate::Dispatcher;
use crate::coordinator::orders::Location;
use crate::coordinator::{org_of, store_error};

/// The forecast and repositioning settings (`dispatch.reposition_*`),
/// checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RepositionConfig {
    /// Zero: no suggestions (the forecast is still served).
    pub every: Duration,
    pub relearn: Duration,
    pub history: TimeDelta,
    pub history_max: u64,
    pub hold: TimeDelta,
    pub forecast: ForecastSettings,
    pub suggest: RepositionSettings,
}

impl Default for RepositionConfig {
    fn default() -> Self {
        let defaults = yixin_platform::config::DispatchSettings::default();
        Self::from_settings(&defaults).unwrap_or(Self {
            every: Duration::from_secs(60),
            relearn: Duration::from_secs(3_600),
            history: TimeDelta::days(28),
            history_max: 100_000,
            hold: TimeDelta::minutes(30),
            forecast: ForecastSettings::default(),
            suggest: RepositionSettings::default(),
        })
    }
}

impl RepositionConfig {
    pub fn from_settings(
        s: &yixin_platform::config::DispatchSettings,
    ) -> Result<Self, InvalidSettings> {
        let forecast = ForecastSettings {
            alpha: s.reposition_alpha,
            ..ForecastSettings::default()
        };
        forecast
            .validate()
            .map_err(|e| InvalidSettings::new("dispatch.reposition_alpha", e.reason))?;
        let suggest = RepositionSettings {
            reach_s: s.reposition_reach_s,
            eta: EtaSettings::new(s.detour_factor, s.speed_kmh, s.fixed_overhead_s)?,
            max_move_m: s.reposition_max_move_m,
            min_move_m: s.reposition_min_move_m,
            ..RepositionSettings::default()
        };
        suggest
            .validate()
            .map_err(|e| InvalidSettings::new("dispatch.reposition", e.reason))?;
        if s.reposition_reach_s == 0 || s.reposition_history_days == 0 || s.reposition_hold_s == 0 {
            return Err(InvalidSettings::new(
                "dispatch.reposition",
                "reposition_reach_s, reposition_history_days and reposition_hold_s must be positive",
            ));
        }
        Ok(Self {
            every: Duration::from_secs(s.reposition_every_s),
            relearn: Duration::from_secs(s.reposition_relearn_s.max(1)),
            history: TimeDelta::days(i64::from(s.reposition_history_days)),
            history_max: s.reposition_history_max.max(1),
            hold: TimeDelta::seconds(i64::try_from(s.reposition_hold_s).unwrap_or(1_800)),
            forecast,
            suggest,
        })
    }
}

/// A suggestion standing for one nurse.
#[derive(Debug, Clone, PartialEq)]
pub struct Standing {
    pub org: OrgId,
    /// Where she was when it was made.
    pub from: GeoPoint,
    pub spot: WaitingSpot,
    pub made_at: DateTime<Utc>,
}

/// The kinds of orders: the skill sets they require.
pub type Kinds = SkillMix<BTreeSet<Skill>>;

/// An organisation's learnt forecast and mix of kinds, and when they were
/// learnt.
type Learnt = (Instant, Arc<DemandForecast>, Arc<Kinds>);

/// Each organisation's forecast and mix of kinds (learnt together, at most
/// every `relearn`) and the suggestions standing now. Shared by the worker and the coordinator API.
pub struct ForecastBoard {
    pub config: RepositionConfig,
    forecasts: RwLock<HashMap<OrgId, Learnt>>,
    standing: RwLock<HashMap<NurseId, Standing>>,
}

impl ForecastBoard {
    pub fn new(config: RepositionConfig) -> Arc<Self> {
        Arc::new(Self {
            config,
            forecasts: RwLock::new(HashMap::new()),
            standing: RwLock::new(HashMap::new()),
        })
    }

    /// The organisation's forecast, learnt again from its history when
    /// older than `relearn`.
    pub async fn forecast(
        &self,
        store: &Store,
        org: &OrgId,
        now: DateTime<Utc>,
    ) -> Result<Arc<DemandForecast>, StoreError> {
        Ok(self.learnt(store, org, now).await?.0)
    }

    /// The organisation's forecast and mix of kinds of orders, learnt again
    /// together from the same history when older than `relearn`.
    pub async fn learnt(
        &self,
        store: &Store,
        org: &OrgId,
        now: DateTime<Utc>,
    ) -> Result<(Arc<DemandForecast>, Arc<Kinds>), StoreError> {
        if let Ok(guard) = self.forecasts.read()
            && let Some((at, f, mix)) = guard.get(org)
            && at.elapsed() < self.config.relearn
        {
            return Ok((f.clone(), mix.clone()));
        }
        let history = store
            .order_history(org, now - self.config.history, self.config.history_max)
            .await?;
        let points: Vec<(GeoPoint, DateTime<Utc>)> =
            history.iter().map(|p| (p.location, p.created_at)).collect();
        let learnt = Arc::new(DemandForecast::fit(self.config.forecast, &points, now));
        let mix = Arc::new(SkillMix::fit(
            self.config.forecast.tz,
            history.into_iter().map(|p| {
                let kind: BTreeSet<Skill> = p.required_skills.into_iter().collect();
                (p.created_at, kind)
            }),
            now,
        ));
        tracing::debug!(org = %org.as_str(), orders = points.len(), days = learnt.days_learnt(), kinds = mix.kinds().len(), "demand forecast learnt");
        if let Ok(mut guard) = self.forecasts.write() {
            guard.insert(org.clone(), (Instant::now(), learnt.clone(), mix.clone()));
        }
        Ok((learnt, mix))
    }

    /// The suggestions standing for the organisation's nurses.
    pub fn standing(&self, org: &OrgId) -> Vec<(NurseId, Standing)> {
        let guard = self.standing.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<(NurseId, Standing)> = guard
            .iter()
            .filter(|(_, s)| &s.org == org)
            .map(|(id, s)| (*id, s.clone()))
            .collect();
        out.sort_by_key(|(id, _)| *id);
        out
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<NurseId, Standing>> {
        self.standing.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Orders expected next hour (`demand`) whose cell centre is within reach
/// of `from` (what a suggestion tells the nurse).
pub fn reachable_orders(
    from: &GeoPoint,
    demand: &[(CellIndex, f64)],
    settings: &RepositionSettings,
) -> f64 {
    demand
        .iter()
        .filter_map(|(cell, x)| {
            let ll = LatLng::from(*cell);
            let centre = GeoPoint::new(ll.lat(), ll.lng()).ok()?;
            (settings.eta.eta(from, &centre).seconds <= settings.reach_s).then_some(*x)
        })
        .sum()
}

/// A nurse as the worker sees her in the fleet.
#[derive(Debug, Clone)]
struct Seen {
    id: NurseId,
    org: OrgId,
    at: Option<GeoPoint>,
    /// The skills she holds (the roster's, as the fleet has them).
    skills: BTreeSet<Skill>,
    /// Free to take work (on shift, fresh, present, no offer, no job).
    idle: bool,
    /// Holds an offer or a job.
    engaged: bool,
}

/// The suggestion worker of one dispatcher instance.
pub struct Repositioner {
    pub store: Store,
    pub queue: Arc<dyn Queue>,
    /// The engine's fleet: who is idle, and where.
    pub fleet: Arc<RwLock<Fleet>>,
    pub board: Arc<ForecastBoard>,
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    pub sent: usize,
    pub cleared: usize,
}

impl Repositioner {
    /// Supervised by `workers` (not critical: suggestions are advice);
    /// `None` when `dispatch.reposition_every_s` is 0.
    pub fn spawn(
        self: Arc<Self>,
        workers: &Workers,
        shutdown: watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if self.board.config.every.is_zero() {
            return None;
        }
        let stop = shutdown.clone();
        Some(workers.supervise(
            "dispatcher.reposition",
            false,
            shutdown,
            move |health: WorkerHandle| {
                let (me, mut stop) = (self.clone(), stop.clone());
                async move {
                    loop {
                        match me.round(Utc::now()).await {
                            Ok(_) => health.up(),
                            Err(e) => {
                                health.down(e.to_string());
                                tracing::warn!(error = %e, "reposition round failed; will retry");
                            }
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(me.board.config.every) => {}
                            _ = stop.changed() => return,
                        }
                    }
                }
            },
        ))
    }

    fn snapshot(&self) -> Vec<Seen> {
        let fleet = self.fleet.read().unwrap_or_else(|p| p.into_inner());
        let mut seen: Vec<Seen> = fleet
            .on_shift()
            .into_iter()
            .filter_map(|id| {
                let n = fleet.get(&id)?;
                Some(Seen {
                    id,
                    org: n.org.clone(),
                    at: n.last_fix.map(|f| f.point),
                    skills: n.skills.iter().cloned().collect(),
                    idle: n.is_available(),
                    engaged: n.job.is_some() || n.offer.is_some(),
                })
            })
            .collect();
        seen.sort_by_key(|s| s.id);
        seen
    }

    /// One round: suggestions made, repeated when run out, cleared when
    /// they no longer hold.
    pub async fn round(&self, now: DateTime<Utc>) -> Result<Round, StoreError> {
        let mut seen = self.snapshot();
        // The database has the last word on who holds an offer or a job.
        let idle_ids: Vec<NurseId> = seen.iter().filter(|s| s.idle).map(|s| s.id).collect();
        let engaged = self.store.engaged_nurses(&idle_ids).await?;
        for s in &mut seen {
            if engaged.contains(&s.id) {
                s.idle = false;
                s.engaged = true;
            }
        }
        let mut round = Round::default();
        round.cleared += self.clear_gone(&seen, now).await;

        let mut orgs: Vec<OrgId> = seen
            .iter()
            .filter(|s| s.idle)
            .map(|s| s.org.clone())
            .collect();
        orgs.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        orgs.dedup();
        let config = self.board.config;
        for org in orgs {
            let (forecast, mix) = self.board.learnt(&self.store, &org, now).await?;
            let demand = forecast.hour_ahead(now);
            // Each nurse covers the kinds of orders whose skills she holds
            // (with no history yet: one kind, every nurse's).
            let shares = mix.shares(now);
            let of_org = seen.iter().filter(|s| s.org == org);
            let idle_kinds: Vec<(IdleNurse, u64)> = of_org
                .clone()
                .filter(|s| s.idle)
                .filter_map(|s| {
                    Some((
                        IdleNurse {
                            nurse_id: s.id,
                            at: s.at?,
                        },
                        mix.mask(&s.skills),
                    ))
                })
                .collect();
            let idle: Vec<IdleNurse> = idle_kinds.iter().map(|(n, _)| n.clone()).collect();
            let others: Vec<(GeoPoint, u64)> = of_org
                .filter(|s| !s.idle)
                .filter_map(|s| Some((s.at?, mix.mask(&s.skills))))
                .collect();
            let suggestions =
                suggest_by_kind(&idle_kinds, &others, &demand, &shares, &config.suggest);
            let chosen: HashSet<NurseId> = suggestions.iter().map(|s| s.nurse_id).collect();
            for s in suggestions {
                let Some(from) = idle.iter().find(|n| n.nurse_id == s.nurse_id).map(|n| n.at)
                else {
                    continue;
                };
                let cell = s.cell.to_string();
                let repeat = self
                    .board
                    .standing
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&s.nurse_id)
                    .is_some_and(|old| old.spot.cell == cell && old.spot.until > now);
                if repeat {
                    continue;
                }
                let spot = WaitingSpot {
                    to: s.to,
                    cell,
                    expected_orders: reachable_orders(&s.to, &demand, &config.suggest),
                    until: now + config.hold,
                    distance_m: from.distance_m(&s.to).round() as u32,
                };
                self.send(&suggestion_to_nurse(s.nurse_id, &org, &spot, now))
                    .await;
                metrics::counter!("reposition_suggestions_total").increment(1);
                tracing::info!(nurse_id = %s.nurse_id, cell = %spot.cell, expected_orders = spot.expected_orders, distance_m = spot.distance_m, "waiting spot suggested");
                self.board.write().insert(
                    s.nurse_id,
                    Standing {
                        org: org.clone(),
                        from,
                        spot,
                        made_at: now,
                    },
                );
                round.sent += 1;
            }
            // An idle nurse the greedy no longer moves: her old suggestion is
            // withdrawn unless she is already there (then it still holds).
            let withdrawn: Vec<NurseId> = {
                let board = self
                    .board
                    .standing
                    .read()
                    .unwrap_or_else(|p| p.into_inner());
                idle.iter()
                    .filter(|n| !chosen.contains(&n.nurse_id))
                    .filter(|n| {
                        board.get(&n.nurse_id).is_some_and(|old| {
                            old.spot.until <= now
                                || n.at.distance_m(&old.spot.to) > config.suggest.min_move_m
                        })
                    })
                    .map(|n| n.nurse_id)
                    .collect()
            };
            for id in withdrawn {
                self.board.write().remove(&id);
                self.send(&suggestion_cleared(id, &org, ClearedReason::Withdrawn, now))
                    .await;
                round.cleared += 1;
            }
        }
        Ok(round)
    }

    /// Suggestions of nurses no longer idle are cleared (and told).
    async fn clear_gone(&self, seen: &[Seen], now: DateTime<Utc>) -> usize {
        let by_id: HashMap<NurseId, &Seen> = seen.iter().map(|s| (s.id, s)).collect();
        let gone: Vec<(NurseId, OrgId, ClearedReason)> = {
            let board = self
                .board
                .standing
                .read()
                .unwrap_or_else(|p| p.into_inner());
            board
                .iter()
                .filter_map(|(id, st)| match by_id.get(id) {
                    Some(s) if s.idle => None,
                    Some(s) if s.engaged => Some((*id, st.org.clone(), ClearedReason::Engaged)),
                    // Off shift, stale or gone offline.
                    _ => Some((*id, st.org.clone(), ClearedReason::OffShift)),
                })
                .collect()
        };
        for (id, org, reason) in &gone {
            self.board.write().remove(id);
            self.send(&suggestion_cleared(*id, org, *reason, now)).await;
        }
        gone.len()
    }

    async fn send(&self, b: &yixin_contracts::Broadcast) {
        if let Err(e) = self.queue.broadcast(&b.channel, &b.payload).await {
            tracing::warn!(channel = %b.channel, error = %e, "suggestion not sent");
        }
    }
}

/// One cell's expected orders in the coming hour.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ForecastCell {
    /// The H3 cell (resolution 7), as its hex string.
    #[schema(example = "8740a6e4cffffff")]
    pub cell: String,
    pub center: Location,
    /// The outline, in order, not closed.
    pub boundary: Vec<Location>,
    /// Orders expected in the cell in the hour after `at`.
    pub expected_orders: f64,
}

/// A suggestion standing for one of the organisation's nurses.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SuggestionView {
    pub nurse_id: String,
    /// Where she was when it was made.
    pub from: Location,
    /// Where she is asked to wait.
    pub location: Location,
    pub cell: String,
    /// Orders expected next hour within reach of `location`.
    pub expected_orders: f64,
    pub distance_m: u32,
    pub made_at: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// The organisation's demand forecast for the next hour and the waiting
/// spots suggested to its idle nurses.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ForecastView {
    pub at: DateTime<Utc>,
    /// The H3 resolution of every cell (7).
    pub resolution: u8,
    /// Complete local days of history the forecast learnt from (0: none
    /// yet, and no cell is listed).
    pub days_learnt: u32,
    /// Cells with orders expected in the hour after `at`, most first.
    pub cells: Vec<ForecastCell>,
    /// Sum of `cells`' expected orders.
    pub expected_orders: f64,
    pub suggestions: Vec<SuggestionView>,
}

fn location(ll: LatLng) -> Location {
    Location {
        lat: ll.lat(),
        lng: ll.lng(),
    }
}

/// The next hour's expected orders per cell, learnt from the caller's
/// organisation's own order history (exponential smoothing per cell and
/// local hour), and the waiting spots standing for its idle nurses.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    responses((status = 200, body = ForecastView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
#[get("/v1/dispatch/forecast")]
pub async fn get_forecast(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
) -> Result<web::Json<ForecastView>, ApiError> {
    let org = org_of(&caller);
    let now = Utc::now();
    let board = &svc.forecast;
    let forecast = board
        .forecast(&svc.store, &org, now)
        .await
        .map_err(|e| store_error(e, "order"))?;
    let mut cells: Vec<ForecastCell> = forecast
        .hour_ahead(now)
        .into_iter()
        .map(|(cell, x)| ForecastCell {
            cell: cell.to_string(),
            center: location(LatLng::from(cell)),
            boundary: cell.boundary().iter().map(|ll| location(*ll)).collect(),
            expected_orders: x,
        })
        .collect();
    cells.sort_by(|a, b| {
        b.expected_orders
            .total_cmp(&a.expected_orders)
            .then_with(|| a.cell.cmp(&b.cell))
    });
    let suggestions = board
        .standing(&org)
        .into_iter()
        .filter(|(_, s)| s.spot.until > now)
        .map(|(id, s)| SuggestionView {
            nurse_id: id.to_string(),
            from: s.from.into(),
            location: s.spot.to.into(),
            cell: s.spot.cell,
            expected_orders: s.spot.expected_orders,
            distance_m: s.spot.distance_m,
            made_at: s.made_at,
            until: s.spot.until,
        })
        .collect();
    Ok(web::Json(ForecastView {
        at: now,
        resolution: u8::from(board.config.forecast.resolution),
        days_learnt: forecast.days_learnt(),
        expected_orders: cells.iter().map(|c| c.expected_orders).sum(),
        cells,
        suggestions,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn reachable_orders_count_only_cells_within_reach() {
        let here = GeoPoint::new(29.395, 106.315).unwrap();
        let cell = |lat, lng| {
            LatLng::new(lat, lng)
                .unwrap()
                .to_cell(h3o::Resolution::Seven)
        };
        let near = cell(29.395, 106.315);
        let far = cell(29.9, 106.9);
        let s = RepositionSettings::default();
        assert_eq!(reachable_orders(&here, &[(near, 2.0), (far, 5.0)], &s), 2.0);
        assert_eq!(reachable_orders(&here, &[], &s), 0.0);
    }

    #[test]
    fn settings_are_checked() {
        let mut s = yixin_platform::config::DispatchSettings::default();
        let c = RepositionConfig::from_settings(&s).unwrap();
        assert_eq!(c.every, Duration::from_secs(60));
        assert_eq!(c.suggest.reach_s, 1_200);
        s.reposition_alpha = 0.0;
        assert!(RepositionConfig::from_settings(&s).is_err());
        s.reposition_alpha = 0.3;
        s.reposition_min_move_m = f64::NAN;
        assert!(RepositionConfig::from_settings(&s).is_err());
        s.reposition_min_move_m = 600.0;
        s.reposition_hold_s = 0;
        assert!(RepositionConfig::from_settings(&s).is_err());
    }
}
