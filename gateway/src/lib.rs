//! Sluice: an HTTP ⇄ Kafka event gateway with schema validation and WebAssembly plugins.
//!
//! The produce path: [`http`] parses a request, [`produce::Pipeline`] resolves the route's schema
//! through [`registry`], validates and encodes with [`codec`], keys with [`route`], and produces
//! with [`kafka`]. [`server::Gateway`] assembles it from a [`config::Config`]; [`dev`] runs it
//! against an in-memory cluster.

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

pub use http::app;
pub use server::Gateway;
