//! Customer stories: small state machines that hand out one event at a time, so only the next
//! event of each active customer is ever held in memory.

use crate::rng::Rng;

const SEC: i64 = 1_000;
const MIN: i64 = 60 * SEC;
const HOUR: i64 = 60 * MIN;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Channel {
    Web,
    App,
    Phone,
    Chat,
    Whatsapp,
    Email,
    Social,
    Store,
    Kiosk,
}

impl Channel {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Channel::Web => "web",
            Channel::App => "app",
            Channel::Phone => "phone",
            Channel::Chat => "chat",
            Channel::Whatsapp => "whatsapp",
            Channel::Email => "email",
            Channel::Social => "social",
            Channel::Store => "store",
            Channel::Kiosk => "kiosk",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventType {
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
    pub(crate) fn as_str(self) -> &'static str {
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
}

/// The optional `attrs` object: a few realistic shapes, all JSON-safe by construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Attrs {
    None,
    Device(&'static str),
    Page(u32),
    Store(u32),
    QueueSecs(u32),
    ErrorCode(&'static str),
    Campaign(&'static str),
    Topic(&'static str),
}

/// Which `identities` (SPEC §6) an event carries; their values follow from the customer
/// number and the story's cookie (see `render::push_identities`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ids {
    None,
    /// `{"cookie":"ck-…"}`: the browser cookie of the story.
    Cookie,
    /// `{"phone":"+346…"}`: the customer's mobile (calls, WhatsApp).
    Phone,
    /// `{"loyalty":"L…"}`: the customer's loyalty card (store).
    Loyalty,
    /// `{"loyalty":"L…","phone":"+346…"}`: the customer's profile, which links both.
    Profile,
    /// `{"phone":"+349…"}`: the landline of the customer's household, shared by two customers.
    Household,
}

/// One event, minus what the generator adds (`event_id`, `ts`, `customer_id`, `journey_id`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ev {
    pub(crate) channel: Channel,
    pub(crate) kind: EventType,
    pub(crate) step: Option<&'static str>,
    pub(crate) value_cents: Option<u32>,
    pub(crate) attrs: Attrs,
    pub(crate) ids: Ids,
    /// Known only by its `ids`: the line has no `customer_id`.
    pub(crate) anonymous: bool,
}

impl Ev {
    fn new(channel: Channel, kind: EventType, step: &'static str) -> Self {
        Ev { channel, kind, step: Some(step), value_cents: None, attrs: Attrs::None, ids: Ids::None, anonymous: false }
    }

    fn bare(channel: Channel, kind: EventType) -> Self {
        Ev { channel, kind, step: None, value_cents: None, attrs: Attrs::None, ids: Ids::None, anonymous: false }
    }

    /// Without `customer_id`, known by `ids` only.
    fn anon(mut self, ids: Ids) -> Self {
        debug_assert!(ids != Ids::None);
        self.ids = ids;
        self.anonymous = true;
        self
    }

    /// With `customer_id` and `ids`: a link of each identity to the customer.
    fn link(mut self, ids: Ids) -> Self {
        self.ids = ids;
        self
    }

    fn with_attrs(mut self, rng: &mut Rng, p: f64, attrs: Attrs) -> Self {
        if rng.chance(p) {
            self.attrs = attrs;
        }
        self
    }

    /// The `attrs` of `other` (the same store as the visit).
    fn with_attrs_of(mut self, other: Ev) -> Self {
        self.attrs = other.attrs;
        self
    }

    fn with_value(mut self, rng: &mut Rng, lo_cents: i64, hi_cents: i64) -> Self {
        self.value_cents = Some(rng.range(lo_cents, hi_cents) as u32);
        self
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Story {
    /// web request_opened → phone contact → phone reply → app touch → store conversion.
    WebCallback,
    /// chat contact → chat reply → phone contact → email request_resolved.
    ChatPhoneEmail,
    /// whatsapp touch → error(payment) → unanswered contact → phone contact → reply → maybe buy.
    WhatsappPayment,
    /// web/app touches → checkout → abandon.
    CartAbandon,
    /// A case thread with a `journey_id`: opened, contacts over 1–3 days, usually resolved.
    CaseThread,
    /// 1–6 touches, no outcome.
    Browsing,
    /// web/app touches → checkout → conversion.
    QuickPurchase,
    /// One contact answered and resolved on the same channel (first-contact resolution).
    QuickFix,
    // Identity stories (`GenConfig::identities`, SPEC §6).
    /// Anonymous web touches under a cookie, never logged in; sometimes an abandoned cart.
    AnonBrowse,
    /// Anonymous web touches under a cookie, then a login (customer + cookie) well within
    /// `identify_wait`, then checkout.
    LoginSoon,
    /// Anonymous web touches under a cookie, then a login more than `identify_wait` later.
    LoginLater,
    /// A call known by the calling number only; the app profile (customer + phone + loyalty)
    /// links the number before, a few minutes after, or not in this story.
    CallByNumber,
    /// WhatsApp messages by phone number, then the app profile and a purchase, or no link.
    WhatsappByPhone,
    /// A store visit and purchase by loyalty card, sometimes followed by the app profile.
    StoreLoyalty,
    /// A call from the household landline, identified by the agent: the two customers of a
    /// household link the same phone (a conflict for the second).
    FamilyPhone,
}

const STORIES: [(Story, u32); 8] = [
    (Story::WebCallback, 8),
    (Story::ChatPhoneEmail, 8),
    (Story::WhatsappPayment, 6),
    (Story::CartAbandon, 12),
    (Story::CaseThread, 6),
    (Story::Browsing, 50),
    (Story::QuickPurchase, 10),
    (Story::QuickFix, 6),
];

/// [`STORIES`] plus the identity stories, when `GenConfig::identities` is on.
const ID_STORIES: [(Story, u32); 15] = [
    (Story::WebCallback, 8),
    (Story::ChatPhoneEmail, 8),
    (Story::WhatsappPayment, 6),
    (Story::CartAbandon, 12),
    (Story::CaseThread, 6),
    (Story::Browsing, 50),
    (Story::QuickPurchase, 10),
    (Story::QuickFix, 6),
    (Story::AnonBrowse, 12),
    (Story::LoginSoon, 10),
    (Story::LoginLater, 6),
    (Story::CallByNumber, 10),
    (Story::WhatsappByPhone, 6),
    (Story::StoreLoyalty, 8),
    (Story::FamilyPhone, 8),
];

/// Steps of a visitor who has not logged in.
const ANON_STEPS: [&str; 6] = ["home", "search", "category", "product", "offers", "product"];
/// [`LoginLater`](Story::LoginLater) logs in this long after its last anonymous touch: always
/// more than the 30 m `identify_wait` and session gap.
pub(crate) const LATE_LOGIN_MS: (i64, i64) = (40 * MIN, 5 * HOUR);

const BROWSE_STEPS: [&str; 7] = ["home", "search", "category", "product", "login", "account", "offers"];
const DEVICES: [&str; 3] = ["ios", "android", "ipados"];
const ERROR_CODES: [&str; 4] = ["card_declined", "timeout", "3ds_failed", "insufficient_funds"];
const CAMPAIGNS: [&str; 3] = ["black_friday", "winter_sale", "retarget_cart"];
const CASE_TOPICS: [&str; 5] = ["return", "billing", "delivery", "complaint", "warranty"];
const CASE_OPEN_CHANNELS: [Channel; 5] = [Channel::Web, Channel::App, Channel::Email, Channel::Phone, Channel::Chat];
const CASE_CONTACT_CHANNELS: [Channel; 6] =
    [Channel::Phone, Channel::Email, Channel::Chat, Channel::Whatsapp, Channel::Store, Channel::Social];

/// Where a customer is in its current journey.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cursor {
    pub(crate) customer: u64,
    pub(crate) story: Story,
    /// Story-specific phase.
    phase: u8,
    /// Story-specific counter (touches or contacts left).
    left: u8,
    /// The session's current digital channel, or the last contact channel of a thread.
    chan: Channel,
    /// Step shared by a whole story (a case's topic).
    topic: &'static str,
    /// `journey_id` number of a case thread.
    pub(crate) case: Option<u32>,
    /// Story-specific variant (identity stories).
    variant: u8,
    /// Browser cookie of a web identity story (48 bits).
    pub(crate) cookie: u64,
    /// The event this cursor is scheduled to emit.
    pub(crate) ev: Ev,
}

fn web_or_app(rng: &mut Rng) -> Channel {
    if rng.chance(0.6) { Channel::Web } else { Channel::App }
}

/// The other of web/app, sometimes, to give sessions an occasional device hop.
fn maybe_switch(rng: &mut Rng, chan: Channel, p: f64) -> Channel {
    match chan {
        Channel::Web if rng.chance(p) => Channel::App,
        Channel::App if rng.chance(p) => Channel::Web,
        other => other,
    }
}

fn digital_attrs(rng: &mut Rng, ev: Ev) -> Ev {
    match ev.channel {
        Channel::Web => {
            let page = rng.range(1, 99_999) as u32;
            ev.with_attrs(rng, 0.25, Attrs::Page(page))
        }
        Channel::App => {
            let device = rng.pick(&DEVICES);
            ev.with_attrs(rng, 0.3, Attrs::Device(device))
        }
        Channel::Social => {
            let campaign = rng.pick(&CAMPAIGNS);
            ev.with_attrs(rng, 0.8, Attrs::Campaign(campaign))
        }
        Channel::Store | Channel::Kiosk => {
            let store = rng.range(1, 250) as u32;
            ev.with_attrs(rng, 0.5, Attrs::Store(store))
        }
        _ => ev,
    }
}

fn queue_attrs(rng: &mut Rng, ev: Ev) -> Ev {
    if ev.channel == Channel::Phone {
        let secs = rng.range(5, 600) as u32;
        ev.with_attrs(rng, 0.5, Attrs::QueueSecs(secs))
    } else {
        ev
    }
}

impl Cursor {
    /// Picks a story for `customer` and returns the cursor on its first event.
    /// `next_case` is the generator's case counter, bumped when a thread starts;
    /// `identities` adds the identity stories to the draw.
    pub(crate) fn start(rng: &mut Rng, customer: u64, next_case: &mut u32, identities: bool) -> Cursor {
        let story = if identities {
            ID_STORIES[rng.weighted(&ID_STORIES.map(|(_, w)| w))].0
        } else {
            STORIES[rng.weighted(&STORIES.map(|(_, w)| w))].0
        };
        let mut c = Cursor {
            customer,
            story,
            phase: 0,
            left: 0,
            chan: Channel::Web,
            topic: "",
            case: None,
            variant: 0,
            cookie: 0,
            ev: Ev::bare(Channel::Web, EventType::Touch),
        };
        c.ev = match story {
            Story::WebCallback => {
                let topic = rng.pick(&["order", "delivery", "product_question"]);
                Ev::new(Channel::Web, EventType::RequestOpened, "callback").with_attrs(rng, 0.6, Attrs::Topic(topic))
            }
            Story::ChatPhoneEmail => Ev::new(Channel::Chat, EventType::Contact, "support"),
            Story::QuickFix => {
                c.chan = rng.pick(&[Channel::Phone, Channel::Phone, Channel::Chat, Channel::Email]);
                c.topic = rng.pick(&["login", "order_status", "address_change", "invoice"]);
                queue_attrs(rng, Ev::new(c.chan, EventType::Contact, c.topic))
            }
            Story::WhatsappPayment => Ev::new(Channel::Whatsapp, EventType::Touch, "catalog"),
            Story::CartAbandon | Story::QuickPurchase => {
                c.chan = web_or_app(rng);
                c.left = rng.range(0, 3) as u8;
                let ev = Ev::new(c.chan, EventType::Touch, "product");
                digital_attrs(rng, ev)
            }
            Story::CaseThread => {
                c.case = Some(*next_case);
                *next_case = next_case.wrapping_add(1);
                c.topic = rng.pick(&CASE_TOPICS);
                c.left = rng.range(1, 4) as u8;
                c.chan = rng.pick(&CASE_OPEN_CHANNELS);
                Ev::new(c.chan, EventType::RequestOpened, c.topic)
            }
            Story::Browsing => {
                c.chan = match rng.weighted(&[45, 40, 5, 5, 5]) {
                    0 => Channel::Web,
                    1 => Channel::App,
                    2 => Channel::Social,
                    3 => Channel::Store,
                    _ => Channel::Kiosk,
                };
                c.left = rng.range(0, 5) as u8;
                let step = match c.chan {
                    Channel::Store => "visit",
                    Channel::Kiosk => "kiosk_menu",
                    Channel::Social => "ad_click",
                    _ => rng.pick(&BROWSE_STEPS),
                };
                // A social ad or a store visit leads into the web or the app.
                let ev = Ev::new(c.chan, EventType::Touch, step);
                if matches!(c.chan, Channel::Social | Channel::Store | Channel::Kiosk) {
                    c.chan = web_or_app(rng);
                }
                digital_attrs(rng, ev)
            }
            Story::AnonBrowse | Story::LoginSoon | Story::LoginLater => {
                c.cookie = rng.u64() >> 16;
                c.left = match story {
                    Story::AnonBrowse => rng.range(0, 4),
                    Story::LoginSoon => rng.range(0, 3),
                    _ => rng.range(0, 2),
                } as u8;
                let ev = Ev::new(Channel::Web, EventType::Touch, rng.pick(&ANON_STEPS)).anon(Ids::Cookie);
                digital_attrs(rng, ev)
            }
            Story::CallByNumber => {
                // 0: profile first; 1: call, then the profile; 2: call only.
                c.variant = rng.weighted(&[35, 35, 30]) as u8;
                c.topic = rng.pick(&["order_status", "delivery", "billing", "return"]);
                if c.variant == 0 {
                    Ev::new(Channel::App, EventType::Touch, "profile").link(Ids::Profile)
                } else {
                    queue_attrs(rng, Ev::new(Channel::Phone, EventType::Contact, c.topic).anon(Ids::Phone))
                }
            }
            Story::WhatsappByPhone => {
                // 0: the profile and an app purchase follow; 1: no link.
                c.variant = u8::from(!rng.chance(0.6));
                Ev::new(Channel::Whatsapp, EventType::Touch, "catalog").anon(Ids::Phone)
            }
            Story::StoreLoyalty => {
                // 0: the app profile follows the purchase; 1: no link.
                c.variant = u8::from(!rng.chance(0.45));
                let store = rng.range(1, 250) as u32;
                Ev::new(Channel::Store, EventType::Touch, "visit").anon(Ids::Loyalty).with_attrs(
                    rng,
                    0.8,
                    Attrs::Store(store),
                )
            }
            Story::FamilyPhone => {
                c.topic = rng.pick(&["billing", "contract", "delivery"]);
                queue_attrs(rng, Ev::new(Channel::Phone, EventType::Contact, c.topic).anon(Ids::Household))
            }
        };
        c
    }

    /// Moves to the story's next event: returns the delay after the current event, or `None`
    /// when the journey is over.
    pub(crate) fn advance(&mut self, rng: &mut Rng) -> Option<i64> {
        self.phase = self.phase.saturating_add(1);
        let (delay, ev) = match self.story {
            Story::WebCallback => match self.phase {
                1 => {
                    let ev = Ev::new(Channel::Phone, EventType::Contact, "callback");
                    (rng.range(30 * SEC, 8 * MIN), queue_attrs(rng, ev))
                }
                2 => (rng.range(3 * SEC, 60 * SEC), Ev::new(Channel::Phone, EventType::Reply, "callback")),
                3 => {
                    let ev = Ev::new(Channel::App, EventType::Touch, "order_status");
                    (rng.range(MIN, 10 * MIN), digital_attrs(rng, ev))
                }
                4 => {
                    let ev = Ev::new(Channel::Store, EventType::Conversion, "pickup").with_value(rng, 1_500, 45_000);
                    (rng.range(5 * MIN, 25 * MIN), digital_attrs(rng, ev))
                }
                _ => return None,
            },
            Story::ChatPhoneEmail => match self.phase {
                1 => (rng.range(10 * SEC, 3 * MIN), Ev::new(Channel::Chat, EventType::Reply, "support")),
                2 => {
                    let ev = Ev::new(Channel::Phone, EventType::Contact, "support");
                    (rng.range(MIN, 15 * MIN), queue_attrs(rng, ev))
                }
                3 => (rng.range(2 * MIN, 20 * MIN), Ev::new(Channel::Email, EventType::RequestResolved, "support")),
                _ => return None,
            },
            Story::QuickFix => match self.phase {
                1 => (rng.range(5 * SEC, 5 * MIN), Ev::new(self.chan, EventType::Reply, self.topic)),
                2 => (rng.range(30 * SEC, 10 * MIN), Ev::new(self.chan, EventType::RequestResolved, self.topic)),
                _ => return None,
            },
            Story::WhatsappPayment => match self.phase {
                1 => {
                    let code = rng.pick(&ERROR_CODES);
                    let ev = Ev::new(Channel::Whatsapp, EventType::Error, "payment").with_attrs(
                        rng,
                        0.7,
                        Attrs::ErrorCode(code),
                    );
                    (rng.range(20 * SEC, 3 * MIN), ev)
                }
                2 => (rng.range(10 * SEC, 2 * MIN), Ev::new(Channel::Whatsapp, EventType::Contact, "payment")),
                // Strictly beyond the 15-minute reply SLA, below the 30-minute session gap.
                3 => {
                    let ev = Ev::new(Channel::Phone, EventType::Contact, "payment");
                    (rng.range(16 * MIN, 28 * MIN), queue_attrs(rng, ev))
                }
                4 => (rng.range(5 * SEC, 90 * SEC), Ev::new(Channel::Phone, EventType::Reply, "payment")),
                5 if rng.chance(0.6) => (
                    rng.range(MIN, 10 * MIN),
                    Ev::new(Channel::Phone, EventType::Conversion, "payment").with_value(rng, 999, 29_999),
                ),
                _ => return None,
            },
            Story::CartAbandon | Story::QuickPurchase => {
                let delay = rng.range(5 * SEC, 4 * MIN);
                let last = self.ev;
                let ev = if matches!(last.kind, EventType::Abandon | EventType::Conversion) {
                    return None;
                } else if last.step == Some("checkout") {
                    if self.story == Story::QuickPurchase {
                        Ev::new(self.chan, EventType::Conversion, "checkout").with_value(rng, 499, 99_999)
                    } else {
                        let step = if rng.chance(0.7) { "checkout" } else { "payment" };
                        Ev::new(self.chan, EventType::Abandon, step)
                    }
                } else if self.left > 0 {
                    // Product and cart touches first, then checkout.
                    self.left -= 1;
                    self.chan = maybe_switch(rng, self.chan, 0.1);
                    let step = if self.left == 0 { "cart" } else { "product" };
                    digital_attrs(rng, Ev::new(self.chan, EventType::Touch, step))
                } else {
                    Ev::new(self.chan, EventType::Touch, "checkout")
                };
                (delay, ev)
            }
            Story::CaseThread => self.advance_thread(rng)?,
            Story::AnonBrowse | Story::LoginSoon | Story::LoginLater => self.advance_web_identity(rng)?,
            Story::CallByNumber => match (self.variant, self.phase) {
                (0, 1) => {
                    let ev = Ev::new(Channel::Phone, EventType::Contact, self.topic).anon(Ids::Phone);
                    (rng.range(2 * MIN, 25 * MIN), queue_attrs(rng, ev))
                }
                (0, 2) | (1 | 2, 1) => (
                    rng.range(5 * SEC, 60 * SEC),
                    Ev::new(Channel::Phone, EventType::Reply, self.topic).anon(Ids::Phone),
                ),
                (0, 3) if rng.chance(0.7) => (
                    rng.range(MIN, 10 * MIN),
                    Ev::new(Channel::Phone, EventType::RequestResolved, self.topic).anon(Ids::Phone),
                ),
                (1, 2) => (
                    rng.range(3 * MIN, 20 * MIN),
                    Ev::new(Channel::App, EventType::Touch, "profile").link(Ids::Profile),
                ),
                (2, 2) if rng.chance(0.5) => (
                    rng.range(MIN, 10 * MIN),
                    Ev::new(Channel::Phone, EventType::RequestResolved, self.topic).anon(Ids::Phone),
                ),
                _ => return None,
            },
            Story::WhatsappByPhone => match (self.variant, self.phase) {
                (_, 1) => (
                    rng.range(20 * SEC, 3 * MIN),
                    Ev::new(Channel::Whatsapp, EventType::Contact, "order").anon(Ids::Phone),
                ),
                (_, 2) => (
                    rng.range(10 * SEC, 5 * MIN),
                    Ev::new(Channel::Whatsapp, EventType::Reply, "order").anon(Ids::Phone),
                ),
                (0, 3) => (
                    rng.range(2 * MIN, 15 * MIN),
                    Ev::new(Channel::App, EventType::Touch, "profile").link(Ids::Profile),
                ),
                (0, 4) => (
                    rng.range(MIN, 8 * MIN),
                    Ev::new(Channel::App, EventType::Conversion, "checkout").with_value(rng, 999, 19_999),
                ),
                (1, 3) if rng.chance(0.5) => (
                    rng.range(2 * MIN, 10 * MIN),
                    Ev::new(Channel::Whatsapp, EventType::Conversion, "order")
                        .anon(Ids::Phone)
                        .with_value(rng, 999, 19_999),
                ),
                (1, 3) => (
                    rng.range(2 * MIN, 10 * MIN),
                    Ev::new(Channel::Whatsapp, EventType::Abandon, "order").anon(Ids::Phone),
                ),
                _ => return None,
            },
            Story::StoreLoyalty => match (self.variant, self.phase) {
                (_, 1) => {
                    let ev = Ev::new(Channel::Store, EventType::Conversion, "till").anon(Ids::Loyalty);
                    (rng.range(3 * MIN, 20 * MIN), ev.with_value(rng, 500, 25_000).with_attrs_of(self.ev))
                }
                (0, 2) => {
                    (rng.range(MIN, 8 * MIN), Ev::new(Channel::App, EventType::Touch, "loyalty").link(Ids::Profile))
                }
                _ => return None,
            },
            Story::FamilyPhone => match self.phase {
                1 => (
                    rng.range(5 * SEC, 60 * SEC),
                    Ev::new(Channel::Phone, EventType::Reply, self.topic).anon(Ids::Household),
                ),
                // The agent identifies the caller: a link of the household phone.
                2 => (
                    rng.range(MIN, 5 * MIN),
                    Ev::new(Channel::Phone, EventType::RequestOpened, self.topic).link(Ids::Household),
                ),
                3 if rng.chance(0.8) => {
                    (rng.range(2 * MIN, 15 * MIN), Ev::new(Channel::Phone, EventType::RequestResolved, self.topic))
                }
                _ => return None,
            },
            Story::Browsing => {
                if self.left == 0 {
                    return None;
                }
                self.left -= 1;
                self.chan = maybe_switch(rng, self.chan, 0.08);
                let ev = Ev::new(self.chan, EventType::Touch, rng.pick(&BROWSE_STEPS));
                (rng.range(5 * SEC, 5 * MIN), digital_attrs(rng, ev))
            }
        };
        self.ev = ev;
        Some(delay)
    }

    /// Web visits under a cookie: `left` anonymous touches, then (login stories) a login that
    /// links the cookie and a checkout as the customer; or (anonymous browsing) maybe an
    /// abandoned cart.
    fn advance_web_identity(&mut self, rng: &mut Rng) -> Option<(i64, Ev)> {
        let last = self.ev;
        if matches!(last.kind, EventType::Conversion | EventType::Abandon) {
            return None;
        }
        if last.anonymous && self.left > 0 {
            self.left -= 1;
            let ev = Ev::new(Channel::Web, EventType::Touch, rng.pick(&ANON_STEPS)).anon(Ids::Cookie);
            return Some((rng.range(5 * SEC, 5 * MIN), digital_attrs(rng, ev)));
        }
        match (self.story, last.step) {
            (Story::AnonBrowse, Some("cart")) => Some((
                rng.range(10 * SEC, 3 * MIN),
                Ev::new(Channel::Web, EventType::Abandon, "cart").anon(Ids::Cookie),
            )),
            (Story::AnonBrowse, _) if rng.chance(0.3) => {
                Some((rng.range(5 * SEC, 4 * MIN), Ev::new(Channel::Web, EventType::Touch, "cart").anon(Ids::Cookie)))
            }
            (Story::AnonBrowse, _) => None,
            (_, _) if last.anonymous => {
                let delay = if self.story == Story::LoginSoon {
                    rng.range(10 * SEC, 4 * MIN)
                } else {
                    rng.range(LATE_LOGIN_MS.0, LATE_LOGIN_MS.1)
                };
                Some((delay, Ev::new(Channel::Web, EventType::Touch, "login").link(Ids::Cookie)))
            }
            (_, Some("login")) => {
                let step = if self.story == Story::LoginSoon { "checkout" } else { "account" };
                Some((rng.range(20 * SEC, 4 * MIN), Ev::new(Channel::Web, EventType::Touch, step)))
            }
            (Story::LoginSoon, Some("checkout")) => {
                let ev = if rng.chance(0.7) {
                    Ev::new(Channel::Web, EventType::Conversion, "checkout").with_value(rng, 499, 59_999)
                } else {
                    Ev::new(Channel::Web, EventType::Abandon, "payment")
                };
                Some((rng.range(30 * SEC, 5 * MIN), ev))
            }
            (Story::LoginLater, Some("account")) if rng.chance(0.4) => {
                let ev = Ev::new(Channel::Web, EventType::Conversion, "checkout").with_value(rng, 499, 59_999);
                Some((rng.range(MIN, 10 * MIN), ev))
            }
            _ => None,
        }
    }

    /// Case threads: the current event is in `self.ev`; `left` counts contacts still to come.
    /// Gaps stay below the default 24 h thread gap.
    fn advance_thread(&mut self, rng: &mut Rng) -> Option<(i64, Ev)> {
        let last = self.ev.kind;
        if last == EventType::RequestResolved {
            return None;
        }
        if last == EventType::Contact && self.chan != Channel::Store && rng.chance(0.7) {
            let ev = Ev::new(self.chan, EventType::Reply, self.topic);
            return Some((rng.range(2 * MIN, 3 * HOUR), ev));
        }
        if self.left > 0 {
            self.left -= 1;
            self.chan = rng.pick(&CASE_CONTACT_CHANNELS);
            let ev = queue_attrs(rng, Ev::new(self.chan, EventType::Contact, self.topic));
            let delay = if last == EventType::RequestOpened {
                rng.range(10 * MIN, 6 * HOUR)
            } else {
                rng.range(HOUR, 20 * HOUR)
            };
            return Some((delay, ev));
        }
        if rng.chance(0.9) {
            self.chan = if rng.chance(0.6) { Channel::Email } else { Channel::Phone };
            let ev = Ev::new(self.chan, EventType::RequestResolved, self.topic);
            return Some((rng.range(HOUR, 20 * HOUR), ev));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs many journeys and checks the timing promises of each story.
    #[test]
    fn stories_keep_their_gaps() {
        let mut rng = Rng::new(1);
        let mut case = 0;
        let mut seen = [false; STORIES.len()];
        for n in 0..20_000 {
            let mut c = Cursor::start(&mut rng, n, &mut case, false);
            seen[STORIES.iter().position(|(s, _)| *s == c.story).unwrap_or(0)] = true;
            let mut events = 1;
            while let Some(delay) = c.advance(&mut rng) {
                events += 1;
                assert!(delay > 0);
                match c.story {
                    Story::CaseThread => assert!(delay < 24 * HOUR),
                    _ => assert!(delay < 30 * MIN, "{:?} delay {delay}", c.story),
                }
                if c.story == Story::WhatsappPayment && c.phase == 3 {
                    assert!(delay > 15 * MIN);
                }
                assert!(!c.ev.anonymous && c.ev.ids == Ids::None, "no identities unless asked");
            }
            assert!(events <= 16, "{:?} had {events} events", c.story);
        }
        assert!(seen.iter().all(|&s| s));
    }

    /// Identity stories: anonymous events carry identities; links come within `identify_wait`
    /// of the story's anonymous events, except where the story is about a late login.
    #[test]
    fn identity_stories_link_in_time() {
        let mut rng = Rng::new(2);
        let mut case = 0;
        let mut seen = [false; ID_STORIES.len()];
        let mut anonymous_then_linked = [0u32; ID_STORIES.len()];
        for n in 0..20_000 {
            let mut c = Cursor::start(&mut rng, n, &mut case, true);
            let story = ID_STORIES.iter().position(|(s, _)| *s == c.story).unwrap_or(0);
            seen[story] = true;
            let (mut t, mut first_anonymous, mut last_anonymous) = (0, None, None);
            let mut events = vec![c.ev];
            loop {
                let ev = c.ev;
                assert!(!ev.anonymous || ev.ids != Ids::None);
                if ev.anonymous {
                    first_anonymous.get_or_insert(t);
                    last_anonymous = Some(t);
                } else if ev.ids != Ids::None
                    && let Some(first) = first_anonymous
                {
                    anonymous_then_linked[story] += 1;
                    if c.story == Story::LoginLater {
                        assert!(t - last_anonymous.unwrap_or(t) > 30 * MIN);
                    } else {
                        assert!(
                            t - first <= 30 * MIN,
                            "{:?}: link {} after the first anonymous event",
                            c.story,
                            t - first
                        );
                    }
                }
                let Some(delay) = c.advance(&mut rng) else { break };
                assert!(delay > 0);
                if c.story == Story::LoginLater && c.ev.step == Some("login") {
                    assert!((LATE_LOGIN_MS.0..=LATE_LOGIN_MS.1).contains(&delay));
                } else if c.story != Story::CaseThread {
                    assert!(delay < 30 * MIN, "{:?} delay {delay}", c.story);
                }
                t += delay;
                events.push(c.ev);
            }
            assert!(events.len() <= 16, "{:?} had {} events", c.story, events.len());
            let channels: Vec<_> = events.iter().filter(|e| e.anonymous).map(|e| (e.channel, e.ids)).collect();
            for (channel, ids) in channels {
                match ids {
                    Ids::Cookie => assert_eq!(channel, Channel::Web),
                    Ids::Loyalty => assert_eq!(channel, Channel::Store),
                    Ids::Phone => assert!(matches!(channel, Channel::Phone | Channel::Whatsapp)),
                    Ids::Household => assert_eq!(channel, Channel::Phone),
                    Ids::Profile | Ids::None => panic!("{:?}: anonymous {ids:?}", c.story),
                }
            }
        }
        assert!(seen.iter().all(|&s| s));
        for (i, (story, _)) in ID_STORIES.iter().enumerate() {
            let links = matches!(
                story,
                Story::LoginSoon
                    | Story::LoginLater
                    | Story::CallByNumber
                    | Story::WhatsappByPhone
                    | Story::StoreLoyalty
                    | Story::FamilyPhone
            );
            assert_eq!(anonymous_then_linked[i] > 0, links, "{story:?}");
        }
    }
}
