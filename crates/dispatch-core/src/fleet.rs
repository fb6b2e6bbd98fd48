//! The nurses this instance knows, where they are and whether they can take
//! work: the in-memory position index used for candidate search, and each
//! nurse's presence (shift, freshness of the last fix, connection).
//!
//! Pure: the clock is passed in, nothing here does I/O. A nurse is a
//! candidate when the one candidate rule ([`crate::eligibility`]) says so:
//! on shift, present (connected, or dropped less than the grace period ago),
//! with a fresh fix, without a job or a live offer, and holding the skills
//! asked for.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, TimeDelta, Utc};
use yixin_domain::{
    GeoPoint, Nurse, NurseId, OfferId, OrderId, OrderStatus, OrgId, ShiftState, Skill,
};
use yixin_geo::{GeoIndex, IndexConfig, Neighbour};

use crate::eligibility::{NurseFacts, covers, eligibility};
use crate::qualification::Need;

/// Availability bits kept in the index entry's tag, so a search filters
/// without a second lookup for the common cases.
pub mod tag {
    pub const ON_SHIFT: u64 = 1;
    pub const FRESH: u64 = 1 << 1;
    pub const PRESENT: u64 = 1 << 2;
    pub const BUSY: u64 = 1 << 3;
    pub const OFFERED: u64 = 1 << 4;
    /// All of these set and none of `BUSY | OFFERED`: free to take work.
    pub const AVAILABLE: u64 = ON_SHIFT | FRESH | PRESENT;

    /// The candidate rule's facts a tag holds; `skilled` and `qualified`
    /// from the record.
    pub fn facts(t: u64, skilled: bool, qualified: bool) -> super::NurseFacts {
        super::NurseFacts {
            on_shift: t & ON_SHIFT != 0,
            skilled,
            qualified,
            has_job: t & BUSY != 0,
            offered_elsewhere: t & OFFERED != 0,
            // A fix is only worth something while the phone is there.
            fresh: t & (FRESH | PRESENT) == FRESH | PRESENT,
        }
    }
}

/// One accepted GPS fix.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fix {
    pub point: GeoPoint,
    pub accuracy_m: f64,
    /// When the phone took it.
    pub at: DateTime<Utc>,
}

/// What the fleet knows of one nurse.
#[derive(Debug, Clone, PartialEq)]
pub struct NurseState {
    pub org: OrgId,
    pub name: String,
    pub skills: Vec<Skill>,
    /// Credentials as the roster has them (the gate reads them here, so a
    /// candidate search never waits on the database).
    pub credentials: Option<yixin_domain::Credentials>,
    pub active: bool,
    pub shift: ShiftState,
    pub last_fix: Option<Fix>,
    /// The connection that holds the nurse now, if any.
    pub connection: Option<u64>,
    pub disconnected_at: Option<DateTime<Utc>>,
    /// The order the nurse is working on, and its status.
    pub job: Option<(OrderId, OrderStatus)>,
    /// The live offer, and when it expires.
    pub offer: Option<(OfferId, DateTime<Utc>)>,
    /// When a fix last went to the trail.
    pub last_trail_at: Option<DateTime<Utc>>,
    fresh: bool,
}

impl NurseState {
    fn from_nurse(nurse: &Nurse) -> Self {
        Self {
            org: nurse.org_id.clone(),
            name: nurse.name.clone(),
            skills: nurse.skills.clone(),
            credentials: nurse.credentials.clone(),
            active: nurse.active,
            shift: nurse.shift,
            last_fix: None,
            connection: None,
            disconnected_at: None,
            job: None,
            offer: None,
            last_trail_at: None,
            fresh: false,
        }
    }

    fn tag(&self) -> u64 {
        let mut t = 0;
        if self.shift == ShiftState::On && self.active {
            t |= tag::ON_SHIFT;
        }
        if self.fresh {
            t |= tag::FRESH;
        }
        if self.connection.is_some() || self.disconnected_at.is_some() {
            t |= tag::PRESENT;
        }
        if self.job.is_some() {
            t |= tag::BUSY;
        }
        if self.offer.is_some() {
            t |= tag::OFFERED;
        }
        t
    }

    /// The candidate rule's facts about this nurse for an order needing `need`.
    pub fn facts(&self, need: &Need) -> NurseFacts {
        let skilled = covers(&self.skills, &need.skills);
        tag::facts(
            self.tag(),
            skilled,
            skilled && need.met_by(self.credentials.as_ref()),
        )
    }

    /// Free to take work now, whatever the skills and credentials (see the
    /// module doc).
    pub fn is_available(&self) -> bool {
        eligibility(&tag::facts(self.tag(), true, true)).is_ok()
    }
}

/// What became of a fix.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FixOutcome {
    /// Now the nurse's latest position. `previous_cell` is set when the
    /// nurse changed H3 cell.
    Indexed {
        cell: h3o::CellIndex,
        previous_cell: Option<h3o::CellIndex>,
        /// The nurse was not in the index before this fix.
        first: bool,
        /// Whether this fix also goes to the trail (see `trail_interval`).
        trail: bool,
    },
    /// Not newer than the latest fix: ignored.
    Older,
    /// The fleet does not know the nurse.
    Unknown,
}

/// The index-resolution H3 cell holding `point`.
pub fn cell_at(point: GeoPoint) -> Option<h3o::CellIndex> {
    h3o::LatLng::new(point.lat(), point.lng())
        .ok()
        .map(|ll| ll.to_cell(IndexConfig::default().resolution))
}

/// How presence ages (from `tracking.*`: `yixin_nurse_tracking::presence_rules`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PresenceRules {
    pub stale_after: TimeDelta,
    pub disconnect_grace: TimeDelta,
    pub trail_interval: TimeDelta,
}

impl Default for PresenceRules {
    fn default() -> Self {
        Self {
            stale_after: TimeDelta::seconds(60),
            disconnect_grace: TimeDelta::seconds(120),
            trail_interval: TimeDelta::seconds(5),
        }
    }
}

/// What a sweep changed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Swept {
    /// Nurses whose last fix went stale.
    pub stale: Vec<NurseId>,
    /// Nurses whose grace period after a dropped connection ran out.
    pub gone: Vec<NurseId>,
}

/// The nurses known to this instance and their position index.
pub struct Fleet {
    index: GeoIndex<NurseId>,
    nurses: HashMap<NurseId, NurseState>,
    rules: PresenceRules,
}

impl Fleet {
    pub fn new(rules: PresenceRules) -> Self {
        Self {
            index: GeoIndex::new(IndexConfig::default()),
            nurses: HashMap::new(),
            rules,
        }
    }

    pub fn rules(&self) -> PresenceRules {
        self.rules
    }

    /// Learns (or refreshes from the roster) a nurse; keeps what presence
    /// already knows.
    pub fn register(&mut self, nurse: &Nurse) {
        let state = self
            .nurses
            .entry(nurse.id)
            .or_insert_with(|| NurseState::from_nurse(nurse));
        state.org = nurse.org_id.clone();
        state.name = nurse.name.clone();
        state.skills = nurse.skills.clone();
        state.credentials = nurse.credentials.clone();
        state.active = nurse.active;
        state.shift = nurse.shift;
        self.retag(nurse.id);
    }

    pub fn get(&self, id: &NurseId) -> Option<&NurseState> {
        self.nurses.get(id)
    }

    pub fn len(&self) -> usize {
        self.nurses.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nurses.is_empty()
    }

    /// Nurses in the index (those with a position).
    pub fn indexed(&self) -> usize {
        self.index.len()
    }

    /// Bytes the position index uses.
    pub fn index_memory_bytes(&self) -> usize {
        self.index.memory_bytes()
    }

    /// Applies a validated fix: newer than the latest → indexed; otherwise ignored.
    pub fn apply_fix(&mut self, id: NurseId, fix: Fix) -> FixOutcome {
        let rules = self.rules;
        let Some(state) = self.nurses.get_mut(&id) else {
            return FixOutcome::Unknown;
        };
        if state.last_fix.is_some_and(|last| fix.at <= last.at) {
            return FixOutcome::Older;
        }
        state.last_fix = Some(fix);
        state.fresh = true;
        let trail = state
            .last_trail_at
            .is_none_or(|t| fix.at - t >= rules.trail_interval);
        if trail {
            state.last_trail_at = Some(fix.at);
        }
        let tag = state.tag();
        let previous_cell = self.index.cell_of(&id);
        self.index.upsert(id, fix.point, tag);
        let Some(cell) = self.index.cell_of(&id).or_else(|| cell_at(fix.point)) else {
            return FixOutcome::Unknown;
        };
        FixOutcome::Indexed {
            cell,
            previous_cell: previous_cell.filter(|p| *p != cell),
            first: previous_cell.is_none(),
            trail,
        }
    }

    /// Shift on or off. Off takes the nurse out of the index.
    pub fn set_shift(&mut self, id: NurseId, shift: ShiftState) -> bool {
        let Some(state) = self.nurses.get_mut(&id) else {
            return false;
        };
        state.shift = shift;
        if shift == ShiftState::Off {
            state.last_fix = None;
            state.fresh = false;
            self.index.remove(&id);
        }
        self.retag(id);
        true
    }

    /// A phone connected (`connection` identifies it; the newest wins).
    pub fn connected(&mut self, id: NurseId, connection: u64) {
        if let Some(state) = self.nurses.get_mut(&id) {
            state.connection = Some(connection);
            state.disconnected_at = None;
        }
        self.retag(id);
    }

    /// A phone's connection dropped; ignored if a newer one holds the nurse.
    pub fn disconnected(&mut self, id: NurseId, connection: u64, now: DateTime<Utc>) {
        if let Some(state) = self.nurses.get_mut(&id)
            && state.connection == Some(connection)
        {
            state.connection = None;
            state.disconnected_at = Some(now);
        }
        self.retag(id);
    }

    /// The nurse reached us without a socket (the HTTP equivalents): present
    /// for the grace period from now, as if a connection had just dropped.
    pub fn seen(&mut self, id: NurseId, now: DateTime<Utc>) {
        if let Some(state) = self.nurses.get_mut(&id)
            && state.connection.is_none()
        {
            state.disconnected_at = Some(now);
        }
        self.retag(id);
    }

    /// The nurse's current job (or none).
    pub fn set_job(&mut self, id: NurseId, job: Option<(OrderId, OrderStatus)>) {
        if let Some(state) = self.nurses.get_mut(&id) {
            state.job = job;
        }
        self.retag(id);
    }

    /// The nurse's live offer (or none).
    pub fn set_offer(&mut self, id: NurseId, offer: Option<(OfferId, DateTime<Utc>)>) {
        if let Some(state) = self.nurses.get_mut(&id) {
            state.offer = offer;
        }
        self.retag(id);
    }

    /// Nurses believed to hold an offer or a job (hints the engine checks
    /// against the database now and then).
    pub fn engaged_hints(&self) -> Vec<NurseId> {
        let mut ids: Vec<NurseId> = self
            .nurses
            .iter()
            .filter(|(_, s)| s.job.is_some() || s.offer.is_some())
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Nurses this fleet has on shift.
    pub fn on_shift(&self) -> Vec<NurseId> {
        self.nurses
            .iter()
            .filter(|(_, s)| s.shift == ShiftState::On)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Ages presence: fixes older than the staleness limit go stale, dropped
    /// connections past their grace are gone, expired offers are forgotten.
    pub fn sweep(&mut self, now: DateTime<Utc>) -> Swept {
        let mut swept = Swept::default();
        let mut changed = Vec::new();
        for (id, state) in &mut self.nurses {
            let mut touched = false;
            if state.fresh
                && crate::is_stale(state.last_fix.map(|f| f.at), self.rules.stale_after, now)
            {
                state.fresh = false;
                swept.stale.push(*id);
                touched = true;
            }
            if state
                .disconnected_at
                .is_some_and(|t| now - t > self.rules.disconnect_grace)
            {
                state.disconnected_at = None;
                swept.gone.push(*id);
                touched = true;
            }
            if state.offer.is_some_and(|(_, exp)| exp <= now) {
                state.offer = None;
                touched = true;
            }
            if touched {
                changed.push(*id);
            }
        }
        for id in changed {
            self.retag(id);
        }
        swept.stale.sort();
        swept.gone.sort();
        swept
    }

    /// The `k` nearest nurses free to take an order at `at` needing `need`
    /// (skills, and credentials that pass the gate on the visit's day),
    /// within `radius_m`, skipping `excluded` (e.g. those who declined it).
    /// Nearest first, exact distances.
    pub fn candidates(
        &self,
        at: GeoPoint,
        k: usize,
        radius_m: f64,
        need: &Need,
        excluded: &HashSet<NurseId>,
    ) -> Vec<Neighbour<NurseId>> {
        self.index.nearest(at, k, radius_m, |id, t| {
            // The tag alone rules most nurses out without a lookup; the
            // skills and credentials then need the nurse's record (in
            // memory: the gate costs no database read).
            eligibility(&tag::facts(t, true, true)).is_ok()
                && !excluded.contains(id)
                && self.nurses.get(id).is_some_and(|n| {
                    let skilled = covers(&n.skills, &need.skills);
                    let qualified = skilled && need.met_by(n.credentials.as_ref());
                    eligibility(&tag::facts(t, skilled, qualified)).is_ok()
                })
        })
    }

    fn retag(&mut self, id: NurseId) {
        if let Some(state) = self.nurses.get(&id) {
            self.index.set_tag(&id, state.tag());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000 + s, 0).unwrap()
    }

    fn nurse(skills: &[&str]) -> Nurse {
        let skills = skills.iter().map(|s| Skill::new(s).unwrap()).collect();
        let mut n = Nurse::new(
            OrgId::from("demo"),
            "张护士",
            yixin_domain::PhoneNumber::new("13800138000").unwrap(),
            skills,
            t(0),
        )
        .unwrap();
        n.shift = ShiftState::On;
        n.credentials = Some(qualified());
        n
    }

    /// Verified, 10 years, 主管护师, a PICC certificate valid through 2030.
    fn qualified() -> yixin_domain::Credentials {
        let day = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let mut c = yixin_domain::Credentials::entered(
            yixin_domain::CredentialsInput {
                licence_no: "110".into(),
                first_registered_on: day(2015, 1, 1),
                title: yixin_domain::Title::SupervisorNurse,
                certificates: vec![yixin_domain::Certificate {
                    code: "picc".into(),
                    number: "P-1".into(),
                    issued_on: day(2020, 1, 1),
                    expires_on: Some(day(2030, 1, 1)),
                }],
            },
            "coordinator",
            t(0),
        );
        c.verification = yixin_domain::Verification::Verified;
        c
    }

    fn need(skills: &[Skill]) -> Need {
        Need {
            skills: skills.to_vec(),
            requirements: yixin_domain::Requirements::default(),
            day: crate::visit_day(t(0)),
        }
    }

    fn fix(lat: f64, lng: f64, s: i64) -> Fix {
        Fix {
            point: GeoPoint::new(lat, lng).unwrap(),
            accuracy_m: 10.0,
            at: t(s),
        }
    }

    fn fleet_with(n: &Nurse) -> Fleet {
        let mut f = Fleet::new(PresenceRules::default());
        f.register(n);
        f.connected(n.id, 1);
        f
    }

    fn here() -> GeoPoint {
        GeoPoint::new(29.30, 106.25).unwrap()
    }

    #[test]
    fn a_fresh_connected_nurse_on_shift_is_a_candidate() {
        let n = nurse(&["wound_care"]);
        let mut f = fleet_with(&n);
        assert!(matches!(
            f.apply_fix(n.id, fix(29.301, 106.25, 1)),
            FixOutcome::Indexed { trail: true, .. }
        ));
        let found = f.candidates(
            here(),
            5,
            5_000.0,
            &need(&[Skill::new("wound_care").unwrap()]),
            &HashSet::new(),
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].key, n.id);
        assert!(
            (found[0].distance_m - 111.2).abs() < 1.0,
            "{}",
            found[0].distance_m
        );
    }

    #[test]
    fn older_fixes_are_ignored_and_unknown_nurses_refused() {
        let n = nurse(&["wound_care"]);
        let mut f = fleet_with(&n);
        f.apply_fix(n.id, fix(29.30, 106.25, 10));
        assert_eq!(f.apply_fix(n.id, fix(29.40, 106.25, 9)), FixOutcome::Older);
        assert_eq!(f.apply_fix(n.id, fix(29.40, 106.25, 10)), FixOutcome::Older);
        assert_eq!(f.get(&n.id).unwrap().last_fix.unwrap().point.lat(), 29.30);
        assert_eq!(
            f.apply_fix(NurseId::new(), fix(29.3, 106.2, 1)),
            FixOutcome::Unknown
        );
    }

    #[test]
    fn the_trail_keeps_one_fix_per_interval() {
        let n = nurse(&["wound_care"]);
        let mut f = fleet_with(&n);
        let trail = |o| matches!(o, FixOutcome::Indexed { trail: true, .. });
        assert!(trail(f.apply_fix(n.id, fix(29.30, 106.25, 0))));
        assert!(!trail(f.apply_fix(n.id, fix(29.30, 106.25, 2))));
        assert!(!trail(f.apply_fix(n.id, fix(29.30, 106.25, 4))));
        assert!(trail(f.apply_fix(n.id, fix(29.30, 106.25, 5))));
    }

    #[test]
    fn moving_far_changes_cell() {
        let n = nurse(&["wound_care"]);
        let mut f = fleet_with(&n);
        let FixOutcome::Indexed { cell: first, .. } = f.apply_fix(n.id, fix(29.30, 106.25, 0))
        else {
            panic!("not indexed")
        };
        let FixOutcome::Indexed {
            cell,
            previous_cell,
            ..
        } = f.apply_fix(n.id, fix(29.35, 106.30, 1))
        else {
            panic!("not indexed")
        };
        assert_ne!(cell, first);
        assert_eq!(previous_cell, Some(first));
    }

    #[test]
    fn missing_skills_busy_offered_off_shift_and_excluded_are_not_candidates() {
        let n = nurse(&["wound_care"]);
        let wanted = [Skill::new("wound_care").unwrap()];
        let mut f = fleet_with(&n);
        f.apply_fix(n.id, fix(29.30, 106.25, 0));
        let find = |f: &Fleet, skills: &[Skill], ex: &HashSet<NurseId>| {
            f.candidates(here(), 5, 5_000.0, &need(skills), ex).len()
        };
        assert_eq!(
            find(&f, &[Skill::new("catheter").unwrap()], &HashSet::new()),
            0
        );
        assert_eq!(find(&f, &wanted, &HashSet::from([n.id])), 0);
        f.set_job(n.id, Some((OrderId::new(), OrderStatus::Assigned)));
        assert_eq!(find(&f, &wanted, &HashSet::new()), 0);
        f.set_job(n.id, None);
        f.set_offer(n.id, Some((OfferId::new(), t(30))));
        assert_eq!(find(&f, &wanted, &HashSet::new()), 0);
        f.set_offer(n.id, None);
        assert_eq!(find(&f, &wanted, &HashSet::new()), 1);
        f.set_shift(n.id, ShiftState::Off);
        assert_eq!(find(&f, &wanted, &HashSet::new()), 0);
        assert_eq!(f.indexed(), 0);
    }

    #[test]
    fn the_gate_keeps_unverified_junior_and_expired_nurses_out() {
        let wanted = [Skill::new("wound_care").unwrap()];
        let mut picc = need(&wanted);
        picc.requirements.certificates = vec!["picc".into()];
        let find = |n: &Nurse, need: &Need| {
            let mut f = fleet_with(n);
            f.apply_fix(n.id, fix(29.30, 106.25, 0));
            f.candidates(here(), 5, 5_000.0, need, &HashSet::new())
                .len()
        };
        let mut n = nurse(&["wound_care"]);
        assert_eq!(find(&n, &picc), 1);
        // Expired on the visit's day.
        let mut late = picc.clone();
        late.day = chrono::NaiveDate::from_ymd_opt(2030, 1, 2).unwrap();
        assert_eq!(find(&n, &late), 0);
        // Unverified.
        n.credentials.as_mut().unwrap().verification = yixin_domain::Verification::Pending;
        assert_eq!(find(&n, &picc), 0);
        // Three years of practice.
        let mut n = nurse(&["wound_care"]);
        n.credentials.as_mut().unwrap().first_registered_on =
            picc.day - chrono::TimeDelta::days(3 * 366);
        assert_eq!(find(&n, &picc), 0);
        // None at all.
        let mut n = nurse(&["wound_care"]);
        n.credentials = None;
        assert_eq!(find(&n, &picc), 0);
    }

    #[test]
    fn a_stale_fix_is_not_a_candidate_until_a_new_one_comes() {
        let n = nurse(&["wound_care"]);
        let wanted = [Skill::new("wound_care").unwrap()];
        let mut f = fleet_with(&n);
        f.apply_fix(n.id, fix(29.30, 106.25, 0));
        assert!(f.sweep(t(60)).stale.is_empty());
        assert_eq!(f.sweep(t(61)).stale, vec![n.id]);
        assert_eq!(
            f.candidates(here(), 5, 5_000.0, &need(&wanted), &HashSet::new())
                .len(),
            0
        );
        f.apply_fix(n.id, fix(29.30, 106.25, 62));
        assert_eq!(
            f.candidates(here(), 5, 5_000.0, &need(&wanted), &HashSet::new())
                .len(),
            1
        );
    }

    #[test]
    fn a_dropped_connection_keeps_the_nurse_for_the_grace_period() {
        let n = nurse(&["wound_care"]);
        let wanted = [Skill::new("wound_care").unwrap()];
        let mut f = fleet_with(&n);
        f.apply_fix(n.id, fix(29.30, 106.25, 0));
        f.disconnected(n.id, 1, t(10));
        assert_eq!(
            f.candidates(here(), 5, 5_000.0, &need(&wanted), &HashSet::new())
                .len(),
            1
        );
        f.apply_fix(n.id, fix(29.30, 106.25, 50)); // batched fixes from the phone's buffer still count
        let swept = f.sweep(t(131));
        assert_eq!(swept.gone, vec![n.id]);
        assert_eq!(
            f.candidates(here(), 5, 5_000.0, &need(&wanted), &HashSet::new())
                .len(),
            0
        );
    }

    #[test]
    fn a_phone_on_http_only_is_present_for_the_grace_period() {
        let n = nurse(&["wound_care"]);
        let wanted = [Skill::new("wound_care").unwrap()];
        let mut f = Fleet::new(PresenceRules::default());
        f.register(&n);
        f.apply_fix(n.id, fix(29.30, 106.25, 0));
        assert!(
            f.candidates(here(), 5, 5_000.0, &need(&wanted), &HashSet::new())
                .is_empty()
        );
        f.seen(n.id, t(0));
        assert_eq!(
            f.candidates(here(), 5, 5_000.0, &need(&wanted), &HashSet::new())
                .len(),
            1
        );
        f.sweep(t(121));
        assert!(
            f.candidates(here(), 5, 5_000.0, &need(&wanted), &HashSet::new())
                .is_empty()
        );
    }

    #[test]
    fn an_older_connection_closing_does_not_drop_the_newer_one() {
        let n = nurse(&["wound_care"]);
        let mut f = fleet_with(&n);
        f.connected(n.id, 2);
        f.disconnected(n.id, 1, t(5));
        assert_eq!(f.get(&n.id).unwrap().connection, Some(2));
        assert_eq!(f.get(&n.id).unwrap().disconnected_at, None);
    }

    #[test]
    fn expired_offers_are_forgotten_by_the_sweep() {
        let n = nurse(&["wound_care"]);
        let mut f = fleet_with(&n);
        f.set_offer(n.id, Some((OfferId::new(), t(30))));
        f.sweep(t(29));
        assert!(f.get(&n.id).unwrap().offer.is_some());
        f.sweep(t(30));
        assert!(f.get(&n.id).unwrap().offer.is_none());
    }
}
