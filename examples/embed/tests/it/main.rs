//! The example app as a user meets it: served on loopback, signed in over HTTP, the chat
//! reached with the session cookie.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod helpers;

mod announce;
mod moderation;
mod sessions;
