//! Events of nurse safety (issue 17): an alarm's changes, for the
//! organisation's coordinators and the nurse's phone, and the lone-worker
//! timer's check-in request.

use chrono::{DateTime, Utc};
use yixin_domain::safety::Alarm;
use yixin_domain::{NurseId, OrderId, OrgId};
use yixin_proto::Event;
use yixin_proto::events::v1 as pb;

use crate::events::{Broadcast, envelope};
use crate::names::{dispatch_channel, nurse_channel};

/// An alarm as it is now, to every coordinator of its organisation (their
/// live feeds) and to its nurse's phone: two broadcasts of one event.
pub fn alarm_changed(alarm: &Alarm, at: DateTime<Utc>) -> [Broadcast; 2] {
    let payload = envelope(
        Event::AlarmChanged(pb::AlarmChanged {
            alarm_id: alarm.id.to_string(),
            org_id: alarm.org_id.as_str().to_owned(),
            nurse_id: alarm.nurse_id.to_string(),
            kind: alarm.kind.as_str().to_owned(),
            state: alarm.state().as_str().to_owned(),
            order_id: alarm.order_id.map(|o| o.to_string()),
            at_unix_ms: at.timestamp_millis(),
        }),
        at,
    );
    [
        Broadcast {
            channel: dispatch_channel(alarm.org_id.as_str()),
            payload: payload.clone(),
        },
        Broadcast {
            channel: nurse_channel(alarm.nurse_id),
            payload,
        },
    ]
}

/// Asks a nurse's phone to check in on a visit by `by`.
pub fn check_in_due(
    order: OrderId,
    nurse: NurseId,
    org: &OrgId,
    by: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Broadcast {
    Broadcast {
        channel: nurse_channel(nurse),
        payload: envelope(
            Event::CheckInDue(pb::CheckInDue {
                order_id: order.to_string(),
                nurse_id: nurse.to_string(),
                org_id: org.as_str().to_owned(),
                by_unix_ms: by.timestamp_millis(),
            }),
            at,
        ),
    }
}
