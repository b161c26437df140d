//! Crontab entries that run `intent retrain` on a schedule.
//!
//! An entry is one line: the five time fields, the command, and a trailing marker comment
//! `# intent-retrain CONFIG` naming the absolute path of the `retrain.toml` it runs, so that
//! installing again replaces the entry of the same config and removing deletes only it. The
//! crontab itself is read and written by the `crontab` program (the CLI does that); this module
//! only builds, finds and replaces lines.

use std::path::Path;

/// Marker that starts the trailing comment of an entry.
pub const MARKER: &str = "# intent-retrain ";

/// Which days the job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Every {
    /// These days of the month (1–31, sorted; a day beyond 28 skips the months without it).
    Days(Vec<u8>),
    /// One day of the week (0 Sunday … 6 Saturday, as cron).
    Weekly(u8),
    /// Every day.
    Daily,
}

/// When the job runs: the days and an hour and a minute (local time of the cron daemon).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronAt {
    /// The days.
    pub every: Every,
    /// Hour, 0–23.
    pub hour: u8,
    /// Minute, 0–59.
    pub minute: u8,
}

const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

impl CronAt {
    /// Day `day` of every month; the ranges are checked and the error names the flag.
    pub fn monthly(day: u8, hour: u8, minute: u8) -> Result<Self, String> {
        CronAt::new("monthly", day, "mon", hour, minute)
    }

    /// `every`: `monthly` (on `day`), `weekly` (on `weekday`: `mon` … `sun` or 0–6 from
    /// Sunday), `daily`, or days of the month such as `1,15`. The error names the flag.
    pub fn new(every: &str, day: u8, weekday: &str, hour: u8, minute: u8) -> Result<Self, String> {
        if hour > 23 {
            return Err(format!("--hour {hour}: expected 0 to 23"));
        }
        if minute > 59 {
            return Err(format!("--minute {minute}: expected 0 to 59"));
        }
        let day_ok = |d: u8, flag: &str| {
            if (1..=31).contains(&d) {
                Ok(d)
            } else {
                Err(format!("{flag} {d}: expected a day of the month, 1 to 31"))
            }
        };
        let every = match every.trim().to_ascii_lowercase().as_str() {
            "monthly" => Every::Days(vec![day_ok(day, "--day")?]),
            "daily" => Every::Daily,
            "weekly" => {
                let w = weekday.trim().to_ascii_lowercase();
                let n = WEEKDAYS
                    .iter()
                    .position(|d| w.starts_with(d))
                    .or_else(|| w.parse::<usize>().ok().filter(|&n| n <= 6))
                    .ok_or_else(|| format!("--weekday {weekday:?}: expected mon … sun or 0 (Sunday) to 6"))?;
                Every::Weekly(n as u8)
            }
            list => {
                let mut days = Vec::new();
                for part in list.split(',') {
                    let d = part.trim().parse::<u8>().map_err(|_| {
                        format!(
                            "--every {every:?}: expected monthly, weekly, daily or days of the month \
                             such as 1,15"
                        )
                    })?;
                    days.push(day_ok(d, "--every")?);
                }
                days.sort_unstable();
                days.dedup();
                Every::Days(days)
            }
        };
        Ok(CronAt { every, hour, minute })
    }

    /// The five cron time fields.
    pub fn fields(&self) -> String {
        let (m, h) = (self.minute, self.hour);
        match &self.every {
            Every::Days(days) => {
                let list: Vec<String> = days.iter().map(u8::to_string).collect();
                format!("{m} {h} {} * *", list.join(","))
            }
            Every::Weekly(w) => format!("{m} {h} * * {w}"),
            Every::Daily => format!("{m} {h} * * *"),
        }
    }

    /// In words: `day 1 of every month at 03:00`.
    pub fn describe(&self) -> String {
        let at = format!("at {:02}:{:02}", self.hour, self.minute);
        match &self.every {
            Every::Days(d) if d.len() == 1 => format!("day {} of every month {at}", d[0]),
            Every::Days(d) => {
                let list: Vec<String> = d.iter().map(u8::to_string).collect();
                format!("days {} of every month {at}", list.join(", "))
            }
            Every::Weekly(w) => format!("every {} {at}", WEEKDAYS[*w as usize]),
            Every::Daily => format!("every day {at}"),
        }
    }

    /// Parses the first five fields of a crontab line written by [`entry`].
    pub fn parse(line: &str) -> Option<Self> {
        let f: Vec<&str> = line.split_whitespace().take(5).collect();
        if f.len() != 5 || f[3] != "*" {
            return None;
        }
        let (minute, hour) = (f[0].parse().ok()?, f[1].parse().ok()?);
        let every = match (f[2], f[4]) {
            ("*", "*") => "daily".to_string(),
            ("*", w) => {
                return CronAt::new("weekly", 1, w, hour, minute).ok();
            }
            (days, "*") => days.to_string(),
            _ => return None,
        };
        CronAt::new(&every, 1, "mon", hour, minute).ok()
    }

    /// Whether the job runs on `date`.
    fn runs_on(&self, date: jiff::civil::Date) -> bool {
        match &self.every {
            Every::Days(days) => days.contains(&(date.day() as u8)),
            Every::Weekly(w) => date.weekday().to_sunday_zero_offset() as u8 == *w,
            Every::Daily => true,
        }
    }

    /// The first time after `after` that the job runs, in `after`'s time zone (a time skipped
    /// by a daylight-saving change runs at the next valid instant). `None` when no day in the
    /// next four years matches (day 31 always matches within them).
    pub fn next_after(&self, after: &jiff::Zoned) -> Option<jiff::Zoned> {
        let mut date = after.date();
        for _ in 0..(4 * 366) {
            if self.runs_on(date) {
                let t = date
                    .at(self.hour as i8, self.minute as i8, 0, 0)
                    .to_zoned(after.time_zone().clone())
                    .ok()?;
                if t > *after {
                    return Some(t);
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }
}

/// Quotes `s` for `/bin/sh` (single quotes; a single quote becomes `'\''`).
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `s` with cron's `%` escaped: unescaped, cron turns `%` into a newline and feeds the rest of
/// the line to the command's standard input (crontab(5)); `\%` reaches the shell as `%`.
fn cron_escape(s: &str) -> String {
    s.replace('%', r"\%")
}

/// The crontab line that runs `exe retrain --config CONFIG` at `at`, from the config's folder,
/// appending output to `log` (its folder is created first). All paths should be absolute (cron
/// starts in the home folder). A `%` in a path is escaped for cron.
pub fn entry(at: &CronAt, exe: &Path, config: &Path, log: &Path) -> String {
    let dir = config.parent().unwrap_or(Path::new("/"));
    let log_dir = log.parent().unwrap_or(Path::new("/"));
    cron_escape(&format!(
        "{} cd {} && mkdir -p {} && {} retrain --config {} >> {} 2>&1 {MARKER}{}",
        at.fields(),
        sh_quote(&dir.to_string_lossy()),
        sh_quote(&log_dir.to_string_lossy()),
        sh_quote(&exe.to_string_lossy()),
        sh_quote(&config.to_string_lossy()),
        sh_quote(&log.to_string_lossy()),
        config.display()
    ))
}

/// The config an entry line runs (`None` for other lines), as written in the line (a `%` in it
/// escaped as `\%`).
pub fn entry_config(line: &str) -> Option<&str> {
    line.rfind(MARKER).map(|i| line[i + MARKER.len()..].trim())
}

/// `crontab` with the entries of `config` removed and `line` (if any) appended; other lines stay
/// as they were. Returns the new text and how many entries were removed.
pub fn replace(crontab: &str, config: &Path, line: Option<&str>) -> (String, usize) {
    let key = cron_escape(&config.to_string_lossy());
    let mut removed = 0;
    let mut out = String::new();
    for l in crontab.lines() {
        if entry_config(l) == Some(key.as_ref()) {
            removed += 1;
        } else {
            out.push_str(l);
            out.push('\n');
        }
    }
    if let Some(line) = line {
        out.push_str(line);
        out.push('\n');
    }
    (out, removed)
}

/// The schedule `intent schedule install` put in the crontab, kept in the state folder so that
/// each run can say when the next one is due.
pub const SCHEDULE_FILE: &str = "schedule.json";
/// What a monitor reads: the last run, the next one, and whether one is overdue.
pub const CRON_STATUS_FILE: &str = "cron_status.json";
/// A scheduled run that has not happened this long after its time is overdue.
pub const OVERDUE_AFTER_S: i64 = 3600;

/// Records the installed schedule in `state_dir` (durably).
pub fn record_installed(state_dir: &Path, at: &CronAt) -> std::io::Result<()> {
    std::fs::create_dir_all(state_dir)?;
    let v = serde_json::json!({
        "cron": at.fields(),
        "describe": at.describe(),
        "installed_unix": intent_models::folder::now_unix(),
    });
    intent_data::durable::write_file(&state_dir.join(SCHEDULE_FILE), v.to_string().as_bytes())
}

/// Forgets the installed schedule (after `intent schedule remove`).
pub fn forget_installed(state_dir: &Path) {
    let _ = std::fs::remove_file(state_dir.join(SCHEDULE_FILE));
}

/// The cron status of `state_dir` at `now`: `last_run` (the last history line's id, status,
/// time and reason), `schedule` (`cron`, `describe`; `null` when none is installed),
/// `next_run_unix` and `next_run` (RFC 3339, the zone of `now`), and `overdue`: the first
/// scheduled time after the last run (or after the installation) passed more than
/// [`OVERDUE_AFTER_S`] ago without a run.
pub fn cron_status(
    state_dir: &Path,
    last: Option<&super::RetrainOutcome>,
    now: &jiff::Zoned,
) -> serde_json::Value {
    let installed: Option<serde_json::Value> = std::fs::read_to_string(state_dir.join(SCHEDULE_FILE))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let at = installed.as_ref().and_then(|v| CronAt::parse(v["cron"].as_str()?));
    let zoned =
        |unix: i64| jiff::Timestamp::from_second(unix).ok().map(|t| t.to_zoned(now.time_zone().clone()));
    let since = last
        .map(|l| l.timestamp_unix as i64)
        .or_else(|| installed.as_ref().and_then(|v| v["installed_unix"].as_i64()));
    let due = at.as_ref().zip(since.and_then(zoned)).and_then(|(a, t)| a.next_after(&t));
    let next = at.as_ref().and_then(|a| a.next_after(now));
    serde_json::json!({
        "last_run": last.map(|l| serde_json::json!({
            "retrain_id": l.retrain_id, "status": l.status, "timestamp_unix": l.timestamp_unix,
            "reason": l.reason,
        })),
        "schedule": at.as_ref().map(|a| serde_json::json!({ "cron": a.fields(), "describe": a.describe() })),
        "next_run_unix": next.as_ref().map(|t| t.timestamp().as_second()),
        "next_run": next.as_ref().map(|t| t.timestamp().to_string()),
        "overdue": due
            .is_some_and(|d| now.timestamp().as_second() - d.timestamp().as_second() > OVERDUE_AFTER_S),
        "written_unix": now.timestamp().as_second(),
    })
}

/// Writes [`cron_status`] of the config's state folder now (the system's time zone) to
/// [`CRON_STATUS_FILE`] and returns it.
pub fn write_cron_status(cfg: &super::RetrainConfig) -> std::io::Result<serde_json::Value> {
    let last = super::history(cfg).pop();
    let v = cron_status(&cfg.state_dir, last.as_ref(), &jiff::Zoned::now());
    std::fs::create_dir_all(&cfg.state_dir)?;
    let text = serde_json::to_string_pretty(&v).expect("serializes");
    intent_data::durable::write_file(&cfg.state_dir.join(CRON_STATUS_FILE), text.as_bytes())?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_percent_in_a_path_is_escaped_for_cron_and_the_entry_is_still_found() {
        let at = CronAt::monthly(1, 3, 0).unwrap();
        let config = Path::new("/srv/100%/retrain.toml");
        let line = entry(&at, Path::new("/usr/bin/intent"), config, Path::new("/srv/100%/log"));
        // Every % is escaped: cron would cut the command at a bare one.
        assert!(!line.replace(r"\%", "").contains('%'), "{line}");
        assert!(line.contains(r"cd '/srv/100\%' &&"), "{line}");
        let (text, removed) = replace(&format!("0 1 * * * other\n{line}\n"), config, None);
        assert_eq!((text.as_str(), removed), ("0 1 * * * other\n", 1));
    }

    #[test]
    fn entry_round_trip_and_replace() {
        let at = CronAt::monthly(1, 3, 0).unwrap();
        let line = entry(
            &at,
            Path::new("/usr/bin/intent"),
            Path::new("/srv/it's/retrain.toml"),
            Path::new("/srv/log"),
        );
        assert_eq!(
            line,
            concat!(
                r"0 3 1 * * cd '/srv/it'\''s' && mkdir -p '/srv' && '/usr/bin/intent' retrain ",
                r"--config '/srv/it'\''s/retrain.toml' >> '/srv/log' 2>&1 ",
                r"# intent-retrain /srv/it's/retrain.toml"
            )
        );
        assert_eq!(CronAt::parse(&line), Some(at.clone()));
        assert_eq!(entry_config(&line), Some("/srv/it's/retrain.toml"));
        assert_eq!(at.describe(), "day 1 of every month at 03:00");

        let other = "*/5 * * * * backup.sh";
        let old = entry(
            &CronAt::monthly(15, 4, 30).unwrap(),
            Path::new("/x/intent"),
            Path::new("/srv/it's/retrain.toml"),
            Path::new("/srv/log"),
        );
        let (text, removed) =
            replace(&format!("{other}\n{old}\n"), Path::new("/srv/it's/retrain.toml"), Some(&line));
        assert_eq!((text, removed), (format!("{other}\n{line}\n"), 1));
        let (text, removed) =
            replace(&format!("{other}\n{line}\n"), Path::new("/srv/it's/retrain.toml"), None);
        assert_eq!((text, removed), (format!("{other}\n"), 1));
    }

    #[test]
    fn ranges_are_checked() {
        assert!(CronAt::monthly(0, 3, 0).unwrap_err().contains("--day 0"));
        assert!(CronAt::monthly(32, 3, 0).is_err());
        assert!(CronAt::monthly(1, 24, 0).unwrap_err().contains("--hour 24"));
        assert!(CronAt::monthly(1, 3, 60).unwrap_err().contains("--minute 60"));
        assert_eq!(CronAt::parse("0 3 1 * 1 x"), None);
        assert!(CronAt::new("1,32", 1, "mon", 3, 0).unwrap_err().contains("--every 32"));
        assert!(CronAt::new("fortnightly", 1, "mon", 3, 0).unwrap_err().contains("--every \"fortnightly\""));
        assert!(CronAt::new("weekly", 1, "someday", 3, 0).unwrap_err().contains("--weekday"));
    }

    #[test]
    fn every_form_round_trips_through_its_fields() {
        for (every, weekday, fields, words) in [
            ("monthly", "mon", "0 3 1 * *", "day 1 of every month at 03:00"),
            ("15,1", "mon", "0 3 1,15 * *", "days 1, 15 of every month at 03:00"),
            ("weekly", "fri", "0 3 * * 5", "every fri at 03:00"),
            ("weekly", "0", "0 3 * * 0", "every sun at 03:00"),
            ("daily", "mon", "0 3 * * *", "every day at 03:00"),
        ] {
            let at = CronAt::new(every, 1, weekday, 3, 0).unwrap();
            assert_eq!((at.fields().as_str(), at.describe().as_str()), (fields, words));
            assert_eq!(CronAt::parse(&format!("{fields} cmd")), Some(at));
        }
    }

    #[test]
    fn cron_status_says_when_the_next_run_is_and_whether_one_is_overdue() {
        let dir = tempfile::tempdir().unwrap();
        let tz = jiff::tz::TimeZone::UTC;
        let at = |s: &str| {
            jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M", s).unwrap().to_zoned(tz.clone()).unwrap()
        };
        let now = at("2026-12-01 12:00");
        let none = cron_status(dir.path(), None, &now);
        assert_eq!((none["schedule"].is_null(), none["overdue"].as_bool()), (true, Some(false)));

        record_installed(dir.path(), &CronAt::new("1,15", 1, "mon", 3, 0).unwrap()).unwrap();
        let line = |when: &str| super::super::RetrainOutcome {
            retrain_id: "1-2".into(),
            timestamp_unix: at(when).timestamp().as_second() as u64,
            model: "faq".into(),
            kind: None,
            kind_before: None,
            status: super::super::RunStatus::Deployed,
            reason: "version 2 is current".into(),
            triggers: Vec::new(),
            dataset_quality: None,
            versions: Default::default(),
            scores: None,
            served_quality: None,
            labels_pulled: None,
            durations_s: Default::default(),
        };
        // Ran on the 1st: the 15th is next, nothing overdue.
        let s = cron_status(dir.path(), Some(&line("2026-12-01 03:00")), &now);
        assert_eq!(s["schedule"]["cron"], "0 3 1,15 * *");
        assert_eq!(s["next_run"], "2026-12-15T03:00:00Z");
        assert_eq!(s["overdue"], false);
        assert_eq!(s["last_run"]["status"], "deployed");
        // Last ran on November 1st: the run of November 15th never came.
        let s = cron_status(dir.path(), Some(&line("2026-11-01 03:00")), &now);
        assert_eq!(s["overdue"], true);
        // Within the hour after its time, a run is not overdue yet.
        let s = cron_status(dir.path(), Some(&line("2026-11-15 03:00")), &at("2026-12-01 03:30"));
        assert_eq!(s["overdue"], false);
        forget_installed(dir.path());
        assert!(cron_status(dir.path(), None, &now)["next_run"].is_null());
    }

    #[test]
    fn the_next_run_is_computed_in_the_time_zone_given() {
        // A fixed offset: no time-zone database needed.
        let tz = jiff::tz::TimeZone::fixed(jiff::tz::offset(1));
        let at = |s: &str| {
            jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M", s).unwrap().to_zoned(tz.clone()).unwrap()
        };
        let next = |every: &str, after: &str| {
            CronAt::new(every, 31, "sun", 3, 0)
                .unwrap()
                .next_after(&at(after))
                .unwrap()
                .datetime()
                .to_string()
        };
        // Day 31: February and April are skipped.
        assert_eq!(next("monthly", "2026-02-01 00:00"), "2026-03-31T03:00:00");
        assert_eq!(next("1,15", "2026-03-15 03:00"), "2026-04-01T03:00:00", "strictly after");
        assert_eq!(next("1,15", "2026-03-15 02:59"), "2026-03-15T03:00:00");
        assert_eq!(next("weekly", "2026-12-01 12:00"), "2026-12-06T03:00:00", "the Sunday after a Tuesday");
        assert_eq!(next("daily", "2026-12-31 23:00"), "2027-01-01T03:00:00");
    }
}
