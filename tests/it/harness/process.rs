//! Child processes the harness starts, and their end: everything started is killed when
//! the test binary exits, however the tests ended.

use std::{
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

static CHILDREN: Mutex<Vec<Child>> = Mutex::new(Vec::new());
static TEMP_DIRS: Mutex<Vec<std::path::PathBuf>> = Mutex::new(Vec::new());
static STOP_COMMANDS: Mutex<Vec<Command>> = Mutex::new(Vec::new());

extern "C" fn cleanup() {
    // Runs from `exit()`, after every test; a poisoned lock still holds the children.
    let mut stops = STOP_COMMANDS.lock().unwrap_or_else(|p| p.into_inner());
    for cmd in stops.iter_mut() {
        let _ = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
    let mut children = CHILDREN.lock().unwrap_or_else(|p| p.into_inner());
    for child in children.iter_mut() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let dirs = TEMP_DIRS.lock().unwrap_or_else(|p| p.into_inner());
    for dir in dirs.iter() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn register_cleanup() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: `cleanup` is a plain `extern "C" fn` with no arguments, as atexit wants.
        let rc = unsafe { libc::atexit(cleanup) };
        assert_eq!(rc, 0, "atexit failed");
    });
}

/// A temporary directory removed when the test binary exits.
pub fn temp_dir(prefix: &str) -> std::path::PathBuf {
    register_cleanup();
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir")
        .keep();
    TEMP_DIRS.lock().unwrap().push(dir.clone());
    dir
}

/// Runs `cmd` when the test binary exits, before children are killed: for servers that
/// a kill of their launcher does not stop.
pub fn on_exit(cmd: Command) {
    register_cleanup();
    STOP_COMMANDS.lock().unwrap().push(cmd);
}

/// Starts `cmd`, logging to `log`; it is killed when the test binary exits.
pub fn spawn(mut cmd: Command, log: &Path) -> u32 {
    register_cleanup();
    // Appended to: a server started again keeps its earlier lines.
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let err = out.try_clone().expect("log file");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", cmd.get_program()));
    let pid = child.id();
    CHILDREN.lock().unwrap().push(child);
    pid
}

/// Whether the child with `pid` is still running.
pub fn running(pid: u32) -> bool {
    let mut children = CHILDREN.lock().unwrap();
    children
        .iter_mut()
        .find(|c| c.id() == pid)
        .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Polls `ready` every 100 ms until it holds, or panics after `limit` naming `what` and
/// the tail of its log.
pub fn wait_until(
    what: &str,
    limit: Duration,
    log: &Path,
    pid: u32,
    mut ready: impl FnMut() -> bool,
) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ready() {
            return;
        }
        if !running(pid) {
            panic!("{what} exited during start-up:\n{}", tail(log));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} not ready after {limit:?}:\n{}", tail(log));
}

/// The last lines of a log, for failure messages.
pub fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Kills the child with `pid` (SIGKILL) and reaps it; it is no longer the harness's to
/// stop at exit.
pub fn kill(pid: u32) {
    let mut children = CHILDREN.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(i) = children.iter().position(|c| c.id() == pid) {
        let mut child = children.remove(i);
        let _ = child.kill();
        let _ = child.wait();
    }
}
