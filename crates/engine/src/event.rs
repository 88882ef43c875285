//! The input event of SPEC §1 once decoded and validated.

use std::borrow::Cow;

/// What happened (SPEC §1 event types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum EventType {
    Touch,
    Contact,
    Reply,
    RequestOpened,
    RequestResolved,
    Conversion,
    Error,
    Abandon,
}

impl EventType {
    pub const ALL: [EventType; 8] = [
        EventType::Touch,
        EventType::Contact,
        EventType::Reply,
        EventType::RequestOpened,
        EventType::RequestResolved,
        EventType::Conversion,
        EventType::Error,
        EventType::Abandon,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Touch => "touch",
            EventType::Contact => "contact",
            EventType::Reply => "reply",
            EventType::RequestOpened => "request_opened",
            EventType::RequestResolved => "request_resolved",
            EventType::Conversion => "conversion",
            EventType::Error => "error",
            EventType::Abandon => "abandon",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        Some(match s {
            "touch" => EventType::Touch,
            "contact" => EventType::Contact,
            "reply" => EventType::Reply,
            "request_opened" => EventType::RequestOpened,
            "request_resolved" => EventType::RequestResolved,
            "conversion" => EventType::Conversion,
            "error" => EventType::Error,
            "abandon" => EventType::Abandon,
            _ => return None,
        })
    }
}

/// A valid event, borrowing from the raw payload where JSON needed no unescaping.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    pub event_id: Cow<'a, str>,
    /// Event time, epoch milliseconds UTC.
    pub ts: i64,
    /// Absent when the event is known only by its `identities` (SPEC §6).
    pub customer_id: Option<Cow<'a, str>>,
    pub journey_id: Option<Cow<'a, str>>,
    pub channel: Cow<'a, str>,
    pub event_type: EventType,
    pub step: Option<Cow<'a, str>>,
    pub value: Option<f64>,
    /// `(type, value)` pairs sorted bytewise, types distinct; empty when absent.
    pub identities: Identities<'a>,
    /// The event came without a `customer_id` and a resolve stage gave it one
    /// (`customer_id` is then the resolved customer): it counts in `anonymous_events`.
    pub anonymous: bool,
}

/// An event's other identifiers, sorted: the first is its smallest identity.
pub type Identities<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

impl Event<'_> {
    /// The key the raw event should have on Kafka (SPEC §6): its `customer_id`,
    /// else its smallest identity as `type:value`.
    pub fn routing_key(&self) -> Cow<'_, str> {
        match (&self.customer_id, self.identities.first()) {
            (Some(c), _) => Cow::Borrowed(c.as_ref()),
            (None, Some((t, v))) => Cow::Owned(format!("{t}:{v}")),
            (None, None) => Cow::Borrowed(""),
        }
    }
}
