//! Shared helpers for the integration tests; each test binary uses what it needs.
#![allow(dead_code)]

pub mod dhcp;
pub mod http;
pub mod hw;
pub mod qemu;
pub mod tools;
