//! A fault proxy of our own, between the operator and a downstream server. It speaks TCP,
//! so it stands in front of LDAP, PostgreSQL and SCIM alike; for HTTP it can also answer
//! a request itself with a 500 or a 429 carrying `Retry-After`.
//!
//! Every `every`-th connection gets the next fault of the list, in turn; the others pass
//! through, but even they are cut after a while (`Cut`) when that fault is listed, so that long-lived connections (LDAP, PostgreSQL) meet faults too. The proxy
//! can also take the server down altogether, as an outage would: open connections end and
//! new ones are refused until it comes back. Everything is counted.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// What the proxy does to one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// Closed at once, before a byte is forwarded.
    Reset,
    /// Accepted and never answered for `STALL` (beyond every client timeout but the
    /// operator's own deadline).
    Stall,
    /// Forwarded, with a pause before every chunk the server sends, and closed after
    /// `SLOW_FOR` (a slow link does not last for ever; a pooled connection would).
    Slow,
    /// The request forwarded, the answer cut in the middle of its first chunk.
    Truncate,
    /// Forwarded, and closed after `CUT_AFTER` bytes from the server.
    Cut,
    /// HTTP: answered by the proxy with 500.
    Http500,
    /// HTTP: answered by the proxy with 429 and `Retry-After: 1`.
    Http429,
}

impl Fault {
    /// The name the counts use.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Reset => "reset",
            Fault::Stall => "stall",
            Fault::Slow => "slow",
            Fault::Truncate => "truncate",
            Fault::Cut => "cut",
            Fault::Http500 => "http-500",
            Fault::Http429 => "http-429",
        }
    }
}

const STALL: Duration = Duration::from_secs(15);
const SLOW: Duration = Duration::from_millis(300);
const SLOW_FOR: Duration = Duration::from_secs(3);
const CUT_AFTER: usize = 16 * 1024;

struct State {
    upstream: SocketAddr,
    faults: Vec<Fault>,
    every: u64,
    on: AtomicBool,
    down: tokio::sync::watch::Sender<bool>,
    refused: AtomicU64,
    seen: AtomicU64,
    injected: Mutex<BTreeMap<Fault, u64>>,
}

/// A running proxy; it stops with the test binary.
#[derive(Clone)]
pub struct Proxy {
    /// Where it listens, on loopback.
    pub port: u16,
    state: Arc<State>,
}

impl Proxy {
    /// A proxy to `upstream` injecting `faults` in turn on every `every`-th connection.
    pub async fn start(upstream: SocketAddr, faults: &[Fault], every: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(State {
            upstream,
            faults: faults.to_vec(),
            every: every.max(1),
            on: AtomicBool::new(true),
            down: tokio::sync::watch::Sender::new(false),
            refused: AtomicU64::new(0),
            seen: AtomicU64::new(0),
            injected: Mutex::default(),
        });
        let s = state.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move { serve(&s, client).await });
            }
        });
        Self { port, state }
    }

    /// Turns fault injection on or off (off: a plain proxy).
    pub fn set_faults(&self, on: bool) {
        self.state.on.store(on, Ordering::SeqCst);
    }

    /// Takes the server down (every open connection ends, every new one is refused) or
    /// brings it back.
    pub fn set_down(&self, down: bool) {
        self.state.down.send_replace(down);
    }

    /// Connections refused while the server was down.
    pub fn refused(&self) -> u64 {
        self.state.refused.load(Ordering::SeqCst)
    }

    /// How many of each fault were injected.
    pub fn injected(&self) -> BTreeMap<&'static str, u64> {
        let map = self
            .state
            .injected
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.iter().map(|(f, n)| (f.name(), *n)).collect()
    }

    /// All faults injected.
    pub fn total(&self) -> u64 {
        self.injected().values().sum()
    }
}

fn choose(s: &State) -> Option<Fault> {
    let n = s.seen.fetch_add(1, Ordering::SeqCst);
    if !s.on.load(Ordering::SeqCst) || s.faults.is_empty() {
        return None;
    }
    if !n.is_multiple_of(s.every) {
        // Pass-through; a listed Cut still ends it after a while.
        return s.faults.contains(&Fault::Cut).then_some(Fault::Cut);
    }
    let i = usize::try_from((n / s.every) % s.faults.len() as u64).unwrap_or(0);
    Some(s.faults[i])
}

fn count(s: &State, f: Fault) {
    let mut map = s.injected.lock().unwrap_or_else(|p| p.into_inner());
    *map.entry(f).or_default() += 1;
}

async fn serve(s: &State, mut client: TcpStream) {
    if *s.down.borrow() {
        s.refused.fetch_add(1, Ordering::SeqCst);
        return;
    }
    let fault = choose(s);
    match fault {
        Some(Fault::Reset) => {
            count(s, Fault::Reset);
        }
        Some(Fault::Stall) => {
            count(s, Fault::Stall);
            tokio::time::sleep(STALL).await;
        }
        Some(f @ (Fault::Http500 | Fault::Http429)) => {
            count(s, f);
            answer_http(&mut client, f).await;
        }
        other => {
            let Ok(server) = TcpStream::connect(s.upstream).await else {
                return;
            };
            if let Some(f @ (Fault::Slow | Fault::Truncate)) = other {
                count(s, f);
            }
            pipe(s, client, server, other).await;
        }
    }
}

/// Reads a request head and answers it with `fault`, closing the connection.
async fn answer_http(client: &mut TcpStream, fault: Fault) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let (status, extra) = match fault {
        Fault::Http429 => ("429 Too Many Requests", "retry-after: 1\r\n"),
        _ => ("500 Internal Server Error", ""),
    };
    let body = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"detail":"injected"}"#;
    let reply = format!(
        "HTTP/1.1 {status}\r\n{extra}content-type: application/scim+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.write_all(reply.as_bytes()).await;
}

/// Copies both ways until either side closes, applying `fault` to the server's side.
async fn pipe(s: &State, client: TcpStream, server: TcpStream, fault: Option<Fault>) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async {
        let _ = tokio::io::copy(&mut cr, &mut sw).await;
        let _ = sw.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 16 * 1024];
        let mut sent = 0usize;
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            match fault {
                Some(Fault::Truncate) => {
                    let _ = cw.write_all(&buf[..n.div_ceil(2)]).await;
                    break;
                }
                Some(Fault::Slow) => tokio::time::sleep(SLOW).await,
                _ => {}
            }
            if fault == Some(Fault::Cut) && sent + n > CUT_AFTER {
                count(s, Fault::Cut);
                break;
            }
            if cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
            sent += n;
        }
        let _ = cw.shutdown().await;
    };
    // Whichever side ends first ends the connection, as a cut one would; so does an
    // outage.
    let mut outage = s.down.subscribe();
    let slow_ends = async {
        match fault {
            Some(Fault::Slow) => tokio::time::sleep(SLOW_FOR).await,
            _ => std::future::pending().await,
        }
    };
    tokio::select! {
        () = up => {}
        () = down => {}
        () = slow_ends => {}
        _ = outage.wait_for(|down| *down) => {}
    }
}
