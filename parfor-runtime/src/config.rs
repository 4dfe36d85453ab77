//! Engine and worker selection: the call's option, then [`set_default_engine`], then the
//! `PARFOR_ENGINE` / `PARFOR_WORKERS` environment variables, then the built-in defaults.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// Where the items of a call run.
///
/// Choose one per call (`engine = "fork"` or any expression of this type), for the whole
/// program with [`set_default_engine`], or from outside with `PARFOR_ENGINE=fork`.
///
/// ```
/// use parfor::Engine;
///
/// let e: Engine = "threads".parse().unwrap();
/// assert_eq!(e, Engine::Threads);
/// assert_eq!(e.to_string(), "threads");
/// assert!("gpu".parse::<Engine>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Engine {
    /// A plain loop in the caller's thread.
    Serial,
    /// Rayon worker threads (the default).
    Threads,
    /// Copy-on-write child processes (Unix): inputs are shared without a copy and a crashing
    /// item cannot take the caller down.
    Fork,
    /// MPI ranks, launched with `mpirun -n N` or `srun` (parfor's `mpi` cargo feature): every
    /// rank makes the same call, runs the blocks it claims on `workers` threads, and returns
    /// the full result. Without `mpirun` it runs as one rank. See the README's "Running on a
    /// cluster".
    Mpi,
}

impl Engine {
    /// Every engine that runs a call inside one program run, in the order they are
    /// documented: [`Engine::Mpi`] is left out, as it needs the `mpi` feature and `mpirun`.
    pub const ALL: [Engine; 3] = [Engine::Serial, Engine::Threads, Engine::Fork];

    /// Every engine name accepted by `engine = "..."` and `PARFOR_ENGINE`.
    const NAMED: [Engine; 4] = [Engine::Serial, Engine::Threads, Engine::Fork, Engine::Mpi];

    /// The engine's name, as accepted by `engine = "..."` and `PARFOR_ENGINE`.
    pub const fn name(self) -> &'static str {
        match self {
            Engine::Serial => "serial",
            Engine::Threads => "threads",
            Engine::Fork => "fork",
            Engine::Mpi => "mpi",
        }
    }

    const fn code(self) -> u8 {
        match self {
            Engine::Serial => 1,
            Engine::Threads => 2,
            Engine::Fork => 3,
            Engine::Mpi => 4,
        }
    }

    fn from_code(c: u8) -> Option<Engine> {
        Engine::NAMED.into_iter().find(|e| e.code() == c)
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The names of every engine, for error messages: "`serial`, `threads`, `fork`".
pub(crate) fn engine_names() -> String {
    Engine::NAMED.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", ")
}

/// Parses an engine name in any case (`fork`, `Fork`, `FORK`), as `PARFOR_ENGINE` does.
///
/// ```
/// use parfor::Engine;
///
/// assert_eq!("Fork".parse::<Engine>().unwrap(), Engine::Fork);
/// assert_eq!("THREADS".parse::<Engine>().unwrap(), Engine::Threads);
/// assert!("gpu".parse::<Engine>().is_err());
/// ```
impl FromStr for Engine {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Engine, ConfigError> {
        Engine::NAMED.into_iter().find(|e| e.name().eq_ignore_ascii_case(s)).ok_or_else(|| {
            ConfigError {
                message: format!("unknown engine `{s}`; expected one of {}", engine_names()),
            }
        })
    }
}

/// An invalid engine or worker setting (an unknown engine name, or a bad `PARFOR_ENGINE` or
/// `PARFOR_WORKERS` value).
///
/// ```
/// let err = "gpu".parse::<parfor::Engine>().unwrap_err();
/// assert!(err.to_string().contains("`threads`"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// 0: no default set by the program.
static DEFAULT_ENGINE: AtomicU8 = AtomicU8::new(0);

/// Sets the engine of every call that does not choose one itself, for the whole program.
///
/// It takes precedence over `PARFOR_ENGINE`; a call's own `engine = ...` option takes
/// precedence over it.
///
/// ```
/// use parfor::{Engine, parmap, set_default_engine};
///
/// set_default_engine(Engine::Serial);
/// assert_eq!(parfor::default_engine().unwrap(), Engine::Serial);
/// let squares = parmap!(|x: u64| x * x, 1..=4u64);
/// assert_eq!(squares, [1, 4, 9, 16]);
/// ```
pub fn set_default_engine(engine: Engine) {
    DEFAULT_ENGINE.store(engine.code(), Ordering::Relaxed);
}

/// Forgets the engine set with [`set_default_engine`], so `PARFOR_ENGINE` and then the
/// built-in default (`threads`) apply again.
///
/// ```
/// parfor::set_default_engine(parfor::Engine::Serial);
/// parfor::clear_default_engine();
/// # if std::env::var_os("PARFOR_ENGINE").is_none() {
/// assert_eq!(parfor::default_engine().unwrap(), parfor::Engine::Threads);
/// # }
/// ```
pub fn clear_default_engine() {
    DEFAULT_ENGINE.store(0, Ordering::Relaxed);
}

/// The engine a call without an `engine` option uses: the one of the innermost enclosing
/// [`with`] that sets one, else the one set with [`set_default_engine`], else
/// `PARFOR_ENGINE`, else `threads`.
///
/// # Errors
/// A `PARFOR_ENGINE` value that names no engine.
///
/// ```
/// # if std::env::var_os("PARFOR_ENGINE").is_none() {
/// parfor::clear_default_engine();
/// assert_eq!(parfor::default_engine().unwrap(), parfor::Engine::Threads);
/// # }
/// ```
pub fn default_engine() -> Result<Engine, ConfigError> {
    default_engine_from().map(|(engine, _)| engine)
}

/// Where a call's engine came from, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EngineFrom {
    /// The call's `engine` option.
    Option,
    /// An enclosing [`with`].
    Scoped,
    /// [`set_default_engine`].
    Program,
    /// `PARFOR_ENGINE`.
    Env,
    /// The built-in default.
    Default,
}

impl fmt::Display for EngineFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EngineFrom::Option => "its `engine` option",
            EngineFrom::Scoped => "an enclosing `parfor::with`",
            EngineFrom::Program => "`parfor::set_default_engine`",
            EngineFrom::Env => "the PARFOR_ENGINE environment variable",
            EngineFrom::Default => "the built-in default, as no engine was chosen",
        })
    }
}

/// [`default_engine`], and where it came from.
pub(crate) fn default_engine_from() -> Result<(Engine, EngineFrom), ConfigError> {
    if let Some(e) = scoped(|c| c.engine) {
        return Ok((e, EngineFrom::Scoped));
    }
    if let Some(e) = Engine::from_code(DEFAULT_ENGINE.load(Ordering::Relaxed)) {
        return Ok((e, EngineFrom::Program));
    }
    match std::env::var("PARFOR_ENGINE") {
        Ok(v) if !v.trim().is_empty() => match v.trim().parse() {
            Ok(e) => Ok((e, EngineFrom::Env)),
            Err(_) => Err(ConfigError {
                message: format!(
                    "invalid PARFOR_ENGINE value `{v}`; expected one of {}",
                    engine_names()
                ),
            }),
        },
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok((Engine::Threads, EngineFrom::Default)),
        Err(std::env::VarError::NotUnicode(v)) => Err(ConfigError {
            message: format!(
                "invalid PARFOR_ENGINE value {v:?}; expected one of {}",
                engine_names()
            ),
        }),
    }
}

/// The engines that can stop an item that runs too long, so honour a `timeout`.
const TIMEOUT_ENGINES: [Engine; 1] = [Engine::Fork];

/// Refuses a `timeout` on an engine that cannot stop a running item (every engine but
/// `fork`): ignoring it would let an item the caller meant to bound run forever.
pub(crate) fn check_timeout(
    engine: Engine,
    from: EngineFrom,
    timeout: Option<std::time::Duration>,
) -> Result<(), ConfigError> {
    let Some(timeout) = timeout else { return Ok(()) };
    if TIMEOUT_ENGINES.contains(&engine) {
        return Ok(());
    }
    let supported: Vec<String> = TIMEOUT_ENGINES.iter().map(|e| format!("`{e}`")).collect();
    Err(ConfigError {
        message: format!(
            "the `timeout` option ({timeout:?}) needs the {} engine, but this call runs on \
             `{engine}` (from {from}), which cannot stop an item that runs too long; remove \
             `timeout`, or run the call on `engine = \"fork\"`",
            supported.join(" or ")
        ),
    })
}

/// Refuses [`Engine::Mpi`] in a build without parfor's `mpi` feature, naming the feature.
pub(crate) fn check_available(engine: Engine, from: EngineFrom) -> Result<(), ConfigError> {
    if engine == Engine::Mpi && !cfg!(feature = "mpi") {
        return Err(ConfigError {
            message: format!(
                "this call runs on the `mpi` engine (from {from}), but parfor was built \
                 without its `mpi` cargo feature; enable it (`parfor = {{ version = \"...\", \
                 features = [\"mpi\"] }}`, which needs an MPI library such as Open MPI), or \
                 choose another engine"
            ),
        });
    }
    Ok(())
}

fn env_count(var: &str) -> Result<Option<usize>, ConfigError> {
    match std::env::var(var) {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(ConfigError {
                message: format!(
                    "invalid {var} value `{v}`; expected a whole number of at least 1"
                ),
            }),
        },
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(v)) => Err(ConfigError {
            message: format!("invalid {var} value {v:?}; expected a whole number of at least 1"),
        }),
    }
}

/// The number of workers a call without a `workers` option uses: the innermost enclosing
/// [`with`] that sets one, else [`set_default_workers`], else `PARFOR_WORKERS`, else
/// `RAYON_NUM_THREADS`, else the number of cores.
///
/// On the threads engine, such a call runs on the current rayon pool when it is made inside
/// one (a user's `ThreadPool::install`, or an item of another call), whatever this says;
/// outside one, the default runs on rayon's global pool, and a `PARFOR_WORKERS` count on a
/// pool of parfor's own of at most one thread per block and at most 4 per core (256 in all).
///
/// # Errors
/// A `PARFOR_WORKERS` value that is not a whole number of at least 1.
///
/// ```
/// # if std::env::var_os("PARFOR_WORKERS").is_none() {
/// assert!(parfor::default_workers().unwrap() >= 1);
/// # }
/// ```
pub fn default_workers() -> Result<usize, ConfigError> {
    if let Some(n) = scoped(|c| c.workers) {
        return Ok(n);
    }
    if let Some(n) = program_workers() {
        return Ok(n);
    }
    if let Some(n) = env_count("PARFOR_WORKERS")? {
        return Ok(n);
    }
    // rayon ignores a bad RAYON_NUM_THREADS value; so do we.
    if let Ok(Some(n)) = env_count("RAYON_NUM_THREADS") {
        return Ok(n);
    }
    Ok(cores())
}

/// The number of cores this process may use (`available_parallelism`, at least 1).
fn cores() -> usize {
    // Reading the core count means reading cgroup files on Linux (tens of microseconds):
    // read it once.
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The most threads the threads engine runs one call on, whatever `workers` or
/// `PARFOR_WORKERS` asks: 4 per core (`available_parallelism`), and never more than 256.
/// Results do not depend on it: blocks depend only on the number of items and `chunk`.
pub(crate) fn thread_cap() -> usize {
    cores().saturating_mul(4).min(256)
}

/// Where a call's worker count came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WorkersFrom {
    /// The call's `workers` option: the threads engine uses a pool of (at most) that many
    /// threads of its own.
    Option,
    /// An enclosing [`with`]: as an option.
    Scoped,
    /// [`set_default_workers`]: as `PARFOR_WORKERS`.
    Program,
    /// `PARFOR_WORKERS`: as an option, except inside a rayon pool, whose threads the call
    /// then uses.
    Env,
    /// The machine default: the threads engine uses the current rayon pool (a user's pool
    /// inside its `install`, else rayon's global pool).
    Default,
}

/// A call's worker count and where it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Workers {
    pub(crate) count: usize,
    pub(crate) from: WorkersFrom,
}

pub(crate) fn resolve_workers(option: Option<usize>) -> Result<Workers, ConfigError> {
    if let Some(n) = option {
        return Ok(Workers { count: n.max(1), from: WorkersFrom::Option });
    }
    if let Some(n) = scoped(|c| c.workers) {
        return Ok(Workers { count: n, from: WorkersFrom::Scoped });
    }
    if let Some(n) = program_workers() {
        return Ok(Workers { count: n, from: WorkersFrom::Program });
    }
    if let Some(n) = env_count("PARFOR_WORKERS")? {
        return Ok(Workers { count: n, from: WorkersFrom::Env });
    }
    Ok(Workers { count: default_workers()?, from: WorkersFrom::Default })
}

/// 0: no default set by the program.
static DEFAULT_WORKERS: AtomicUsize = AtomicUsize::new(0);

fn program_workers() -> Option<usize> {
    Some(DEFAULT_WORKERS.load(Ordering::Relaxed)).filter(|&n| n > 0)
}

/// Sets the number of workers of every call that does not choose one itself, for the whole
/// program (zero is treated as one).
///
/// It takes precedence over `PARFOR_WORKERS`; a call's own `workers = ...` option and an
/// enclosing [`with`] take precedence over it. Inside a rayon pool (a user's
/// `ThreadPool::install`), a threads-engine call runs on that pool's threads instead, as with
/// `PARFOR_WORKERS`.
///
/// ```
/// parfor::set_default_workers(3);
/// assert_eq!(parfor::default_workers().unwrap(), 3);
/// parfor::clear_default_workers();
/// ```
pub fn set_default_workers(workers: usize) {
    DEFAULT_WORKERS.store(workers.max(1), Ordering::Relaxed);
}

/// Forgets the count set with [`set_default_workers`].
///
/// ```
/// parfor::set_default_workers(3);
/// parfor::clear_default_workers();
/// # if std::env::var_os("PARFOR_WORKERS").is_none() && std::env::var_os("RAYON_NUM_THREADS").is_none() {
/// assert_eq!(
///     parfor::default_workers().unwrap(),
///     std::thread::available_parallelism().unwrap().get()
/// );
/// # }
/// ```
pub fn clear_default_workers() {
    DEFAULT_WORKERS.store(0, Ordering::Relaxed);
}

/// A scoped configuration for [`with`]: the engine and the number of workers of the calls
/// made inside it that do not choose their own. Unset fields inherit from the enclosing
/// scope or the program defaults.
///
/// ```
/// use parfor::{Config, Engine};
///
/// let config = Config::new().engine(Engine::Serial).workers(2);
/// let squares = parfor::with(config, || parfor::parmap!(|x: u64| x * x, 1..=3u64));
/// assert_eq!(squares, [1, 4, 9]);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    engine: Option<Engine>,
    workers: Option<usize>,
    label: Option<&'static str>,
}

impl Config {
    /// Sets nothing.
    pub fn new() -> Config {
        Config::default()
    }

    /// Calls inside run on `engine`.
    #[must_use]
    pub fn engine(mut self, engine: Engine) -> Config {
        self.engine = Some(engine);
        self
    }

    /// Calls inside run on `workers` threads or processes (zero is treated as one); on the
    /// threads engine this takes precedence over an enclosing rayon pool, as a call's own
    /// `workers` option does.
    #[must_use]
    pub fn workers(mut self, workers: usize) -> Config {
        self.workers = Some(workers.max(1));
        self
    }

    /// Calls inside that report progress (`progress = true`) name themselves `label` in the
    /// progress bar, or in the plain progress lines written when stderr is not a terminal.
    ///
    /// ```
    /// use parfor::{Config, parmap};
    ///
    /// let roots = parfor::with(Config::new().label("square roots"), || {
    ///     // stderr: "parfor: square roots: 1000/1000 items (100%) ..." (or a bar)
    ///     parmap!(|x: u32| f64::from(x).sqrt(), 0..1000u32; progress = true)
    /// });
    /// assert_eq!(roots[4], 2.0);
    /// ```
    #[must_use]
    pub fn label(mut self, label: &'static str) -> Config {
        self.label = Some(label);
        self
    }
}

/// The label of the innermost enclosing scope that sets one.
pub(crate) fn scoped_label() -> Option<&'static str> {
    scoped(|c| c.label)
}

thread_local! {
    /// The configurations of the enclosing [`with`] calls of this thread, innermost last.
    static SCOPES: std::cell::RefCell<Vec<Config>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The innermost enclosing scope's setting, if any scope sets it.
fn scoped<T>(get: impl Fn(&Config) -> Option<T>) -> Option<T> {
    SCOPES.with(|s| s.borrow().iter().rev().find_map(&get))
}

/// Runs `f` with `config` for the parfor calls it makes on this thread that do not choose an
/// engine or a worker count themselves, and returns its value.
///
/// Scopes nest (the innermost setting wins, field by field), apply to this thread only (not
/// to the items a call runs on other threads or processes), and end with `f`, also when `f`
/// panics. Precedence, highest first: a call's own option, the innermost `with`, then (for
/// the worker count on the threads engine) an enclosing rayon pool, the program defaults
/// ([`set_default_engine`], [`set_default_workers`]), then `PARFOR_ENGINE` /
/// `PARFOR_WORKERS`.
///
/// ```
/// use parfor::{Config, Engine};
///
/// let engine = parfor::with(Config::new().engine(Engine::Serial), || {
///     parfor::with(Config::new().workers(2), || parfor::default_engine().unwrap())
/// });
/// assert_eq!(engine, Engine::Serial);
/// ```
pub fn with<R>(config: Config, f: impl FnOnce() -> R) -> R {
    struct Pop;
    impl Drop for Pop {
        fn drop(&mut self) {
            SCOPES.with(|s| s.borrow_mut().pop());
        }
    }
    SCOPES.with(|s| s.borrow_mut().push(config));
    let _pop = Pop;
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_cap_is_four_per_core_up_to_256() {
        let cap = thread_cap();
        assert_eq!(cap, (4 * cores()).min(256));
        assert!((4..=256).contains(&cap), "{cap}");
    }

    #[test]
    fn timeouts_need_an_engine_that_stops_items() {
        let t = Some(std::time::Duration::from_secs(10));
        assert_eq!(check_timeout(Engine::Fork, EngineFrom::Option, t), Ok(()));
        for e in [Engine::Serial, Engine::Threads] {
            assert_eq!(check_timeout(e, EngineFrom::Default, None), Ok(()));
            let err = check_timeout(e, EngineFrom::Env, t).unwrap_err().to_string();
            assert!(err.contains("`timeout` option (10s) needs the `fork` engine"), "{err}");
            assert!(err.contains(&format!("runs on `{e}` (from the PARFOR_ENGINE")), "{err}");
        }
    }

    #[test]
    fn mpi_needs_its_feature_and_refuses_timeouts() {
        assert_eq!("mpi".parse::<Engine>().unwrap(), Engine::Mpi);
        let r = check_available(Engine::Mpi, EngineFrom::Env);
        if cfg!(feature = "mpi") {
            assert_eq!(r, Ok(()));
        } else {
            let err = r.unwrap_err().to_string();
            assert!(err.contains("`mpi` cargo feature") && err.contains("PARFOR_ENGINE"), "{err}");
        }
        let t = Some(std::time::Duration::from_secs(1));
        let err = check_timeout(Engine::Mpi, EngineFrom::Option, t).unwrap_err().to_string();
        assert!(err.contains("runs on `mpi`"), "{err}");
    }

    #[test]
    fn names_round_trip() {
        for e in Engine::NAMED {
            assert_eq!(e.name().parse::<Engine>().unwrap(), e);
            assert_eq!(Engine::from_code(e.code()), Some(e));
        }
        let err = "gpu".parse::<Engine>().unwrap_err().to_string();
        assert!(err.contains("`gpu`") && err.contains("`serial`, `threads`, `fork`"), "{err}");
    }

    #[test]
    fn names_in_any_case() {
        for e in Engine::ALL {
            assert_eq!(e.name().to_uppercase().parse::<Engine>().unwrap(), e);
            let mut title = e.name().to_owned();
            title[..1].make_ascii_uppercase();
            assert_eq!(title.parse::<Engine>().unwrap(), e);
        }
        assert!("forks".parse::<Engine>().is_err());
    }
}
