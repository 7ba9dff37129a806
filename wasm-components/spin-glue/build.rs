//! Bindings for `wit/layer.wit` (a middleware layer: `wasi:http/handler`
//! imported and exported) from the WIT packages that ship in the spin-sdk
//! crate, with an export macro the layer crates call.

fn main() -> anyhow::Result<()> {
    edgeshop_wit_deps::guest_bindings(
        "wit/layer.wit",
        "edgeshop:layer/layer",
        r#"pub_export_macro: true,
    default_bindings_module: "spin_glue::layer::bindings","#,
    )
}
