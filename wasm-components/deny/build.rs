//! Generates the deny adapter's bindings from `wit/deny.wit` and the WIT
//! packages that ship in the spin-sdk crate (none are copied into the
//! repository).

fn main() -> anyhow::Result<()> {
    edgeshop_wit_deps::guest_bindings("wit/deny.wit", "edgeshop:deny/deny", "")
}
