//! Webhooks (issue 19): the organisations' endpoints and the delivery log.
//!
//! Capture is at least once: the outbox relay hands every event it
//! publishes to [`Store::enqueue_webhook_events`] before marking it
//! published, and alarms are enqueued right after their change commits; a
//! delivery is unique per (endpoint, source event, type), so an event
//! handed over twice (a relay that died before marking) makes one delivery.
//! Workers claim due deliveries with a lease ([`Store::claim_webhook_deliveries`]:
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL), so instances share the work and
//! a delivery whose worker died is tried again when its lease runs out.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement,
};
use uuid::Uuid;
use yixin_contracts::webhooks::{
    NOTIFICATION_SMS, NOTIFICATION_WECHAT, NOTIFIED_STEPS, Notification, WebhookEvent,
    notification_event,
};
use yixin_domain::webhooks::{DeliveryStatus, courtesy_name};
use yixin_domain::{NurseId, OrgId};

use crate::convert::ts;
use crate::entity::{order, webhook_delivery, webhook_endpoint};
use crate::error::StoreError;
use crate::store::Store;

/// A registered endpoint, without its secret.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEndpoint {
    pub id: Uuid,
    pub org_id: OrgId,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub enabled: bool,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An endpoint to register.
#[derive(Debug, Clone)]
pub struct NewWebhookEndpoint {
    pub org_id: OrgId,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub secret: String,
    pub created_by: String,
}

/// A change to an endpoint (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct WebhookEndpointChange {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
}

/// One event for one endpoint, and how its delivery went.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDelivery {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub org_id: String,
    pub event_id: String,
    pub event_type: String,
    /// The event's `data`, as JSON.
    pub payload: String,
    pub occurred_at: DateTime<Utc>,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A claimed delivery with where it goes and the key that signs it.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub delivery: WebhookDelivery,
    pub url: String,
    pub secret: String,
}

/// What a replay found.
#[derive(Debug, Clone, PartialEq)]
pub enum Replay {
    /// Queued again, attempts from zero.
    Queued(Box<WebhookDelivery>),
    /// Still pending: nothing to replay.
    StillPending,
    NotFound,
}

/// The template ids of the resident's notifications, per step
/// (`assigned`, `en_route`, `arrived`, `completed`); a step without one is
/// not sent on that channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotificationTemplates {
    pub sms: BTreeMap<String, String>,
    pub wechat: BTreeMap<String, String>,
}

fn endpoint_of(m: webhook_endpoint::Model) -> Result<WebhookEndpoint, StoreError> {
    let events: Vec<String> = serde_json::from_str(&m.events)
        .map_err(|e| StoreError::Corrupt(format!("webhook_endpoints {}: events: {e}", m.id)))?;
    Ok(WebhookEndpoint {
        id: m.id,
        org_id: OrgId::from(m.org_id.as_str()),
        url: m.url,
        events,
        description: m.description,
        enabled: m.enabled,
        created_by: m.created_by,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

fn delivery_of(m: webhook_delivery::Model) -> Result<WebhookDelivery, StoreError> {
    let status = DeliveryStatus::parse(&m.status).ok_or_else(|| {
        StoreError::Corrupt(format!("webhook_deliveries {}: status {}", m.id, m.status))
    })?;
    Ok(WebhookDelivery {
        id: m.id,
        endpoint_id: m.endpoint_id,
        org_id: m.org_id,
        event_id: m.event_id,
        event_type: m.event_type,
        payload: m.payload,
        occurred_at: m.occurred_at,
        status,
        attempts: u32::try_from(m.attempts).unwrap_or(0),
        next_attempt_at: m.next_attempt_at,
        last_attempt_at: m.last_attempt_at,
        last_status_code: m.last_status_code.and_then(|c| u16::try_from(c).ok()),
        last_error: m.last_error,
        delivered_at: m.delivered_at,
        created_at: m.created_at,
    })
}

fn events_json(events: &[String]) -> String {
    serde_json::Value::from(events.to_vec()).to_string()
}

fn new_delivery(
    endpoint: Uuid,
    org: &str,
    e: &WebhookEvent,
    now: DateTime<Utc>,
) -> webhook_delivery::ActiveModel {
    webhook_delivery::ActiveModel {
        id: Set(Uuid::now_v7()),
        endpoint_id: Set(endpoint),
        org_id: Set(org.to_owned()),
        event_id: Set(e.event_id.clone()),
        event_type: Set(e.event_type.to_owned()),
        payload: Set(e.data.to_string()),
        occurred_at: Set(ts(e.occurred_at)),
        status: Set(DeliveryStatus::Pending.as_str().to_owned()),
        attempts: Set(0),
        next_attempt_at: Set(Some(ts(now))),
        last_attempt_at: Set(None),
        last_status_code: Set(None),
        last_error: Set(None),
        delivered_at: Set(None),
        created_at: Set(ts(now)),
    }
}

/// Error text kept in the log: one line, at most 500 characters.
fn short(error: &str) -> String {
    error
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(500)
        .collect()
}

impl Store {
    // ---- endpoints ----

    /// Registers an endpoint.
    pub async fn create_webhook_endpoint(
        &self,
        new: &NewWebhookEndpoint,
        at: DateTime<Utc>,
    ) -> Result<WebhookEndpoint, StoreError> {
        let model = webhook_endpoint::ActiveModel {
            id: Set(Uuid::now_v7()),
            org_id: Set(new.org_id.as_str().to_owned()),
            url: Set(new.url.clone()),
            events: Set(events_json(&new.events)),
            description: Set(new.description.clone()),
            secret: Set(new.secret.clone()),
            enabled: Set(true),
            created_by: Set(new.created_by.clone()),
            created_at: Set(ts(at)),
            updated_at: Set(ts(at)),
        };
        let row = webhook_endpoint::Entity::insert(model)
            .exec_with_returning(&self.db)
            .await
            .map_err(|e| StoreError::from_constraint(e, "webhook endpoint"))?;
        endpoint_of(row)
    }

    /// The organisation's endpoints, oldest first.
    pub async fn webhook_endpoints(&self, org: &OrgId) -> Result<Vec<WebhookEndpoint>, StoreError> {
        webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::OrgId.eq(org.as_str()))
            .order_by_asc(webhook_endpoint::Column::CreatedAt)
            .order_by_asc(webhook_endpoint::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(endpoint_of)
            .collect()
    }

    /// How many endpoints the organisation has.
    pub async fn count_webhook_endpoints(&self, org: &OrgId) -> Result<u64, StoreError> {
        Ok(webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::OrgId.eq(org.as_str()))
            .count(&self.db)
            .await?)
    }

    /// An endpoint of the organisation.
    pub async fn webhook_endpoint(
        &self,
        org: &OrgId,
        id: Uuid,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        webhook_endpoint::Entity::find_by_id(id)
            .filter(webhook_endpoint::Column::OrgId.eq(org.as_str()))
            .one(&self.db)
            .await?
            .map(endpoint_of)
            .transpose()
    }

    /// Applies `change` to an endpoint of the organisation; `None` if there is none.
    pub async fn update_webhook_endpoint(
        &self,
        org: &OrgId,
        id: Uuid,
        change: &WebhookEndpointChange,
        at: DateTime<Utc>,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        let mut q = webhook_endpoint::Entity::update_many()
            .col_expr(webhook_endpoint::Column::UpdatedAt, Expr::value(ts(at)));
        if let Some(url) = &change.url {
            q = q.col_expr(webhook_endpoint::Column::Url, Expr::value(url.clone()));
        }
        if let Some(events) = &change.events {
            q = q.col_expr(
                webhook_endpoint::Column::Events,
                Expr::value(events_json(events)),
            );
        }
        if let Some(description) = &change.description {
            q = q.col_expr(
                webhook_endpoint::Column::Description,
                Expr::value(description.clone()),
            );
        }
        if let Some(enabled) = change.enabled {
            q = q.col_expr(webhook_endpoint::Column::Enabled, Expr::value(enabled));
        }
        let res = q
            .filter(webhook_endpoint::Column::Id.eq(id))
            .filter(webhook_endpoint::Column::OrgId.eq(org.as_str()))
            .exec(&self.db)
            .await?;
        if res.rows_affected == 0 {
            return Ok(None);
        }
        self.webhook_endpoint(org, id).await
    }

    /// Replaces an endpoint's signing key; `false` if there is no such endpoint.
    pub async fn rotate_webhook_secret(
        &self,
        org: &OrgId,
        id: Uuid,
        secret: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let res = webhook_endpoint::Entity::update_many()
            .col_expr(webhook_endpoint::Column::Secret, Expr::value(secret))
            .col_expr(webhook_endpoint::Column::UpdatedAt, Expr::value(ts(at)))
            .filter(webhook_endpoint::Column::Id.eq(id))
            .filter(webhook_endpoint::Column::OrgId.eq(org.as_str()))
            .exec(&self.db)
            .await?;
        Ok(res.rows_affected == 1)
    }

    /// Deletes an endpoint and its delivery log; `false` if there is none.
    pub async fn delete_webhook_endpoint(&self, org: &OrgId, id: Uuid) -> Result<bool, StoreError> {
        // Explicitly first: SQLite enforces the cascade only with foreign keys on.
        webhook_delivery::Entity::delete_many()
            .filter(webhook_delivery::Column::EndpointId.eq(id))
            .filter(webhook_delivery::Column::OrgId.eq(org.as_str()))
            .exec(&self.db)
            .await?;
        let res = webhook_endpoint::Entity::delete_many()
            .filter(webhook_endpoint::Column::Id.eq(id))
            .filter(webhook_endpoint::Column::OrgId.eq(org.as_str()))
            .exec(&self.db)
            .await?;
        Ok(res.rows_affected == 1)
    }

    // ---- capture ----

    /// Writes one pending delivery per event and enabled endpoint of the
    /// event's organisation subscribed to its type (an offer's organisation
    /// is its order's), plus the resident's notifications of a status
    /// change (SMS, WeChat) for endpoints subscribed to those and steps with
    /// a template. A delivery already written for the same endpoint, source
    /// event and type is left alone. Returns how many were written.
    pub async fn enqueue_webhook_events(
        &self,
        events: &[WebhookEvent],
        templates: &NotificationTemplates,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        if events.is_empty() {
            return Ok(0);
        }
        // Few rows (a handful per organisation): read them all, and stop
        // here when nobody listens (the relay calls this for every batch).
        let endpoints = webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::Enabled.eq(true))
            .all(&self.db)
            .await?
            .into_iter()
            .map(endpoint_of)
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Ok(0);
        }
        let listening: BTreeSet<&str> = endpoints.iter().map(|e| e.org_id.as_str()).collect();
        // Offers name no organisation; notifications need the order.
        let order_ids: BTreeSet<Uuid> = events
            .iter()
            .filter(|e| match &e.org_id {
                None => true,
                Some(org) => {
                    listening.contains(org.as_str())
                        && NOTIFIED_STEPS.contains(&e.data["to"].as_str().unwrap_or_default())
                }
            })
            .filter_map(|e| e.order_id.as_deref().and_then(|o| o.parse().ok()))
            .collect();
        let orders: HashMap<Uuid, order::Model> = if order_ids.is_empty() {
            HashMap::new()
        } else {
            order::Entity::find()
                .filter(order::Column::Id.is_in(order_ids))
                .all(&self.db)
                .await?
                .into_iter()
                .map(|o| (o.id, o))
                .collect()
        };
        let order_of = |e: &WebhookEvent| {
            e.order_id
                .as_deref()
                .and_then(|o| o.parse::<Uuid>().ok())
                .and_then(|id| orders.get(&id))
        };
        let org_of = |e: &WebhookEvent| {
            e.org_id
                .clone()
                .or_else(|| order_of(e).map(|o| o.org_id.clone()))
        };
        let subscribed = |org: &str, t: &str| {
            endpoints
                .iter()
                .filter(move |ep| ep.org_id.as_str() == org && ep.events.iter().any(|x| x == t))
                .map(|ep| ep.id)
                .collect::<Vec<_>>()
        };
        // The nurses the notifications name.
        let nurse_ids: Vec<NurseId> = events
            .iter()
            .filter_map(|e| e.data["nurse_id"].as_str())
            .filter_map(|n| n.parse::<Uuid>().ok())
            .map(NurseId)
            .collect();
        let wants_notifications = endpoints.iter().any(|ep| {
            ep.events
                .iter()
                .any(|t| t == NOTIFICATION_SMS || t == NOTIFICATION_WECHAT)
        });
        let nurses: HashMap<Uuid, yixin_domain::Nurse> = if wants_notifications {
            self.get_nurses(&nurse_ids)
                .await?
                .into_iter()
                .map(|n| (n.id.0, n))
                .collect()
        } else {
            HashMap::new()
        };
        let mut rows = Vec::new();
        for e in events {
            let Some(org) = org_of(e) else { continue };
            for ep in subscribed(&org, e.event_type) {
                rows.push(new_delivery(ep, &org, e, now));
            }
            let step = e.data["to"].as_str().unwrap_or_default();
            if !wants_notifications || !NOTIFIED_STEPS.contains(&step) {
                continue;
            }
            let Some(order) = order_of(e) else { continue };
            let nurse = e.data["nurse_id"]
                .as_str()
                .and_then(|n| n.parse::<Uuid>().ok())
                .and_then(|n| nurses.get(&n));
            // Minutes to the nurse's expected arrival, while she is coming.
            let eta_min = match (step, e.data["eta"].as_str()) {
                ("assigned" | "en_route", Some(eta)) => DateTime::parse_from_rfc3339(eta)
                    .ok()
                    .map(|eta| (eta.with_timezone(&Utc) - e.occurred_at).num_seconds())
                    .map(|s| (s.max(0) + 59) / 60),
                _ => None,
            };
            for (event_type, table) in [
                (NOTIFICATION_SMS, &templates.sms),
                (NOTIFICATION_WECHAT, &templates.wechat),
            ] {
                let Some(template_id) = table.get(step) else {
                    continue;
                };
                let n = Notification {
                    event_type,
                    step,
                    template_id,
                    phone: &order.contact_phone,
                    nurse_name: nurse.map(|n| courtesy_name(&n.name)),
                    nurse_phone_masked: nurse.map(|n| n.phone.masked()),
                    eta_min,
                    service_code: &order.service_code,
                };
                let notice = notification_event(e, &n);
                for ep in subscribed(&org, event_type) {
                    rows.push(new_delivery(ep, &org, &notice, now));
                }
            }
        }
        self.insert_deliveries(rows).await
    }

    async fn insert_deliveries(
        &self,
        rows: Vec<webhook_delivery::ActiveModel>,
    ) -> Result<u64, StoreError> {
        let mut written = 0;
        for chunk in rows.chunks(500) {
            if chunk.is_empty() {
                continue;
            }
            let res = webhook_delivery::Entity::insert_many(chunk.to_vec())
                .on_conflict(
                    OnConflict::columns([
                        webhook_delivery::Column::EndpointId,
                        webhook_delivery::Column::EventId,
                        webhook_delivery::Column::EventType,
                    ])
                    .do_nothing()
                    .to_owned(),
                )
                .exec_without_returning(&self.db)
                .await?;
            written += res;
        }
        Ok(written)
    }

    /// Queues a `ping` to one endpoint of the organisation (its own event,
    /// whatever it subscribed to); `None` if there is no such endpoint.
    pub async fn enqueue_webhook_ping(
        &self,
        org: &OrgId,
        endpoint: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<WebhookDelivery>, StoreError> {
        if self.webhook_endpoint(org, endpoint).await?.is_none() {
            return Ok(None);
        }
        let event = WebhookEvent {
            event_id: format!("ping:{}", Uuid::now_v7()),
            event_type: yixin_contracts::webhooks::PING,
            org_id: Some(org.as_str().to_owned()),
            order_id: None,
            occurred_at: now,
            data: serde_json::json!({"endpoint_id": endpoint.to_string()}),
        };
        let row = new_delivery(endpoint, org.as_str(), &event, now);
        let model = webhook_delivery::Entity::insert(row)
            .exec_with_returning(&self.db)
            .await?;
        delivery_of(model).map(Some)
    }

    // ---- delivery ----

    /// Claims up to `limit` due deliveries of enabled endpoints, oldest due
    /// first: each one's next attempt moves to `now + lease`, so no other
    /// worker takes it meanwhile and it comes back by itself if this worker
    /// dies. PostgreSQL skips rows another claim holds (`SKIP LOCKED`).
    pub async fn claim_webhook_deliveries(
        &self,
        now: DateTime<Utc>,
        lease: chrono::TimeDelta,
        limit: u64,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let backend = self.backend();
        let p = |n: usize| match backend {
            DatabaseBackend::Postgres => format!("${n}"),
            _ => "?".to_owned(),
        };
        let lock = match backend {
            DatabaseBackend::Postgres => " FOR UPDATE SKIP LOCKED",
            _ => "",
        };
        let sql = format!(
            "UPDATE webhook_deliveries SET next_attempt_at = {until} WHERE id IN (\
               SELECT d.id FROM webhook_deliveries d \
               WHERE d.status = '{pending}' AND d.next_attempt_at <= {now} \
                 AND d.endpoint_id IN (SELECT e.id FROM webhook_endpoints e WHERE e.enabled) \
               ORDER BY d.next_attempt_at, d.id LIMIT {limit}{lock}) \
             RETURNING id",
            until = p(1),
            now = p(2),
            limit = p(3),
            pending = DeliveryStatus::Pending.as_str(),
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let stmt = Statement::from_sql_and_values(
            backend,
            sql,
            [ts(now + lease).into(), ts(now).into(), limit.into()],
        );
        let ids: Vec<Uuid> = self
            .db
            .query_all_raw(stmt)
            .await?
            .iter()
            .map(|r| r.try_get::<Uuid>("", "id"))
            .collect::<Result<_, _>>()?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let deliveries = webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::Id.is_in(ids))
            .order_by_asc(webhook_delivery::Column::Id)
            .all(&self.db)
            .await?;
        let endpoint_ids: BTreeSet<Uuid> = deliveries.iter().map(|d| d.endpoint_id).collect();
        let endpoints: HashMap<Uuid, webhook_endpoint::Model> = webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::Id.is_in(endpoint_ids))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|e| (e.id, e))
            .collect();
        deliveries
            .into_iter()
            .filter_map(|d| {
                let ep = endpoints.get(&d.endpoint_id)?;
                Some(delivery_of(d).map(|delivery| DueDelivery {
                    delivery,
                    url: ep.url.clone(),
                    secret: ep.secret.clone(),
                }))
            })
            .collect()
    }

    /// Records a delivered attempt (`attempts` counts it).
    pub async fn record_webhook_delivered(
        &self,
        id: Uuid,
        attempts: u32,
        status_code: u16,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        webhook_delivery::Entity::update_many()
            .col_expr(
                webhook_delivery::Column::Status,
                Expr::value(DeliveryStatus::Delivered.as_str()),
            )
            .col_expr(
                webhook_delivery::Column::Attempts,
                Expr::value(i32::try_from(attempts).unwrap_or(i32::MAX)),
            )
            .col_expr(
                webhook_delivery::Column::NextAttemptAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(webhook_delivery::Column::LastAttemptAt, Expr::value(ts(at)))
            .col_expr(
                webhook_delivery::Column::LastStatusCode,
                Expr::value(i32::from(status_code)),
            )
            .col_expr(
                webhook_delivery::Column::LastError,
                Expr::value(Option::<String>::None),
            )
            .col_expr(webhook_delivery::Column::DeliveredAt, Expr::value(ts(at)))
            .filter(webhook_delivery::Column::Id.eq(id))
            .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Records a failed attempt (`attempts` counts it): tried again at
    /// `retry_at`, or dead when that is `None`.
    pub async fn record_webhook_failed(
        &self,
        id: Uuid,
        attempts: u32,
        status_code: Option<u16>,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let status = if retry_at.is_some() {
            DeliveryStatus::Pending
        } else {
            DeliveryStatus::Dead
        };
        webhook_delivery::Entity::update_many()
            .col_expr(
                webhook_delivery::Column::Status,
                Expr::value(status.as_str()),
            )
            .col_expr(
                webhook_delivery::Column::Attempts,
                Expr::value(i32::try_from(attempts).unwrap_or(i32::MAX)),
            )
            .col_expr(
                webhook_delivery::Column::NextAttemptAt,
                Expr::value(retry_at.map(ts)),
            )
            .col_expr(webhook_delivery::Column::LastAttemptAt, Expr::value(ts(at)))
            .col_expr(
                webhook_delivery::Column::LastStatusCode,
                Expr::value(status_code.map(i32::from)),
            )
            .col_expr(
                webhook_delivery::Column::LastError,
                Expr::value(Some(short(error))),
            )
            .filter(webhook_delivery::Column::Id.eq(id))
            .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Queues a dead or delivered delivery of the organisation again, due
    /// now, its attempts from zero (same id and body: receivers dedupe).
    pub async fn replay_webhook_delivery(
        &self,
        org: &OrgId,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Replay, StoreError> {
        let res = webhook_delivery::Entity::update_many()
            .col_expr(
                webhook_delivery::Column::Status,
                Expr::value(DeliveryStatus::Pending.as_str()),
            )
            .col_expr(webhook_delivery::Column::Attempts, Expr::value(0))
            .col_expr(
                webhook_delivery::Column::NextAttemptAt,
                Expr::value(ts(now)),
            )
            .filter(webhook_delivery::Column::Id.eq(id))
            .filter(webhook_delivery::Column::OrgId.eq(org.as_str()))
            .filter(webhook_delivery::Column::Status.is_in([
                DeliveryStatus::Dead.as_str(),
                DeliveryStatus::Delivered.as_str(),
            ]))
            .exec(&self.db)
            .await?;
        let found = self.webhook_delivery(org, id).await?;
        Ok(match found {
            None => Replay::NotFound,
            Some(d) if res.rows_affected == 1 => Replay::Queued(Box::new(d)),
            Some(_) => Replay::StillPending,
        })
    }

    /// A delivery of the organisation.
    pub async fn webhook_delivery(
        &self,
        org: &OrgId,
        id: Uuid,
    ) -> Result<Option<WebhookDelivery>, StoreError> {
        webhook_delivery::Entity::find_by_id(id)
            .filter(webhook_delivery::Column::OrgId.eq(org.as_str()))
            .one(&self.db)
            .await?
            .map(delivery_of)
            .transpose()
    }

    /// An endpoint's delivery log, newest first, `status` only if given.
    pub async fn webhook_deliveries(
        &self,
        org: &OrgId,
        endpoint: Uuid,
        status: Option<DeliveryStatus>,
        limit: u64,
    ) -> Result<Vec<WebhookDelivery>, StoreError> {
        let mut q = webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::OrgId.eq(org.as_str()))
            .filter(webhook_delivery::Column::EndpointId.eq(endpoint));
        if let Some(s) = status {
            q = q.filter(webhook_delivery::Column::Status.eq(s.as_str()));
        }
        q.order_by_desc(webhook_delivery::Column::CreatedAt)
            .order_by_desc(webhook_delivery::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(delivery_of)
            .collect()
    }

    /// How many deliveries are pending (the queue depth), all organisations.
    pub async fn webhook_queue_depth(&self) -> Result<u64, StoreError> {
        Ok(webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
            .count(&self.db)
            .await?)
    }

    /// Deletes up to `batch` delivered or dead deliveries created before
    /// `before`, oldest first; returns how many went. Pending ones stay.
    pub async fn prune_webhook_deliveries(
        &self,
        before: DateTime<Utc>,
        batch: u64,
    ) -> Result<u64, StoreError> {
        let ids: Vec<Uuid> = webhook_delivery::Entity::find()
            .select_only()
            .column(webhook_delivery::Column::Id)
            .filter(webhook_delivery::Column::Status.ne(DeliveryStatus::Pending.as_str()))
            .filter(webhook_delivery::Column::CreatedAt.lt(ts(before)))
            .order_by_asc(webhook_delivery::Column::CreatedAt)
            .limit(batch)
            .into_tuple()
            .all(&self.db)
            .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        Ok(webhook_delivery::Entity::delete_many()
            .filter(webhook_delivery::Column::Id.is_in(ids))
            .exec(&self.db)
            .await?
            .rows_affected)
    }
}
