//! The registry's HTTP API against a real Redis: picking, listing, admin registration and
//! drain, errors, and many concurrent picks through two registries at once.
//!
//! Most tests write node records the way the heartbeat does (`nodes` lease, `node:<uid>`
//! hash), so loads are under the test's control; the concurrency test uses real cluster
//! nodes.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod admin;
mod helpers;
mod picking;
