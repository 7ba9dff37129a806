//! Bindings for `wit/layer.wit` (a middleware layer: `wasi:http/handler`
//! imported and exported; with feature `otel`, also `wasi:otel/tracing`
//! for a span per traced request) from the WIT packages that ship in the
//! spin-sdk crate, with an export macro the layer crates call.

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=CARGO_FEATURE_OTEL");
    let world = if std::env::var_os("CARGO_FEATURE_OTEL").is_some() {
        "edgeshop:layer/traced-layer"
    } else {
        "edgeshop:layer/layer"
    };
    edgeshop_wit_deps::guest_bindings(
        "wit/layer.wit",
        world,
        r#"pub_export_macro: true,
    default_bindings_module: "spin_glue::layer::bindings","#,
    )
}
