//! Faults injected for real (issue 20): PostgreSQL restarted under load, the network to it
//! slowed and blackholed through a proxy, the agent killed mid-operation, the backup disk full.
//! Each test runs on a private cluster (never the shared test instance) or its own files, and
//! prints what it measured (`faults: ...`) for RELIABILITY.md.

mod disk;
mod kill;
mod network;
mod proxy;
mod restart;

use std::time::Duration;

use dbagent::instance::{self, StopMode};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{start_instance, test_instance_settings};

/// A private PostgreSQL cluster under `target/tmp/faults-<id>/`, stopped and removed on drop
/// (kept for inspection when the test fails).
pub struct Cluster {
    pub settings: instance::Settings,
    pub port: u16,
}

impl Cluster {
    pub fn start(tag: &str) -> Cluster {
        let name = format!("faults-{tag}-{}/pgdata", uuid::Uuid::new_v4().simple());
        let mut settings = test_instance_settings(&name);
        let running = start_instance(&settings);
        settings.port = Some(running.port);
        Cluster { settings, port: running.port }
    }

    /// `postgresql://postgres@127.0.0.1:<port>` (no database).
    pub fn server(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}", self.port)
    }

    /// Stops the server (`mode`) on a thread of its own (the instance functions block).
    pub async fn stop(&self, mode: StopMode) {
        let settings = self.settings.clone();
        on_own_runtime(async move { instance::stop(&settings, mode).await.expect("stop PostgreSQL") }).await;
    }

    /// Starts it again; returns once it accepts connections.
    pub async fn start_again(&self) {
        let settings = self.settings.clone();
        on_own_runtime(async move { instance::start(&settings).await.expect("start PostgreSQL again") }).await;
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let settings = self.settings.clone();
        let keep = std::thread::panicking();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            let _ = rt.block_on(instance::stop(&settings, StopMode::Immediate));
            let root = settings.data_dir.parent().unwrap_or(&settings.data_dir).to_path_buf();
            if keep {
                eprintln!("test failed; keeping {} for inspection", root.display());
            } else {
                let _ = std::fs::remove_dir_all(root);
            }
        })
        .join();
    }
}

/// Runs `work` on a thread with a runtime of its own, so the test's runtime keeps serving.
pub async fn on_own_runtime<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> T {
    tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(work)
    })
    .await
    .expect("the blocking task")
}

/// Whether `body` is the common error shape: `{"success": false, "error": {"code": ...}}`.
pub fn error_code(body: &Value) -> Option<&str> {
    (body["success"] == Value::Bool(false)).then(|| body["error"]["code"].as_str()).flatten()
}

/// A request with a client-side deadline: `Err(())` when the deadline passed (a hang).
pub async fn send(request: reqwest::RequestBuilder, deadline: Duration) -> Result<Option<(StatusCode, Value)>, ()> {
    let exchange = async {
        let response = request.send().await.ok()?;
        let status = response.status();
        let text = response.text().await.ok()?;
        Some((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    };
    tokio::time::timeout(deadline, exchange).await.map_err(|_| ())
}
