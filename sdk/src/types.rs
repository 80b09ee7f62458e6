//! The plugin world's types as plain Rust, with helpers for the JSON values events carry.

/// A Kafka record header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub key: String,
    pub value: Vec<u8>,
}

/// An event on its way into Kafka (produce) or out of it (consume).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The topic it is headed to, or came from.
    pub topic: String,
    /// The record key, if any.
    pub key: Option<Vec<u8>>,
    /// The event as UTF-8 JSON text.
    pub value: Vec<u8>,
    pub headers: Vec<Header>,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

impl Event {
    /// An event with a value and nothing else (for tests and fan-out).
    ///
    /// # Examples
    /// ```
    /// let event = sluice_sdk::Event::new("clicks", br#"{"page": "/"}"#.to_vec());
    /// assert_eq!(event.json().unwrap()["page"], "/");
    /// ```
    pub fn new(topic: &str, value: Vec<u8>) -> Self {
        Self { topic: topic.to_owned(), key: None, value, headers: Vec::new(), timestamp_ms: 0 }
    }

    /// The value parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.value)
    }

    /// A header's value, if the event has it.
    ///
    /// # Examples
    /// ```
    /// let mut event = sluice_sdk::Event::new("t", b"{}".to_vec());
    /// event.headers.push(sluice_sdk::Header { key: "tenant".into(), value: b"acme".to_vec() });
    /// assert_eq!(event.header("tenant"), Some(&b"acme"[..]));
    /// ```
    pub fn header(&self, key: &str) -> Option<&[u8]> {
        self.headers.iter().find(|h| h.key == key).map(|h| h.value.as_slice())
    }
}

/// Changes to an event; `None` fields stay as they were.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// A new value, as UTF-8 JSON text.
    pub value: Option<Vec<u8>>,
    /// A new key.
    pub key: Option<Vec<u8>>,
    /// New headers, replacing all of them.
    pub headers: Option<Vec<Header>>,
}

impl Changes {
    /// Changes that replace the value with this JSON.
    ///
    /// # Examples
    /// ```
    /// let changes = sluice_sdk::Changes::json(&serde_json::json!({"a": 1}));
    /// assert_eq!(changes.value.unwrap(), br#"{"a":1}"#);
    /// ```
    pub fn json(value: &serde_json::Value) -> Self {
        Self { value: Some(value.to_string().into_bytes()), ..Self::default() }
    }
}

/// The decision for one event on the produce path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Keep the event as it is.
    Accept,
    /// Keep the event, changed.
    Modify(Changes),
    /// Leave the event out, successfully.
    Drop(String),
    /// Refuse the event: the HTTP caller gets a 422 naming the plugin and the reason.
    Reject(String),
    /// Send the event to the route's dead letter topic.
    DeadLetter(String),
    /// Send the event to another routed topic, with optional changes.
    Reroute { topic: String, changes: Option<Changes> },
    /// Replace the event with these events.
    FanOut(Vec<Event>),
}

/// The decision for one event about to be delivered to a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Deliver,
    Modify(Changes),
    Skip(String),
    DeadLetter(String),
}

/// A failed webhook delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub event: Event,
    /// Attempts so far (1 after the first failure).
    pub attempt: u32,
    /// The subscriber's HTTP status, if it answered.
    pub status: Option<u16>,
    pub error: String,
}

/// What to do after a failed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Try again after this many milliseconds.
    RetryAfter(u32),
    DeadLetter(String),
    Drop(String),
}

/// Log levels for [`crate::host::log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// The hooks a plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hooks(u8);

impl Hooks {
    pub const PRODUCE: Hooks = Hooks(1);
    pub const CONSUME: Hooks = Hooks(2);
    pub const FAILURE: Hooks = Hooks(4);

    /// Whether every hook in `other` is in `self`.
    pub const fn contains(self, other: Hooks) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets of hooks (usable in `const HOOKS`).
    ///
    /// # Examples
    /// ```
    /// use sluice_sdk::Hooks;
    /// const BOTH: Hooks = Hooks::PRODUCE.and(Hooks::CONSUME);
    /// assert!(BOTH.contains(Hooks::CONSUME) && !BOTH.contains(Hooks::FAILURE));
    /// ```
    pub const fn and(self, other: Hooks) -> Hooks {
        Hooks(self.0 | other.0)
    }
}

impl std::ops::BitOr for Hooks {
    type Output = Hooks;

    fn bitor(self, other: Hooks) -> Hooks {
        self.and(other)
    }
}
