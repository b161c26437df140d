//! The shared store: PostgreSQL, for several replicas writing one query log and labeling one
//! queue. Same tables as SQLite; migrations run at open under an advisory lock, so replicas
//! starting together apply each once. Connections are plain TCP or a Unix socket (no TLS).

use std::sync::Mutex;
use std::time::Duration;

use postgres::{Client, Config, NoTls};

use super::labels::{
    decide, queue_sql, stats_sql, suggestions, Decision, LabelChange, LabelOutcome, Labeled, QueueItem,
    QueueQuery, SqlParam,
};
use super::quality::{window_sql, WindowStats, CONFIDENT_SQL, TEACHER_SQL};
use super::store::{Backend, RowWriter};
use super::{now_ms, sha256_hex, QueryLogOptions, QueryRow};
use crate::ServerError;

/// Migrations, in order; table `intent_schema` holds how many a database has.
const MIGRATIONS: [&str; 2] = [
    "
CREATE TABLE IF NOT EXISTS queries (
    id BIGSERIAL PRIMARY KEY,
    ts_ms BIGINT NOT NULL,
    text TEXT,
    text_sha256 TEXT NOT NULL,
    label TEXT NOT NULL,
    confidence DOUBLE PRECISION NOT NULL,
    fallback BOOLEAN NOT NULL,
    top_k TEXT NOT NULL,
    model TEXT NOT NULL,
    model_version TEXT NOT NULL,
    latency_us BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS queries_ts ON queries (ts_ms);
CREATE TABLE IF NOT EXISTS labeling_queue (
    id BIGSERIAL PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL,
    predicted TEXT NOT NULL,
    confidence DOUBLE PRECISION NOT NULL,
    first_query_id BIGINT NOT NULL,
    seen BIGINT NOT NULL DEFAULT 1,
    created_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    labels TEXT,
    labeled_ms BIGINT
);
CREATE INDEX IF NOT EXISTS labeling_pending ON labeling_queue (id) WHERE labels IS NULL;
CREATE TABLE IF NOT EXISTS label_history (
    id BIGSERIAL PRIMARY KEY,
    item_id BIGINT NOT NULL,
    labels TEXT NOT NULL,
    previous TEXT,
    labeled_by TEXT,
    ts_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS label_history_item ON label_history (item_id, id);
",
    "ALTER TABLE queries ADD COLUMN IF NOT EXISTS teacher_label TEXT;",
];

/// Key of the advisory lock that serializes migrations.
const MIGRATION_LOCK: i64 = 0x696e_7465_6e74; // "intent"
/// Idle reader connections kept for the admin routes.
const POOL: usize = 4;

/// `url` with its password replaced by `***`, for messages and logs.
pub(crate) fn hide_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// The PostgreSQL store of a query log.
pub(super) struct Postgres {
    config: Config,
    shown: String,
    pool: Mutex<Vec<Client>>,
}

fn pg_err(shown: &str) -> impl Fn(postgres::Error) -> ServerError + '_ {
    move |source| ServerError::QueryLogPostgres { location: shown.to_string(), source }
}

impl Postgres {
    /// Connects, applies missing migrations and prunes; returns the store and the writer's
    /// connection.
    pub(super) fn open(url: &str, options: &QueryLogOptions) -> Result<(Self, PgWriter), ServerError> {
        let shown = hide_password(url);
        let mut config: Config = url.parse().map_err(pg_err(&shown))?;
        config.connect_timeout(Duration::from_secs(10)).application_name("intent serve");
        let mut client = config.connect(NoTls).map_err(pg_err(&shown))?;
        migrate(&mut client).map_err(pg_err(&shown))?;
        let pruned = {
            let mut tx = client.transaction().map_err(pg_err(&shown))?;
            let n = prune(&mut tx, options).map_err(pg_err(&shown))?;
            tx.commit().map_err(pg_err(&shown))?;
            n
        };
        let rows: i64 = client.query_one("SELECT COUNT(*) FROM queries", &[]).map_err(pg_err(&shown))?.get(0);
        tracing::info!("query log {shown}: {rows} rows ({pruned} pruned), schema up to date");
        let writer = PgWriter { config: config.clone(), client: Some(client) };
        Ok((Postgres { config, shown, pool: Mutex::new(Vec::new()) }, writer))
    }

    /// The URL without its password.
    pub(super) fn shown(&self) -> &str {
        &self.shown
    }

    /// Runs `f` on a pooled connection (a new one when none is idle).
    fn with<T>(&self, f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>) -> Result<T, ServerError> {
        let pooled = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut client = match pooled.filter(|c| !c.is_closed()) {
            Some(c) => c,
            None => self.config.connect(NoTls).map_err(pg_err(&self.shown))?,
        };
        let out = f(&mut client);
        if !client.is_closed() {
            let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
            if pool.len() < POOL {
                pool.push(client);
            }
        }
        out.map_err(pg_err(&self.shown))
    }
}

impl Drop for Postgres {
    /// A pooled client says goodbye to the server through its own small runtime, which may not
    /// start on an async worker thread (where a server's state is often dropped): on a thread.
    fn drop(&mut self) {
        let clients = std::mem::take(&mut *self.pool.lock().unwrap_or_else(|p| p.into_inner()));
        if !clients.is_empty() {
            let _ = std::thread::spawn(move || drop(clients)).join();
        }
    }
}

fn migrate(client: &mut Client) -> Result<(), postgres::Error> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS intent_schema (version INTEGER NOT NULL)")?;
    let have: i32 = tx.query_opt("SELECT version FROM intent_schema", &[])?.map_or(0, |r| r.get(0));
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(have as usize) {
        tx.batch_execute(sql)?;
        tx.execute("DELETE FROM intent_schema", &[])?;
        tx.execute("INSERT INTO intent_schema (version) VALUES ($1)", &[&(i as i32 + 1)])?;
    }
    tx.commit()
}

fn parse_labels(json: Option<String>) -> Option<Vec<String>> {
    json.and_then(|l| serde_json::from_str(&l).ok())
}

impl Backend for Postgres {
    fn count(&self) -> Result<i64, ServerError> {
        self.with(|c| Ok(c.query_one("SELECT COUNT(*) FROM queries", &[])?.get(0)))
    }

    fn last_query_id(&self) -> Result<Option<i64>, ServerError> {
        self.with(|c| Ok(c.query_one("SELECT MAX(id) FROM queries", &[])?.get(0)))
    }

    fn queue(&self, query: &QueueQuery) -> Result<Vec<QueueItem>, ServerError> {
        let (sql, params) = queue_sql(query, |n| format!("${n}"), "strpos");
        let params: Vec<Box<dyn postgres::types::ToSql + Sync>> = params
            .into_iter()
            .map(|p| -> Box<dyn postgres::types::ToSql + Sync> {
                match p {
                    SqlParam::Int(i) => Box::new(i),
                    SqlParam::Real(r) => Box::new(r),
                    SqlParam::Text(t) => Box::new(t),
                }
            })
            .collect();
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
        self.with(|c| {
            let rows = c.query(&sql, &refs)?;
            Ok(rows
                .iter()
                .map(|r| QueueItem {
                    id: r.get(0),
                    text: r.get(1),
                    predicted: r.get(2),
                    confidence: r.get::<_, f64>(3) as f32,
                    seen: r.get(4),
                    created_ms: r.get(5),
                    labels: parse_labels(r.get(6)),
                    last_seen_ms: r.get(7),
                    suggestions: suggestions(r.get(8)),
                    model_version: r.get(9),
                })
                .collect())
        })
    }

    fn confident(&self, min_confidence: f64) -> Result<Vec<(String, String, f64, i64)>, ServerError> {
        self.with(|c| {
            let sql = CONFIDENT_SQL.replace("?1", "$1");
            Ok(c.query(&sql, &[&min_confidence])?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
                .collect())
        })
    }

    fn teacher_labels(&self) -> Result<Vec<(String, String, i64)>, ServerError> {
        self.with(|c| Ok(c.query(TEACHER_SQL, &[])?.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()))
    }

    fn window_stats(
        &self,
        model: &str,
        version: &str,
        window: i64,
        first: bool,
    ) -> Result<WindowStats, ServerError> {
        self.with(|c| {
            let sql = window_sql(|n| format!("${n}"), first);
            let r = c.query_one(&sql, &[&model, &version, &window])?;
            Ok(WindowStats {
                queries: r.get(0),
                mean_confidence: r.get(1),
                fallback_rate: r.get(2),
                from_ms: r.get(3),
                to_ms: r.get(4),
            })
        })
    }

    fn stats(&self, since_ms: i64, hour_ago_ms: i64) -> Result<[i64; 5], ServerError> {
        self.with(|c| {
            let r = c.query_one(&stats_sql(|n| format!("${n}")), &[&since_ms, &hour_ago_ms])?;
            Ok([r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)])
        })
    }

    fn set_labels(
        &self,
        id: i64,
        labels: &[String],
        replaces: Option<&[String]>,
        labeled_by: Option<&str>,
    ) -> Result<LabelOutcome, ServerError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            // FOR UPDATE: concurrent labelings of one item, from any replica, take turns.
            let Some(row) =
                tx.query_opt("SELECT labels FROM labeling_queue WHERE id = $1 FOR UPDATE", &[&id])?
            else {
                return Ok(LabelOutcome::NotFound);
            };
            let (json, history, previous) = match decide(parse_labels(row.get(0)), labels, replaces) {
                Decision::Done(outcome) => return Ok(outcome),
                Decision::Apply { labels, history, previous } => (labels, history, previous),
            };
            let now = now_ms();
            let labeled_ms = json.as_ref().map(|_| now);
            tx.execute(
                "UPDATE labeling_queue SET labels = $1, labeled_ms = $2 WHERE id = $3",
                &[&json, &labeled_ms, &id],
            )?;
            tx.execute(
                "INSERT INTO label_history (item_id, labels, previous, labeled_by, ts_ms)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&id, &history, &previous, &labeled_by, &now],
            )?;
            tx.commit()?;
            Ok(LabelOutcome::Labeled)
        })
    }

    fn label_history(&self, id: i64) -> Result<Option<Vec<LabelChange>>, ServerError> {
        self.with(|c| {
            if c.query_opt("SELECT id FROM labeling_queue WHERE id = $1", &[&id])?.is_none() {
                return Ok(None);
            }
            let rows = c.query(
                "SELECT labels, previous, labeled_by, ts_ms FROM label_history WHERE item_id = $1 \
                    ORDER BY id",
                &[&id],
            )?;
            Ok(Some(
                rows.iter()
                    .map(|r| LabelChange {
                        labels: parse_labels(r.get(0)).unwrap_or_default(),
                        previous: parse_labels(r.get(1)),
                        labeled_by: r.get(2),
                        ts_ms: r.get(3),
                    })
                    .collect(),
            ))
        })
    }

    fn labeled(&self) -> Result<Vec<Labeled>, ServerError> {
        self.with(|c| {
            let rows = c.query(
                "SELECT id, text, labels, labeled_ms FROM labeling_queue WHERE labels IS NOT NULL \
                    ORDER BY id",
                &[],
            )?;
            Ok(rows
                .iter()
                .map(|r| Labeled {
                    id: r.get(0),
                    text: r.get(1),
                    labels: parse_labels(r.get(2)).unwrap_or_default(),
                    labeled_ms: r.get(3),
                })
                .collect())
        })
    }
}

/// The writer thread's connection, opened again after it broke.
pub(super) struct PgWriter {
    config: Config,
    client: Option<Client>,
}

impl RowWriter for PgWriter {
    fn write(&mut self, rows: &[QueryRow], options: &QueryLogOptions) -> Result<(), String> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = Some(self.config.connect(NoTls).map_err(|e| e.to_string())?);
        }
        let client = self.client.as_mut().expect("connected above");
        let out = write_rows(client, rows, options);
        if out.is_err() && client.is_closed() {
            self.client = None;
        }
        out.map_err(|e| e.to_string())
    }

    fn finish(&mut self, _location: &str) {}
}

fn prune(tx: &mut postgres::Transaction<'_>, options: &QueryLogOptions) -> Result<u64, postgres::Error> {
    let mut n = 0;
    if let Some(max) = options.max_rows {
        n += tx.execute(
            "DELETE FROM queries WHERE id <= (SELECT MAX(id) FROM queries) - $1",
            &[&i64::try_from(max).unwrap_or(i64::MAX)],
        )?;
    }
    if let Some(cutoff) = options.cutoff_ms() {
        n += tx.execute("DELETE FROM queries WHERE ts_ms < $1", &[&cutoff])?;
    }
    Ok(n)
}

fn write_rows(
    client: &mut Client,
    rows: &[QueryRow],
    options: &QueryLogOptions,
) -> Result<(), postgres::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let redact = options.redact;
    let mut tx = client.transaction()?;
    let insert = tx.prepare(
        "INSERT INTO queries (ts_ms, text, text_sha256, label, confidence, fallback, top_k, model,
            model_version, latency_us, teacher_label)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )?;
    let mut queued = Vec::new();
    for r in rows {
        let top_k = serde_json::to_string(&r.top_k).unwrap_or_default();
        let text = (!redact).then_some(r.text.as_str());
        let id: i64 = tx
            .query_one(
                &insert,
                &[
                    &r.ts_ms,
                    &text,
                    &sha256_hex(&r.text),
                    &r.label,
                    &(r.confidence as f64),
                    &r.fallback,
                    &top_k,
                    &r.model,
                    &r.model_version,
                    &(r.latency_us as i64),
                    &r.teacher_label.as_deref().filter(|_| !redact),
                ],
            )?
            .get(0);
        if r.fallback && !redact {
            queued.push((intent_data::normalize_text(&r.text), r, id));
        }
    }
    // Keys in one order everywhere: two replicas upserting the same items cannot deadlock.
    queued.sort_by(|a, b| a.0.cmp(&b.0));
    let enqueue = tx.prepare(
        "INSERT INTO labeling_queue (key, text, predicted, confidence, first_query_id, created_ms,
            last_seen_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $6)
         ON CONFLICT (key) DO UPDATE
            SET seen = labeling_queue.seen + 1, last_seen_ms = EXCLUDED.last_seen_ms",
    )?;
    for (key, r, id) in queued {
        tx.execute(&enqueue, &[&key, &r.text, &r.label, &(r.confidence as f64), &id, &r.ts_ms])?;
    }
    prune(&mut tx, options)?;
    tx.commit()
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_hidden() {
        for (url, shown) in [
            ("postgres://ana:secret@db:5432/intent", "postgres://ana:***@db:5432/intent"),
            (
                "postgresql://ana:p%40ss@db/intent?sslmode=disable",
                "postgresql://ana:***@db/intent?sslmode=disable",
            ),
            ("postgres://ana@db/intent", "postgres://ana@db/intent"),
            ("postgres://db/intent", "postgres://db/intent"),
        ] {
            assert_eq!(super::hide_password(url), shown);
        }
    }
}
