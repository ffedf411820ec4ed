//! chat-server as a process: real binaries on loopback, killed the hard way.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod api;
mod archive;
mod helpers;
mod limits;
mod offline;
mod webhooks;
