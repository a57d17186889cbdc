//! Request bodies in, response bodies out.
//!
//! Requests: the body is parsed as JSON whatever the Content-Type says (curl users forget
//! it), and every parse failure is a 400 in the common error shape, naming line and column.
//! Responses carrying rows are written by hand: the rows are already JSON text, streamed from
//! the database, and re-parsing them into a value tree only to print them again would double
//! the cost of every read.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::db::types::write_json_str;
use crate::query::Rows;

/// A JSON request body, with errors in dbagent's shape.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            let status = rejection.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large(rejection.body_text())
            } else {
                ApiError::invalid_request(rejection.body_text())
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|err| ApiError::invalid_request(format!("the request body is not valid: {err}")))
    }
}

/// A response body of JSON text in pieces, sent one after the other: big row sets go out as
/// the buffers they were encoded into, never copied into one answer (see
/// [`ObjectWriter::rows_owned`]). The length is known, so the answer has a `Content-Length`.
pub struct JsonParts(pub Vec<Bytes>);

impl IntoResponse for JsonParts {
    fn into_response(self) -> Response {
        let body = PartsBody { remaining: self.0.iter().map(|p| p.len() as u64).sum(), parts: self.0.into() };
        ([(axum::http::header::CONTENT_TYPE, "application/json")], axum::body::Body::new(body)).into_response()
    }
}

/// [`JsonParts`] as an HTTP body of exact size.
struct PartsBody {
    parts: std::collections::VecDeque<Bytes>,
    remaining: u64,
}

impl http_body::Body for PartsBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let next = self.parts.pop_front();
        if let Some(part) = &next {
            self.remaining -= part.len() as u64;
        }
        std::task::Poll::Ready(next.map(|part| Ok(http_body::Frame::data(part))))
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

/// Writes a JSON object field by field.
pub struct ObjectWriter {
    out: Vec<u8>,
    first: bool,
    /// What was written before the last buffer moved in whole ([`ObjectWriter::raw_parts`]).
    parts: Vec<Bytes>,
}

impl ObjectWriter {
    pub fn with_capacity(capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity);
        out.push(b'{');
        ObjectWriter { out, first: true, parts: Vec::new() }
    }

    /// A field whose JSON text is `parts`, taken as they are (no copy).
    pub fn raw_parts(&mut self, key: &str, parts: impl IntoIterator<Item = Bytes>) -> &mut Self {
        self.key(key);
        self.parts.push(Bytes::from(std::mem::take(&mut self.out)));
        self.parts.extend(parts.into_iter().filter(|p| !p.is_empty()));
        self
    }

    /// The result fields of one statement: rows, row_count, truncated, columns; the rows' JSON
    /// moves into the answer instead of being copied.
    pub fn rows_owned(&mut self, rows: &mut Rows) -> &mut Self {
        let json = Bytes::from(std::mem::take(&mut rows.json));
        self.raw_parts("rows", [json])
            .value("row_count", &rows.row_count)
            .value("truncated", &rows.truncated)
            .value("columns", &rows.columns)
    }

    /// The object, closed, as pieces to send one after the other.
    pub fn into_parts(mut self) -> Vec<Bytes> {
        self.out.push(b'}');
        self.parts.push(Bytes::from(self.out));
        self.parts
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        write_json_str(&mut self.out, key);
        self.out.push(b':');
    }

    /// A field with any serializable value.
    pub fn value<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> &mut Self {
        self.key(key);
        // Serializing plain data into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.out, value);
        self
    }

    /// Milliseconds with microsecond precision.
    pub fn millis(&mut self, key: &str, elapsed: std::time::Duration) -> &mut Self {
        let ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3;
        self.value(key, &ms)
    }
}
