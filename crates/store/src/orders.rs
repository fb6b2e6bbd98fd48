//! Orders, their timeline, idempotent creation and conditional transitions.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait,
    DatabaseBackend, DatabaseTransaction, EntityTrait, ExprTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement, Value,
};
use uuid::Uuid;
use yixin_domain::{
    NurseId, Order, OrderId, OrderStatus, OrgId, Rating, ResidentId, TimelineEvent,
};

use crate::convert::{self, ts};
use crate::entity::{idempotency_key, order, order_event, outbox};
use crate::error::{StoreError, is_unique_violation};
use crate::store::{Store, finish, rollback};
use crate::types::{
    CreateOrderOutcome, IdempotencyRecord, NewOutboxMessage, OrderCursor, OrderTransition,
};

/// How often a create retries when the key's first holder rolled back under it.
const IDEMPOTENCY_ATTEMPTS: usize = 3;

/// The order, its first event and its outbox row of [`Store::create_order`]
/// on PostgreSQL, given the order's rows (`$4`, `$6`…`$27`) and a source
/// `FROM` clause that yields one row when the order is to be written.
/// `$1`…`$5` are the idempotency record (scope, key, hash, order id, time).
macro_rules! create_order_ctes {
    ($source:literal) => {
        concat!(
            "o AS (INSERT INTO orders (id, org_id, resident_id, service_code, status, lat, lng, \
             address_text, address_detail, contact_name, contact_phone, notes, scheduled_for, \
             created_at, promised_by, nurse_id, eta, cancel_reason, rating_stars, \
             rating_comment, updated_at, version, clinical) \
             SELECT $4, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
             $20, $21, $22, $23, $24, $25, 0, $28 ",
            $source,
            " RETURNING id), \
             e AS (INSERT INTO order_events (order_id, status, at) SELECT id, $9, $18 FROM o), \
             x AS (INSERT INTO outbox (topic, payload, created_at) SELECT $26, $27, $18 FROM o) "
        )
    };
}

/// [`Store::create_order`] without a key on PostgreSQL: one statement
/// (`$1`, `$2`, `$3` and `$5` are bound, as nulls, but unused).
const CREATE_ORDER_SQL: &str = concat!("WITH ", create_order_ctes!(""), "SELECT 1");

/// [`Store::create_order`] with a key on PostgreSQL: one statement, so one
/// transaction. `k` claims the key (waiting for a concurrent holder of it to
/// commit or roll back); only if it did are the order, its event and outbox
/// row written. Returns `(created, request_hash, order_id)`, the last two
/// being the key's record when the key was taken by a committed request this
/// statement's snapshot sees (else null).
const CREATE_ORDER_WITH_KEY_SQL: &str = concat!(
    "WITH k AS (INSERT INTO idempotency_keys (scope, key, request_hash, order_id, created_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, key) DO NOTHING RETURNING 1), ",
    create_order_ctes!("FROM k"),
    "SELECT EXISTS (SELECT 1 FROM o), i.request_hash, i.order_id \
     FROM (SELECT 1) AS one LEFT JOIN idempotency_keys i \
     ON i.scope = $1 AND i.key = $2 AND NOT EXISTS (SELECT 1 FROM k)"
);

/// Why one attempt at creating an order did not commit.
enum CreateFailure {
    /// Another request holds the idempotency key.
    KeyTaken,
    Other(StoreError),
}

impl From<sea_orm::DbErr> for CreateFailure {
    fn from(e: sea_orm::DbErr) -> Self {
        CreateFailure::Other(StoreError::from(e))
    }
}

fn replay_or_conflict(
    existing: &IdempotencyRecord,
    request: &IdempotencyRecord,
) -> Result<CreateOrderOutcome, StoreError> {
    if existing.request_hash == request.request_hash {
        Ok(CreateOrderOutcome::Replayed(existing.order_id))
    } else {
        Err(StoreError::IdempotencyConflict)
    }
}

pub(crate) async fn insert_outbox(
    db: &impl ConnectionTrait,
    msg: &NewOutboxMessage,
    at: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    outbox::Entity::insert(outbox::ActiveModel {
        id: NotSet,
        topic: Set(msg.topic.clone()),
        payload: Set(msg.payload.clone()),
        created_at: Set(ts(at)),
        published_at: Set(None),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

async fn insert_event(
    db: &impl ConnectionTrait,
    id: OrderId,
    status: OrderStatus,
    at: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    order_event::Entity::insert(order_event::ActiveModel {
        id: NotSet,
        order_id: Set(id.0),
        status: Set(status.as_str().to_owned()),
        at: Set(ts(at)),
        detail: Set(None),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

fn order_row(o: &Order) -> order::ActiveModel {
    order::ActiveModel {
        id: Set(o.id.0),
        org_id: Set(o.org_id.as_str().to_owned()),
        resident_id: Set(o.resident_id.as_str().to_owned()),
        service_code: Set(o.service_code.clone()),
        status: Set(o.status.as_str().to_owned()),
        lat: Set(o.location.lat()),
        lng: Set(o.location.lng()),
        address_text: Set(o.address.text.clone()),
        address_detail: Set(o.address.detail.clone()),
        contact_name: Set(o.contact.name.clone()),
        contact_phone: Set(o.contact.phone.as_str().to_owned()),
        notes: Set(o.notes.clone()),
        scheduled_for: Set(o.scheduled_for.map(ts)),
        created_at: Set(ts(o.created_at)),
        promised_by: Set(ts(o.promised_by)),
        nurse_id: Set(o.nurse_id.map(|n| n.0)),
        eta: Set(o.eta.map(ts)),
        cancel_reason: Set(o.cancel_reason.clone()),
        rating_stars: Set(o.rating.as_ref().map(|r| i16::from(r.stars))),
        rating_comment: Set(o.rating.as_ref().and_then(|r| r.comment.clone())),
        updated_at: Set(ts(o.updated_at)),
        version: Set(0),
        clinical: Set(Some(convert::to_json(&o.clinical))),
        chained_after: Set(o.chained_after.map(|a| a.0)),
    }
}

impl Store {
    /// Writes a new order, its first timeline event (its status at
    /// `created_at`), the outbox row and, with a key, the idempotency record,
    /// all in one transaction.
    ///
    /// With a key already used: the same `request_hash` gives
    /// `Replayed(first order id)` and writes nothing; another hash gives
    /// `IdempotencyConflict`. Race-safe: the key's primary key decides which
    /// of concurrent requests creates the order; the others roll back and
    /// replay. The record's `order_id` is taken from `order`.
    /// An unknown service (or a duplicate order id) is a `Conflict`.
    ///
    /// On PostgreSQL this is one statement (see [`CREATE_ORDER_WITH_KEY_SQL`]),
    /// one round trip; on SQLite an explicit transaction.
    pub async fn create_order(
        &self,
        order: &Order,
        outbox: NewOutboxMessage,
        idempotency: Option<IdempotencyRecord>,
    ) -> Result<CreateOrderOutcome, StoreError> {
        if self.backend() == DatabaseBackend::Postgres {
            return self.create_order_postgres(order, outbox, idempotency).await;
        }
        let Some(request) = idempotency else {
            return match self.try_create_order(order, &outbox, None).await {
                Ok(()) => Ok(CreateOrderOutcome::Created),
                Err(CreateFailure::Other(e)) => Err(e),
                Err(CreateFailure::KeyTaken) => Err(StoreError::IdempotencyConflict),
            };
        };
        for _ in 0..IDEMPOTENCY_ATTEMPTS {
            // Fast path for retries: no write transaction needed.
            if let Some(existing) = self
                .idempotency_record(&request.scope, &request.key)
                .await?
            {
                return replay_or_conflict(&existing, &request);
            }
            match self.try_create_order(order, &outbox, Some(&request)).await {
                Ok(()) => return Ok(CreateOrderOutcome::Created),
                Err(CreateFailure::Other(e)) => return Err(e),
                // Lost the race: read the winner's record on the next round.
                Err(CreateFailure::KeyTaken) => continue,
            }
        }
        Err(StoreError::Conflict(
            "idempotency key is contended; retry the request".to_owned(),
        ))
    }

    /// [`Store::create_order`] on PostgreSQL: the key, the order, its event
    /// and its outbox row in one statement, which autocommit makes one
    /// transaction. The key's `ON CONFLICT DO NOTHING` waits for a concurrent
    /// holder of the same key, so of concurrent requests exactly one writes.
    async fn create_order_postgres(
        &self,
        o: &Order,
        outbox: NewOutboxMessage,
        idempotency: Option<IdempotencyRecord>,
    ) -> Result<CreateOrderOutcome, StoreError> {
        let mut values = Vec::with_capacity(28);
        match &idempotency {
            Some(r) => values.extend([
                r.scope.clone().into(),
                r.key.clone().into(),
                r.request_hash.clone().into(),
                o.id.0.into(),
                ts(r.created_at).into(),
            ]),
            None => values.extend([
                Value::String(None),
                Value::String(None),
                Value::String(None),
                o.id.0.into(),
                Value::ChronoDateTimeUtc(None),
            ]),
        }
        values.extend([
            o.org_id.as_str().into(),
            o.resident_id.as_str().into(),
            o.service_code.as_str().into(),
            o.status.as_str().into(),
            o.location.lat().into(),
            o.location.lng().into(),
            o.address.text.as_str().into(),
            o.address.detail.clone().into(),
            o.contact.name.as_str().into(),
            o.contact.phone.as_str().into(),
            o.notes.clone().into(),
            o.scheduled_for.map(ts).into(),
            ts(o.created_at).into(),
            ts(o.promised_by).into(),
            o.nurse_id.map(|n| n.0).into(),
            o.eta.map(ts).into(),
            o.cancel_reason.clone().into(),
            o.rating.as_ref().map(|r| i16::from(r.stars)).into(),
            o.rating.as_ref().and_then(|r| r.comment.clone()).into(),
            ts(o.updated_at).into(),
            outbox.topic.into(),
            outbox.payload.into(),
            convert::to_json(&o.clinical).into(),
        ]);

        let Some(request) = idempotency else {
            let stmt =
                Statement::from_sql_and_values(DatabaseBackend::Postgres, CREATE_ORDER_SQL, values);
            self.db
                .execute_raw(stmt)
                .await
                .map_err(|e| StoreError::from_constraint(e, "order"))?;
            return Ok(CreateOrderOutcome::Created);
        };
        for _ in 0..IDEMPOTENCY_ATTEMPTS {
            let stmt = Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                CREATE_ORDER_WITH_KEY_SQL,
                values.clone(),
            );
            let row = self
                .db
                .query_one_raw(stmt)
                .await
                .map_err(|e| StoreError::from_constraint(e, "order"))?
                .ok_or_else(|| {
                    StoreError::Database(sea_orm::DbErr::RecordNotFound(
                        "create_order returned no row".to_owned(),
                    ))
                })?;
            if row.try_get_by_index::<bool>(0)? {
                return Ok(CreateOrderOutcome::Created);
            }
            // The key was taken. Its record is in the row if it was committed
            // before this statement began; if this statement waited for a
            // concurrent holder instead, read it now.
            let existing = match row.try_get_by_index::<Option<Uuid>>(2)? {
                Some(order_id) => Some(IdempotencyRecord {
                    scope: request.scope.clone(),
                    key: request.key.clone(),
                    request_hash: row.try_get_by_index(1)?,
                    order_id: OrderId(order_id),
                    created_at: request.created_at,
                }),
                None => {
                    self.idempotency_record(&request.scope, &request.key)
                        .await?
                }
            };
            match existing {
                Some(existing) => return replay_or_conflict(&existing, &request),
                // Purged in between: claim it again.
                None => continue,
            }
        }
        Err(StoreError::Conflict(
            "idempotency key is contended; retry the request".to_owned(),
        ))
    }

    async fn try_create_order(
        &self,
        order: &Order,
        outbox: &NewOutboxMessage,
        request: Option<&IdempotencyRecord>,
    ) -> Result<(), CreateFailure> {
        let txn = self.begin_write().await.map_err(CreateFailure::Other)?;
        match create_order_in(&txn, order, outbox, request).await {
            Ok(()) => {
                txn.commit().await.map_err(|e| {
                    if is_unique_violation(&e) {
                        CreateFailure::KeyTaken
                    } else {
                        CreateFailure::Other(e.into())
                    }
                })?;
                Ok(())
            }
            Err(e) => {
                rollback(txn).await;
                Err(e)
            }
        }
    }

    /// One order, if it exists.
    pub async fn get_order(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        Ok(self.get_order_versioned(id).await?.map(|(o, _)| o))
    }

    /// One order and its row version (bumped by every update), for
    /// [`Store::transition_order_at_version`].
    pub async fn get_order_versioned(
        &self,
        id: OrderId,
    ) -> Result<Option<(Order, i32)>, StoreError> {
        match order::Entity::find_by_id(id.0).one(&self.db).await? {
            None => Ok(None),
            Some(m) => {
                let version = m.version;
                Ok(Some((convert::order(m)?, version)))
            }
        }
    }

    /// A resident's orders, newest first, `limit` at most, strictly older than
    /// `before` (keyset paging on `(created_at, id)`: no gaps or duplicates
    /// when orders are added between pages).
    pub async fn orders_for_resident(
        &self,
        org: &OrgId,
        resident: &ResidentId,
        before: Option<OrderCursor>,
        limit: u64,
    ) -> Result<Vec<Order>, StoreError> {
        let mut query = order::Entity::find()
            .filter(order::Column::OrgId.eq(org.as_str()))
            .filter(order::Column::ResidentId.eq(resident.as_str()));
        if let Some(c) = before {
            let at = ts(c.created_at);
            query = query.filter(
                Condition::any().add(order::Column::CreatedAt.lt(at)).add(
                    Condition::all()
                        .add(order::Column::CreatedAt.eq(at))
                        .add(order::Column::Id.lt(c.id.0)),
                ),
            );
        }
        query
            .order_by_desc(order::Column::CreatedAt)
            .order_by_desc(order::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(convert::order)
            .collect()
    }

    /// The orders `nurse` has worked on (or is working on) that changed at
    /// or after `since`, newest first, at most `limit`: a nurse's day.
    pub async fn orders_for_nurse_since(
        &self,
        nurse: NurseId,
        since: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<Order>, StoreError> {
        order::Entity::find()
            .filter(order::Column::NurseId.eq(nurse.0))
            .filter(order::Column::UpdatedAt.gte(ts(since)))
            .order_by_desc(order::Column::CreatedAt)
            .order_by_desc(order::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(convert::order)
            .collect()
    }

    /// The order's timeline, oldest first.
    pub async fn timeline(&self, id: OrderId) -> Result<Vec<TimelineEvent>, StoreError> {
        order_event::Entity::find()
            .filter(order_event::Column::OrderId.eq(id.0))
            .order_by_asc(order_event::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(convert::timeline_event)
            .collect()
    }

    /// Atomic conditional transition: `UPDATE orders SET status = to, … WHERE
    /// id = ? AND status IN (from)`, plus the timeline row and the optional
    /// outbox row, in one transaction. Of concurrent changes from the same
    /// status exactly one applies; the others get `StaleState { current }`.
    /// This is what keeps an order from being taken twice across instances.
    ///
    /// `NotFound` if there is no such order; `Conflict` if the nurse already
    /// holds another active order (assigned … in service). The store does not
    /// check the state machine: the caller asks the domain first.
    pub async fn transition_order(&self, change: OrderTransition) -> Result<Order, StoreError> {
        self.transition(change, None).await
    }

    /// [`Store::transition_order`], and only if the row is still at `version`
    /// (from [`Store::get_order_versioned`]); otherwise `StaleState`.
    pub async fn transition_order_at_version(
        &self,
        change: OrderTransition,
        version: i32,
    ) -> Result<Order, StoreError> {
        self.transition(change, Some(version)).await
    }

    async fn transition(
        &self,
        change: OrderTransition,
        version: Option<i32>,
    ) -> Result<Order, StoreError> {
        let txn = self.begin_write().await?;
        let result = transition_in(&txn, &change, version).await;
        finish(txn, result, "order").await
    }

    /// Records the resident's rating, only if the order is completed and not
    /// yet rated (a conditional update). `NotFound`; `StaleState` if not
    /// completed; `Conflict` if already rated.
    pub async fn set_rating(&self, id: OrderId, rating: &Rating) -> Result<Order, StoreError> {
        let txn = self.begin_write().await?;
        let result = async {
            let res = order::Entity::update_many()
                .col_expr(
                    order::Column::RatingStars,
                    Expr::value(i16::from(rating.stars)),
                )
                .col_expr(
                    order::Column::RatingComment,
                    Expr::value(rating.comment.clone()),
                )
                .col_expr(order::Column::UpdatedAt, Expr::value(ts(Utc::now())))
                .col_expr(
                    order::Column::Version,
                    Expr::col(order::Column::Version).add(1),
                )
                .filter(order::Column::Id.eq(id.0))
                .filter(order::Column::Status.eq(OrderStatus::Completed.as_str()))
                .filter(order::Column::RatingStars.is_null())
                .exec(&txn)
                .await?;
            let current = order::Entity::find_by_id(id.0)
                .one(&txn)
                .await?
                .ok_or(StoreError::NotFound)?;
            if res.rows_affected == 0 {
                return Err(if current.status != OrderStatus::Completed.as_str() {
                    StoreError::StaleState {
                        current: current.status,
                    }
                } else {
                    StoreError::Conflict("the order is already rated".to_owned())
                });
            }
            convert::order(current)
        }
        .await;
        match result {
            Ok(order) => {
                txn.commit().await?;
                Ok(order)
            }
            Err(e) => {
                rollback(txn).await;
                Err(e)
            }
        }
    }

    /// Orders in any of `statuses`, oldest first (for the dispatcher to pick
    /// up work after a restart).
    pub async fn orders_with_status(
        &self,
        statuses: &[OrderStatus],
        limit: u64,
    ) -> Result<Vec<Order>, StoreError> {
        if statuses.is_empty() {
            return Ok(Vec::new());
        }
        order::Entity::find()
            .filter(order::Column::Status.is_in(statuses.iter().map(|s| s.as_str())))
            .order_by_asc(order::Column::CreatedAt)
            .order_by_asc(order::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(convert::order)
            .collect()
    }

    /// The idempotency record of `(scope, key)`, if any.
    pub async fn idempotency_record(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(
            idempotency_key::Entity::find_by_id((scope.to_owned(), key.to_owned()))
                .one(&self.db)
                .await?
                .map(convert::idempotency_record),
        )
    }

    /// Deletes idempotency records created before `older_than`; returns how many.
    pub async fn purge_idempotency_keys(
        &self,
        older_than: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let res = idempotency_key::Entity::delete_many()
            .filter(idempotency_key::Column::CreatedAt.lt(ts(older_than)))
            .exec(&self.db)
            .await?;
        Ok(res.rows_affected)
    }
}

async fn create_order_in(
    txn: &DatabaseTransaction,
    o: &Order,
    outbox: &NewOutboxMessage,
    request: Option<&IdempotencyRecord>,
) -> Result<(), CreateFailure> {
    // The key first: with a concurrent holder, PostgreSQL blocks here until
    // the holder commits (then unique violation) or rolls back (then we win).
    if let Some(r) = request {
        let claimed = idempotency_key::Entity::insert(idempotency_key::ActiveModel {
            scope: Set(r.scope.clone()),
            key: Set(r.key.clone()),
            request_hash: Set(r.request_hash.clone()),
            order_id: Set(o.id.0),
            created_at: Set(ts(r.created_at)),
        })
        .exec_without_returning(txn)
        .await;
        match claimed {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Err(CreateFailure::KeyTaken),
            Err(e) => return Err(e.into()),
        }
    }
    order::Entity::insert(order_row(o))
        .exec_without_returning(txn)
        .await
        .map_err(|e| CreateFailure::Other(StoreError::from_constraint(e, "order")))?;
    insert_event(txn, o.id, o.status, o.created_at).await?;
    insert_outbox(txn, outbox, o.created_at).await?;
    Ok(())
}

/// The job that waited for `current` (a next job) is its nurse's current
/// job from now on: `current` ended (completed, cancelled, or back to
/// waiting). Returns the promoted order's id, if there was one.
pub(crate) async fn promote_next_in(
    txn: &DatabaseTransaction,
    current: OrderId,
    at: DateTime<Utc>,
) -> Result<Option<OrderId>, StoreError> {
    let next = order::Entity::find()
        .filter(order::Column::ChainedAfter.eq(current.0))
        .filter(
            order::Column::Status.is_in(
                OrderStatus::ALL
                    .into_iter()
                    .filter(|s| s.has_nurse())
                    .map(OrderStatus::as_str),
            ),
        )
        .one(txn)
        .await?;
    let Some(next) = next else {
        return Ok(None);
    };
    order::Entity::update_many()
        .col_expr(
            order::Column::ChainedAfter,
            Expr::value(Option::<uuid::Uuid>::None),
        )
        .col_expr(order::Column::UpdatedAt, Expr::value(ts(at)))
        .col_expr(
            order::Column::Version,
            Expr::col(order::Column::Version).add(1),
        )
        .filter(order::Column::Id.eq(next.id))
        .exec(txn)
        .await?;
    Ok(Some(OrderId(next.id)))
}

pub(crate) async fn transition_in(
    txn: &DatabaseTransaction,
    change: &OrderTransition,
    version: Option<i32>,
) -> Result<Order, StoreError> {
    let stale = |current: Option<order::Model>| match current {
        None => StoreError::NotFound,
        Some(m) => StoreError::StaleState { current: m.status },
    };
    if change.from.is_empty() {
        return Err(stale(
            order::Entity::find_by_id(change.id.0).one(txn).await?,
        ));
    }

    let mut update = order::Entity::update_many()
        .col_expr(order::Column::Status, Expr::value(change.to.as_str()))
        .col_expr(order::Column::UpdatedAt, Expr::value(ts(change.at)))
        .col_expr(
            order::Column::Version,
            Expr::col(order::Column::Version).add(1),
        );
    if let Some(nurse) = change.nurse_id {
        update = update.col_expr(order::Column::NurseId, Expr::value(nurse.map(|n| n.0)));
    }
    if let Some(eta) = change.eta {
        update = update.col_expr(order::Column::Eta, Expr::value(eta.map(ts)));
    }
    if let Some(promised_by) = change.promised_by {
        update = update.col_expr(order::Column::PromisedBy, Expr::value(ts(promised_by)));
    }
    if let Some(clinical) = &change.clinical {
        update = update.col_expr(
            order::Column::Clinical,
            Expr::value(Some(convert::to_json(clinical))),
        );
    }
    if let Some(reason) = &change.cancel_reason {
        update = update.col_expr(order::Column::CancelReason, Expr::value(reason.clone()));
    }
    // A job leaving its nurse: nobody's next job any more, and the job
    // that waited for it (if any) is her current one.
    let leaves_nurse = !change.to.has_nurse() && change.from.iter().any(|s| s.has_nurse());
    if leaves_nurse {
        update = update.col_expr(
            order::Column::ChainedAfter,
            Expr::value(Option::<uuid::Uuid>::None),
        );
    } else if let Some(after) = change.chained_after {
        update = update.col_expr(order::Column::ChainedAfter, Expr::value(Some(after.0)));
    }
    update = update
        .filter(order::Column::Id.eq(change.id.0))
        .filter(order::Column::Status.is_in(change.from.iter().map(|s| s.as_str())));
    if matches!(
        change.to,
        OrderStatus::EnRoute
            | OrderStatus::Arrived
            | OrderStatus::InService
            | OrderStatus::Completed
    ) {
        // A next job waits: no visit step until its nurse's current job ends.
        update = update.filter(order::Column::ChainedAfter.is_null());
    }
    if let Some(v) = version {
        update = update.filter(order::Column::Version.eq(v));
    }
    let res = update.exec(txn).await.map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Conflict("the nurse already holds an active order".to_owned())
        } else {
            StoreError::from_constraint(e, "order")
        }
    })?;

    if res.rows_affected == 0 {
        // Not in an allowed status, or (with a version) changed since it was read.
        return Err(stale(
            order::Entity::find_by_id(change.id.0).one(txn).await?,
        ));
    }

    insert_event(txn, change.id, change.to, change.at).await?;
    if let Some(msg) = &change.outbox {
        insert_outbox(txn, msg, change.at).await?;
    }
    if leaves_nurse {
        promote_next_in(txn, change.id, change.at).await?;
    }
    let row = order::Entity::find_by_id(change.id.0)
        .one(txn)
        .await?
        .ok_or(StoreError::NotFound)?;
    convert::order(row)
}
