//! The plan tree of `EXPLAIN (FORMAT JSON)`, typed: what the rules read and what `/optimize`
//! returns.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One plan node. Fields PostgreSQL did not print (no ANALYZE, no BUFFERS, not that node
/// kind) are `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Node {
    #[serde(rename = "Node Type")]
    pub node_type: String,
    /// Run by several workers (its loops are the workers, each scanning a part).
    #[serde(rename = "Parallel Aware", default)]
    pub parallel_aware: bool,
    #[serde(rename = "Relation Name", skip_serializing_if = "Option::is_none", default)]
    pub relation: Option<String>,
    #[serde(rename = "Alias", skip_serializing_if = "Option::is_none", default)]
    pub alias: Option<String>,
    #[serde(rename = "Index Name", skip_serializing_if = "Option::is_none", default)]
    pub index: Option<String>,
    #[serde(rename = "Join Type", skip_serializing_if = "Option::is_none", default)]
    pub join_type: Option<String>,
    #[serde(rename = "Startup Cost", default)]
    pub startup_cost: f64,
    #[serde(rename = "Total Cost", default)]
    pub total_cost: f64,
    /// Estimated rows per loop.
    #[serde(rename = "Plan Rows", default)]
    pub plan_rows: f64,
    /// Estimated average row width in bytes.
    #[serde(rename = "Plan Width", default)]
    pub plan_width: f64,
    /// Actual rows per loop (ANALYZE).
    #[serde(rename = "Actual Rows", skip_serializing_if = "Option::is_none", default)]
    pub actual_rows: Option<f64>,
    #[serde(rename = "Actual Loops", skip_serializing_if = "Option::is_none", default)]
    pub actual_loops: Option<f64>,
    /// Milliseconds per loop, children included.
    #[serde(rename = "Actual Total Time", skip_serializing_if = "Option::is_none", default)]
    pub actual_total_time: Option<f64>,
    #[serde(rename = "Filter", skip_serializing_if = "Option::is_none", default)]
    pub filter: Option<String>,
    #[serde(rename = "Rows Removed by Filter", skip_serializing_if = "Option::is_none", default)]
    pub rows_removed_by_filter: Option<f64>,
    #[serde(rename = "Index Cond", skip_serializing_if = "Option::is_none", default)]
    pub index_cond: Option<String>,
    #[serde(rename = "Recheck Cond", skip_serializing_if = "Option::is_none", default)]
    pub recheck_cond: Option<String>,
    #[serde(rename = "Hash Cond", skip_serializing_if = "Option::is_none", default)]
    pub hash_cond: Option<String>,
    #[serde(rename = "Merge Cond", skip_serializing_if = "Option::is_none", default)]
    pub merge_cond: Option<String>,
    #[serde(rename = "Join Filter", skip_serializing_if = "Option::is_none", default)]
    pub join_filter: Option<String>,
    #[serde(rename = "Rows Removed by Join Filter", skip_serializing_if = "Option::is_none", default)]
    pub rows_removed_by_join_filter: Option<f64>,
    #[serde(rename = "Sort Key", skip_serializing_if = "Option::is_none", default)]
    pub sort_key: Option<Vec<String>>,
    #[serde(rename = "Sort Method", skip_serializing_if = "Option::is_none", default)]
    pub sort_method: Option<String>,
    /// Kilobytes.
    #[serde(rename = "Sort Space Used", skip_serializing_if = "Option::is_none", default)]
    pub sort_space_used: Option<f64>,
    #[serde(rename = "Sort Space Type", skip_serializing_if = "Option::is_none", default)]
    pub sort_space_type: Option<String>,
    #[serde(rename = "Hash Batches", skip_serializing_if = "Option::is_none", default)]
    pub hash_batches: Option<f64>,
    #[serde(rename = "Original Hash Batches", skip_serializing_if = "Option::is_none", default)]
    pub original_hash_batches: Option<f64>,
    /// Kilobytes.
    #[serde(rename = "Peak Memory Usage", skip_serializing_if = "Option::is_none", default)]
    pub peak_memory_kb: Option<f64>,
    #[serde(rename = "Shared Hit Blocks", skip_serializing_if = "Option::is_none", default)]
    pub shared_hit_blocks: Option<f64>,
    #[serde(rename = "Shared Read Blocks", skip_serializing_if = "Option::is_none", default)]
    pub shared_read_blocks: Option<f64>,
    #[serde(rename = "Temp Read Blocks", skip_serializing_if = "Option::is_none", default)]
    pub temp_read_blocks: Option<f64>,
    #[serde(rename = "Temp Written Blocks", skip_serializing_if = "Option::is_none", default)]
    pub temp_written_blocks: Option<f64>,
    #[serde(rename = "Plans", skip_serializing_if = "Vec::is_empty", default)]
    pub children: Vec<Node>,
}

/// A whole `EXPLAIN` answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explained {
    pub root: Node,
    pub planning_time_ms: Option<f64>,
    pub execution_time_ms: Option<f64>,
    pub analyzed: bool,
}

impl Node {
    /// Every node, depth first, with its path from the root (`0.1.0` …) for reporting.
    pub fn walk(&self) -> Vec<(String, &Node)> {
        let mut out = Vec::new();
        fn go<'a>(node: &'a Node, path: String, out: &mut Vec<(String, &'a Node)>) {
            out.push((path.clone(), node));
            for (i, child) in node.children.iter().enumerate() {
                go(child, format!("{path}.{i}"), out);
            }
        }
        go(self, "0".into(), &mut out);
        out
    }

    /// Rows this node produced over all its loops (ANALYZE), else the estimate.
    pub fn rows_out(&self) -> f64 {
        match (self.actual_rows, self.actual_loops) {
            (Some(rows), Some(loops)) => rows * loops,
            _ => self.plan_rows,
        }
    }

    pub fn is_scan(&self) -> bool {
        self.relation.is_some()
    }

    /// A one-line label: `Seq Scan on orders`, `Index Scan using i on t`.
    pub fn label(&self) -> String {
        let mut label = self.node_type.clone();
        if let Some(index) = &self.index {
            label.push_str(&format!(" using {index}"));
        }
        if let Some(rel) = &self.relation {
            label.push_str(&format!(" on {rel}"));
        }
        label
    }
}

/// Parses the single JSON value `EXPLAIN (FORMAT JSON)` returns.
pub fn parse(value: &Value) -> Result<Explained, String> {
    let top = value.as_array().and_then(|a| a.first()).unwrap_or(value);
    let plan = top.get("Plan").ok_or("the EXPLAIN output has no Plan")?;
    let root: Node = serde_json::from_value(plan.clone()).map_err(|e| format!("unexpected EXPLAIN output: {e}"))?;
    let number = |key: &str| top.get(key).and_then(Value::as_f64);
    Ok(Explained {
        analyzed: root.actual_loops.is_some(),
        root,
        planning_time_ms: number("Planning Time"),
        execution_time_ms: number("Execution Time"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_explain_parses_into_the_tree() {
        let json = serde_json::json!([{
            "Plan": {
                "Node Type": "Hash Join", "Join Type": "Inner", "Startup Cost": 1.0, "Total Cost": 20.5,
                "Plan Rows": 10, "Plan Width": 8, "Actual Rows": 12, "Actual Loops": 1, "Actual Total Time": 0.5,
                "Hash Cond": "(o.user_id = u.id)",
                "Plans": [
                    {"Node Type": "Seq Scan", "Relation Name": "orders", "Alias": "o", "Startup Cost": 0.0,
                     "Total Cost": 10.0, "Plan Rows": 100, "Plan Width": 8, "Actual Rows": 90, "Actual Loops": 1,
                     "Filter": "(total > 10)", "Rows Removed by Filter": 910, "Shared Hit Blocks": 4},
                    {"Node Type": "Hash", "Startup Cost": 0.0, "Total Cost": 5.0, "Plan Rows": 5, "Plan Width": 4,
                     "Hash Batches": 1, "Original Hash Batches": 1, "Peak Memory Usage": 9,
                     "Plans": [{"Node Type": "Index Scan", "Relation Name": "users", "Index Name": "users_pkey",
                                "Startup Cost": 0.0, "Total Cost": 5.0, "Plan Rows": 5, "Plan Width": 4}]}
                ]
            },
            "Planning Time": 0.2, "Execution Time": 0.7
        }]);
        let e = parse(&json).unwrap();
        assert!(e.analyzed);
        assert_eq!(e.execution_time_ms, Some(0.7));
        let nodes = e.root.walk();
        assert_eq!(nodes.len(), 4);
        assert_eq!(nodes[1].1.rows_removed_by_filter, Some(910.0));
        assert_eq!(nodes[3].0, "0.1.0");
        assert_eq!(nodes[3].1.label(), "Index Scan using users_pkey on users");
    }
}
