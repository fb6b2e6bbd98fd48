//! `GET /v1/dispatch/orders/{id}/candidates`: the organisation's nurses for
//! a manual assignment, soonest arrival first, each with why they can or
//! cannot take the order. The ETA is the dispatcher's estimator (the same
//! as automatic dispatch, see [`crate::eta`]) from the nurse's latest fix.
//!
//! Whether a nurse is `assignable` is the dispatch core's candidate rule
//! ([`yixin_dispatch_core::eligibility`]), the one automatic dispatch
//! applies: active and on shift, the skills, no job, no offer of another
//! order open, a fresh fix — except that a stale position does not refuse
//! a manual assignment (`Ineligible::refuses_manual_assignment`): the state
//! says `stale` and the coordinator decides. The assignment itself decides
//! atomically.

use std::collections::{HashMap, HashSet};

use actix_web::{get, web};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use yixin_auth::CoordinatorCaller;
use yixin_dispatch_core::{Need, NurseFacts, eligibility, qualification, visit_time};
use yixin_domain::{GeoPoint, Nurse, NurseId, OfferStatus, Order, ShiftState, Skill};
use yixin_platform::{ApiError, ErrorBody};
use yixin_queue::PositionRecord;

use super::orders::{Location, own_order};
use super::{org_of, store_error};
use crate::{Dispatcher, eta::Eta};

/// A nurse as a candidate for one order.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CandidateView {
    pub nurse_id: String,
    pub name: String,
    pub phone: String,
    /// `free`, `offered` (an offer is open to them, of this order or
    /// another), `busy` (a job), `stale` (on shift, but no fix or an old
    /// one) or `off_shift`.
    pub state: String,
    /// Whether a manual assignment of this order to them should succeed.
    pub assignable: bool,
    /// Why not, when not assignable: `off_shift`, `missing_skills`,
    /// `not_qualified` (the credentials gate), `busy`, `offered_elsewhere`
    /// or `stale` (no fix, or an old one).
    pub reason: Option<String>,
    /// Skills the service requires that the nurse lacks.
    pub missing_skills: Vec<String>,
    /// Where the credentials fall short of the service's requirements on
    /// the visit's day, in words (empty: they qualify).
    pub shortfalls: Vec<String>,
    /// The latest fix, if any.
    pub location: Option<Location>,
    pub location_at: Option<DateTime<Utc>>,
    /// Predicted minutes to the door (rounded up), from the latest fix.
    pub eta_min: Option<u32>,
    pub distance_m: Option<u32>,
    /// Predicted arrival if assigned now.
    pub arrives_at: Option<DateTime<Utc>>,
    /// Whether that arrival keeps the promise (`promised_by`).
    pub in_time: Option<bool>,
    /// The nurse holds this order's open offer.
    pub holds_offer: bool,
    /// The nurse declined this order before.
    pub declined: bool,
}

/// The candidates for one order.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Candidates {
    pub order_id: String,
    pub promised_by: DateTime<Utc>,
    /// Assignable nurses first; then by predicted arrival (unknown last),
    /// then by name.
    pub candidates: Vec<CandidateView>,
}

/// What is known of one nurse for the ranking.
pub struct Facts<'a> {
    pub nurse: &'a Nurse,
    pub position: Option<&'a PositionRecord>,
    pub eta: Option<Eta>,
    pub has_job: bool,
    /// An offer of another order is open to the nurse.
    pub offered_elsewhere: bool,
    pub holds_offer: bool,
    pub declined: bool,
}

/// One nurse's line (pure: `now` and the rules passed in).
pub fn candidate(
    f: &Facts<'_>,
    need: &Need,
    promised_by: DateTime<Utc>,
    stale_after: TimeDelta,
    now: DateTime<Utc>,
) -> CandidateView {
    let missing_skills: Vec<String> = need
        .skills
        .iter()
        .filter(|s| !f.nurse.skills.contains(s))
        .map(|s| s.as_str().to_owned())
        .collect();
    let location_at = f
        .position
        .and_then(|p| DateTime::from_timestamp_millis(p.recorded_at_unix_ms));
    let shortfalls: Vec<String> =
        qualification(f.nurse.credentials.as_ref(), &need.requirements, need.day)
            .err()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect();
    let fresh = !yixin_dispatch_core::is_stale(location_at, stale_after, now);
    let on = f.nurse.active && f.nurse.shift == ShiftState::On;
    let state = if !on {
        "off_shift"
    } else if f.has_job {
        "busy"
    } else if f.offered_elsewhere || f.holds_offer {
        "offered"
    } else if !fresh {
        "stale"
    } else {
        "free"
    };
    // Holding this order's offer is no reason: assigning her closes it.
    let reason = eligibility(&NurseFacts {
        on_shift: on,
        skilled: missing_skills.is_empty(),
        qualified: shortfalls.is_empty(),
        has_job: f.has_job,
        offered_elsewhere: f.offered_elsewhere,
        fresh,
    })
    .err()
    .filter(|why| why.refuses_manual_assignment())
    .map(|why| why.as_str());
    let arrives_at = f
        .eta
        .map(|e| now + TimeDelta::seconds(i64::from(e.seconds)));
    CandidateView {
        nurse_id: f.nurse.id.to_string(),
        name: f.nurse.name.clone(),
        phone: f.nurse.phone.as_str().to_owned(),
        state: state.to_owned(),
        assignable: reason.is_none(),
        reason: reason.map(str::to_owned),
        missing_skills,
        shortfalls,
        location: f.position.map(|p| Location {
            lat: p.lat,
            lng: p.lng,
        }),
        location_at,
        eta_min: f.eta.map(|e| e.seconds.div_ceil(60)),
        distance_m: f.eta.map(|e| e.distance_m),
        arrives_at,
        in_time: arrives_at.map(|at| at <= promised_by),
        holds_offer: f.holds_offer,
        declined: f.declined,
    }
}

/// Assignable first, then soonest arrival (unknown last), then name, then id.
pub fn rank(list: &mut [CandidateView]) {
    list.sort_by(|a, b| {
        (
            !a.assignable,
            a.arrives_at.is_none(),
            a.arrives_at,
            &a.name,
            &a.nurse_id,
        )
            .cmp(&(
                !b.assignable,
                b.arrives_at.is_none(),
                b.arrives_at,
                &b.name,
                &b.nurse_id,
            ))
    });
}

/// What the order's service asks of a nurse on the visit's day (no skill
/// and the default requirements if it left the catalogue).
async fn need_of(svc: &Dispatcher, order: &Order) -> Result<Need, ApiError> {
    let catalog = svc
        .store
        .catalog()
        .await
        .map_err(|e| store_error(e, "service"))?;
    let at = visit_time(order.scheduled_for, Utc::now());
    Ok(match catalog.service(&order.service_code) {
        Some(s) => Need::of(s, at),
        None => Need {
            skills: Vec::<Skill>::new(),
            requirements: Default::default(),
            day: yixin_dispatch_core::visit_day(at),
        },
    })
}

/// The organisation's active nurses as candidates for a waiting order,
/// soonest arrival first: state, whether a manual assignment should
/// succeed (and why not), the predicted trip from the latest fix, and
/// whether that arrival keeps the promise.
#[utoipa::path(
    tag = "coordinator",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Order id")),
    responses(
        (status = 200, body = Candidates),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "No such order in the organisation", body = ErrorBody),
        (status = 409, description = "`not_assignable`: the order is no longer waiting for a nurse", body = ErrorBody),
    )
)]
#[get("/v1/dispatch/orders/{id}/candidates")]
pub async fn list_candidates(
    caller: CoordinatorCaller,
    svc: web::Data<Dispatcher>,
    id: web::Path<String>,
) -> Result<web::Json<Candidates>, ApiError> {
    let org = org_of(&caller);
    let order = own_order(&svc, &org, &id).await?;
    if !order.status.needs_nurse() {
        return Err(ApiError::conflict(
            "not_assignable",
            format!(
                "the order is {}: only pending, offered or escalated orders can be assigned",
                order.status.as_str()
            ),
        ));
    }
    let err = |e| store_error(e, "nurse");
    let need = need_of(&svc, &order).await?;
    let nurses: Vec<Nurse> = svc
        .store
        .nurses(&org)
        .await
        .map_err(err)?
        .into_iter()
        .filter(|n| n.active)
        .collect();
    let ids: Vec<NurseId> = nurses.iter().map(|n| n.id).collect();
    let engaged = svc.store.engaged_nurses(&ids).await.map_err(err)?;
    let jobs = svc.store.active_orders_by_nurse(&org).await.map_err(err)?;
    let offers = svc.store.offers_for_order(order.id).await.map_err(err)?;
    let holder: Option<NurseId> = offers
        .iter()
        .find(|o| o.status == OfferStatus::Open)
        .map(|o| o.nurse_id);
    let declined: HashSet<NurseId> = offers
        .iter()
        .filter(|o| o.status == OfferStatus::Declined)
        .map(|o| o.nurse_id)
        .collect();

    let names: Vec<String> = ids.iter().map(|n| n.to_string()).collect();
    let positions: Vec<Option<PositionRecord>> = match svc.positions.latest(&names).await {
        Ok(found) => found
            .into_iter()
            .map(|p| p.filter(|p| p.org_id == org.as_str()))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "positions unavailable for the candidates");
            vec![None; ids.len()]
        }
    };
    // One batch to the estimator for every nurse with a usable position.
    let located: Vec<(usize, GeoPoint)> = positions
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            p.as_ref()
                .and_then(|p| GeoPoint::new(p.lat, p.lng).ok())
                .map(|g| (i, g))
        })
        .collect();
    let from: Vec<GeoPoint> = located.iter().map(|(_, g)| *g).collect();
    let mut etas: HashMap<usize, Eta> = HashMap::new();
    if !from.is_empty() {
        match svc.eta.etas(&from, order.location).await {
            Ok(found) => {
                for ((i, _), eta) in located.iter().zip(found) {
                    if let Some(eta) = eta {
                        etas.insert(*i, eta);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(order_id = %order.id, error = %e, "no ETAs for the candidates")
            }
        }
    }

    let now = Utc::now();
    let stale_after = TimeDelta::from_std(svc.stale_after).unwrap_or(TimeDelta::MAX);
    let mut list: Vec<CandidateView> = nurses
        .iter()
        .enumerate()
        .map(|(i, nurse)| {
            let has_job = jobs.contains_key(&nurse.id);
            let holds_offer = holder == Some(nurse.id);
            candidate(
                &Facts {
                    nurse,
                    position: positions.get(i).and_then(Option::as_ref),
                    eta: etas.get(&i).copied(),
                    has_job,
                    offered_elsewhere: !has_job && !holds_offer && engaged.contains(&nurse.id),
                    holds_offer,
                    declined: declined.contains(&nurse.id),
                },
                &need,
                order.promised_by,
                stale_after,
                now,
            )
        })
        .collect();
    rank(&mut list);
    Ok(web::Json(Candidates {
        order_id: order.id.to_string(),
        promised_by: order.promised_by,
        candidates: list,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use yixin_domain::{OrgId, PhoneNumber};

    fn nurse(name: &str, skills: &[&str], on: bool) -> Nurse {
        let mut n = Nurse::new(
            OrgId::from("demo"),
            name,
            PhoneNumber::new("13700001111").unwrap(),
            skills.iter().map(|s| Skill::new(s).unwrap()).collect(),
            Utc::now(),
        )
        .unwrap();
        n.shift = if on { ShiftState::On } else { ShiftState::Off };
        let mut c = yixin_domain::Credentials::entered(
            yixin_domain::CredentialsInput {
                licence_no: "110".into(),
                first_registered_on: chrono::NaiveDate::from_ymd_opt(2015, 1, 1).unwrap(),
                title: yixin_domain::Title::SeniorNurse,
                certificates: vec![],
            },
            "c",
            Utc::now(),
        );
        c.verification = yixin_domain::Verification::Verified;
        n.credentials = Some(c);
        n
    }

    fn need(skills: &[Skill]) -> Need {
        Need {
            skills: skills.to_vec(),
            requirements: Default::default(),
            day: yixin_dispatch_core::visit_day(Utc::now()),
        }
    }

    fn fix(at: DateTime<Utc>) -> PositionRecord {
        PositionRecord {
            nurse_id: String::new(),
            org_id: "demo".into(),
            lat: 29.39,
            lng: 106.32,
            accuracy_m: 5.0,
            recorded_at_unix_ms: at.timestamp_millis(),
            cell: 0,
            previous_cell: None,
            cell_changed: false,
        }
    }

    fn facts<'a>(n: &'a Nurse, p: Option<&'a PositionRecord>, eta_s: Option<u32>) -> Facts<'a> {
        Facts {
            nurse: n,
            position: p,
            eta: eta_s.map(|seconds| Eta {
                seconds,
                distance_m: seconds * 5,
            }),
            has_job: false,
            offered_elsewhere: false,
            holds_offer: false,
            declined: false,
        }
    }

    #[test]
    fn states_reasons_and_the_promise() {
        let now = Utc::now();
        let promised = now + TimeDelta::minutes(20);
        let stale = TimeDelta::seconds(60);
        let req = need(&[Skill::new("wound_care").unwrap()]);
        let fresh = fix(now - TimeDelta::seconds(5));
        let old = fix(now - TimeDelta::seconds(600));

        let a = nurse("a", &["wound_care"], true);
        let v = candidate(
            &facts(&a, Some(&fresh), Some(600)),
            &req,
            promised,
            stale,
            now,
        );
        assert_eq!(
            (v.state.as_str(), v.assignable, v.reason),
            ("free", true, None)
        );
        assert_eq!((v.eta_min, v.in_time), (Some(10), Some(true)));

        let v = candidate(
            &facts(&a, Some(&fresh), Some(1_801)),
            &req,
            promised,
            stale,
            now,
        );
        assert_eq!((v.eta_min, v.in_time), (Some(31), Some(false)));

        let v = candidate(&facts(&a, Some(&old), Some(60)), &req, promised, stale, now);
        assert_eq!((v.state.as_str(), v.assignable), ("stale", true));
        let v = candidate(&facts(&a, None, None), &req, promised, stale, now);
        assert_eq!(
            (v.state.as_str(), v.eta_min, v.in_time),
            ("stale", None, None)
        );

        let mut f = facts(&a, Some(&fresh), Some(60));
        f.has_job = true;
        let v = candidate(&f, &req, promised, stale, now);
        assert_eq!(
            (v.state.as_str(), v.reason.as_deref()),
            ("busy", Some("busy"))
        );
        let mut f = facts(&a, Some(&fresh), Some(60));
        f.offered_elsewhere = true;
        let v = candidate(&f, &req, promised, stale, now);
        assert_eq!(
            (v.state.as_str(), v.reason.as_deref()),
            ("offered", Some("offered_elsewhere"))
        );
        let mut f = facts(&a, Some(&fresh), Some(60));
        f.holds_offer = true;
        let v = candidate(&f, &req, promised, stale, now);
        assert_eq!((v.state.as_str(), v.assignable), ("offered", true));

        let b = nurse("b", &["oral_care"], true);
        let v = candidate(
            &facts(&b, Some(&fresh), Some(60)),
            &req,
            promised,
            stale,
            now,
        );
        assert_eq!(v.reason.as_deref(), Some("missing_skills"));
        assert_eq!(v.missing_skills, ["wound_care"]);

        let c = nurse("c", &["wound_care"], false);
        let v = candidate(
            &facts(&c, Some(&fresh), Some(60)),
            &req,
            promised,
            stale,
            now,
        );
        assert_eq!(
            (v.state.as_str(), v.reason.as_deref()),
            ("off_shift", Some("off_shift"))
        );

        let mut d = nurse("d", &["wound_care"], true);
        d.credentials.as_mut().unwrap().verification = yixin_domain::Verification::Pending;
        let v = candidate(
            &facts(&d, Some(&fresh), Some(60)),
            &req,
            promised,
            stale,
            now,
        );
        assert_eq!(
            (v.assignable, v.reason.as_deref()),
            (false, Some("not_qualified"))
        );
        assert_eq!(v.shortfalls.len(), 1);
    }

    #[test]
    fn assignable_first_then_soonest() {
        let now = Utc::now();
        let promised = now + TimeDelta::minutes(30);
        let stale = TimeDelta::seconds(60);
        let req = need(&[Skill::new("wound_care").unwrap()]);
        let p = fix(now);
        let far = nurse("far", &["wound_care"], true);
        let near = nurse("near", &["wound_care"], true);
        let nowhere = nurse("nowhere", &["wound_care"], true);
        let off = nurse("off", &["wound_care"], false);
        let mut list = vec![
            candidate(&facts(&off, Some(&p), Some(10)), &req, promised, stale, now),
            candidate(&facts(&nowhere, None, None), &req, promised, stale, now),
            candidate(
                &facts(&far, Some(&p), Some(900)),
                &req,
                promised,
                stale,
                now,
            ),
            candidate(
                &facts(&near, Some(&p), Some(120)),
                &req,
                promised,
                stale,
                now,
            ),
        ];
        rank(&mut list);
        let names: Vec<_> = list.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["near", "far", "nowhere", "off"]);
    }
}
