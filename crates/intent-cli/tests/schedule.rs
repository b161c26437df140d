//! `intent schedule`: the printed crontab line runs the retrain when a shell executes it;
//! install / replace / status / remove through the `crontab` program (a fake one on PATH that
//! keeps the table in a file), other crontab lines untouched; no crontab program and bad times
//! are clean errors.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn intent(args: &[&str], cwd: &Path, path_env: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_intent"))
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "warn")
        .env("PATH", path_env)
        .env("FAKE_CRONTAB", cwd.join("table"))
        .output()
        .expect("runs")
}

fn ok(o: &Output) -> String {
    let (out, err) = (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "stdout: {out}\nstderr: {err}");
    out
}

fn fails_with(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.lines().any(|l| l.starts_with("error:") && l.contains(needle)),
        "expected '{needle}' in: {err}"
    );
}

#[test]
fn install_print_status_remove() {
    let dir = tempfile::tempdir().unwrap();
    let d = &std::fs::canonicalize(dir.path()).unwrap();
    let mut data = String::new();
    for (a, b) in [("card", "debit"), ("transfer", "wire"), ("refund", "money")] {
        for i in 0..15 {
            data.push_str(&format!("{{\"text\": \"question {i} on my {a} and {b}\", \"label\": \"{a}\"}}\n"));
        }
    }
    let (base, holdout): (Vec<&str>, Vec<&str>) =
        data.lines().enumerate().partition::<Vec<_>, _>(|(i, _)| i % 5 != 0).map_pair();
    std::fs::write(d.join("base.jsonl"), base.join("\n")).unwrap();
    std::fs::write(d.join("holdout.jsonl"), holdout.join("\n")).unwrap();
    std::fs::write(
        d.join("retrain.toml"),
        "model = \"faq\"\nkind = \"svm\"\nbase_data = \"base.jsonl\"\nholdout = \"holdout.jsonl\"\n",
    )
    .unwrap();
    let empty = d.join("empty-bin");
    let bin_dir = d.join("bin");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::create_dir_all(&bin_dir).unwrap();
    // The fake first on PATH (it needs `cat`).
    let bin = std::path::PathBuf::from(format!("{}:/usr/bin:/bin", bin_dir.display()));
    let fake = bin_dir.join("crontab");
    std::fs::write(
        &fake,
        "#!/bin/sh\ncase \"$1\" in\n-l) if [ -f \"$FAKE_CRONTAB\" ]; then cat \
        \"$FAKE_CRONTAB\"; else echo 'no crontab for tester' >&2; exit 1; fi ;;\n-) cat > \
            \"$FAKE_CRONTAB\" ;;\nesac\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();

    // --print: the line, which a shell runs as cron would.
    let line = ok(&intent(
        &["schedule", "install", "--print", "--day", "1", "--hour", "3", "--minute", "0"],
        d,
        &empty,
    ));
    let config = d.join("retrain.toml");
    assert!(line.starts_with("0 3 1 * * cd '"), "{line}");
    assert!(
        line.contains(&format!(" retrain --config '{}'", config.display()))
            && line.trim_end().ends_with(&format!("# intent-retrain {}", config.display())),
        "{line}"
    );
    let command: String = line.split_whitespace().skip(5).collect::<Vec<_>>().join(" ");
    let o = Command::new("/bin/sh").arg("-c").arg(&command).current_dir("/").output().unwrap();
    assert!(o.status.success(), "{o:?}");
    let history = std::fs::read_to_string(d.join("retrain/retrain_history.jsonl")).unwrap();
    assert!(history.contains("\"status\":\"deployed\""), "{history}");
    assert!(std::fs::read_to_string(d.join("retrain/cron.log"))
        .unwrap()
        .lines()
        .any(|l| l.starts_with("deployed: version 1")));
    let cron_status = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(d.join("retrain/cron_status.json")).unwrap()).unwrap()
    };
    let s = cron_status();
    assert_eq!((s["last_run"]["status"].as_str(), s["schedule"].is_null()), (Some("deployed"), true), "{s}");

    // Errors: no crontab program, times out of range.
    fails_with(&intent(&["schedule", "install"], d, &empty), "crontab program is not installed");
    fails_with(&intent(&["schedule", "install", "--print", "--hour", "24"], d, &empty), "--hour 24");
    fails_with(&intent(&["schedule", "install", "--print", "--config", "nope.toml"], d, &empty), "nope.toml");

    // Install next to another job, replace, status, remove.
    std::fs::write(d.join("table"), "*/5 * * * * backup.sh\n").unwrap();
    let out = ok(&intent(&["schedule", "install"], d, &bin));
    assert!(
        out.starts_with("installed the crontab entry") && out.contains("day 1 of every month at 03:00"),
        "{out}"
    );
    let out = ok(&intent(&["schedule", "install", "--day", "15", "--hour", "4", "--minute", "30"], d, &bin));
    assert!(out.starts_with("replaced"), "{out}");
    let table = std::fs::read_to_string(d.join("table")).unwrap();
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(table.starts_with("*/5 * * * * backup.sh\n30 4 15 * * cd "), "{table}");
    let out = ok(&intent(&["schedule", "status"], d, &bin));
    assert!(out.starts_with("scheduled: day 15 of every month at 04:30"), "{out}");
    assert!(out.contains("last run: deployed"), "{out}");
    let s = cron_status();
    assert_eq!(s["schedule"]["cron"], "30 4 15 * *", "{s}");
    assert_eq!(s["overdue"], false, "{s}");
    let next = s["next_run_unix"].as_i64().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!(next > now && next - now <= 32 * 86400, "the next 15th at 04:30: {s}");

    // The other forms of --every.
    for (args, fields, words) in [
        (&["--every", "weekly", "--weekday", "fri"][..], "0 3 * * 5", "every fri at 03:00"),
        (&["--every", "1,15"][..], "0 3 1,15 * *", "days 1, 15 of every month at 03:00"),
        (&["--every", "daily", "--hour", "23", "--minute", "5"][..], "5 23 * * *", "every day at 23:05"),
    ] {
        let out = ok(&intent(&[&["schedule", "install"][..], args].concat(), d, &bin));
        assert!(out.starts_with("replaced") && out.contains(words), "{out}");
        assert!(std::fs::read_to_string(d.join("table")).unwrap().contains(&format!("\n{fields} cd ")));
        assert_eq!(cron_status()["schedule"]["cron"], fields);
    }
    fails_with(
        &intent(&["schedule", "install", "--print", "--every", "hourly"], d, &empty),
        "--every \"hourly\"",
    );
    let out = ok(&intent(&["schedule", "remove"], d, &bin));
    assert!(out.starts_with("removed 1 crontab entry"), "{out}");
    assert_eq!(std::fs::read_to_string(d.join("table")).unwrap(), "*/5 * * * * backup.sh\n");
    assert!(cron_status()["schedule"].is_null(), "removed: no schedule in cron_status.json");
    assert!(ok(&intent(&["schedule", "status"], d, &bin)).starts_with("not scheduled"));
    assert!(ok(&intent(&["schedule", "remove"], d, &bin)).starts_with("nothing to remove"));
}

trait MapPair<T> {
    fn map_pair(self) -> (Vec<T>, Vec<T>);
}

impl<'a> MapPair<&'a str> for (Vec<(usize, &'a str)>, Vec<(usize, &'a str)>) {
    fn map_pair(self) -> (Vec<&'a str>, Vec<&'a str>) {
        (self.0.into_iter().map(|p| p.1).collect(), self.1.into_iter().map(|p| p.1).collect())
    }
}
