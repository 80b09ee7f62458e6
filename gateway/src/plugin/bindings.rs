//! The host side of `wit/sluice-plugin.wit`: the one `bindgen!` in Sluice. Everything else
//! speaks the Rust types it generates.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    additional_derives: [PartialEq, Eq],
});

pub use self::sluice::plugin::types::{Changes, Header, Hooks, Level, RerouteTo};
