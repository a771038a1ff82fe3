//! The committed JSON Schemas are exactly what the code generates.
//! Regenerate with `UPDATE_SCHEMAS=1 cargo test -p event-schemas --test schemas`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use event_schemas::schema::all_schema_files;

fn schemas_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

fn committed_files() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let dir = schemas_dir();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                out.insert(
                    p.strip_prefix(&dir)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }
    out
}

#[test]
fn committed_schemas_match_the_code() {
    let generated = all_schema_files();
    let dir = schemas_dir();
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        let _ = std::fs::remove_dir_all(&dir);
        for (path, body) in &generated {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
    }
    let mut drift = Vec::new();
    for (path, body) in &generated {
        match std::fs::read_to_string(dir.join(path)) {
            Ok(committed) if &committed == body => {}
            Ok(_) => drift.push(format!("{path}: differs from the code")),
            Err(_) => drift.push(format!("{path}: missing")),
        }
    }
    for path in committed_files() {
        if !generated.contains_key(&path) {
            drift.push(format!("{path}: committed but no longer generated"));
        }
    }
    assert!(
        drift.is_empty(),
        "event schemas drifted from the code (run UPDATE_SCHEMAS=1 cargo test -p event-schemas --test schemas):\n{}",
        drift.join("\n")
    );
}

#[test]
fn every_event_type_has_a_schema_with_its_version() {
    let files = all_schema_files();
    for (stream, types) in [
        ("Order", event_schemas::OrderEvent::EVENT_TYPES),
        (
            "InventoryBatch",
            event_schemas::InventoryBatchEvent::EVENT_TYPES,
        ),
        ("Payment", event_schemas::PaymentEvent::EVENT_TYPES),
        ("Delivery", event_schemas::DeliveryEvent::EVENT_TYPES),
    ] {
        for (ty, version) in types {
            let path = format!("{stream}/{ty}.v{version}.json");
            let body = files.get(&path).unwrap_or_else(|| panic!("{path} missing"));
            let schema: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(schema["x-event-version"], *version);
            assert_eq!(schema["type"], "object", "{path}");
        }
    }
}
