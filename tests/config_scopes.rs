//! `parfor::with`, `set_default_workers` and their precedence. One test function: the
//! program defaults are process-wide, so the steps run in order in this binary of their own.

use parfor::{Config, Engine, parmap};
use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The distinct threads that ran a 64-item threads-engine call with one block per item.
fn threads_used() -> usize {
    let ids = parmap!(
        |_i: usize| {
            std::thread::sleep(std::time::Duration::from_millis(2));
            format!("{:?}", std::thread::current().id())
        },
        0..64usize;
        chunk = 1
    );
    ids.into_iter().collect::<BTreeSet<_>>().len()
}

/// Whether an item runs in another process (the fork engine).
fn runs_elsewhere() -> bool {
    let me = std::process::id();
    parmap!(move |_i: u32| std::process::id() != me, 0..2u32)[0]
}

#[test]
fn scopes_nest_restore_and_take_precedence() {
    if std::env::var_os("PARFOR_ENGINE").is_some() || std::env::var_os("PARFOR_WORKERS").is_some() {
        return; // the environment would be the lowest level; keep the test self-contained
    }
    parfor::clear_default_engine();
    parfor::clear_default_workers();
    assert_eq!(parfor::default_engine().unwrap(), Engine::Threads);

    // Engine: the innermost scope that sets one wins, field by field.
    let (outer, inner, workers) = parfor::with(Config::new().engine(Engine::Serial), || {
        let outer = parfor::default_engine().unwrap();
        parfor::with(Config::new().workers(3), || {
            (outer, parfor::default_engine().unwrap(), parfor::default_workers().unwrap())
        })
    });
    assert_eq!((outer, inner, workers), (Engine::Serial, Engine::Serial, 3));
    assert_eq!(parfor::default_engine().unwrap(), Engine::Threads, "scope ended");

    // A call inside the scope runs on its engine; its own option wins over the scope.
    #[cfg(unix)]
    {
        assert!(parfor::with(Config::new().engine(Engine::Fork), runs_elsewhere));
        let own = parfor::with(Config::new().engine(Engine::Fork), || {
            let me = std::process::id();
            parmap!(move |_i: u32| std::process::id() != me, 0..2u32; engine = "serial")[0]
        });
        assert!(!own, "the call's own engine option wins");
        assert!(!runs_elsewhere(), "outside the scope: threads");
    }

    // Workers: the scope bounds the threads of a threads-engine call.
    let used = parfor::with(Config::new().workers(2), threads_used);
    assert!(used <= 2, "{used} threads with workers(2)");

    // A panic inside the scope ends it.
    let r = catch_unwind(AssertUnwindSafe(|| {
        parfor::with(Config::new().engine(Engine::Serial), || panic!("inside"))
    }));
    assert!(r.is_err());
    assert_eq!(parfor::default_engine().unwrap(), Engine::Threads, "restored after a panic");

    // Program defaults sit below the scope.
    parfor::set_default_workers(1);
    assert_eq!(parfor::default_workers().unwrap(), 1);
    assert_eq!(threads_used(), 1, "set_default_workers(1) runs in the caller");
    let scoped = parfor::with(Config::new().workers(2), || parfor::default_workers().unwrap());
    assert_eq!(scoped, 2, "the scope wins over set_default_workers");
    parfor::set_default_engine(Engine::Serial);
    let e = parfor::with(Config::new().engine(Engine::Threads), parfor::default_engine);
    assert_eq!(e.unwrap(), Engine::Threads, "the scope wins over set_default_engine");
    parfor::clear_default_engine();
    parfor::clear_default_workers();

    // Scopes are per thread.
    parfor::with(Config::new().engine(Engine::Serial), || {
        let other = std::thread::spawn(|| parfor::default_engine().unwrap()).join().unwrap();
        assert_eq!(other, Engine::Threads);
    });
}
