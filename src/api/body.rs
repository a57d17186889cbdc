//! Request bodies in, response bodies out.
//!
//! Requests: the body is parsed as JSON whatever the Content-Type says (curl users forget
//! it), and every parse failure is a 400 in the common error shape, naming line and column.
//! Responses carrying rows are written by hand: the rows are already JSON text, streamed from
//! the database, and re-parsing them into a value tree only to print them again would double
//! the cost of every read.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
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
        parse(&body_bytes(req, state).await?).map(JsonBody)
    }
}

/// A JSON request body that may be left out (seed 004's `close-idle` is called with none):
/// an empty body means every field's default.
pub struct OptionalJsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(T::default()));
        }
        parse(&bytes).map(OptionalJsonBody)
    }
}

async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::payload_too_large(rejection.body_text())
        } else {
            ApiError::invalid_request(rejection.body_text())
        }
    })
}

/// Parses a body, naming the field a failure is about (`queries[0].sql: invalid type ...`):
/// serde_json's own message gives only a line and column.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let invalid = |what: String| ApiError::invalid_request(format!("the request body is not valid: {what}"));
    // Every body is an object; serde would also take a struct from an array of its fields.
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        _ => return Err(invalid("it must be a JSON object".into())),
    }
    if let Some(path) = nul_string(bytes) {
        return Err(invalid(format!("`{path}` holds a NUL character (\\u0000), which no PostgreSQL text can")));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        match path.as_str() {
            "" | "." => invalid(err.into_inner().to_string()),
            _ => invalid(format!("`{path}`: {}", err.into_inner())),
        }
    })?;
    deserializer.end().map_err(|err| invalid(err.to_string()))?;
    Ok(value)
}

/// Where a JSON text has a string with an escaped NUL (`\u0000`; a raw one is invalid JSON
/// anyway): None almost always, after a scan for backslashes; the path of the first such
/// string (`queries[0].sql`, or `.` when it is a key) when there is one.
fn nul_string(bytes: &[u8]) -> Option<String> {
    let mut i = 0;
    let mut found = false;
    while let Some(offset) = bytes[i..].iter().position(|b| *b == b'\\') {
        let at = i + offset;
        if bytes[at + 1..].starts_with(b"u0000") {
            found = true;
            break;
        }
        i = at + 2; // skip the escaped character, a backslash included
        if i >= bytes.len() {
            break;
        }
    }
    if !found {
        return None;
    }
    fn walk(value: &serde_json::Value, path: &mut String) -> bool {
        match value {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(items) => items.iter().enumerate().any(|(n, item)| {
                let len = path.len();
                path.push_str(&format!("[{n}]"));
                walk(item, path) || {
                    path.truncate(len);
                    false
                }
            }),
            serde_json::Value::Object(map) => map.iter().any(|(key, item)| {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                key.contains('\0') || walk(item, path) || {
                    path.truncate(len);
                    false
                }
            }),
            _ => false,
        }
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let mut path = String::new();
    walk(&value, &mut path).then(|| if path.is_empty() { ".".into() } else { path })
}

/// Query-string parameters, refused in dbagent's error shape (400 `invalid_request`, naming
/// the parameter) rather than axum's plain-text rejection.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        if let Some(query) = parts.uri.query() {
            well_formed_query(query).map_err(|why| ApiError::invalid_request(format!("invalid query parameters: {why}")))?;
        }
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(t)| Params(t))
            .map_err(|rejection| ApiError::invalid_request(format!("invalid query parameters: {}", rejection.body_text())))
    }
}

/// Refuses a query string whose decoded names or values are not UTF-8 or hold a NUL byte:
/// the URL decoder would otherwise replace such bytes silently, and no parameter has a use
/// for them.
fn well_formed_query(query: &str) -> Result<(), String> {
    for pair in query.split('&') {
        let mut bytes = Vec::with_capacity(pair.len());
        let raw = pair.as_bytes();
        let mut i = 0;
        while i < raw.len() {
            match raw[i] {
                b'%' if i + 2 < raw.len() => {
                    match std::str::from_utf8(&raw[i + 1..i + 3]).ok().and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                        Some(byte) => {
                            bytes.push(byte);
                            i += 3;
                            continue;
                        }
                        None => bytes.push(b'%'),
                    }
                }
                b'+' => bytes.push(b' '),
                byte => bytes.push(byte),
            }
            i += 1;
        }
        let name = String::from_utf8_lossy(bytes.split(|b| *b == b'=').next().unwrap_or_default()).into_owned();
        let text = String::from_utf8(bytes).map_err(|_| format!("`{name}`: not UTF-8 text once decoded"))?;
        if text.contains('\0') {
            return Err(format!("`{name}` holds a NUL byte"));
        }
    }
    Ok(())
}

/// The one path parameter of a route (an id, a table, a file name), refused in dbagent's
/// error shape when it is not UTF-8 text or holds a NUL byte, which no name has.
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(value) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::invalid_request(format!("invalid path parameter: {}", rejection.body_text())))?;
        if value.contains('\0') {
            return Err(ApiError::invalid_request("invalid path parameter: it holds a NUL byte"));
        }
        Ok(PathParam(value))
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

#[cfg(test)]
mod tests {
    use super::well_formed_query;

    #[test]
    fn query_strings_are_refused_when_they_decode_to_bytes_no_parameter_takes() {
        for good in ["", "a=1", "table=caf%C3%A9&x=%25", "a=b+c", "bad=%zz", "end=%2"] {
            assert!(well_formed_query(good).is_ok(), "{good}");
        }
        assert!(well_formed_query("a=%ff%fe").unwrap_err().contains("UTF-8"));
        assert!(well_formed_query("user=a%00b").unwrap_err().contains("`user`"));
    }

    #[test]
    fn a_nul_in_any_string_of_a_body_is_found_with_its_path() {
        use super::nul_string;
        assert_eq!(nul_string(br#"{"sql": "SELECT '\\u0000'"}"#), None, "an escaped backslash before u0000 is text");
        assert_eq!(nul_string(br#"{"sql": "a\\"}"#), None);
        assert_eq!(nul_string(br#"{"sql": "a\u0000b"}"#).as_deref(), Some("sql"));
        assert_eq!(nul_string(br#"{"queries": [{"sql": "x"}, {"sql": "\u0000"}]}"#).as_deref(), Some("queries[1].sql"));
    }
}
