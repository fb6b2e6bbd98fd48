//! What webhooks say (issue 19): the event types an endpoint can subscribe
//! to, how an event of the platform becomes a webhook event, the body every
//! delivery POSTs and the headers that sign it. The signature itself is
//! `yixin_signin::sender::sign` (`X-Yixin-Signature`, as every Yixin
//! webhook); the `Yixin-Webhook-*` headers repeat it in parts.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use yixin_domain::safety::Alarm;
use yixin_proto::events::v1 as pb;
use yixin_proto::{Envelope, Event};

pub const ORDER_CREATED: &str = "order.created";
pub const ORDER_ASSIGNED: &str = "order.assigned";
pub const ORDER_EN_ROUTE: &str = "order.en_route";
pub const ORDER_ARRIVED: &str = "order.arrived";
pub const ORDER_STARTED: &str = "order.started";
pub const ORDER_COMPLETED: &str = "order.completed";
pub const ORDER_CANCELLED: &str = "order.cancelled";
pub const ORDER_ESCALATED: &str = "order.escalated";
pub const OFFER_MADE: &str = "offer.made";
pub const OFFER_ACCEPTED: &str = "offer.accepted";
pub const OFFER_DECLINED: &str = "offer.declined";
pub const OFFER_EXPIRED: &str = "offer.expired";
pub const ALARM_RAISED: &str = "alarm.raised";
pub const ALARM_RESOLVED: &str = "alarm.resolved";
/// A text message for the resident, for the operator's SMS gateway.
pub const NOTIFICATION_SMS: &str = "notification.sms";
/// A WeChat template message for the resident, for the operator's gateway.
pub const NOTIFICATION_WECHAT: &str = "notification.wechat";
/// `POST /v1/dispatch/webhooks/{id}/test`: sent to that endpoint only.
pub const PING: &str = "ping";

/// Every type an endpoint may subscribe to.
pub const EVENT_TYPES: [&str; 16] = [
    ORDER_CREATED,
    ORDER_ASSIGNED,
    ORDER_EN_ROUTE,
    ORDER_ARRIVED,
    ORDER_STARTED,
    ORDER_COMPLETED,
    ORDER_CANCELLED,
    ORDER_ESCALATED,
    OFFER_MADE,
    OFFER_ACCEPTED,
    OFFER_DECLINED,
    OFFER_EXPIRED,
    ALARM_RAISED,
    ALARM_RESOLVED,
    NOTIFICATION_SMS,
    NOTIFICATION_WECHAT,
];

/// Header: the delivery's id (the same on every attempt and replay: receivers dedupe on it).
pub const ID_HEADER: &str = "Yixin-Webhook-Id";
/// Header: unix seconds of this attempt (signed with the body).
pub const TIMESTAMP_HEADER: &str = "Yixin-Webhook-Timestamp";
/// Header: `v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
pub const SIGNATURE_HEADER: &str = "Yixin-Webhook-Signature";

/// Whether `t` is a type an endpoint may subscribe to.
pub fn is_event_type(t: &str) -> bool {
    EVENT_TYPES.contains(&t)
}

pub use yixin_domain::webhooks::NOTIFIED_STEPS;

/// One event of the platform as webhooks tell it.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    /// The source event's id (the envelope's, or the alarm change's).
    pub event_id: String,
    pub event_type: &'static str,
    /// The organisation, when the event names it (offers do not: it is the order's).
    pub org_id: Option<String>,
    pub order_id: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub data: Value,
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn rfc3339(ms: i64) -> String {
    at(ms).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The webhook type of an order moving to `status` (the statuses nobody
/// subscribes to have none).
pub fn order_event_type(status: &str) -> Option<&'static str> {
    Some(match status {
        "assigned" => ORDER_ASSIGNED,
        "en_route" => ORDER_EN_ROUTE,
        "arrived" => ORDER_ARRIVED,
        "in_service" => ORDER_STARTED,
        "completed" => ORDER_COMPLETED,
        "cancelled" => ORDER_CANCELLED,
        "escalated" => ORDER_ESCALATED,
        _ => return None,
    })
}

/// The webhook event of an event of the outbox, if webhooks tell it.
pub fn from_envelope(env: &Envelope) -> Option<WebhookEvent> {
    let event = env.event.as_ref()?;
    let occurred_at = at(env.occurred_at_unix_ms);
    let (event_type, org_id, order_id, data) = match event {
        Event::OrderCreated(e) => (
            ORDER_CREATED,
            Some(e.org_id.clone()),
            e.order_id.clone(),
            json!({
                "order_id": e.order_id,
                "service_code": e.service_code,
                "location": {"lat": e.lat, "lng": e.lng},
                "created_at": rfc3339(e.created_at_unix_ms),
                "promised_by": rfc3339(e.promised_by_unix_ms),
            }),
        ),
        Event::OrderStatusChanged(e) => (
            order_event_type(&e.to)?,
            Some(e.org_id.clone()),
            e.order_id.clone(),
            json!({
                "order_id": e.order_id,
                "from": e.from,
                "to": e.to,
                "nurse_id": e.nurse_id,
                "eta": e.eta_unix_ms.map(rfc3339),
                "at": rfc3339(e.at_unix_ms),
            }),
        ),
        Event::OfferMade(e) => (
            OFFER_MADE,
            None,
            e.order_id.clone(),
            json!({
                "offer_id": e.offer_id,
                "order_id": e.order_id,
                "nurse_id": e.nurse_id,
                "service_code": e.service_code,
                "eta_min": e.eta_min,
                "distance_m": e.distance_m,
                "expires_at": rfc3339(e.expires_at_unix_ms),
            }),
        ),
        Event::OfferAnswered(e) => {
            use pb::offer_answered::Answer;
            let t = match Answer::try_from(e.answer).ok()? {
                Answer::Accepted => OFFER_ACCEPTED,
                Answer::Declined => OFFER_DECLINED,
                Answer::Expired => OFFER_EXPIRED,
                Answer::Unspecified => return None,
            };
            (
                t,
                None,
                e.order_id.clone(),
                json!({
                    "offer_id": e.offer_id,
                    "order_id": e.order_id,
                    "nurse_id": e.nurse_id,
                    "reason": (!e.reason.is_empty()).then_some(&e.reason),
                    "at": rfc3339(e.at_unix_ms),
                }),
            )
        }
        _ => return None,
    };
    Some(WebhookEvent {
        event_id: env.event_id.clone(),
        event_type,
        org_id,
        order_id: (!order_id.is_empty()).then_some(order_id),
        occurred_at,
        data,
    })
}

/// `alarm.raised` or `alarm.resolved` of `alarm` as it is now.
pub fn alarm_event(alarm: &Alarm) -> WebhookEvent {
    let resolved = alarm.resolved_at.is_some();
    let occurred_at = alarm.resolved_at.unwrap_or(alarm.raised_at);
    WebhookEvent {
        // One event per alarm and change: raising and resolving are distinct.
        event_id: format!(
            "alarm:{}:{}",
            alarm.id,
            if resolved { "resolved" } else { "raised" }
        ),
        event_type: if resolved {
            ALARM_RESOLVED
        } else {
            ALARM_RAISED
        },
        org_id: Some(alarm.org_id.as_str().to_owned()),
        order_id: alarm.order_id.map(|o| o.to_string()),
        occurred_at,
        data: json!({
            "alarm_id": alarm.id.to_string(),
            "nurse_id": alarm.nurse_id.to_string(),
            "order_id": alarm.order_id.map(|o| o.to_string()),
            "kind": alarm.kind.as_str(),
            "state": alarm.state().as_str(),
            "location": alarm.location.map(|p| json!({"lat": p.lat(), "lng": p.lng()})),
            "raised_at": alarm.raised_at,
            "acknowledged_by": alarm.acknowledged_by,
            "resolved_by": alarm.resolved_by,
            "resolved_at": alarm.resolved_at,
            "resolution_note": alarm.resolution_note,
        }),
    }
}

/// A template message to a resident about `order_id` reaching `step`.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification<'a> {
    /// [`NOTIFICATION_SMS`] or [`NOTIFICATION_WECHAT`].
    pub event_type: &'static str,
    pub step: &'a str,
    pub template_id: &'a str,
    /// The resident's full number: the operator's gateway sends to it.
    pub phone: &'a str,
    /// The nurse as the text names her ([`yixin_domain::webhooks::courtesy_name`]).
    pub nurse_name: Option<String>,
    pub nurse_phone_masked: Option<String>,
    /// Minutes until the nurse is expected, while she is on her way.
    pub eta_min: Option<i64>,
    pub service_code: &'a str,
}

/// The webhook event of a notification caused by the status event `source`.
pub fn notification_event(source: &WebhookEvent, n: &Notification<'_>) -> WebhookEvent {
    WebhookEvent {
        event_id: source.event_id.clone(),
        event_type: n.event_type,
        org_id: source.org_id.clone(),
        order_id: source.order_id.clone(),
        occurred_at: source.occurred_at,
        data: json!({
            "order_id": source.order_id,
            "step": n.step,
            "template_id": n.template_id,
            "phone": n.phone,
            "params": {
                "nurse_name": n.nurse_name,
                "nurse_phone": n.nurse_phone_masked,
                "eta_min": n.eta_min,
                "service_code": n.service_code,
            },
        }),
    }
}

/// The JSON body of a delivery: the same for every attempt and replay.
pub fn body(
    delivery_id: &str,
    event_type: &str,
    org_id: &str,
    occurred_at: DateTime<Utc>,
    data: &Value,
) -> String {
    json!({
        "id": delivery_id,
        "type": event_type,
        "org_id": org_id,
        "created_at": occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{envelope, offer_answered};
    use yixin_domain::{NurseId, OfferId, OrderId};
    use yixin_proto::decode_envelope;

    #[test]
    fn status_changes_become_order_events_and_others_are_skipped() {
        assert_eq!(order_event_type("assigned"), Some(ORDER_ASSIGNED));
        assert_eq!(order_event_type("in_service"), Some(ORDER_STARTED));
        assert_eq!(order_event_type("pending"), None);
        for t in EVENT_TYPES {
            assert!(is_event_type(t));
        }
        assert!(!is_event_type(PING));
        assert!(!is_event_type("order.*"));
    }

    #[test]
    fn an_offer_decline_says_which_offer_order_and_why() {
        let (offer, order) = (OfferId::new(), OrderId::new());
        let msg = offer_answered(
            offer,
            Some(order),
            NurseId::new(),
            pb::offer_answered::Answer::Declined,
            Some("太远".into()),
            Utc::now(),
        );
        let env = decode_envelope(&msg.payload).unwrap();
        let e = from_envelope(&env).unwrap();
        assert_eq!(e.event_type, OFFER_DECLINED);
        assert_eq!(e.event_id, env.event_id);
        assert_eq!(e.org_id, None);
        assert_eq!(e.order_id, Some(order.to_string()));
        assert_eq!(e.data["offer_id"], offer.to_string());
        assert_eq!(e.data["reason"], "太远");
    }

    #[test]
    fn a_shift_change_is_not_a_webhook_event() {
        let bytes = envelope(
            Event::NurseShiftChanged(pb::NurseShiftChanged::default()),
            Utc::now(),
        );
        assert!(from_envelope(&decode_envelope(&bytes).unwrap()).is_none());
    }

    #[test]
    fn bodies_carry_the_delivery_id_type_and_data() {
        let t = DateTime::from_timestamp_millis(1_764_547_200_000).unwrap();
        let b = body("d1", ORDER_ASSIGNED, "demo", t, &json!({"order_id": "o1"}));
        let v: Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["id"], "d1");
        assert_eq!(v["type"], ORDER_ASSIGNED);
        assert_eq!(v["org_id"], "demo");
        assert_eq!(v["created_at"], "2025-12-01T00:00:00.000Z");
        assert_eq!(v["data"]["order_id"], "o1");
    }
}
