//! `ontovec bench load` and `ontovec bench overload`: HTTP load on a running (or spawned) server
//! over 127.0.0.1, in bounded loops.
//!
//! * **load**: req/s and p50/p99 latency of lexical, vector and hybrid `POST /v1/search` at a few
//!   concurrency levels, each next to `GET /health` at the same concurrency (the floor of the HTTP
//!   stack and this client on the same machine, measured in the same run).
//! * **overload**: many clients hammering semantic (vector) search at once. Every request must be
//!   answered promptly with 200 or 429 + `Retry-After`; the server's RSS is sampled throughout;
//!   after the load stops, single requests must be served at once (recovery).
//!
//! The client is blocking (`ureq`, one keep-alive connection per client thread): at 256 clients
//! that is 256 threads, which also share the machine's cores with the server.

use anyhow::{bail, Context, Result};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Queries a clinician or coder might type: lay terms, clinical terms, misspellings, codes.
/// Inputs only; the benchmark checks status codes, not results.
pub const QUERIES: &[&str] = &[
    "heart attack",
    "type 2 diabetes without complications",
    "sugar diabetes",
    "high blood pressure",
    "seizure",
    "epileptic fits",
    "short stature",
    "kidney failure",
    "chronic kidney disease stage 3",
    "asthma attack",
    "copd exacerbation",
    "pneumonia due to streptococcus",
    "broken wrist",
    "fracture of femur",
    "migraine with aura",
    "depression",
    "major depressive disorder recurrent",
    "anxiety",
    "hypothyroidism",
    "iron deficiency anemia",
    "abnormality of the hand",
    "intellectual disability",
    "microcephaly",
    "hearing loss",
    "cleft palate",
    "scoliosis",
    "muscle weakness",
    "ataxia",
    "developmental delay",
    "hypotonia",
    "obesity",
    "atrial fibrilation",
    "diabetis",
    "hypertensoin",
    "E11.9",
    "I10",
    "J45.909",
    "HP:0001250",
    "urinary tract infection",
    "sepsis",
    "stroke",
    "cerebral infarction",
    "breast cancer",
    "malignant neoplasm of lung",
    "covid-19",
    "back pain",
    "osteoarthritis of knee",
    "gout",
    "rheumatoid arthritis",
    "psoriasis",
    "eczema",
    "conjunctivitis",
    "otitis media",
    "tonsillitis",
    "gastroesophageal reflux",
    "appendicitis",
    "gallstones",
    "cirrhosis of liver",
    "pancreatitis",
    "hypoglycemia",
];

/// Where the server is.
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// Server process id, for RSS (when known).
    pub pid: Option<u32>,
    /// Restrict searches to these systems.
    pub systems: Option<Vec<String>>,
}

impl Target {
    /// One target per comma-separated base URL of `url` (several API nodes; `load` sends
    /// request `i` to node `i mod n`, so each client alternates between them).
    pub fn nodes(&self) -> Vec<Target> {
        self.url
            .split(',')
            .map(|u| u.trim().trim_end_matches('/'))
            .filter(|u| !u.is_empty())
            .map(|u| Target {
                url: u.to_string(),
                pid: self.pid,
                systems: self.systems.clone(),
            })
            .collect()
    }
}

/// A server this benchmark started; killed on drop.
pub struct Spawned {
    child: Child,
    /// Its address.
    pub target: Target,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // SIGTERM first (graceful shutdown flushes the store), then make sure.
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `ontovec serve` on a free loopback port over `data_dir` and wait until it answers
/// searches in every mode. `extra` are further `serve` arguments.
pub fn spawn_server(data_dir: &Path, models_dir: &Path, extra: &[String]) -> Result<Spawned> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let log = data_dir.with_extension("bench-server.log");
    let child = Command::new(std::env::current_exe()?)
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--models-dir")
        .arg(models_dir)
        .arg("--addr")
        .arg(format!("127.0.0.1:{port}"))
        .args(extra)
        .env("ONTOVEC_LOG", "warn,ontovec::api::server=info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).context("server log")?)
        .spawn()
        .context("starting the server")?;
    let pid = child.id();
    let mut spawned = Spawned {
        child,
        target: Target {
            url: url.clone(),
            pid: Some(pid),
            systems: None,
        },
    };
    let agent = agent(Duration::from_secs(120));
    let t = Instant::now();
    loop {
        if t.elapsed() > Duration::from_secs(600) {
            bail!("server not ready after 10 min (log: {})", log.display());
        }
        if let Ok(Some(status)) = spawned.child.try_wait() {
            bail!("the server exited ({status}); see {}", log.display());
        }
        // Measure only once the indexes have caught up with the store (no background work).
        let caught_up = std::fs::read_to_string(&log)
            .map(|l| l.contains("indexes caught up"))
            .unwrap_or(false);
        let ok = caught_up
            && post_search(&agent, &spawned.target, "seizure", "lexical")
                .map(|(s, _)| s == 200)
                .unwrap_or(false);
        if ok {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "server pid {pid} ready at {url} in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    Ok(spawned)
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

/// One search; returns (status, Retry-After present).
fn post_search(
    agent: &ureq::Agent,
    t: &Target,
    query: &str,
    mode: &str,
) -> Result<(u16, bool), ureq::Error> {
    let mut body = serde_json::json!({"query": query, "k": 10, "mode": mode});
    if let Some(s) = &t.systems {
        body["systems"] = serde_json::json!(s);
    }
    let mut resp = agent
        .post(format!("{}/v1/search", t.url))
        .header("content-type", "application/json")
        .send(body.to_string())?;
    let retry = resp.headers().contains_key("retry-after");
    let mut sink = Vec::new();
    let _ = resp.body_mut().as_reader().read_to_end(&mut sink);
    Ok((resp.status().as_u16(), retry))
}

fn get_health(agent: &ureq::Agent, t: &Target) -> Result<(u16, bool), ureq::Error> {
    let mut resp = agent.get(format!("{}/health", t.url)).call()?;
    let mut sink = Vec::new();
    let _ = resp.body_mut().as_reader().read_to_end(&mut sink);
    Ok((resp.status().as_u16(), false))
}

/// What one request did.
#[derive(Debug, Clone, Copy)]
struct Sample {
    micros: u64,
    status: u16,
    retry_after: bool,
}

/// Statistics of a run.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Requests answered (any status).
    pub requests: usize,
    /// Transport errors (no HTTP answer).
    pub failed: usize,
    /// Wall time.
    pub secs: f64,
    /// Latency percentiles in ms (p50, p99, max).
    pub p50: f64,
    /// 99th percentile latency, ms.
    pub p99: f64,
    /// Slowest answer, ms.
    pub max: f64,
    /// Answers by status.
    pub statuses: std::collections::BTreeMap<u16, usize>,
    /// 429 answers without a Retry-After header.
    pub missing_retry_after: usize,
}

impl Stats {
    fn from(samples: &mut [Sample], failed: usize, secs: f64) -> Self {
        samples.sort_by_key(|s| s.micros);
        let pct = |p: f64| -> f64 {
            if samples.is_empty() {
                return 0.0;
            }
            let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
            samples[i].micros as f64 / 1000.0
        };
        let mut statuses = std::collections::BTreeMap::new();
        for s in samples.iter() {
            *statuses.entry(s.status).or_insert(0) += 1;
        }
        Stats {
            requests: samples.len(),
            failed,
            secs,
            p50: pct(0.50),
            p99: pct(0.99),
            max: pct(1.0),
            statuses,
            missing_retry_after: samples
                .iter()
                .filter(|s| s.status == 429 && !s.retry_after)
                .count(),
        }
    }

    /// Requests per second.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.secs.max(1e-9)
    }

    fn status_list(&self) -> String {
        self.statuses
            .iter()
            .map(|(k, v)| format!("{k}×{v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

enum Stop {
    /// After this many requests in all.
    Count(usize),
    /// When this flag is set.
    Flag(Arc<AtomicBool>),
}

/// `clients` threads issuing `call` until `stop`; returns the statistics.
fn drive<F>(clients: usize, stop: Stop, call: F) -> Stats
where
    F: Fn(&ureq::Agent, usize) -> Result<(u16, bool), ureq::Error> + Sync,
{
    let issued = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let all: Mutex<Vec<Sample>> = Mutex::new(Vec::new());
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..clients {
            s.spawn(|| {
                let agent = agent(Duration::from_secs(120));
                let mut mine = Vec::new();
                loop {
                    let i = issued.fetch_add(1, Ordering::Relaxed);
                    let go = match &stop {
                        Stop::Count(n) => i < *n,
                        Stop::Flag(f) => !f.load(Ordering::Relaxed),
                    };
                    if !go {
                        break;
                    }
                    let t0 = Instant::now();
                    match call(&agent, i) {
                        Ok((status, retry_after)) => mine.push(Sample {
                            micros: t0.elapsed().as_micros() as u64,
                            status,
                            retry_after,
                        }),
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                all.lock().unwrap_or_else(|e| e.into_inner()).extend(mine);
            });
        }
    });
    let secs = t.elapsed().as_secs_f64();
    let mut samples = all.into_inner().unwrap_or_else(|e| e.into_inner());
    Stats::from(&mut samples, failed.into_inner(), secs)
}

/// Resident set size of a process in bytes (Linux `/proc`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The load table: every mode at every concurrency, `requests` requests per cell, each mode
/// row next to `/health` at the same concurrency.
/// With several nodes (comma-separated URLs) requests go round-robin over them.
pub fn load(t: &Target, modes: &[String], concurrency: &[usize], requests: usize) -> Result<()> {
    let nodes = t.nodes();
    if nodes.is_empty() {
        bail!("no server URL");
    }
    let node = |i: usize| &nodes[i % nodes.len()];
    // warm-up: every query once per mode and node (fills caches the way a running service has them)
    let a = agent(Duration::from_secs(120));
    for n in &nodes {
        for m in modes {
            for q in QUERIES {
                let (s, _) = post_search(&a, n, q, m)?;
                if s != 200 {
                    bail!("warm-up {m} search for {q:?} at {} answered {s}", n.url);
                }
            }
        }
    }
    println!("| endpoint | concurrency | requests | req/s | p50 ms | p99 ms | statuses |");
    println!("|---|---|---|---|---|---|---|");
    for &c in concurrency {
        let h = drive(c, Stop::Count(requests), |a, i| get_health(a, node(i)));
        println!(
            "| GET /health (reference) | {c} | {} | {:.0} | {:.2} | {:.2} | {} |",
            h.requests,
            h.rate(),
            h.p50,
            h.p99,
            h.status_list()
        );
        for m in modes {
            let st = drive(c, Stop::Count(requests), |a, i| {
                post_search(a, node(i), QUERIES[i % QUERIES.len()], m)
            });
            println!(
                "| search {m} | {c} | {} | {:.1} | {:.1} | {:.1} | {} |",
                st.requests,
                st.rate(),
                st.p50,
                st.p99,
                st.status_list()
            );
            if st.failed > 0 {
                eprintln!("warning: {} requests got no HTTP answer", st.failed);
            }
        }
    }
    Ok(())
}

/// The overload run: `clients` clients on vector search for `secs` seconds; baseline and
/// recovery latencies from single sequential requests before and right after.
pub fn overload(t: &Target, clients: usize, secs: f64) -> Result<bool> {
    let single = |n: usize| {
        drive(1, Stop::Count(n), |a, i| {
            post_search(a, t, QUERIES[i % QUERIES.len()], "vector")
        })
    };
    let before = single(30);
    let rss_before = t.pid.and_then(rss_bytes);
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (stop, peak, pid) = (stop.clone(), peak.clone(), t.pid);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(r) = pid.and_then(rss_bytes) {
                    peak.fetch_max(r as usize, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let timer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(secs));
            stop.store(true, Ordering::Relaxed);
        })
    };
    let st = drive(clients, Stop::Flag(stop.clone()), |a, i| {
        post_search(a, t, QUERIES[i % QUERIES.len()], "vector")
    });
    let _ = timer.join();
    let _ = sampler.join();
    // Recovery: the very next requests, one at a time.
    let t_rec = Instant::now();
    let after = single(30);
    let rec_secs = t_rec.elapsed().as_secs_f64();
    let rss_after = t.pid.and_then(rss_bytes);
    let ok200 = st.statuses.get(&200).copied().unwrap_or(0);
    let ok429 = st.statuses.get(&429).copied().unwrap_or(0);
    let other = st.requests - ok200 - ok429;
    let mb = |b: Option<u64>| {
        b.map(|b| format!("{:.0} MB", b as f64 / 1e6))
            .unwrap_or_else(|| "n/a".into())
    };
    println!("| measure | value |");
    println!("|---|---|");
    println!("| clients | {clients} |");
    println!("| duration | {:.1} s |", st.secs);
    println!("| answers | {} ({:.1}/s) |", st.requests, st.rate());
    println!("| 200 / 429 / other | {ok200} / {ok429} / {other} |");
    println!(
        "| searches served (200) per second | {:.1} |",
        ok200 as f64 / st.secs.max(1e-9)
    );
    println!("| 429 without Retry-After | {} |", st.missing_retry_after);
    println!("| no HTTP answer (transport errors) | {} |", st.failed);
    println!(
        "| latency p50 / p99 / max | {:.0} / {:.0} / {:.0} ms |",
        st.p50, st.p99, st.max
    );
    println!(
        "| server RSS before / peak / after | {} / {} / {} |",
        mb(rss_before),
        mb(Some(peak.load(Ordering::Relaxed) as u64).filter(|p| *p > 0)),
        mb(rss_after)
    );
    println!(
        "| single vector search before: p50 / p99 | {:.1} / {:.1} ms |",
        before.p50, before.p99
    );
    println!(
        "| right after (recovery, 30 sequential, {:.1} s): p50 / p99 / statuses | {:.1} / {:.1} ms / {} |",
        rec_secs,
        after.p50,
        after.p99,
        after.status_list()
    );
    let healthy = other == 0
        && st.failed == 0
        && st.missing_retry_after == 0
        && after.statuses.get(&200).copied().unwrap_or(0) == after.requests;
    println!(
        "| verdict | {} |",
        if healthy {
            "every request answered with 200 or 429 + Retry-After; recovered at once"
        } else {
            "FAILED: see the rows above"
        }
    );
    Ok(healthy)
}

/// Resolve a target: a URL, or spawn a server over a data directory.
pub fn target(
    url: Option<String>,
    data_dir: Option<PathBuf>,
    models_dir: &Path,
    systems: Option<Vec<String>>,
    serve_args: &[String],
) -> Result<(Target, Option<Spawned>)> {
    match (url, data_dir) {
        (Some(url), _) => Ok((
            Target {
                url: url.trim_end_matches('/').to_string(),
                pid: None,
                systems,
            },
            None,
        )),
        (None, Some(dir)) => {
            let mut s = spawn_server(&dir, models_dir, serve_args)?;
            s.target.systems = systems;
            Ok((s.target.clone(), Some(s)))
        }
        (None, None) => bail!("give --url of a running server or --data-dir to start one"),
    }
}
