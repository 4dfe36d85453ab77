//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use parfor::Engine;

/// Every engine the differential suites compare against the serial engine.
#[cfg(unix)]
pub const ENGINES: &[Engine] = &[Engine::Serial, Engine::Threads, Engine::Fork];
/// Every engine the differential suites compare against the serial engine.
#[cfg(not(unix))]
pub const ENGINES: &[Engine] = &[Engine::Serial, Engine::Threads];

/// Worker counts the differential suites try on every engine.
pub const WORKERS: &[usize] = &[1, 2, 3, 5];
