//! chat-server as a process: real binaries on loopback, stopped and killed.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod helpers;
mod offline;
mod webhooks;
