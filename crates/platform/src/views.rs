//! Views every service shows in the same shape. They live here, once, so the
//! OpenAPI document has one schema of each and a generated client one type.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use yixin_domain::{GeoPoint, OfferStatus, OrderStatus};

/// A WGS-84 position, in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Location {
    #[schema(example = 29.39, minimum = -90, maximum = 90)]
    pub lat: f64,
    #[schema(example = 106.32, minimum = -180, maximum = 180)]
    pub lng: f64,
}

impl From<GeoPoint> for Location {
    fn from(p: GeoPoint) -> Self {
        Self {
            lat: p.lat(),
            lng: p.lng(),
        }
    }
}

/// The visit's address as the resident gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AddressView {
    #[schema(max_length = 200, example = "双福街道 福城大道 88 号")]
    pub text: String,
    #[schema(max_length = 200, example = "3 栋 2 单元 1102")]
    pub detail: Option<String>,
}

/// Who to call at the door, unmasked: only the order's owner, the nurse who
/// has the job and the organisation's coordinators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ContactView {
    #[schema(max_length = 50, example = "王女士")]
    pub name: String,
    /// A mainland China mobile number, normalised to its 11 digits.
    #[schema(pattern = r"^1[3-9][0-9]{9}$", example = "13812345678")]
    pub phone: String,
}

/// One step of an order's timeline: the status it reached, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TimelineEntry {
    #[schema(value_type = OrderStatusName)]
    pub status: String,
    pub at: DateTime<Utc>,
}

/// A string-enum schema listing every JSON name of a domain enum, built from
/// the domain's own list so the document cannot fall behind it. Use it as
/// `#[schema(value_type = …Name)]` on a `String` field.
macro_rules! name_schema {
    ($(#[$doc:meta])* $name:ident = $schema:literal, $all:expr, $description:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                use utoipa::openapi::schema::{ObjectBuilder, Type};
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some($description))
                    .enum_values(Some($all))
                    .into()
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($schema)
            }
        }
    };
}

name_schema!(
    /// An order status as JSON names it (`pending`, …, `escalated`).
    OrderStatusName = "OrderStatus",
    OrderStatus::ALL.map(OrderStatus::as_str),
    "An order's status; API.md tells its life cycle."
);

name_schema!(
    /// An offer status as JSON names it (`open`, …, `withdrawn`).
    OfferStatusName = "OfferStatus",
    OfferStatus::ALL.map(OfferStatus::as_str),
    "An offer's status."
);

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::PartialSchema;

    #[test]
    fn the_status_schemas_list_every_status() {
        fn listed(schema: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>) -> Vec<String> {
            let json = serde_json::to_value(schema).expect("schema as JSON");
            json["enum"]
                .as_array()
                .expect("an enum")
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        }
        let orders: Vec<String> = OrderStatus::ALL
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        assert_eq!(listed(OrderStatusName::schema()), orders);
        let offers: Vec<String> = OfferStatus::ALL
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        assert_eq!(listed(OfferStatusName::schema()), offers);
    }
}

/// A nurse's alarm as her phone and the coordinators see it (issue 17).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlarmView {
    pub id: String,
    /// `sos`, `missed_check_in` or `silent_phone`.
    #[schema(example = "sos")]
    pub kind: String,
    /// `open`, `acknowledged` or `resolved`.
    #[schema(example = "open")]
    pub state: String,
    pub nurse_id: String,
    /// The job she was on, if any.
    pub order_id: Option<String>,
    /// Where she was when it was raised (the position sent, or her latest fix).
    pub location: Option<Location>,
    pub accuracy_m: Option<f64>,
    /// The nurse's note with an SOS.
    pub note: Option<String>,
    pub raised_at: DateTime<Utc>,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolution_note: Option<String>,
    /// `delivered`, `failed` or `no_endpoint` once sent to the escalation webhook.
    pub escalation: Option<String>,
    pub escalated_at: Option<DateTime<Utc>>,
}

impl From<&yixin_domain::safety::Alarm> for AlarmView {
    fn from(a: &yixin_domain::safety::Alarm) -> Self {
        Self {
            id: a.id.to_string(),
            kind: a.kind.as_str().to_owned(),
            state: a.state().as_str().to_owned(),
            nurse_id: a.nurse_id.to_string(),
            order_id: a.order_id.map(|o| o.to_string()),
            location: a.location.map(Location::from),
            accuracy_m: a.accuracy_m,
            note: a.note.clone(),
            raised_at: a.raised_at,
            acknowledged_by: a.acknowledged_by.clone(),
            acknowledged_at: a.acknowledged_at,
            resolved_by: a.resolved_by.clone(),
            resolved_at: a.resolved_at,
            resolution_note: a.resolution_note.clone(),
            escalation: a.escalation.clone(),
            escalated_at: a.escalated_at,
        }
    }
}
