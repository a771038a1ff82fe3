//! The committed Grafana dashboard is the one the code makes from the
//! committed reports.

#[test]
fn the_committed_dashboard_is_generated_from_the_reports() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/grafana/dashboards/freshledger.json"
    );
    let committed = std::fs::read_to_string(path).unwrap();
    assert!(
        committed == analytics::dashboard::text("freshledger"),
        "{path} is not what the reports make: run\n  cargo run -q -- analytics dashboard > deploy/grafana/dashboards/freshledger.json"
    );
    let d: serde_json::Value = serde_json::from_str(&committed).unwrap();
    let panels = d["panels"].as_array().unwrap();
    assert_eq!(panels.len(), 2 + analytics::reports::REPORTS.len());
    for p in panels {
        let sql = p["targets"][0]["rawSql"].as_str().unwrap();
        assert!(
            sql.contains("freshledger.")
                && !sql.replace("${warehouse:sqlstring}", "").contains('{'),
            "{sql}"
        );
    }
}
