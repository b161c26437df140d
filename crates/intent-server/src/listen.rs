//! The connection loop: accepting, per-connection limits and graceful shutdown with a deadline.
//!
//! axum's own `serve` sets no header-read timeout and no connection cap, so the loop is ours,
//! on hyper's HTTP/1 connection builder:
//! - a client must send a request's headers within `header_timeout`; the same timer closes a
//!   keep-alive connection idle that long (a slowloris connection costs one socket that long);
//! - at most `max_connections` connections are served, lowered to what the process's open-file
//!   limit allows, so `accept` never fails for want of descriptors. At the cap, a new connection
//!   takes the place of the connection idle the longest (no request in flight: waiting for a
//!   keep-alive request, or for headers that do not come), as nginx does with idle keep-alive
//!   connections. When every connection has a request in flight, a few spare connections still
//!   answer `/health` and `/ready` (anything else: 503) and close after one request; beyond
//!   those, connections are closed at once and counted;
//! - on shutdown the listener closes, idle connections close, requests in flight get
//!   `shutdown_timeout` to finish; what is still open then is cut, and the query log is written.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::server::{probe_router, router, AppState};

/// Connections beyond the cap that still answer the health and readiness probes.
pub const SPARE_CONNECTIONS: usize = 16;
/// How long a spare connection may take to send its request.
const SPARE_HEADER_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a new connection waits for the idle one it displaces to close.
const DISPLACE_WAIT: Duration = Duration::from_secs(1);

/// The connection cap: `wanted`, lowered so that connections, spare ones and the server's own
/// files fit under the open-file limit (raised towards what is needed first, as far as the
/// hard limit allows).
pub fn connection_cap(wanted: usize) -> usize {
    #[cfg(unix)]
    {
        let need = (wanted + SPARE_CONNECTIONS) as u64 * 9 / 8 + 64;
        let files = match rlimit::increase_nofile_limit(need) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("cannot read the open-file limit ({e}); assuming 1024");
                1024
            }
        };
        let files = usize::try_from(files).unwrap_or(usize::MAX);
        // Model files, the query log, sockets of clients the server calls: an eighth, at least 64.
        let reserve = (files / 8).max(64) + SPARE_CONNECTIONS;
        let cap = wanted.min(files.saturating_sub(reserve)).max(1);
        if cap < wanted {
            tracing::warn!(
                "serving at most {cap} connections, not {wanted}: the process may open {files} files \
                    (ulimit -n)"
            );
        }
        cap
    }
    #[cfg(not(unix))]
    wanted.max(1)
}

/// What the loop knows of one connection: requests in flight, when it was last active, and a
/// way to ask it to close.
struct Conn {
    in_flight: AtomicUsize,
    /// Milliseconds since the loop started, at accept or at the end of the last request.
    last_active_ms: AtomicU64,
    closing: AtomicBool,
    close: Notify,
}

/// The connections being served at full service.
#[derive(Default)]
struct Conns {
    next_id: AtomicU64,
    map: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Conns {
    fn add(&self, now_ms: u64) -> (u64, Arc<Conn>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            in_flight: AtomicUsize::new(0),
            last_active_ms: AtomicU64::new(now_ms),
            closing: AtomicBool::new(false),
            close: Notify::new(),
        });
        self.map.lock().unwrap_or_else(|p| p.into_inner()).insert(id, conn.clone());
        (id, conn)
    }

    fn remove(&self, id: u64) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }

    /// Asks the connection idle the longest to close; false when every one has a request in
    /// flight (or is closing already).
    fn displace_oldest_idle(&self) -> bool {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let victim = map
            .values()
            .filter(|c| c.in_flight.load(Ordering::SeqCst) == 0 && !c.closing.load(Ordering::SeqCst))
            .min_by_key(|c| c.last_active_ms.load(Ordering::SeqCst));
        match victim {
            Some(c) => {
                c.closing.store(true, Ordering::SeqCst);
                c.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Marks a request in flight on a connection until dropped.
struct InFlight {
    conn: Arc<Conn>,
    epoch: Instant,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.conn.last_active_ms.store(self.epoch.elapsed().as_millis() as u64, Ordering::SeqCst);
        self.conn.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves one connection until it ends, the loop shuts down, or it is displaced.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    app: Router,
    header_timeout: Duration,
    keep_alive: bool,
    tracked: Option<(Arc<Conn>, Instant)>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_timeout).keep_alive(keep_alive);
    let track = tracked.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let guard = track.as_ref().map(|(conn, epoch)| {
            conn.in_flight.fetch_add(1, Ordering::SeqCst);
            InFlight { conn: conn.clone(), epoch: *epoch }
        });
        let app = app.clone();
        async move {
            let response = app.oneshot(req).await;
            drop(guard);
            response
        }
    });
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let displaced = async {
        match &tracked {
            Some((c, _)) => c.close.notified().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!("connection: {e}");
            }
            return;
        }
        _ = shutdown.wait_for(|&stop| stop) => {}
        () = displaced => {
            // Chosen because it had no request in flight: closed at once, even mid-headers.
            if tracked.as_ref().is_some_and(|(c, _)| c.in_flight.load(Ordering::SeqCst) == 0) {
                return;
            }
        }
    }
    // Idle: closes now; a request in flight is finished first.
    conn.as_mut().graceful_shutdown();
    if let Err(e) = conn.await {
        tracing::debug!("connection: {e}");
    }
}

/// Serves the application on `listener` until `shutdown` resolves, then drains (see the module
/// documentation) and writes every queued query-log row.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let options = state.0.options.clone();
    let full = router(state.clone());
    let probes = probe_router(state.clone());
    let connections = Arc::new(Semaphore::new(connection_cap(options.max_connections)));
    let spare = Arc::new(Semaphore::new(SPARE_CONNECTIONS));
    let conns = Arc::new(Conns::default());
    let epoch = Instant::now();
    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut last_accept_warning: Option<Instant> = None;
    let metrics = state.metrics().clone();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    if last_accept_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        tracing::warn!("accept: {e}");
                        last_accept_warning = Some(Instant::now());
                    }
                    // Out of descriptors or memory: give connections a moment to close.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        // A full place now, or once the displaced idle connection has closed (waited for in the
        // connection's task: the loop goes on accepting).
        let (permit, displaced) = match connections.clone().try_acquire_owned() {
            Ok(p) => (Some(p), false),
            Err(_) => (None, conns.displace_oldest_idle()),
        };
        let (open, rx, metrics) = (metrics.open_connections.clone(), stopped.clone(), metrics.clone());
        let (full, probes, conns, connections, spare) =
            (full.clone(), probes.clone(), conns.clone(), connections.clone(), spare.clone());
        let header_timeout = options.header_timeout;
        tasks.spawn(async move {
            let permit = match permit {
                Some(p) => Some(p),
                None if displaced => tokio::time::timeout(DISPLACE_WAIT, connections.acquire_owned())
                    .await
                    .ok()
                    .and_then(Result::ok),
                None => None,
            };
            if let Some(permit) = permit {
                let (id, conn) = conns.add(epoch.elapsed().as_millis() as u64);
                open.inc();
                serve_connection(stream, full, header_timeout, true, Some((conn, epoch)), rx).await;
                conns.remove(id);
                open.dec();
                drop(permit);
            } else if let Ok(permit) = spare.try_acquire_owned() {
                open.inc();
                serve_connection(stream, probes, SPARE_HEADER_TIMEOUT, false, None, rx).await;
                open.dec();
                drop(permit);
            } else {
                metrics.refused_connections.inc();
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    let deadline = options.shutdown_timeout;
    tracing::info!("shutting down: {} connections open; requests in flight get {deadline:?}", tasks.len());
    let drained = tokio::time::timeout(deadline, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!("{} connections still open after {deadline:?}; closing them", tasks.len());
        tasks.abort_all();
    }
    tracing::info!("requests drained; writing the query log");
    let st = state.clone();
    let _ = tokio::task::spawn_blocking(move || {
        if let Some(log) = st.query_log() {
            log.close();
        }
    })
    .await;
    Ok(())
}
