//! What nurse-tracking and the dispatcher need of offers and jobs: the
//! nurse's live offer and current job, the atomic claim of an offer, answers
//! recorded with their events, manual assignment and shift changes.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement, Value,
};
use yixin_domain::{NurseId, OfferId, OfferStatus, Order, OrderId, OrderStatus, OrgId, ShiftState};

use crate::convert::{self, ts};
use crate::entity::{nurse, offer, order};
use crate::error::StoreError;
use crate::orders::{insert_outbox, transition_in};
use crate::store::{Store, finish, rollback};
use crate::types::{NewOutboxMessage, OrderTransition};

/// Statuses an order can be claimed from by an accepted offer or a manual
/// assignment: those of an order that still needs a nurse (domain's rule).
const CLAIMABLE: [OrderStatus; 3] = OrderStatus::NEEDS_NURSE;

/// Why a claim did not win.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimLost {
    /// No such offer for this nurse (or not theirs: existence must not leak).
    NotFound,
    /// The deadline passed (or the dispatcher already expired it).
    Expired,
    /// Someone else got the order (another nurse or a manual assignment).
    Taken,
    /// The order was cancelled.
    Cancelled,
    /// The nurse already holds another active job.
    NurseBusy,
}

/// A nurse as dispatch weighs it: free or not, and today's record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NurseStanding {
    /// Holds an open offer or an active job.
    pub engaged: bool,
    /// Offers answered (accepted, declined or lapsed) since the given time.
    pub answered: u32,
    pub accepted: u32,
}

/// What a claim did.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimOutcome {
    /// The offer is accepted and the order is the nurse's: `assigned`.
    Won(Box<Order>),
    /// Nothing changed for this nurse (the offer may have been closed).
    Lost(ClaimLost),
}

impl Store {
    /// The nurse's open offer that is still before its deadline, if any.
    pub async fn live_offer_for_nurse(
        &self,
        nurse: NurseId,
        now: DateTime<Utc>,
    ) -> Result<Option<yixin_domain::Offer>, StoreError> {
        offer::Entity::find()
            .filter(offer::Column::NurseId.eq(nurse.0))
            .filter(offer::Column::Status.eq(OfferStatus::Open.as_str()))
            .filter(offer::Column::ExpiresAt.gt(ts(now)))
            .order_by_desc(offer::Column::CreatedAt)
            .one(&self.db)
            .await?
            .map(convert::offer)
            .transpose()
    }

    /// The order the nurse is working on (assigned … in service), if any:
    /// her current job, never a next job (see [`Store::jobs_for_nurse`]).
    pub async fn active_order_for_nurse(
        &self,
        nurse: NurseId,
    ) -> Result<Option<Order>, StoreError> {
        order::Entity::find()
            .filter(order::Column::NurseId.eq(nurse.0))
            .filter(order::Column::Status.is_in(with_nurse()))
            .filter(order::Column::ChainedAfter.is_null())
            .order_by_desc(order::Column::UpdatedAt)
            .one(&self.db)
            .await?
            .map(convert::order)
            .transpose()
    }

    /// The nurse's jobs: her current job and her next job (a chained one,
    /// waiting for the current to end), each if any.
    pub async fn jobs_for_nurse(
        &self,
        nurse: NurseId,
    ) -> Result<(Option<Order>, Option<Order>), StoreError> {
        let rows = order::Entity::find()
            .filter(order::Column::NurseId.eq(nurse.0))
            .filter(order::Column::Status.is_in(with_nurse()))
            .order_by_desc(order::Column::UpdatedAt)
            .all(&self.db)
            .await?;
        let (mut current, mut next) = (None, None);
        for row in rows {
            let order = convert::order(row)?;
            if order.chained_after.is_some() {
                next = next.or(Some(order));
            } else {
                current = current.or(Some(order));
            }
        }
        Ok((current, next))
    }

    /// Offers the order to a nurse, atomically: the order goes to `offered`
    /// (from `pending`, `offered` or `escalated`) and the offer is recorded,
    /// with `events`. `Conflict` if the order or the nurse already has an
    /// open offer (or the nurse has an active job); `StaleState` if the order
    /// was taken or cancelled meanwhile.
    pub async fn make_offer(
        &self,
        offer: &yixin_domain::Offer,
        order_event: impl FnOnce(&Order, OrderStatus) -> Option<NewOutboxMessage>,
        events: Vec<NewOutboxMessage>,
    ) -> Result<Order, StoreError> {
        if self.backend() == DatabaseBackend::Postgres {
            return self.make_offer_postgres(offer, order_event, events).await;
        }
        let txn = self.begin_write().await?;
        let result = async {
            let mut busy = order::Entity::find()
                .filter(order::Column::NurseId.eq(offer.nurse_id.0))
                .filter(order::Column::Status.is_in(with_nurse()));
            if offer.is_chained() {
                // A chained offer goes to a nurse with a current job; only
                // a next job already held makes her busy.
                busy = busy.filter(order::Column::ChainedAfter.is_not_null());
            }
            if busy.one(&txn).await?.is_some() {
                return Err(StoreError::Conflict(
                    "the nurse has an active job".to_owned(),
                ));
            }
            let before = order::Entity::find_by_id(offer.order_id.0)
                .one(&txn)
                .await?
                .ok_or(StoreError::NotFound)?;
            let mut preview = convert::order(before)?;
            let from = preview.status;
            preview.status = OrderStatus::Offered;
            let mut change = OrderTransition::new(
                offer.order_id,
                CLAIMABLE.to_vec(),
                OrderStatus::Offered,
                offer.created_at,
            );
            change.eta = Some(Some(offer.arrival()));
            preview.eta = change.eta.flatten();
            change.outbox = order_event(&preview, from);
            let order = transition_in(&txn, &change, None).await?;
            crate::offers::insert_offer_in(&txn, offer).await?;
            for msg in &events {
                insert_outbox(&txn, msg, offer.created_at).await?;
            }
            Ok(order)
        }
        .await;
        finish(txn, result, "offer").await
    }

    /// [`Store::make_offer`] on PostgreSQL: the order is read, its event
    /// built, then the busy check, the order's move (conditional on the
    /// version read), the offer, the timeline event and the outbox rows are
    /// one statement (see [`make_offer_sql`]): two round trips instead of a
    /// ten-statement transaction, which is what bounded dispatch under load.
    async fn make_offer_postgres(
        &self,
        offer: &yixin_domain::Offer,
        order_event: impl FnOnce(&Order, OrderStatus) -> Option<NewOutboxMessage>,
        events: Vec<NewOutboxMessage>,
    ) -> Result<Order, StoreError> {
        let before = order::Entity::find_by_id(offer.order_id.0)
            .one(&self.db)
            .await?
            .ok_or(StoreError::NotFound)?;
        let version = before.version;
        let mut order = convert::order(before)?;
        let from = order.status;
        if !CLAIMABLE.contains(&from) {
            return Err(StoreError::StaleState {
                current: from.as_str().to_owned(),
            });
        }
        let eta = offer.arrival();
        order.status = OrderStatus::Offered;
        order.eta = Some(eta);
        order.updated_at = offer.created_at;
        let outbox: Vec<NewOutboxMessage> = order_event(&order, from)
            .into_iter()
            .chain(events)
            .collect();

        let values: Vec<Value> = vec![
            offer.order_id.0.into(),
            version.into(),
            ts(offer.created_at).into(),
            ts(eta).into(),
            offer.nurse_id.0.into(),
            offer.id.0.into(),
            offer.status.as_str().into(),
            ts(offer.expires_at).into(),
            i64::from(offer.eta_min).into(),
            i64::from(offer.distance_m).into(),
            // JSON text, cast to jsonb in the statement; null when none.
            Value::String(
                offer
                    .qualified_by
                    .as_ref()
                    .and_then(|q| serde_json::to_string(q).ok()),
            ),
            Value::ChronoDateTimeUtc(offer.free_at.map(ts)),
        ];
        let row = self
            .one_row(
                make_offer_sql(outbox.len(), offer.is_chained()),
                values,
                &outbox,
            )
            .await
            .map_err(crate::offers::offer_conflict)?;
        if row.try_get_by_index::<bool>(0)? {
            return Ok(order);
        }
        if row.try_get_by_index::<bool>(1)? {
            return Err(StoreError::Conflict(
                "the nurse has an active job".to_owned(),
            ));
        }
        // Moved on since it was read: taken, cancelled, or offered by
        // someone else (then `Conflict`, so the caller looks again).
        match order::Entity::find_by_id(offer.order_id.0)
            .one(&self.db)
            .await?
        {
            None => Err(StoreError::NotFound),
            Some(now) if CLAIMABLE.iter().any(|s| s.as_str() == now.status) => Err(
                StoreError::Conflict("the order changed while it was being offered".to_owned()),
            ),
            Some(now) => Err(StoreError::StaleState {
                current: now.status,
            }),
        }
    }

    /// [`Store::claim_offer`] on PostgreSQL: the order is read and its event
    /// built, then one statement (see [`claim_sql`]) locks the offer and the
    /// order as they must be (the offer open, the nurse's, before its
    /// deadline; the order as read and claimable), and only with both locked
    /// accepts the offer, assigns the order and writes the timeline event
    /// and the outbox rows. Three round trips where the transaction took
    /// ten; the locks are taken in the transaction's order (offer, then
    /// order), so it cannot deadlock with an expiry or a decline.
    async fn claim_postgres(
        &self,
        current: &yixin_domain::Offer,
        nurse: NurseId,
        now: DateTime<Utc>,
        order_event: impl Fn(&Order, OrderStatus) -> Option<NewOutboxMessage>,
        events: Vec<NewOutboxMessage>,
    ) -> Result<ClaimOutcome, StoreError> {
        // A claimable order changes only with its open offer (ours), so a
        // second round is rare: an escalation that raced the offer.
        for _ in 0..3 {
            let Some(before) = order::Entity::find_by_id(current.order_id.0)
                .one(&self.db)
                .await?
            else {
                return Ok(ClaimOutcome::Lost(ClaimLost::NotFound));
            };
            let version = before.version;
            let mut order = convert::order(before)?;
            let from = order.status;
            if !CLAIMABLE.contains(&from) {
                return Ok(ClaimOutcome::Lost(
                    why_lost(&self.db, current.id, now).await?,
                ));
            }
            order.status = OrderStatus::Assigned;
            order.nurse_id = Some(nurse);
            order.updated_at = now;
            let outbox: Vec<NewOutboxMessage> = order_event(&order, from)
                .into_iter()
                .chain(events.iter().cloned())
                .collect();
            let values: Vec<Value> = vec![
                current.id.0.into(),
                nurse.0.into(),
                ts(now).into(),
                current.order_id.0.into(),
                version.into(),
            ];
            let chained = current.is_chained();
            let row = match self
                .one_row(claim_sql(outbox.len(), chained), values, &outbox)
                .await
            {
                Ok(row) => row,
                // One active job per nurse: she already has one.
                Err(e) if crate::error::is_unique_violation(&e) => {
                    return Ok(ClaimOutcome::Lost(ClaimLost::NurseBusy));
                }
                Err(e) => return Err(e.into()),
            };
            let (offer_held, claimed): (bool, bool) =
                (row.try_get_by_index(0)?, row.try_get_by_index(2)?);
            if claimed {
                let after: Option<uuid::Uuid> = row.try_get_by_index(3)?;
                order.chained_after = after.map(OrderId);
                return Ok(ClaimOutcome::Won(Box::new(order)));
            }
            if !offer_held {
                // Answered, lapsed or withdrawn meanwhile: say which.
                return Ok(ClaimOutcome::Lost(
                    why_lost(&self.db, current.id, now).await?,
                ));
            }
            // The offer is as it must be but the order moved on since it
            // was read: taken or cancelled (then the next round says so), or
            // still claimable (then the next round claims it as it is now).
        }
        Ok(ClaimOutcome::Lost(
            lost_order(&self.db, current.order_id).await?,
        ))
    }

    /// The one row a single statement on PostgreSQL answers: `sql` bound to
    /// `values`, then a topic and a payload per `outbox` row.
    async fn one_row(
        &self,
        sql: String,
        mut values: Vec<Value>,
        outbox: &[NewOutboxMessage],
    ) -> Result<sea_orm::QueryResult, sea_orm::DbErr> {
        for msg in outbox {
            values.push(msg.topic.clone().into());
            values.push(msg.payload.clone().into());
        }
        let stmt = Statement::from_sql_and_values(DatabaseBackend::Postgres, sql, values);
        self.db.query_one_raw(stmt).await?.ok_or_else(|| {
            sea_orm::DbErr::RecordNotFound("the statement returned no row".to_owned())
        })
    }

    /// Open offers whose deadline has passed, oldest first.
    pub async fn lapsed_offers(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<yixin_domain::Offer>, StoreError> {
        offer::Entity::find()
            .filter(offer::Column::Status.eq(OfferStatus::Open.as_str()))
            .filter(offer::Column::ExpiresAt.lte(ts(now)))
            .order_by_asc(offer::Column::ExpiresAt)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(convert::offer)
            .collect()
    }

    /// Of `nurses`, those holding an open offer or an active job: not free.
    pub async fn engaged_nurses(
        &self,
        nurses: &[NurseId],
    ) -> Result<std::collections::HashSet<NurseId>, StoreError> {
        if nurses.is_empty() {
            return Ok(Default::default());
        }
        let ids: Vec<uuid::Uuid> = nurses.iter().map(|n| n.0).collect();
        let mut engaged: std::collections::HashSet<NurseId> = offer::Entity::find()
            .filter(offer::Column::NurseId.is_in(ids.clone()))
            .filter(offer::Column::Status.eq(OfferStatus::Open.as_str()))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|o| NurseId(o.nurse_id))
            .collect();
        let jobs = order::Entity::find()
            .filter(order::Column::NurseId.is_in(ids))
            .filter(order::Column::Status.is_in(with_nurse()))
            .all(&self.db)
            .await?;
        engaged.extend(jobs.into_iter().filter_map(|o| o.nurse_id.map(NurseId)));
        Ok(engaged)
    }

    /// For each of `nurses`, offers answered and accepted since `since`
    /// (the acceptance record and today's jobs, for scoring).
    pub async fn offer_record(
        &self,
        nurses: &[NurseId],
        since: DateTime<Utc>,
    ) -> Result<std::collections::HashMap<NurseId, (u32, u32)>, StoreError> {
        let mut record = std::collections::HashMap::new();
        if nurses.is_empty() {
            return Ok(record);
        }
        let rows = offer::Entity::find()
            .filter(offer::Column::NurseId.is_in(nurses.iter().map(|n| n.0)))
            .filter(offer::Column::CreatedAt.gte(ts(since)))
            .filter(offer::Column::Status.ne(OfferStatus::Open.as_str()))
            .filter(offer::Column::Status.ne(OfferStatus::Withdrawn.as_str()))
            .all(&self.db)
            .await?;
        for row in rows {
            let entry: &mut (u32, u32) = record.entry(NurseId(row.nurse_id)).or_default();
            entry.0 += 1;
            if row.status == OfferStatus::Accepted.as_str() {
                entry.1 += 1;
            }
        }
        Ok(record)
    }

    /// For each of `nurses`: whether it holds an open offer or an active
    /// job (not free), and its offers answered and accepted since `since`.
    /// [`Store::engaged_nurses`] and [`Store::offer_record`] at once: one
    /// round trip on PostgreSQL, where dispatch asks it for every order.
    pub async fn nurse_standing(
        &self,
        nurses: &[NurseId],
        since: DateTime<Utc>,
    ) -> Result<std::collections::HashMap<NurseId, NurseStanding>, StoreError> {
        let mut standing = std::collections::HashMap::new();
        if nurses.is_empty() {
            return Ok(standing);
        }
        if self.backend() != DatabaseBackend::Postgres {
            let engaged = self.engaged_nurses(nurses).await?;
            let record = self.offer_record(nurses, since).await?;
            for id in nurses {
                let (answered, accepted) = record.get(id).copied().unwrap_or((0, 0));
                standing.insert(
                    *id,
                    NurseStanding {
                        engaged: engaged.contains(id),
                        answered,
                        accepted,
                    },
                );
            }
            return Ok(standing);
        }
        let rows: Vec<String> = (0..nurses.len())
            .map(|i| format!("(${}::uuid)", i + 2))
            .collect();
        let sql = format!(
            "WITH n(id) AS (VALUES {}) \
             SELECT n.id, \
             EXISTS (SELECT 1 FROM offers o WHERE o.nurse_id = n.id AND o.status = '{open}') \
             OR EXISTS (SELECT 1 FROM orders r WHERE r.nurse_id = n.id AND r.status IN ({with_nurse})), \
             (SELECT count(*) FROM offers o WHERE o.nurse_id = n.id AND o.created_at >= $1 \
              AND o.status NOT IN ('{open}', '{withdrawn}')), \
             (SELECT count(*) FROM offers o WHERE o.nurse_id = n.id AND o.created_at >= $1 \
              AND o.status = '{accepted}') \
             FROM n",
            rows.join(", "),
            open = OfferStatus::Open.as_str(),
            withdrawn = OfferStatus::Withdrawn.as_str(),
            accepted = OfferStatus::Accepted.as_str(),
            with_nurse = sql_list(with_nurse()),
        );
        let mut values: Vec<Value> = vec![ts(since).into()];
        values.extend(nurses.iter().map(|n| Value::from(n.0)));
        let stmt = Statement::from_sql_and_values(DatabaseBackend::Postgres, sql, values);
        for row in self.db.query_all_raw(stmt).await? {
            let id: uuid::Uuid = row.try_get_by_index(0)?;
            let answered: i64 = row.try_get_by_index(2)?;
            let accepted: i64 = row.try_get_by_index(3)?;
            standing.insert(
                NurseId(id),
                NurseStanding {
                    engaged: row.try_get_by_index(1)?,
                    answered: u32::try_from(answered).unwrap_or(u32::MAX),
                    accepted: u32::try_from(accepted).unwrap_or(u32::MAX),
                },
            );
        }
        Ok(standing)
    }

    /// Every active nurse on shift, of every organisation, with credentials
    /// (to warm a dispatcher's fleet at start).
    pub async fn working_nurses(&self) -> Result<Vec<yixin_domain::Nurse>, StoreError> {
        let nurses = nurse::Entity::find()
            .filter(nurse::Column::Active.eq(true))
            .filter(nurse::Column::ShiftState.eq(ShiftState::On.as_str()))
            .all(&self.db)
            .await?
            .into_iter()
            .map(convert::nurse)
            .collect::<Result<Vec<_>, _>>()?;
        self.with_credentials(nurses).await
    }

    /// Every organisation's service areas.
    pub async fn all_service_areas(&self) -> Result<Vec<yixin_domain::ServiceArea>, StoreError> {
        crate::entity::service_area::Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .map(convert::service_area)
            .collect()
    }

    /// The organisation's nurses that hold an active order, with the order.
    pub async fn active_orders_by_nurse(
        &self,
        org: &OrgId,
    ) -> Result<std::collections::HashMap<NurseId, OrderId>, StoreError> {
        let rows = order::Entity::find()
            .filter(order::Column::OrgId.eq(org.as_str()))
            .filter(order::Column::NurseId.is_not_null())
            .filter(order::Column::Status.is_in(with_nurse()))
            .filter(order::Column::ChainedAfter.is_null())
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|o| Some((NurseId(o.nurse_id?), OrderId(o.id))))
            .collect())
    }

    /// The nurse's accept of `offer_id`, as one atomic claim: the offer goes
    /// `open` → `accepted` only if it is the nurse's and before its deadline,
    /// and the order goes to `assigned` with this nurse only if it is still
    /// claimable; both or neither. Of any number of concurrent claims (other
    /// nurses, other dispatcher instances, a coordinator's manual assignment)
    /// at most one wins; the one-active-job-per-nurse index keeps a nurse
    /// from being booked twice. `events` are written with the win.
    ///
    /// A repeated accept of an offer the nurse already won answers `Won`
    /// again with the order as it is now, so a phone may retry safely.
    pub async fn claim_offer(
        &self,
        offer_id: OfferId,
        nurse: NurseId,
        now: DateTime<Utc>,
        order_event: impl Fn(&Order, OrderStatus) -> Option<NewOutboxMessage>,
        events: impl FnOnce(&yixin_domain::Offer) -> Vec<NewOutboxMessage>,
    ) -> Result<ClaimOutcome, StoreError> {
        let Some(current) = self.get_offer(offer_id).await? else {
            return Ok(ClaimOutcome::Lost(ClaimLost::NotFound));
        };
        if current.nurse_id != nurse {
            return Ok(ClaimOutcome::Lost(ClaimLost::NotFound));
        }
        if current.status == OfferStatus::Accepted {
            let order = self.get_order(current.order_id).await?;
            return Ok(match order {
                Some(o) if o.nurse_id == Some(nurse) && o.status.has_nurse() => {
                    ClaimOutcome::Won(Box::new(o))
                }
                Some(o) if o.status == OrderStatus::Cancelled => {
                    ClaimOutcome::Lost(ClaimLost::Cancelled)
                }
                _ => ClaimOutcome::Lost(ClaimLost::Taken),
            });
        }

        let events = events(&current);
        if self.backend() == DatabaseBackend::Postgres {
            return self
                .claim_postgres(&current, nurse, now, order_event, events)
                .await;
        }
        let txn = self.begin_write().await?;
        let result = claim_in(&txn, &current, nurse, now, order_event, &events).await;
        match result {
            Ok(ClaimOutcome::Won(order)) => {
                txn.commit()
                    .await
                    .map_err(|e| StoreError::from_constraint(e, "order"))?;
                Ok(ClaimOutcome::Won(order))
            }
            Ok(lost) => {
                rollback(txn).await;
                Ok(lost)
            }
            Err(StoreError::Conflict(_)) => {
                rollback(txn).await;
                Ok(ClaimOutcome::Lost(ClaimLost::NurseBusy))
            }
            Err(e) => {
                rollback(txn).await;
                Err(e)
            }
        }
    }

    /// Closes an open offer (`declined`, `expired` or `withdrawn`) and writes
    /// `events` with it, atomically; `StaleState { current }` if it was no
    /// longer open, `NotFound` if there is no such offer.
    pub async fn close_offer(
        &self,
        offer_id: OfferId,
        to: OfferStatus,
        at: DateTime<Utc>,
        reason: Option<String>,
        events: Vec<NewOutboxMessage>,
    ) -> Result<yixin_domain::Offer, StoreError> {
        self.answer_with_events(offer_id, OfferStatus::Open, to, at, reason, events)
            .await
    }

    /// A coordinator's (or a dispatcher's direct) assignment of the order to
    /// the nurse: withdraws the order's open offer and moves the order to
    /// `assigned`, atomically, under the same rules as [`Store::claim_offer`]
    /// (the order must be claimable, the nurse must hold no other active
    /// job, and a nurse holding an open offer for another order is refused).
    /// `eta` is the nurse's predicted arrival (none when unknown): it
    /// replaces whatever the order predicted for an earlier offer. With
    /// `chain` (the caller found her a chain candidate: see
    /// `yixin_dispatch_core::chain`) a nurse with a current job gets the
    /// order as her next job, if that slot is free.
    /// Returns the order and the withdrawn offer, if there was one.
    pub async fn assign_order(
        &self,
        order_id: OrderId,
        nurse: NurseId,
        now: DateTime<Utc>,
        eta: Option<DateTime<Utc>>,
        chain: bool,
        order_event: impl FnOnce(&Order, OrderStatus) -> Option<NewOutboxMessage>,
    ) -> Result<(Order, Option<yixin_domain::Offer>), StoreError> {
        let txn = self.begin_write().await?;
        let result = async {
            // A nurse weighing another order's offer is not free.
            let busy = offer::Entity::find()
                .filter(offer::Column::NurseId.eq(nurse.0))
                .filter(offer::Column::Status.eq(OfferStatus::Open.as_str()))
                .filter(offer::Column::OrderId.ne(order_id.0))
                .one(&txn)
                .await?;
            if busy.is_some() {
                return Err(StoreError::Conflict(
                    "the nurse is weighing another offer".to_owned(),
                ));
            }
            let open = offer::Entity::find()
                .filter(offer::Column::OrderId.eq(order_id.0))
                .filter(offer::Column::Status.eq(OfferStatus::Open.as_str()))
                .one(&txn)
                .await?;
            let mut withdrawn = None;
            if let Some(row) = open {
                let status = if row.nurse_id == nurse.0 {
                    OfferStatus::Accepted
                } else {
                    OfferStatus::Withdrawn
                };
                let res = offer::Entity::update_many()
                    .col_expr(offer::Column::Status, Expr::value(status.as_str()))
                    .col_expr(offer::Column::AnsweredAt, Expr::value(ts(now)))
                    .filter(offer::Column::Id.eq(row.id))
                    .filter(offer::Column::Status.eq(OfferStatus::Open.as_str()))
                    .exec(&txn)
                    .await?;
                if res.rows_affected == 1 {
                    let row = offer::Entity::find_by_id(row.id)
                        .one(&txn)
                        .await?
                        .ok_or(StoreError::NotFound)?;
                    withdrawn = Some(convert::offer(row)?);
                }
            }
            let order =
                assign_in(&txn, order_id, nurse, now, Some(eta), chain, order_event).await?;
            Ok((order, withdrawn))
        }
        .await;
        finish(txn, result, "order").await
    }

    /// Records the nurse's shift state. `NotFound` if there is no such nurse
    /// in the organisation.
    pub async fn set_shift(
        &self,
        org: &OrgId,
        nurse: NurseId,
        shift: ShiftState,
    ) -> Result<(), StoreError> {
        let res = nurse::Entity::update_many()
            .col_expr(nurse::Column::ShiftState, Expr::value(shift.as_str()))
            .col_expr(nurse::Column::UpdatedAt, Expr::value(ts(Utc::now())))
            .filter(nurse::Column::Id.eq(nurse.0))
            .filter(nurse::Column::OrgId.eq(org.as_str()))
            .exec(&self.db)
            .await?;
        if res.rows_affected == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}

async fn claim_in(
    txn: &DatabaseTransaction,
    current: &yixin_domain::Offer,
    nurse: NurseId,
    now: DateTime<Utc>,
    order_event: impl FnOnce(&Order, OrderStatus) -> Option<NewOutboxMessage>,
    events: &[NewOutboxMessage],
) -> Result<ClaimOutcome, StoreError> {
    let res = offer::Entity::update_many()
        .col_expr(
            offer::Column::Status,
            Expr::value(OfferStatus::Accepted.as_str()),
        )
        .col_expr(offer::Column::AnsweredAt, Expr::value(ts(now)))
        .filter(offer::Column::Id.eq(current.id.0))
        .filter(offer::Column::NurseId.eq(nurse.0))
        .filter(offer::Column::Status.eq(OfferStatus::Open.as_str()))
        .filter(offer::Column::ExpiresAt.gt(ts(now)))
        .exec(txn)
        .await?;
    if res.rows_affected == 0 {
        return Ok(ClaimOutcome::Lost(why_lost(txn, current.id, now).await?));
    }
    let chain = current.is_chained();
    match assign_in(txn, current.order_id, nurse, now, None, chain, order_event).await {
        Ok(order) => {
            for msg in events {
                insert_outbox(txn, msg, now).await?;
            }
            Ok(ClaimOutcome::Won(Box::new(order)))
        }
        Err(StoreError::StaleState { current }) => Ok(ClaimOutcome::Lost(
            if current == OrderStatus::Cancelled.as_str() {
                ClaimLost::Cancelled
            } else {
                ClaimLost::Taken
            },
        )),
        Err(e) => Err(e),
    }
}

/// Why a claim made at `now` lost: the offer's state first (lapsed,
/// declined), then the order's (cancelled, taken).
async fn why_lost(
    db: &impl ConnectionTrait,
    offer: OfferId,
    now: DateTime<Utc>,
) -> Result<ClaimLost, StoreError> {
    let row = offer::Entity::find_by_id(offer.0)
        .one(db)
        .await?
        .ok_or(StoreError::NotFound)?;
    let offer = convert::offer(row)?;
    Ok(match offer.status {
        OfferStatus::Open if offer.expires_at > now => lost_order(db, offer.order_id).await?,
        OfferStatus::Open | OfferStatus::Expired => ClaimLost::Expired,
        OfferStatus::Declined => ClaimLost::NotFound,
        OfferStatus::Accepted | OfferStatus::Withdrawn => lost_order(db, offer.order_id).await?,
    })
}

/// Why an order is out of reach: cancelled, or taken.
async fn lost_order(db: &impl ConnectionTrait, id: OrderId) -> Result<ClaimLost, StoreError> {
    let row = order::Entity::find_by_id(id.0).one(db).await?;
    Ok(match row {
        Some(o) if o.status == OrderStatus::Cancelled.as_str() => ClaimLost::Cancelled,
        _ => ClaimLost::Taken,
    })
}

async fn assign_in(
    txn: &DatabaseTransaction,
    order_id: OrderId,
    nurse: NurseId,
    now: DateTime<Utc>,
    // `None` keeps the order's ETA (an accepted offer's); `Some` replaces it.
    eta: Option<Option<DateTime<Utc>>>,
    // A chained claim: behind her current job, if she has one.
    chain: bool,
    order_event: impl FnOnce(&Order, OrderStatus) -> Option<NewOutboxMessage>,
) -> Result<Order, StoreError> {
    let after = if chain {
        order::Entity::find()
            .filter(order::Column::NurseId.eq(nurse.0))
            .filter(order::Column::Status.is_in(with_nurse()))
            .filter(order::Column::ChainedAfter.is_null())
            .filter(order::Column::Id.ne(order_id.0))
            .one(txn)
            .await?
            .map(|o| OrderId(o.id))
    } else {
        None
    };
    // The event describes the order as it will be; build it from the row
    // before the change (the caller fills in status and nurse).
    let before = order::Entity::find_by_id(order_id.0)
        .one(txn)
        .await?
        .ok_or(StoreError::NotFound)?;
    let mut preview = convert::order(before)?;
    let from = preview.status;
    preview.status = OrderStatus::Assigned;
    preview.nurse_id = Some(nurse);
    preview.updated_at = now;
    preview.chained_after = after;
    let mut change = OrderTransition::new(order_id, CLAIMABLE.to_vec(), OrderStatus::Assigned, now);
    change.nurse_id = Some(Some(nurse));
    change.chained_after = after;
    if let Some(eta) = eta {
        preview.eta = eta;
        change.eta = Some(eta);
    }
    change.outbox = if CLAIMABLE.contains(&from) {
        order_event(&preview, from)
    } else {
        None
    };
    transition_in(txn, &change, None).await
}

/// [`Store::make_offer`] on PostgreSQL with `outbox` outbox rows. Binds:
/// `$1` order id, `$2` its version as read, `$3` now, `$4` the ETA, `$5`
/// nurse, `$6`…`$10` the offer (id, status, expiry, ETA minutes, distance),
/// `$11` what qualified the nurse (JSON text or null), `$12` the chained
/// offer's `free_at` (or null), then a topic and a payload per outbox row.
/// `busy` is the nurse's active job (for a chained offer: her next job, the
/// one slot it must find free); `u` moves the order only if the nurse is
/// not busy and the order is as read and still claimable; the inserts hang off `u`, so a lost race
/// writes nothing. The one-open-offer unique indexes fail the whole
/// statement. Returns `(offered, nurse_busy)`.
fn make_offer_sql(outbox: usize, chained: bool) -> String {
    let with_nurse = sql_list(with_nurse());
    let claimable = sql_list(CLAIMABLE.iter().map(|s| s.as_str()));
    let slot = if chained {
        " AND chained_after IS NOT NULL"
    } else {
        ""
    };
    let mut sql = format!(
        "WITH busy AS (SELECT 1 FROM orders WHERE nurse_id = $5 AND status IN ({with_nurse}){slot} LIMIT 1), \
         u AS (UPDATE orders SET status = '{offered}', eta = $4, updated_at = $3, version = version + 1 \
         WHERE id = $1 AND version = $2 AND status IN ({claimable}) AND NOT EXISTS (SELECT 1 FROM busy) \
         RETURNING id), \
         f AS (INSERT INTO offers (id, order_id, nurse_id, status, created_at, expires_at, eta_min, distance_m, qualified_by, free_at) \
         SELECT $6, id, $5, $7, $3, $8, $9, $10, $11::jsonb, $12 FROM u), \
         e AS (INSERT INTO order_events (order_id, status, at) SELECT id, '{offered}', $3 FROM u) ",
        offered = OrderStatus::Offered.as_str(),
    );
    sql.push_str(&outbox_cte(13, outbox));
    sql.push_str("SELECT EXISTS (SELECT 1 FROM u), EXISTS (SELECT 1 FROM busy)");
    sql
}

/// [`Store::claim_offer`] on PostgreSQL with `outbox` outbox rows. Binds:
/// `$1` offer, `$2` nurse, `$3` now, `$4` order, `$5` the order's version as
/// read, then a topic and a payload per outbox row. `fo` locks the offer if
/// it is still open, the nurse's and before its deadline; `o` then locks
/// the order if it is as read and claimable (`FOR UPDATE` re-checks both on
/// the newest row versions, so a concurrent answer, expiry, assignment or
/// cancel that committed first makes the lock find nothing). Only with both
/// held do `f` (the offer accepted) and `u` (the order assigned) run; the
/// one-job-per-slot indexes (one current, one next per nurse) fail the
/// whole statement if the slot is taken. A chained claim (`chained`) also
/// locks the nurse's current job `cur`, if she has one, and the order
/// becomes her next job behind it: a current job that ended meanwhile is
/// re-checked by the lock and not found, so the order is then her current
/// job. Returns `(offer_held, order_held, claimed, chained_after)`.
fn claim_sql(outbox: usize, chained: bool) -> String {
    let claimable = sql_list(CLAIMABLE.iter().map(|s| s.as_str()));
    let (cur, after) = if chained {
        (
            format!(
                "cur AS (SELECT id FROM orders WHERE nurse_id = $2 AND status IN ({}) \
                 AND chained_after IS NULL AND id <> $4 AND EXISTS (SELECT 1 FROM o) FOR UPDATE), ",
                sql_list(with_nurse())
            ),
            "(SELECT id FROM cur)",
        )
    } else {
        (String::new(), "NULL::uuid")
    };
    let mut sql = format!(
        "WITH fo AS (SELECT id FROM offers WHERE id = $1 AND nurse_id = $2 AND status = '{open}' \
         AND expires_at > $3 FOR UPDATE), \
         o AS (SELECT id FROM orders WHERE id = $4 AND version = $5 AND status IN ({claimable}) \
         AND EXISTS (SELECT 1 FROM fo) FOR UPDATE), \
         {cur}\
         f AS (UPDATE offers SET status = '{accepted}', answered_at = $3 \
         WHERE id IN (SELECT id FROM fo) AND EXISTS (SELECT 1 FROM o) RETURNING id), \
         u AS (UPDATE orders SET status = '{assigned}', nurse_id = $2, updated_at = $3, \
         chained_after = {after}, \
         version = version + 1 WHERE id IN (SELECT id FROM o) AND EXISTS (SELECT 1 FROM f) \
         RETURNING id, chained_after), \
         e AS (INSERT INTO order_events (order_id, status, at) SELECT id, '{assigned}', $3 FROM u) ",
        open = OfferStatus::Open.as_str(),
        accepted = OfferStatus::Accepted.as_str(),
        assigned = OrderStatus::Assigned.as_str(),
    );
    sql.push_str(&outbox_cte(6, outbox));
    sql.push_str(
        "SELECT EXISTS (SELECT 1 FROM fo), EXISTS (SELECT 1 FROM o), EXISTS (SELECT 1 FROM u), \
         (SELECT chained_after FROM u)",
    );
    sql
}

/// `'a', 'b'`: our own status names as an SQL list (never user input).
fn sql_list(statuses: impl Iterator<Item = &'static str>) -> String {
    statuses
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `x` step of the single statements: `rows` outbox rows, bound as a
/// topic and a payload each from `$first` on, written at `$3` only if `u`
/// wrote. Empty for no rows.
fn outbox_cte(first: usize, rows: usize) -> String {
    if rows == 0 {
        return String::new();
    }
    let values: Vec<String> = (0..rows)
        .map(|i| format!("(${}::text, ${}::bytea)", first + 2 * i, first + 1 + 2 * i))
        .collect();
    format!(
        ", x AS (INSERT INTO outbox (topic, payload, created_at) SELECT m.t, m.p, $3 \
         FROM u, (VALUES {}) AS m(t, p)) ",
        values.join(", ")
    )
}

/// The statuses in which an order holds its nurse (`assigned` … `in_service`).
fn with_nurse() -> impl Iterator<Item = &'static str> {
    OrderStatus::ALL
        .into_iter()
        .filter(|s| s.has_nurse())
        .map(OrderStatus::as_str)
}
