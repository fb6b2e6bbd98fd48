//! The engine's configuration (`dispatch.*`) parsed into the core's
//! [`EngineConfig`] and the ETA estimator it runs with.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use yixin_dispatch_core::{EngineConfig, InvalidSettings, MatchingPolicy, PolicyKind};

use crate::eta::{
    AreaEtaSettings, EtaEstimator, EtaSettings, FallbackEta, OsrmEta, OsrmSettings,
    StraightLineConfig, StraightLineEta,
};

/// The chaining rules as configured (`dispatch.chain_horizon_s`,
/// `dispatch.chain_overrun_tolerance_s`).
pub fn chain_rules(
    s: &yixin_platform::config::DispatchSettings,
) -> Result<yixin_dispatch_core::ChainRules, InvalidSettings> {
    yixin_dispatch_core::ChainRules::new(s.chain_horizon_s, s.chain_overrun_tolerance_s).map_err(
        |e| {
            InvalidSettings::new(
                if e.field == "chain_horizon_s" {
                    "dispatch.chain_horizon_s"
                } else {
                    "dispatch.chain_overrun_tolerance_s"
                },
                e.reason,
            )
        },
    )
}

/// The `risk` policy's model: the core's default, with the late reserve as
/// configured (`dispatch.risk_late_reserve`, 0 off).
fn risk_model(
    s: &yixin_platform::config::DispatchSettings,
) -> Result<yixin_dispatch_core::matching::risk::RiskModel, InvalidSettings> {
    if s.risk_late_reserve as usize > s.candidates {
        return Err(InvalidSettings::new(
            "dispatch.risk_late_reserve",
            format!(
                "{} free nurses can never be left for an order that keeps at most {} candidates",
                s.risk_late_reserve, s.candidates
            ),
        ));
    }
    Ok(yixin_dispatch_core::matching::risk::RiskModel {
        late_reserve: (s.risk_late_reserve > 0).then_some(s.risk_late_reserve),
        ..Default::default()
    })
}

/// The engine and its ETA estimator as configured (`dispatch.*`); `areas`
/// are the service areas per-area ETA overrides may name.
pub fn engine_config(
    s: &yixin_platform::config::DispatchSettings,
    areas: &[yixin_domain::ServiceArea],
) -> Result<(EngineConfig, Arc<dyn EtaEstimator>), InvalidSettings> {
    let kind = match s.policy.as_str() {
        "greedy" => PolicyKind::Greedy,
        "batch" => PolicyKind::Batch,
        "risk" => PolicyKind::Risk,
        other => {
            return Err(InvalidSettings::new(
                "dispatch.policy",
                format!("`{other}`: use `greedy`, `batch` or `risk`"),
            ));
        }
    };
    let weights = crate::ScoringWeights::default().with_continuity(s.continuity_credit_s)?;
    let policy = MatchingPolicy::new(kind, s.batch_window_ms, weights)?;
    let default = EtaSettings::new(s.detour_factor, s.speed_kmh, s.fixed_overhead_s)?;
    let mut overrides = Vec::new();
    for o in &s.area_eta {
        let area_id = o.area_id.parse().map(yixin_domain::AreaId).map_err(|_| {
            InvalidSettings::new(
                "dispatch.area_eta.area_id",
                format!("`{}` is not an area id", o.area_id),
            )
        })?;
        overrides.push(AreaEtaSettings {
            area_id,
            settings: EtaSettings::new(
                o.detour_factor.unwrap_or(default.detour_factor),
                o.speed_kmh.unwrap_or(default.speed_kmh),
                o.fixed_overhead_s.unwrap_or(default.fixed_overhead_s),
            )?,
        });
    }
    let straight = StraightLineEta::from_config(
        &StraightLineConfig {
            default,
            areas: overrides,
        },
        areas,
    )?;
    let eta: Arc<dyn EtaEstimator> = match &s.osrm_url {
        Some(url) => Arc::new(FallbackEta::new(
            OsrmEta::new(OsrmSettings {
                base_url: url.clone(),
                profile: s.osrm_profile.clone(),
                timeout_ms: s.osrm_timeout_ms,
                ..OsrmSettings::default()
            })?,
            straight,
        )),
        None => Arc::new(straight),
    };
    if s.offer_ttl_secs == 0
        || s.candidates == 0
        || s.search_radius_m.is_nan()
        || s.search_radius_m <= 0.0
        || s.escalated_radius_m < s.search_radius_m
    {
        return Err(InvalidSettings::new(
            "dispatch",
            "offer_ttl_secs and candidates must be positive, search_radius_m > 0 and escalated_radius_m ≥ search_radius_m",
        ));
    }
    Ok((
        EngineConfig {
            policy,
            offer_ttl: TimeDelta::seconds(i64::try_from(s.offer_ttl_secs).unwrap_or(3_600)),
            search_radius_m: s.search_radius_m,
            escalated_radius_m: s.escalated_radius_m,
            candidates: s.candidates,
            retry: Duration::from_secs(s.retry_secs.max(1)),
            escalate_after: TimeDelta::seconds(i64::try_from(s.escalate_after_secs).unwrap_or(120)),
            risk: risk_model(s)?,
        },
        eta,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_policy_name_parses_and_others_are_refused() {
        for (name, kind) in [
            ("greedy", PolicyKind::Greedy),
            ("batch", PolicyKind::Batch),
            ("risk", PolicyKind::Risk),
        ] {
            let s = yixin_platform::config::DispatchSettings {
                policy: name.to_owned(),
                ..Default::default()
            };
            let (config, _) = engine_config(&s, &[]).unwrap();
            assert_eq!(config.policy.kind, kind, "{name}");
        }
        let s = yixin_platform::config::DispatchSettings {
            policy: "fastest".to_owned(),
            ..Default::default()
        };
        let Err(e) = engine_config(&s, &[]) else {
            panic!("`fastest` parsed");
        };
        assert!(e.to_string().contains("dispatch.policy"), "{e}");
    }

    #[test]
    fn the_late_reserve_is_off_unless_configured_and_bounded_by_the_candidates() {
        let (config, _) = engine_config(&Default::default(), &[]).unwrap();
        assert_eq!(config.risk.late_reserve, None);
        let s = yixin_platform::config::DispatchSettings {
            policy: "risk".to_owned(),
            risk_late_reserve: 2,
            ..Default::default()
        };
        let (config, _) = engine_config(&s, &[]).unwrap();
        assert_eq!(config.risk.late_reserve, Some(2));
        let s = yixin_platform::config::DispatchSettings {
            risk_late_reserve: 21,
            candidates: 20,
            ..Default::default()
        };
        let Err(e) = engine_config(&s, &[]) else {
            panic!("a reserve larger than the candidate list parsed");
        };
        assert!(e.to_string().contains("dispatch.risk_late_reserve"), "{e}");
    }

    #[test]
    fn the_risk_kind_has_a_serde_name() {
        let kind: PolicyKind = serde_json::from_str("\"risk\"").unwrap();
        assert_eq!(kind, PolicyKind::Risk);
        assert_eq!(
            serde_json::to_string(&PolicyKind::Risk).unwrap(),
            "\"risk\""
        );
    }
}
