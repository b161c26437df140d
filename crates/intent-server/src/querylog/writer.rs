//! The writer thread of the query log: batches, retries while the store refuses them.

use std::time::Duration;

use super::store::RowWriter;
use super::{QueryLogOptions, QueryRow, Shared, MAX_ROWS_PER_TRANSACTION};

/// First pause after a failed write; it doubles up to [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(100);
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Takes batches off the queue and commits them until the log is closed and empty.
pub(super) fn run(mut store: Box<dyn RowWriter>, shared: &Shared, options: &QueryLogOptions, location: &str) {
    loop {
        let batch: Vec<QueryRow> = {
            let mut p = shared.lock();
            while p.rows.is_empty() && !p.closed {
                p = shared.wake.wait(p).unwrap_or_else(|e| e.into_inner());
            }
            if p.rows.is_empty() {
                break;
            }
            let n = p.rows.len().min(MAX_ROWS_PER_TRANSACTION);
            p.rows.drain(..n).collect()
        };
        write_with_retry(store.as_mut(), shared, options, location, &batch);
    }
    store.finish(location);
}

/// Commits `batch`, retrying with a growing pause while the database refuses it (disk full,
/// locked); the log is degraded meanwhile. After [`super::QueryLog::close`] a failed batch, and
/// everything still queued, is given up: shutdown must not wait for disk space.
fn write_with_retry(
    store: &mut dyn RowWriter,
    shared: &Shared,
    options: &QueryLogOptions,
    location: &str,
    batch: &[QueryRow],
) {
    let mut pause = FIRST_RETRY_PAUSE;
    loop {
        #[cfg(test)]
        {
            let pages = shared.max_pages.load(std::sync::atomic::Ordering::SeqCst);
            if pages > 0 {
                store.set_max_pages(pages);
            }
        }
        match store.write(batch, options) {
            Ok(()) => {
                let mut p = shared.lock();
                p.held -= batch.len();
                if p.error.take().is_some() {
                    tracing::info!("query log {location}: writing again");
                }
                drop(p);
                shared.settled.send_modify(|s| *s += batch.len() as u64);
                return;
            }
            Err(e) => {
                let mut p = shared.lock();
                if p.error.is_none() {
                    tracing::error!(
                        "query log {}: {e}; prediction goes on, {} rows held, newer rows beyond {} \
                            are dropped until writing works again",
                        location,
                        p.held,
                        shared.capacity
                    );
                }
                p.error = Some(e.to_string());
                if p.closed {
                    let lost = batch.len() + p.rows.len();
                    p.rows.clear();
                    p.held -= lost;
                    p.dropped += lost as u64;
                    drop(p);
                    tracing::error!("query log {}: {e}; {lost} rows lost at shutdown", location);
                    shared.settled.send_modify(|s| *s += lost as u64);
                    return;
                }
                // Wait, but wake at once for a shutdown.
                let (p, _) = shared.wake.wait_timeout(p, pause).unwrap_or_else(|e| e.into_inner());
                drop(p);
                pause = (pause * 2).min(MAX_RETRY_PAUSE);
            }
        }
    }
}
