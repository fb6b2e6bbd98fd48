//! Nurse safety and visit checks: alarms, the lone-worker timer and the
//! short-visit review flag. Every change that more than one instance could
//! race on (escalating an alarm, asking for a check-in, raising an automatic
//! alarm, acknowledging, resolving) is a conditional update: the one whose
//! update changed a row did it.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use yixin_domain::safety::{Alarm, AlarmKind};
use yixin_domain::{AlarmId, GeoPoint, NurseId, OrderId, OrgId};

use crate::convert::ts;
use crate::entity::{alarm, visit_check};
use crate::error::StoreError;
use crate::store::Store;

/// One visit's checks (a `visit_checks` row).
#[derive(Debug, Clone, PartialEq)]
pub struct VisitCheck {
    pub order_id: OrderId,
    pub org_id: OrgId,
    pub nurse_id: NurseId,
    pub arrived_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub check_in_due_at: Option<DateTime<Utc>>,
    pub check_in_asked_at: Option<DateTime<Utc>>,
    pub last_check_in_at: Option<DateTime<Utc>>,
    pub missed_alarm_at: Option<DateTime<Utc>>,
    pub silent_alarm_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub arrival_override_by: Option<String>,
    pub arrival_override_at: Option<DateTime<Utc>>,
    pub arrival_override_note: Option<String>,
    pub arrival_distance_m: Option<u32>,
    pub review_flag: Option<String>,
    pub visit_minutes: Option<u32>,
    pub flagged_at: Option<DateTime<Utc>>,
    pub flag_cleared_by: Option<String>,
    pub flag_cleared_at: Option<DateTime<Utc>>,
    pub flag_note: Option<String>,
}

fn check_of(m: visit_check::Model) -> VisitCheck {
    VisitCheck {
        order_id: OrderId(m.order_id),
        org_id: OrgId::from(m.org_id.as_str()),
        nurse_id: NurseId(m.nurse_id),
        arrived_at: m.arrived_at,
        started_at: m.started_at,
        check_in_due_at: m.check_in_due_at,
        check_in_asked_at: m.check_in_asked_at,
        last_check_in_at: m.last_check_in_at,
        missed_alarm_at: m.missed_alarm_at,
        silent_alarm_at: m.silent_alarm_at,
        closed_at: m.closed_at,
        arrival_override_by: m.arrival_override_by,
        arrival_override_at: m.arrival_override_at,
        arrival_override_note: m.arrival_override_note,
        arrival_distance_m: m.arrival_distance_m.and_then(|d| u32::try_from(d).ok()),
        review_flag: m.review_flag,
        visit_minutes: m.visit_minutes.and_then(|d| u32::try_from(d).ok()),
        flagged_at: m.flagged_at,
        flag_cleared_by: m.flag_cleared_by,
        flag_cleared_at: m.flag_cleared_at,
        flag_note: m.flag_note,
    }
}

fn alarm_of(m: alarm::Model) -> Result<Alarm, StoreError> {
    let kind = AlarmKind::parse(&m.kind)
        .ok_or_else(|| StoreError::Corrupt(format!("alarms {}: kind {}", m.id, m.kind)))?;
    let location = match (m.lat, m.lng) {
        (Some(lat), Some(lng)) => GeoPoint::new(lat, lng).ok(),
        _ => None,
    };
    Ok(Alarm {
        id: AlarmId(m.id),
        org_id: OrgId::from(m.org_id.as_str()),
        nurse_id: NurseId(m.nurse_id),
        order_id: m.order_id.map(OrderId),
        kind,
        location,
        accuracy_m: m.accuracy_m,
        note: m.note,
        raised_at: m.raised_at,
        acknowledged_by: m.acknowledged_by,
        acknowledged_at: m.acknowledged_at,
        resolved_by: m.resolved_by,
        resolved_at: m.resolved_at,
        resolution_note: m.resolution_note,
        escalated_at: m.escalated_at,
        escalation: m.escalation,
    })
}

fn empty_check(order: OrderId, org: &OrgId, nurse: NurseId) -> visit_check::ActiveModel {
    visit_check::ActiveModel {
        order_id: Set(order.0),
        org_id: Set(org.as_str().to_owned()),
        nurse_id: Set(nurse.0),
        arrived_at: Set(None),
        started_at: Set(None),
        check_in_due_at: Set(None),
        check_in_asked_at: Set(None),
        last_check_in_at: Set(None),
        missed_alarm_at: Set(None),
        silent_alarm_at: Set(None),
        closed_at: Set(None),
        arrival_override_by: Set(None),
        arrival_override_at: Set(None),
        arrival_override_note: Set(None),
        arrival_distance_m: Set(None),
        review_flag: Set(None),
        visit_minutes: Set(None),
        flagged_at: Set(None),
        flag_cleared_by: Set(None),
        flag_cleared_at: Set(None),
        flag_note: Set(None),
    }
}

fn clamp_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

impl Store {
    // ---- alarms ----

    /// Records a new alarm.
    pub async fn insert_alarm(&self, a: &Alarm) -> Result<(), StoreError> {
        alarm::Entity::insert(alarm::ActiveModel {
            id: Set(a.id.0),
            org_id: Set(a.org_id.as_str().to_owned()),
            nurse_id: Set(a.nurse_id.0),
            order_id: Set(a.order_id.map(|o| o.0)),
            kind: Set(a.kind.as_str().to_owned()),
            lat: Set(a.location.map(|p| p.lat())),
            lng: Set(a.location.map(|p| p.lng())),
            accuracy_m: Set(a.accuracy_m),
            note: Set(a.note.clone()),
            raised_at: Set(ts(a.raised_at)),
            acknowledged_by: Set(None),
            acknowledged_at: Set(None),
            resolved_by: Set(None),
            resolved_at: Set(None),
            resolution_note: Set(None),
            escalation_claimed_at: Set(None),
            escalated_at: Set(None),
            escalation: Set(None),
            escalation_attempts: Set(0),
        })
        .exec_without_returning(&self.db)
        .await
        .map_err(|e| StoreError::from_constraint(e, "alarm"))?;
        self.alarm_webhooks(a).await;
        Ok(())
    }

    /// The organisation's `alarm.*` webhooks, right after the change
    /// committed. Best effort: an alarm is never refused because its
    /// webhook could not be queued (the escalation webhook stays its
    /// safety net); a failure is logged.
    async fn alarm_webhooks(&self, a: &Alarm) {
        let event = yixin_contracts::webhooks::alarm_event(a);
        if let Err(e) = self
            .enqueue_webhook_events(
                std::slice::from_ref(&event),
                &crate::webhooks::NotificationTemplates::default(),
                chrono::Utc::now(),
            )
            .await
        {
            tracing::warn!(alarm = %a.id, error = %e, "alarm webhook not queued");
        }
    }

    /// An alarm of the organisation.
    pub async fn org_alarm(&self, org: &OrgId, id: AlarmId) -> Result<Option<Alarm>, StoreError> {
        alarm::Entity::find_by_id(id.0)
            .filter(alarm::Column::OrgId.eq(org.as_str()))
            .one(&self.db)
            .await?
            .map(alarm_of)
            .transpose()
    }

    /// The organisation's alarms, newest first: the unresolved ones only
    /// when `open_only`.
    pub async fn org_alarms(
        &self,
        org: &OrgId,
        open_only: bool,
        limit: u64,
    ) -> Result<Vec<Alarm>, StoreError> {
        let mut q = alarm::Entity::find().filter(alarm::Column::OrgId.eq(org.as_str()));
        if open_only {
            q = q.filter(alarm::Column::ResolvedAt.is_null());
        }
        q.order_by_desc(alarm::Column::RaisedAt)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(alarm_of)
            .collect()
    }

    /// A nurse's unresolved alarms, newest first.
    pub async fn nurse_open_alarms(&self, nurse: NurseId) -> Result<Vec<Alarm>, StoreError> {
        alarm::Entity::find()
            .filter(alarm::Column::NurseId.eq(nurse.0))
            .filter(alarm::Column::ResolvedAt.is_null())
            .order_by_desc(alarm::Column::RaisedAt)
            .limit(20)
            .all(&self.db)
            .await?
            .into_iter()
            .map(alarm_of)
            .collect()
    }

    /// Writes an acknowledgement made by [`Alarm::acknowledge`]; `false` if
    /// someone else acknowledged or resolved it meanwhile.
    pub async fn save_alarm_ack(&self, a: &Alarm) -> Result<bool, StoreError> {
        let (Some(by), Some(at)) = (&a.acknowledged_by, a.acknowledged_at) else {
            return Ok(false);
        };
        let res = alarm::Entity::update_many()
            .col_expr(alarm::Column::AcknowledgedBy, Expr::value(by.clone()))
            .col_expr(alarm::Column::AcknowledgedAt, Expr::value(ts(at)))
            .filter(alarm::Column::Id.eq(a.id.0))
            .filter(alarm::Column::AcknowledgedAt.is_null())
            .filter(alarm::Column::ResolvedAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(res.rows_affected == 1)
    }

    /// Writes a resolution made by [`Alarm::resolve`]; `false` if it was
    /// resolved meanwhile.
    pub async fn save_alarm_resolution(&self, a: &Alarm) -> Result<bool, StoreError> {
        let (Some(by), Some(at)) = (&a.resolved_by, a.resolved_at) else {
            return Ok(false);
        };
        let res = alarm::Entity::update_many()
            .col_expr(alarm::Column::ResolvedBy, Expr::value(by.clone()))
            .col_expr(alarm::Column::ResolvedAt, Expr::value(ts(at)))
            .col_expr(
                alarm::Column::ResolutionNote,
                Expr::value(a.resolution_note.clone()),
            )
            .filter(alarm::Column::Id.eq(a.id.0))
            .filter(alarm::Column::AcknowledgedAt.is_not_null())
            .filter(alarm::Column::ResolvedAt.is_null())
            .exec(&self.db)
            .await?;
        if res.rows_affected == 1 {
            self.alarm_webhooks(a).await;
        }
        Ok(res.rows_affected == 1)
    }

    /// Alarms nobody acknowledged, raised at or before `raised_by`, whose
    /// escalation nobody holds: never claimed, or claimed at or before
    /// `lease_expired_by` (the claimer's lease ran out) with no outcome
    /// recorded — the instance that claimed it died mid-delivery.
    pub async fn alarms_to_escalate(
        &self,
        raised_by: DateTime<Utc>,
        lease_expired_by: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<Alarm>, StoreError> {
        alarm::Entity::find()
            .filter(escalation_open(lease_expired_by))
            .filter(alarm::Column::RaisedAt.lte(ts(raised_by)))
            .order_by_asc(alarm::Column::RaisedAt)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(alarm_of)
            .collect()
    }

    /// Claims an alarm's escalation for this instance until its lease runs
    /// out: `true` for exactly one caller, only while nobody has
    /// acknowledged it, and only if it was never claimed or its last claim
    /// (at or before `lease_expired_by`) ended without a recorded outcome.
    pub async fn claim_alarm_escalation(
        &self,
        id: AlarmId,
        now: DateTime<Utc>,
        lease_expired_by: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let res = alarm::Entity::update_many()
            .col_expr(alarm::Column::EscalationClaimedAt, Expr::value(ts(now)))
            .filter(alarm::Column::Id.eq(id.0))
            .filter(escalation_open(lease_expired_by))
            .exec(&self.db)
            .await?;
        Ok(res.rows_affected == 1)
    }

    /// Records how the escalation went: `delivered`, `failed` or `no_endpoint`.
    pub async fn record_alarm_escalation(
        &self,
        id: AlarmId,
        outcome: &str,
        attempts: u32,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        alarm::Entity::update_many()
            .col_expr(alarm::Column::Escalation, Expr::value(outcome.to_owned()))
            .col_expr(
                alarm::Column::EscalationAttempts,
                Expr::value(clamp_i32(attempts)),
            )
            .col_expr(alarm::Column::EscalatedAt, Expr::value(ts(at)))
            .filter(alarm::Column::Id.eq(id.0))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    // ---- visit checks ----

    /// The checks of one visit.
    pub async fn visit_check(&self, order: OrderId) -> Result<Option<VisitCheck>, StoreError> {
        Ok(visit_check::Entity::find_by_id(order.0)
            .one(&self.db)
            .await?
            .map(check_of))
    }

    async fn ensure_check(
        &self,
        order: OrderId,
        org: &OrgId,
        nurse: NurseId,
    ) -> Result<(), StoreError> {
        if visit_check::Entity::find_by_id(order.0)
            .one(&self.db)
            .await?
            .is_some()
        {
            return Ok(());
        }
        match visit_check::Entity::insert(empty_check(order, org, nurse))
            .exec_without_returning(&self.db)
            .await
        {
            Ok(_) => Ok(()),
            // Inserted meanwhile by another request: fine.
            Err(e) if crate::error::is_unique_violation(&e) => Ok(()),
            Err(e) => Err(StoreError::from_constraint(e, "visit check")),
        }
    }

    /// A coordinator lets this job's arrival through wherever the nurse is.
    pub async fn override_arrival(
        &self,
        order: OrderId,
        org: &OrgId,
        nurse: NurseId,
        by: &str,
        note: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.ensure_check(order, org, nurse).await?;
        visit_check::Entity::update_many()
            .col_expr(
                visit_check::Column::ArrivalOverrideBy,
                Expr::value(by.to_owned()),
            )
            .col_expr(visit_check::Column::ArrivalOverrideAt, Expr::value(ts(now)))
            .col_expr(
                visit_check::Column::ArrivalOverrideNote,
                Expr::value(note.map(str::to_owned)),
            )
            .filter(visit_check::Column::OrderId.eq(order.0))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// The nurse arrived: the lone-worker timer starts (`due`).
    pub async fn record_arrival(
        &self,
        order: OrderId,
        org: &OrgId,
        nurse: NurseId,
        at: DateTime<Utc>,
        due: DateTime<Utc>,
        distance_m: Option<u32>,
    ) -> Result<(), StoreError> {
        self.ensure_check(order, org, nurse).await?;
        visit_check::Entity::update_many()
            .col_expr(visit_check::Column::NurseId, Expr::value(nurse.0))
            .col_expr(visit_check::Column::ArrivedAt, Expr::value(ts(at)))
            .col_expr(visit_check::Column::CheckInDueAt, Expr::value(ts(due)))
            .col_expr(
                visit_check::Column::ArrivalDistanceM,
                Expr::value(distance_m.map(clamp_i32)),
            )
            .filter(visit_check::Column::OrderId.eq(order.0))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// The visit started (the short-visit rule measures from here).
    pub async fn record_visit_started(
        &self,
        order: OrderId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        visit_check::Entity::update_many()
            .col_expr(visit_check::Column::StartedAt, Expr::value(ts(at)))
            .filter(visit_check::Column::OrderId.eq(order.0))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// The nurse checked in: the timer re-arms at `next_due`, and the
    /// automatic alarms of this visit can fire again later.
    pub async fn record_check_in(
        &self,
        order: OrderId,
        at: DateTime<Utc>,
        next_due: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let none: Option<DateTime<Utc>> = None;
        let res = visit_check::Entity::update_many()
            .col_expr(visit_check::Column::LastCheckInAt, Expr::value(ts(at)))
            .col_expr(visit_check::Column::CheckInDueAt, Expr::value(ts(next_due)))
            .col_expr(visit_check::Column::CheckInAskedAt, Expr::value(none))
            .col_expr(visit_check::Column::MissedAlarmAt, Expr::value(none))
            .col_expr(visit_check::Column::SilentAlarmAt, Expr::value(none))
            .filter(visit_check::Column::OrderId.eq(order.0))
            .filter(visit_check::Column::ClosedAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(res.rows_affected == 1)
    }

    /// The visit ended (completed or cancelled): no more timers. With
    /// `short` = the visit's minutes when it was too short: flagged for review.
    pub async fn close_visit(
        &self,
        order: OrderId,
        at: DateTime<Utc>,
        short: Option<u32>,
    ) -> Result<(), StoreError> {
        let mut q = visit_check::Entity::update_many()
            .col_expr(visit_check::Column::ClosedAt, Expr::value(ts(at)));
        if let Some(minutes) = short {
            q = q
                .col_expr(
                    visit_check::Column::ReviewFlag,
                    Expr::value(yixin_domain::safety::SHORT_VISIT_FLAG),
                )
                .col_expr(
                    visit_check::Column::VisitMinutes,
                    Expr::value(clamp_i32(minutes)),
                )
                .col_expr(visit_check::Column::FlaggedAt, Expr::value(ts(at)));
        }
        q.filter(visit_check::Column::OrderId.eq(order.0))
            .filter(visit_check::Column::ClosedAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Open visits, for the lone-worker scan: those whose check-in is due
    /// by `now` and not yet asked, those asked at or before `asked_by`
    /// without a missed-check-in alarm, and every other open, arrived visit
    /// without a silent-phone alarm (the caller checks their phones).
    pub async fn open_visit_checks(&self, limit: u64) -> Result<Vec<VisitCheck>, StoreError> {
        Ok(visit_check::Entity::find()
            .filter(visit_check::Column::ClosedAt.is_null())
            .filter(visit_check::Column::ArrivedAt.is_not_null())
            .filter(
                Condition::any()
                    .add(visit_check::Column::MissedAlarmAt.is_null())
                    .add(visit_check::Column::SilentAlarmAt.is_null()),
            )
            .order_by_asc(visit_check::Column::CheckInDueAt)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(check_of)
            .collect())
    }

    /// Claims asking the phone to check in (once per due time).
    pub async fn claim_check_in_ask(
        &self,
        order: OrderId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let due = Condition::all().add(visit_check::Column::CheckInDueAt.lte(ts(now)));
        self.claim_visit_check(order, visit_check::Column::CheckInAskedAt, due, now)
            .await
    }

    /// Claims raising the missed-check-in alarm (once per unanswered ask).
    pub async fn claim_missed_check_in(
        &self,
        order: OrderId,
        asked_by: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let unanswered =
            Condition::all().add(visit_check::Column::CheckInAskedAt.lte(ts(asked_by)));
        self.claim_visit_check(order, visit_check::Column::MissedAlarmAt, unanswered, now)
            .await
    }

    /// Claims raising the silent-phone alarm (once until the next check-in).
    pub async fn claim_silent_phone(
        &self,
        order: OrderId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.claim_visit_check(
            order,
            visit_check::Column::SilentAlarmAt,
            Condition::all(),
            now,
        )
        .await
    }

    /// One conditional update: stamps `mark` on the open visit's check if
    /// it is still unset and `when` holds, so of two instances (or two
    /// scans) exactly one wins.
    async fn claim_visit_check(
        &self,
        order: OrderId,
        mark: visit_check::Column,
        when: Condition,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let res = visit_check::Entity::update_many()
            .col_expr(mark, Expr::value(ts(now)))
            .filter(visit_check::Column::OrderId.eq(order.0))
            .filter(visit_check::Column::ClosedAt.is_null())
            .filter(mark.is_null())
            .filter(when)
            .exec(&self.db)
            .await?;
        Ok(res.rows_affected == 1)
    }

    /// The organisation's visits flagged for review (not cleared), newest first.
    pub async fn flagged_visits(
        &self,
        org: &OrgId,
        limit: u64,
    ) -> Result<Vec<VisitCheck>, StoreError> {
        Ok(visit_check::Entity::find()
            .filter(visit_check::Column::OrgId.eq(org.as_str()))
            .filter(visit_check::Column::ReviewFlag.is_not_null())
            .filter(visit_check::Column::FlagClearedAt.is_null())
            .order_by_desc(visit_check::Column::FlaggedAt)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(check_of)
            .collect())
    }

    /// A coordinator clears a visit's review flag with a note; `false` if
    /// the visit has no uncleared flag in the organisation.
    pub async fn clear_visit_flag(
        &self,
        org: &OrgId,
        order: OrderId,
        by: &str,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let res = visit_check::Entity::update_many()
            .col_expr(
                visit_check::Column::FlagClearedBy,
                Expr::value(by.to_owned()),
            )
            .col_expr(visit_check::Column::FlagClearedAt, Expr::value(ts(now)))
            .col_expr(visit_check::Column::FlagNote, Expr::value(note.to_owned()))
            .filter(visit_check::Column::OrderId.eq(order.0))
            .filter(visit_check::Column::OrgId.eq(org.as_str()))
            .filter(visit_check::Column::ReviewFlag.is_not_null())
            .filter(visit_check::Column::FlagClearedAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(res.rows_affected == 1)
    }
}

/// An escalation nobody holds: never claimed, or its lease ran out (claimed
/// at or before `lease_expired_by`) with no outcome recorded.
/// An alarm nobody has acknowledged or resolved whose escalation nobody
/// holds: what the escalation scan lists and its claim re-checks.
fn escalation_open(lease_expired_by: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(claimable(lease_expired_by))
        .add(alarm::Column::AcknowledgedAt.is_null())
        .add(alarm::Column::ResolvedAt.is_null())
}

fn claimable(lease_expired_by: DateTime<Utc>) -> sea_orm::Condition {
    sea_orm::Condition::any()
        .add(alarm::Column::EscalationClaimedAt.is_null())
        .add(
            sea_orm::Condition::all()
                .add(alarm::Column::EscalationClaimedAt.lte(ts(lease_expired_by)))
                .add(alarm::Column::Escalation.is_null()),
        )
}
