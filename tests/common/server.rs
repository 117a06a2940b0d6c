//! The real `ontovec` binary in a child process: CLI runs with quiet logs, and a server on a
//! free port that is stopped (SIGKILL) when the guard drops, so a failed assertion never leaves
//! it running.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_ontovec");

/// `<bin> <args> --data-dir <data> --models-dir <models>` with error-level logs and no colours
/// (`bin` is [`BIN`] or a copy of it).
pub fn command(bin: &Path, args: &[&str], data: &Path, models: &Path) -> Command {
    let mut c = Command::new(bin);
    c.args(args)
        .arg("--data-dir")
        .arg(data)
        .arg("--models-dir")
        .arg(models)
        .env("ONTOVEC_LOG", "error")
        .env("NO_COLOR", "1")
        // the CLI's default is `auto` (BF16 on CPUs with AVX512_BF16); tests that mix the
        // binary with an in-process App (F32 by default) need both on the same vectors
        .env("ONTOVEC_PRECISION", "f32");
    c
}

/// [`command`] of the binary under test.
pub fn cli(args: &[&str], data: &Path, models: &Path) -> Command {
    command(Path::new(BIN), args, data, models)
}

/// `ontovec ingest --format <format> --release <release> <files>`, output discarded.
pub fn ingest(
    data: &Path,
    models: &Path,
    format: &str,
    release: &str,
    files: &[PathBuf],
) -> Command {
    let mut c = cli(
        &["ingest", "--format", format, "--release", release],
        data,
        models,
    );
    c.args(files).stdout(Stdio::null()).stderr(Stdio::null());
    c
}

/// An HTTP client that returns error statuses as responses.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// GET `url`: status and JSON body (`Null` if it is not JSON).
pub fn http_get(url: &str) -> (u16, serde_json::Value) {
    let mut r = agent().get(url).call().unwrap();
    let s = r.status().as_u16();
    (
        s,
        r.body_mut().read_json().unwrap_or(serde_json::Value::Null),
    )
}

/// POST JSON to `url`: status and JSON body.
pub fn http_post(url: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let mut r = agent()
        .post(url)
        .header("content-type", "application/json")
        .send(body.to_string())
        .unwrap();
    let s = r.status().as_u16();
    (
        s,
        r.body_mut().read_json().unwrap_or(serde_json::Value::Null),
    )
}

/// A running `ontovec serve`.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    log: PathBuf,
}

impl Server {
    /// Start `serve` over `data` and `models`, logging to `log`, and wait for `/ready`.
    pub fn start(data: &Path, models: &Path, log: PathBuf) -> Server {
        let s = Server::spawn(data, models, log);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(60) {
            if let Ok(mut r) = agent().get(format!("{}/ready", s.url)).call() {
                if r.status().as_u16() == 200 {
                    let _ = r.body_mut().read_to_string();
                    return s;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("not ready: {}", s.log_text());
    }

    /// [`Server::start`], then wait (20 s at most) until it logs that its indexes caught up.
    pub fn start_caught_up(data: &Path, models: &Path, log: PathBuf) -> Server {
        let s = Server::start(data, models, log);
        let t = Instant::now();
        while !s.log_text().contains("indexes caught up") {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "server did not catch up: {}",
                s.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    fn spawn(data: &Path, models: &Path, log: PathBuf) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(BIN)
            .arg("serve")
            .arg("--data-dir")
            .arg(data)
            .arg("--models-dir")
            .arg(models)
            .arg("--addr")
            .arg(format!("127.0.0.1:{port}"))
            .env("ONTOVEC_LOG", "info,tantivy=warn,sled=warn")
            .env("NO_COLOR", "1")
            .env("ONTOVEC_PRECISION", "f32") // as `command`: the suite's vectors are F32
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Indexes `/ready` reports behind.
    pub fn behind(&self) -> Vec<serde_json::Value> {
        let (s, v) = http_get(&format!("{}/ready", self.url));
        assert_eq!(s, 200, "{v}");
        v["indexes_behind"].as_array().unwrap().clone()
    }

    /// Wait (at most `limit`) until no index is behind.
    pub fn wait_caught_up(&self, limit: Duration) {
        let t = Instant::now();
        while !self.behind().is_empty() {
            assert!(
                t.elapsed() < limit,
                "not caught up in {limit:?}: {:?}",
                self.behind()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The running job of `kind`: (done, total, phase), if any.
    pub fn running(&self, kind: &str) -> Option<(u64, u64, String)> {
        let (_, v) = http_get(&format!("{}/v1/jobs", self.url));
        v["jobs"].as_array().unwrap().iter().find_map(|j| {
            (j["kind"] == kind && j["state"] == "running").then(|| {
                let phase = j["phase"].as_str().unwrap_or_default().to_string();
                (
                    j["done"].as_u64().unwrap(),
                    j["total"].as_u64().unwrap(),
                    phase,
                )
            })
        })
    }

    /// Wait (at most `limit`) until the running job of `kind` has done some work; its `done`.
    /// Panics if it is no longer running: the caller measures during the job.
    pub fn progressed(&self, kind: &str, limit: Duration) -> u64 {
        let t = Instant::now();
        loop {
            let (done, total, phase) = self
                .running(kind)
                .unwrap_or_else(|| panic!("the {kind} job still runs: {}", self.log_text()));
            if done > 0 {
                return done;
            }
            assert!(
                t.elapsed() < limit,
                "{kind}: nothing done in {limit:?} ({phase} 0/{total})"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM; how long the process took to exit, and its log.
    pub fn terminate(mut self) -> (Duration, String) {
        let t = Instant::now();
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        loop {
            if self.child.try_wait().unwrap().is_some() {
                return (t.elapsed(), self.log_text());
            }
            if t.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("no exit 20 s after SIGTERM: {}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL (kill -9) and reap.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    /// A failed assertion must not leave the server running (and eating the CPU).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
