//! A throwaway PostgreSQL cluster for tests: `initdb` into a temporary folder, `pg_ctl start` on
//! a free loopback port, `pg_ctl stop` when dropped. The binaries come from `pg_config --bindir`
//! (the Debian `postgresql` package; `.ci/run` installs it). As root, which `initdb` refuses,
//! they run as the `postgres` user through `runuser`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A running cluster; stopped (fast mode) and removed when dropped.
pub struct PgCluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn run(bin: &Path, tool: &str, args: &[&str]) -> Output {
    let exe = bin.join(tool);
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    cmd.args(args).output().unwrap_or_else(|e| panic!("{}: {e}", exe.display()))
}

impl PgCluster {
    /// Starts a cluster with a trust-authenticated superuser `intent`.
    ///
    /// # Panics
    /// When PostgreSQL is not installed (`pg_config` missing) or does not start; the message
    /// says which.
    pub fn start() -> PgCluster {
        let out = Command::new("pg_config").arg("--bindir").output().expect(
            "pg_config not found: install PostgreSQL (Debian: apt-get install postgresql), as .ci/run does",
        );
        let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let dir = tempfile::Builder::new().prefix("intent-pg-").tempdir().expect("temporary folder");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("data folder");
        if is_root() {
            // The cluster's files belong to `postgres`, which must also reach them.
            let owner = Command::new("chown").args(["-R", "postgres:"]).arg(dir.path()).status();
            assert!(owner.is_ok_and(|s| s.success()), "chown postgres {}", dir.path().display());
            std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        let d = data.to_str().expect("UTF-8 path");
        let o = run(&bin, "initdb", &["-D", d, "-U", "intent", "--auth=trust", "-E", "UTF8", "--no-sync"]);
        assert!(o.status.success(), "initdb: {}", String::from_utf8_lossy(&o.stderr));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let opts = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={d} -c fsync=off \
                -c max_connections=200"
        );
        let log = data.join("server.log");
        let o = run(&bin, "pg_ctl", &["-D", d, "-l", log.to_str().unwrap(), "-o", &opts, "-w", "start"]);
        assert!(
            o.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&o.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        PgCluster { bin, data, port, _dir: dir }
    }

    /// `postgres://intent@127.0.0.1:PORT/DB` for database `db` (created when missing).
    pub fn url(&self, db: &str) -> String {
        let base = format!("postgres://intent@127.0.0.1:{}/postgres", self.port);
        if db != "postgres" {
            let o = Command::new(self.bin.join("psql"))
                .args([base.as_str(), "-qc", &format!("CREATE DATABASE \"{db}\"")])
                .output()
                .expect("psql");
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success() || err.contains("already exists"), "create database {db}: {err}");
        }
        format!("postgres://intent@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let d = self.data.to_str().unwrap_or_default().to_string();
        run(&self.bin, "pg_ctl", &["-D", &d, "-m", "immediate", "stop"]);
    }
}
