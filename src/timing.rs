//! Where one request's time went, stage by stage: [`mark`] ends a stage, [`scope`] records the
//! marks of one request (a task). Off, which is when no scope is open, a mark is one task-local
//! lookup that finds nothing. `api::timing` turns the marks into a `Server-Timing` header.

use std::cell::RefCell;
use std::fmt::Write;
use std::time::Instant;

tokio::task_local! {
    static STAGES: RefCell<Stages>;
}

struct Stages {
    last: Instant,
    marks: Vec<(&'static str, f64)>,
}

/// Ends the stage called `stage` now; it ran from the previous mark (or the scope's start).
pub fn mark(stage: &'static str) {
    let _ = STAGES.try_with(|stages| {
        let mut stages = stages.borrow_mut();
        let now = Instant::now();
        let ms = now.duration_since(stages.last).as_secs_f64() * 1000.0;
        stages.last = now;
        stages.marks.push((stage, ms));
    });
}

/// Runs `work` recording its marks; its output, and the stages as a `Server-Timing` value
/// (`name;dur=ms, ...`, each name once, `total` last).
pub async fn scope<T>(work: impl Future<Output = T>) -> (T, String) {
    let started = Instant::now();
    let stages = RefCell::new(Stages { last: started, marks: Vec::with_capacity(8) });
    let (out, marks) = STAGES
        .scope(stages, async {
            let out = work.await;
            (out, STAGES.with(|s| std::mem::take(&mut s.borrow_mut().marks)))
        })
        .await;
    (out, render(&marks, started.elapsed().as_secs_f64() * 1000.0))
}

/// A stage marked twice (a statement run again) is summed under its name.
fn render(marks: &[(&'static str, f64)], total_ms: f64) -> String {
    let mut merged: Vec<(&str, f64)> = Vec::with_capacity(marks.len());
    for &(name, ms) in marks {
        match merged.iter_mut().find(|(n, _)| *n == name) {
            Some((_, sum)) => *sum += ms,
            None => merged.push((name, ms)),
        }
    }
    let mut out = String::with_capacity(16 * (merged.len() + 1));
    for (name, ms) in merged {
        let _ = write!(out, "{name};dur={ms:.3}, ");
    }
    let _ = write!(out, "total;dur={total_ms:.3}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_rendered_once_each_with_total_last() {
        let header = render(&[("read", 0.0123), ("db", 0.2), ("acquire", 0.01), ("db", 0.1)], 0.5);
        assert_eq!(header, "read;dur=0.012, db;dur=0.300, acquire;dur=0.010, total;dur=0.500");
    }

    #[tokio::test]
    async fn marks_are_recorded_inside_a_scope_only() {
        mark("db"); // outside: nothing, no failure
        let ((), header) = scope(async {
            mark("read");
            tokio::task::yield_now().await;
            mark("db");
        })
        .await;
        let names: Vec<&str> = header.split(", ").map(|s| s.split(';').next().unwrap()).collect();
        assert_eq!(names, ["read", "db", "total"]);
    }
}
