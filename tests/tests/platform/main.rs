//! End-to-end tests of the platform: one binary, a module per feature.

// Test code: a failed unwrap is a failed test, reported where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agents;
mod auth;
mod bookings;
mod chain;
mod clinical;
mod coordinator;
mod credentials;
mod dashboard;
mod dispatch;
mod hardening;
mod nurses;
mod operations;
mod orders;
mod recovery;
mod regions;
mod reposition;
mod resident;
mod roster;
mod safety;
mod signin;
mod webhooks;
