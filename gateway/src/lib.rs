//! Sluice: an HTTP ⇄ Kafka event gateway with schema validation and WebAssembly plugins.
//!
//! Two pipelines of the same stages. The produce path: [`http`] parses a request (after
//! [`auth`] and the limits), [`produce::Pipeline`] runs the route's [`plugin`]s, resolves the
//! schema through [`registry`], validates and encodes with [`codec`], keys with [`route`], and
//! produces with [`kafka`]. The consume path: [`deliver`] consumes with a group per
//! subscription, decodes with [`codec`], runs the subscription's [`plugin`]s and POSTs signed
//! webhooks with retries; both paths dead-letter through [`kafka::dead_letter`].
//! [`server::Gateway`] assembles it from a [`config::Config`]; [`dev`] runs it against an
//! in-memory cluster; [`telemetry`] holds the metrics and traces.

pub mod auth;
pub mod codec;
pub mod config;
pub mod deliver;
pub mod dev;
#[doc(hidden)]
pub mod fuzz;
pub mod http;
pub mod kafka;
pub mod plugin;
pub mod produce;
pub mod registry;
pub mod route;
pub mod server;
pub mod telemetry;
#[cfg(test)]
mod testing;
pub mod transform;

pub use http::app;
pub use server::Gateway;
