//! The answer shapes shared by handlers: `"success": true` beside a capability's own fields.

use axum::Json;
use schemars::JsonSchema;
use serde::Serialize;

/// An answer with `"success": true` beside its own fields (seed 000's envelope).
#[derive(Serialize, JsonSchema)]
pub struct Succeeded<T> {
    /// Always `true` here; an error answers `false` with `error`.
    success: bool,
    #[serde(flatten)]
    answer: T,
}

impl<T> Succeeded<T> {
    pub fn new(answer: T) -> Self {
        Succeeded { success: true, answer }
    }
}

/// `answer` with `"success": true`.
pub fn ok<T: Serialize>(answer: T) -> Json<Succeeded<T>> {
    Json(Succeeded::new(answer))
}
