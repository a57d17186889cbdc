//! `/health`, `/health/live`, `/health/ready` in seed 000's shape.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn health_reports_pools_and_statistics_in_the_seed_shape() {
    let app = spawn_app().await;
    app.query("SELECT 1", json!([])).await;
    app.query("SELEC 1", json!([])).await;
    let (status, body) = app.get("/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], json!("healthy"));
    assert!(chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap()).is_ok());
    assert_eq!(body["connection_pool"]["healthy"], json!(true));
    let stats = &body["connection_pool"]["pool_stats"];
    for key in ["total", "idle", "active", "waiting", "max"] {
        assert!(stats[key].is_u64(), "pool_stats.{key} missing: {body}");
    }
    assert_eq!(body["connection_pool"]["read_replicas"], json!(0));
    let statistics = &body["statistics"];
    assert_eq!(statistics["queries_executed"], json!(2));
    assert_eq!(statistics["errors"], json!(1));
    for key in ["transactions_executed", "cache_hits", "cache_misses", "slow_queries"] {
        assert!(statistics[key].is_u64(), "statistics.{key} missing");
    }
    assert_eq!(app.get("/health/live").await.0, StatusCode::OK);
    assert_eq!(app.get("/health/ready").await.0, StatusCode::OK);
}

#[tokio::test]
async fn slow_queries_are_counted() {
    let app = crate::helpers::spawn_app_with(|c| c.optimization.slow_query_threshold_ms = 50.0).await;
    app.query("SELECT pg_sleep(0.1)", json!([])).await;
    app.query("SELECT 1", json!([])).await;
    let (_, body) = app.get("/health").await;
    assert_eq!(body["statistics"]["slow_queries"], json!(1));
}
