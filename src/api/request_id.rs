//! Request ids: every request carries one in `x-request-id` (the caller's, or a new UUID), every
//! answer echoes it, and a server error's answer and its log line both name it.
//!
//! tower-http's `SetRequestId` / `PropagateRequestId` layers set and echo the header, but a
//! server error's answer is built deep inside the handler's future, which never sees the
//! request; so one middleware does all three: the header in, the id in scope while the request
//! runs ([`current`]), the header out.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The header that carries the id, both ways.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// A caller's id longer than this is replaced (it is logged with every server error).
const MAX_LEN: usize = 200;

tokio::task_local! {
    static CURRENT: String;
}

/// The middleware: gives the request an id, keeps it in scope, and echoes it.
pub async fn scope(mut req: Request, next: Next) -> Response {
    let given = req.headers().get(&HEADER).filter(|v| !v.is_empty() && v.len() <= MAX_LEN);
    let (id, value) = match given.and_then(|v| Some((v.to_str().ok()?.to_owned(), v.clone()))) {
        Some(pair) => pair,
        None => {
            let id = uuid::Uuid::new_v4().to_string();
            let value = HeaderValue::from_str(&id).expect("a UUID is a valid header value");
            req.headers_mut().insert(HEADER, value.clone());
            (id, value)
        }
    };
    let mut response = CURRENT.scope(id, next.run(req)).await;
    response.headers_mut().insert(HEADER, value);
    response
}

/// The id of the request being served, if called while serving one.
pub fn current() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}
