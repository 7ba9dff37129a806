//! With spans exported, logging still costs nothing below the filter's
//! level: a `trace!` in a dependency (through `tracing` or the `log`
//! bridge) is skipped where it stands, not built and asked about at run
//! time. A per-layer filter without a level hint once made every
//! `log::trace!` on the PoP's hot path a `Record` and a dispatcher lookup.
//! One process per test file, the subscriber being global: levels.rs
//! writes text lines, levels_json.rs JSON.

pub fn assert_ceiling_is_info(json: bool) {
    let _guard = edgeshop_telemetry::init_with(
        "levels-test",
        edgeshop_telemetry::Settings {
            filter: "info,edge_host::access=off".to_string(),
            json,
            export: true,
        },
    );
    assert!(edgeshop_telemetry::trace::enabled(), "traces are exported");
    assert_eq!(
        tracing::level_filters::LevelFilter::current(),
        tracing::level_filters::LevelFilter::INFO
    );
    assert_eq!(log::max_level(), log::LevelFilter::Info);
    assert!(!tracing::enabled!(tracing::Level::DEBUG));
    assert!(tracing::enabled!(tracing::Level::INFO));
}
