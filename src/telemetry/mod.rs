//! What the SOC and platform engineers see of vigil itself: Prometheus
//! metrics (every metric defined once, in [`metrics`]; the event activity
//! they chart, in [`activity`]), the HTTP endpoints that serve them with
//! health checks, and log setup.

pub mod activity;
pub mod http;
pub mod logging;
pub mod metrics;
