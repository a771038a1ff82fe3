//! The committed SDL is exactly the schema the code serves.
//! Regenerate with `UPDATE_SCHEMAS=1 cargo test -p query-api --test sdl`.

#[test]
fn committed_sdl_matches_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
    let sdl = query_api::sdl();
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        std::fs::write(&path, &sdl).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == sdl,
        "query-api/schema.graphql drifted from the code; run UPDATE_SCHEMAS=1 cargo test -p query-api --test sdl"
    );
    for needle in [
        "customerOrders",
        "minPosition",
        "orderStatus",
        "expiringBatches",
        "spoilageLedger",
        "stockByWarehouse",
        "PageInfo",
    ] {
        assert!(sdl.contains(needle), "SDL lacks {needle}");
    }
}
