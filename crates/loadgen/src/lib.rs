//! yixin-loadgen as a library: the simulated phones of a whole district
//! ([`city`]), shared by `yixin-load city` (measuring a running platform)
//! and `yixin serve --demo` (a live district on the embedded platform).
//! Talks to the platform only through its public HTTP and WebSocket API.

pub mod city;
pub mod drill;
