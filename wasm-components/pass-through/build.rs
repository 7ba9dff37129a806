//! Bindings for `wit/layer.wit` (`wasi:http/handler` imported and
//! exported) from the WIT packages that ship in the spin-sdk crate.

fn main() -> anyhow::Result<()> {
    edgeshop_wit_deps::guest_bindings("wit/layer.wit", "edgeshop:pass-through/layer")
}
