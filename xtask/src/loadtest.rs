//! `cargo xtask loadtest`: a closed-loop HTTP load generator for `intent serve`.
//!
//! N clients each send `POST /v1/predict` requests back to back for a fixed time (texts taken in
//! turn from a file); optionally an admin task hot-swaps the model R times during the run,
//! alternating between model folders. Prints requests, failures, throughput and latency
//! percentiles (and a JSON line with `--json`). With `--slowloris N`, N more connections attack
//! meanwhile: each sends a request's first header lines, then one more header line a second and
//! never finishes; when the server closes one, it is opened again.
//!
//! usage: cargo xtask loadtest --url URL [--clients 8] [--seconds 10] [--texts FILE]
//!        [--batch 1] [--reloads 0] [--reload-models DIR,DIR] [--slowloris 0] [--json]
//! The admin token comes from INTENT_ADMIN_TOKEN.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

struct Args {
    url: String,
    clients: usize,
    seconds: f64,
    texts: Vec<String>,
    batch: usize,
    reloads: usize,
    reload_models: Vec<String>,
    slowloris: usize,
    json: bool,
}

fn parse(args: &[String]) -> Result<Args> {
    let mut a = Args {
        url: String::new(),
        clients: 8,
        seconds: 10.0,
        texts: Vec::new(),
        batch: 1,
        reloads: 0,
        reload_models: Vec::new(),
        slowloris: 0,
        json: false,
    };
    let mut texts_file = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--json" {
            a.json = true;
            continue;
        }
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<f64>().with_context(|| format!("{flag} {v}: expected a number"));
        match flag.as_str() {
            "--url" => a.url = value.trim_end_matches('/').to_string(),
            "--clients" => a.clients = num(value)? as usize,
            "--seconds" => a.seconds = num(value)?,
            "--texts" => texts_file = Some(value.clone()),
            "--batch" => a.batch = num(value)? as usize,
            "--reloads" => a.reloads = num(value)? as usize,
            "--reload-models" => a.reload_models = value.split(',').map(str::to_string).collect(),
            "--slowloris" => a.slowloris = num(value)? as usize,
            other => bail!("unknown flag {other}"),
        }
    }
    if a.url.is_empty() {
        bail!("--url is required (e.g. http://127.0.0.1:8080)");
    }
    if a.clients == 0 || a.batch == 0 || a.seconds <= 0.0 {
        bail!("--clients, --batch and --seconds must be positive");
    }
    a.texts = match texts_file {
        Some(f) => std::fs::read_to_string(&f)
            .with_context(|| format!("reading {f}"))?
            .lines()
            .map(|l| match serde_json::from_str::<serde_json::Value>(l) {
                Ok(v) if v["text"].is_string() => v["text"].as_str().unwrap_or_default().to_string(),
                _ => l.trim().to_string(),
            })
            .filter(|l| !l.is_empty())
            .collect(),
        None => [
            "what is my account balance",
            "i lost my card",
            "how do i reset my password",
            "send money to my friend",
            "cancel my order",
            "hello there",
        ]
        .map(String::from)
        .to_vec(),
    };
    if a.texts.is_empty() {
        bail!("no texts to send");
    }
    Ok(a)
}

struct ClientResult {
    latencies_us: Vec<u32>,
    failures: u64,
    first_errors: Vec<String>,
}

async fn client(id: usize, http: reqwest::Client, args: Arc<Args>, stop: Arc<AtomicBool>) -> ClientResult {
    let mut r = ClientResult { latencies_us: Vec::new(), failures: 0, first_errors: Vec::new() };
    let url = format!("{}/v1/predict", args.url);
    let mut k = id * 7919;
    while !stop.load(Ordering::Relaxed) {
        let texts: Vec<&str> =
            (0..args.batch).map(|j| args.texts[(k + j) % args.texts.len()].as_str()).collect();
        k += args.batch;
        let body = if args.batch == 1 {
            serde_json::json!({ "text": texts[0] })
        } else {
            serde_json::json!({ "texts": texts })
        };
        let start = Instant::now();
        let outcome = match http.post(&url).json(&body).send().await {
            Ok(resp) if resp.status().is_success() => {
                resp.bytes().await.map(|_| ()).map_err(|e| e.to_string())
            }
            Ok(resp) => Err(format!("status {}: {}", resp.status(), resp.text().await.unwrap_or_default())),
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(()) => r.latencies_us.push(start.elapsed().as_micros().min(u32::MAX as u128) as u32),
            Err(e) => {
                r.failures += 1;
                if r.first_errors.len() < 3 {
                    r.first_errors.push(e);
                }
            }
        }
    }
    r
}

async fn reloader(http: reqwest::Client, args: Arc<Args>, ok: Arc<AtomicU64>, failed: Arc<AtomicU64>) {
    let token = std::env::var("INTENT_ADMIN_TOKEN").unwrap_or_default();
    let every = Duration::from_secs_f64(args.seconds / (args.reloads + 1) as f64);
    for i in 0..args.reloads {
        tokio::time::sleep(every).await;
        let mut req = http.post(format!("{}/admin/reload", args.url)).bearer_auth(&token);
        if !args.reload_models.is_empty() {
            req = req.json(&serde_json::json!({ "model": args.reload_models[i % args.reload_models.len()] }));
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => {
                ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) => {
                failed.fetch_add(1, Ordering::Relaxed);
                eprintln!("reload {i}: status {}: {}", r.status(), r.text().await.unwrap_or_default());
            }
            Err(e) => {
                failed.fetch_add(1, Ordering::Relaxed);
                eprintln!("reload {i}: {e}");
            }
        }
    }
}

/// Counts of the slowloris attack.
#[derive(Default)]
struct Attack {
    /// Connections open now (headers sent, never finished).
    open: AtomicU64,
    /// Connections the server closed (and were opened again).
    closed_by_server: AtomicU64,
}

/// One slowloris connection, opened again whenever the server closes it, until `stop`.
async fn slowloris(addr: String, attack: Arc<Attack>, stop: Arc<AtomicBool>) {
    use tokio::io::AsyncWriteExt;
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut c) = tokio::net::TcpStream::connect(&addr).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if c.write_all(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
            .await
            .is_err()
        {
            continue;
        }
        attack.open.fetch_add(1, Ordering::Relaxed);
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if c.write_all(b"X-Slow: 1\r\n").await.is_err() {
                attack.closed_by_server.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
        attack.open.fetch_sub(1, Ordering::Relaxed);
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// Runs the load test.
pub fn run(raw: &[String]) -> Result<()> {
    let args = Arc::new(parse(raw)?);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(args.clients + 4)
            .timeout(Duration::from_secs(30))
            .build()?;
        let stop = Arc::new(AtomicBool::new(false));
        let attack = Arc::new(Attack::default());
        let addr = args.url.trim_start_matches("http://").split('/').next().unwrap_or_default().to_string();
        let attackers: Vec<_> = (0..args.slowloris)
            .map(|_| tokio::spawn(slowloris(addr.clone(), attack.clone(), stop.clone())))
            .collect();
        if args.slowloris > 0 {
            // Let the attack connect before measuring.
            tokio::time::sleep(Duration::from_secs(2)).await;
            println!("slowloris: {} connections open", attack.open.load(Ordering::Relaxed));
        }
        let (reload_ok, reload_failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let start = Instant::now();
        let tasks: Vec<_> = (0..args.clients)
            .map(|i| tokio::spawn(client(i, http.clone(), args.clone(), stop.clone())))
            .collect();
        let reloads =
            tokio::spawn(reloader(http.clone(), args.clone(), reload_ok.clone(), reload_failed.clone()));
        tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
        let attack_open = attack.open.load(Ordering::Relaxed);
        stop.store(true, Ordering::Relaxed);
        for a in attackers {
            a.abort();
        }
        let mut latencies = Vec::new();
        let (mut failures, mut errors) = (0, Vec::new());
        for t in tasks {
            let r = t.await?;
            latencies.extend(r.latencies_us);
            failures += r.failures;
            errors.extend(r.first_errors);
        }
        let elapsed = start.elapsed().as_secs_f64();
        reloads.await?;
        latencies.sort_unstable();
        let ok = latencies.len();
        let (p50, p99) = (percentile(&latencies, 50.0), percentile(&latencies, 99.0));
        let rps = ok as f64 / elapsed;
        println!(
            "clients {} batch {}: {} ok, {} failed in {:.1} s: {:.0} requests/s ({:.0} texts/s), p50 \
                {:.2} ms, p99 {:.2} ms; reloads {} ok, {} failed",
            args.clients,
            args.batch,
            ok,
            failures,
            elapsed,
            rps,
            rps * args.batch as f64,
            p50,
            p99,
            reload_ok.load(Ordering::Relaxed),
            reload_failed.load(Ordering::Relaxed)
        );
        if args.slowloris > 0 {
            println!(
                "slowloris: {attack_open} of {} connections open at the end; the server closed {} (reopened)",
                args.slowloris,
                attack.closed_by_server.load(Ordering::Relaxed)
            );
        }
        for e in errors.iter().take(5) {
            println!("  error: {e}");
        }
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "clients": args.clients, "batch": args.batch, "ok": ok, "failed": failures,
                    "seconds": elapsed, "requests_per_s": rps, "p50_ms": p50, "p99_ms": p99,
                    "reloads_ok": reload_ok.load(Ordering::Relaxed),
                    "reloads_failed": reload_failed.load(Ordering::Relaxed)
                })
            );
        }
        Ok::<_, anyhow::Error>(())
    })
}
