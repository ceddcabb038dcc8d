//! HTTP on the edge: the admin endpoints (`/healthz`, `/metrics`) and the access layer, a pingora
//! reverse proxy in front of the core's HTTP API and any other configured upstream.

pub mod admin;
pub mod proxy;
