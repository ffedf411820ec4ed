//! The health checker against a real Redis and real nodes on loopback: cluster nodes with
//! Socket.IO clients and a `/healthz` the test can break (refuse, hang, fail) or crash.
//!
//! Checkers run with a 200ms interval, 3 failures and a 100ms probe timeout; nodes with a
//! 200ms heartbeat and a 1s lease. Measured times are printed for the record.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod helpers;
mod rounds;
