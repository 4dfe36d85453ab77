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

/// Runs `cmd` (a child process of this test binary) to its end, with its stdout and stderr;
/// kills it and fails if it has not ended after five minutes (a guard against a hang, not a
/// timing check: it takes well under a second).
pub fn run_child(cmd: &mut std::process::Command) -> (std::process::ExitStatus, String, String) {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let out = read(Box::new(child.stdout.take().unwrap()));
    let err = read(Box::new(child.stderr.take().unwrap()));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child process hung");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    (status, out.join().unwrap(), err.join().unwrap())
}
