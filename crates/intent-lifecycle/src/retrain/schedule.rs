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

/// When the job runs: a day of the month, an hour and a minute (local time of the cron daemon).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonthlyAt {
    /// Day of the month, 1–31 (a day beyond 28 skips the months without it).
    pub day: u8,
    /// Hour, 0–23.
    pub hour: u8,
    /// Minute, 0–59.
    pub minute: u8,
}

impl MonthlyAt {
    /// Checks the ranges; the error names the flag.
    pub fn new(day: u8, hour: u8, minute: u8) -> Result<Self, String> {
        if !(1..=31).contains(&day) {
            return Err(format!("--day {day}: expected a day of the month, 1 to 31"));
        }
        if hour > 23 {
            return Err(format!("--hour {hour}: expected 0 to 23"));
        }
        if minute > 59 {
            return Err(format!("--minute {minute}: expected 0 to 59"));
        }
        Ok(MonthlyAt { day, hour, minute })
    }

    /// The five cron time fields.
    pub fn fields(&self) -> String {
        format!("{} {} {} * *", self.minute, self.hour, self.day)
    }

    /// In words: `day 1 of every month at 03:00`.
    pub fn describe(&self) -> String {
        format!("day {} of every month at {:02}:{:02}", self.day, self.hour, self.minute)
    }

    /// Parses the first five fields of a crontab line written by [`entry`].
    pub fn parse(line: &str) -> Option<Self> {
        let f: Vec<&str> = line.split_whitespace().take(5).collect();
        if f.len() != 5 || f[3] != "*" || f[4] != "*" {
            return None;
        }
        MonthlyAt::new(f[2].parse().ok()?, f[1].parse().ok()?, f[0].parse().ok()?).ok()
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
pub fn entry(at: MonthlyAt, exe: &Path, config: &Path, log: &Path) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_percent_in_a_path_is_escaped_for_cron_and_the_entry_is_still_found() {
        let at = MonthlyAt::new(1, 3, 0).unwrap();
        let config = Path::new("/srv/100%/retrain.toml");
        let line = entry(at, Path::new("/usr/bin/intent"), config, Path::new("/srv/100%/log"));
        // Every % is escaped: cron would cut the command at a bare one.
        assert!(!line.replace(r"\%", "").contains('%'), "{line}");
        assert!(line.contains(r"cd '/srv/100\%' &&"), "{line}");
        let (text, removed) = replace(&format!("0 1 * * * other\n{line}\n"), config, None);
        assert_eq!((text.as_str(), removed), ("0 1 * * * other\n", 1));
    }

    #[test]
    fn entry_round_trip_and_replace() {
        let at = MonthlyAt::new(1, 3, 0).unwrap();
        let line = entry(
            at,
            Path::new("/usr/bin/intent"),
            Path::new("/srv/it's/retrain.toml"),
            Path::new("/srv/log"),
        );
        assert_eq!(
            line,
            r"0 3 1 * * cd '/srv/it'\''s' && mkdir -p '/srv' && '/usr/bin/intent' retrain --config '/srv/it'\''s/retrain.toml' >> '/srv/log' 2>&1 # intent-retrain /srv/it's/retrain.toml"
        );
        assert_eq!(MonthlyAt::parse(&line), Some(at));
        assert_eq!(entry_config(&line), Some("/srv/it's/retrain.toml"));
        assert_eq!(at.describe(), "day 1 of every month at 03:00");

        let other = "*/5 * * * * backup.sh";
        let old = entry(
            MonthlyAt::new(15, 4, 30).unwrap(),
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
        assert!(MonthlyAt::new(0, 3, 0).unwrap_err().contains("--day 0"));
        assert!(MonthlyAt::new(32, 3, 0).is_err());
        assert!(MonthlyAt::new(1, 24, 0).unwrap_err().contains("--hour 24"));
        assert!(MonthlyAt::new(1, 3, 60).unwrap_err().contains("--minute 60"));
        assert_eq!(MonthlyAt::parse("0 3 1 * 1 x"), None);
    }
}
