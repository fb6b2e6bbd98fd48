//! Messages to a nurse's phone, whichever instance holds its socket: they go
//! through pub/sub (`yixin_contracts::nurse_channel`), carrying protobuf
//! envelopes. The channel names and event builders are the contracts
//! crate's; this is what the socket needs to route them.

use yixin_contracts::Event;
use yixin_domain::NurseId;

/// Whether an event on a nurse's channel is for `nurse`.
pub(crate) fn for_nurse(event: &Event, nurse: NurseId) -> bool {
    let id = nurse.to_string();
    match event {
        Event::OfferMade(e) => e.nurse_id == id,
        Event::OfferClosed(e) => e.nurse_id == id,
        Event::OrderStatusChanged(e) => e.nurse_id.as_deref() == Some(id.as_str()),
        Event::AlarmChanged(e) => e.nurse_id == id,
        Event::CheckInDue(e) => e.nurse_id == id,
        Event::RepositionSuggested(e) => e.nurse_id == id,
        Event::SuggestionCleared(e) => e.nurse_id == id,
        _ => false,
    }
}
