//! Integration tests: real Socket.IO connections to a chat served on loopback.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod helpers;

mod archive;
mod auth;
mod cluster;
mod cluster_chat;
mod contacts;
mod eio3;
mod fuzz;
mod group_admin;
mod groups;
mod history;
mod limits;
mod messages;
mod metrics;
mod presence;
mod receipts;
mod seams;
mod shutdown;
mod status;
mod store;
mod webhooks;
