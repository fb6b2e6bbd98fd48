//! Integration tests of `yixin-auth`: one binary, a module per feature.

// clippy's `allow-*-in-tests` covers `#[test]` functions only, not the shared
// helpers of an integration-test crate; a panic there is a test failure too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a panic is a test failure with a clear location"
)]

mod http;
mod settings;
mod support;
mod verify;
