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

/// A response body of JSON text already written.
pub struct RawJson(pub Vec<u8>);

impl IntoResponse for RawJson {
    fn into_response(self) -> Response {
        ([(axum::http::header::CONTENT_TYPE, "application/json")], self.0).into_response()
    }
}

/// Writes a JSON object field by field.
pub struct ObjectWriter {
    out: Vec<u8>,
    first: bool,
}

impl ObjectWriter {
    pub fn with_capacity(capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity);
        out.push(b'{');
        ObjectWriter { out, first: true }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        write_json_str(&mut self.out, key);
        self.out.push(b':');
    }

    /// A field whose value is JSON text already.
    pub fn raw(&mut self, key: &str, json: &[u8]) -> &mut Self {
        self.key(key);
        self.out.extend_from_slice(json);
        self
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

    /// The result fields of one statement: rows, row_count, truncated, columns.
    pub fn rows(&mut self, rows: &Rows) -> &mut Self {
        self.raw("rows", &rows.json)
            .value("row_count", &rows.row_count)
            .value("truncated", &rows.truncated)
            .value("columns", &rows.columns)
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.out.push(b'}');
        self.out
    }
}
