//! Loki's push messages (`grafana/loki` `pkg/push/push.proto`), the fields a client sends; field
//! numbers as upstream.

/// `logproto.PushRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    /// One entry per label set.
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

/// `logproto.StreamAdapter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamAdapter {
    /// The label set in LogQL selector form: `{name="value", ...}`.
    #[prost(string, tag = "1")]
    pub labels: String,
    /// Entries, in timestamp order.
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
}

/// `logproto.EntryAdapter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntryAdapter {
    /// When it happened.
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    /// The log line.
    #[prost(string, tag = "2")]
    pub line: String,
    /// Attributes that are not stream labels.
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
}

/// `logproto.LabelPairAdapter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPairAdapter {
    /// The name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds within the second (0 to 999,999,999).
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}
