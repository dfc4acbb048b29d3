/// `google.rpc.Status`, the body of every OTLP/HTTP error answer (protobuf or JSON, like the request).
///
/// Spec: "The response body for all HTTP 4xx and HTTP 5xx responses MUST be a Protobuf-encoded Status
/// message that describes the problem" (<https://opentelemetry.io/docs/specs/otlp/#failures-1>).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    /// The gRPC status code (`3` INVALID_ARGUMENT, `8` RESOURCE_EXHAUSTED, `14` UNAVAILABLE, ...).
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// What went wrong, where, and how to fix it.
    #[prost(string, tag = "2")]
    pub message: String,
}

impl RpcStatus {
    /// The OTLP/JSON form: `{"code":3,"message":"..."}`.
    pub fn to_json(&self) -> Vec<u8> {
        let value = serde_json::json!({ "code": self.code, "message": self.message });
        value.to_string().into_bytes()
    }
}
