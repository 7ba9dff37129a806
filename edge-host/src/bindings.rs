//! Host bindings for Spin's interfaces, generated from the WIT files that
//! ship in the spin-sdk crate (see build.rs).

include!(concat!(env!("OUT_DIR"), "/spin_bindings.rs"));
