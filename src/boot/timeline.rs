//! The boot timeline: each stage's start and end on `CLOCK_BOOTTIME`, plus marks for single
//! events (a device appeared, the media was ready). Printed as one line at handoff and written as
//! JSON into the new root, so "where did the boot spend its time" has an answer on every boot.
//! Each module load is timed too: the summary names the slowest, the JSON lists them all.

use crate::hw::modules::ModuleTime;
use crate::json::Json;
use std::fmt::Write as _;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The stage finished but something was skipped; the text says what.
    Degraded(String),
    Failed(String),
}

#[derive(Clone, Debug)]
pub struct Stage {
    pub name: String,
    pub start: Duration,
    pub end: Duration,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// When `/init` started (kernel time before this is the kernel's own boot + unpacking).
    pub init_start: Duration,
    pub stages: Vec<Stage>,
    pub marks: Vec<(String, Duration)>,
    /// Each module loaded during the boot, in the order the loads finished.
    pub modules: Vec<ModuleTime>,
    pub handoff: Option<Duration>,
}

/// How many of the slowest module loads the summary names.
const SLOWEST_SHOWN: usize = 3;

fn ms(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}

impl Timeline {
    pub fn new(init_start: Duration) -> Self {
        Self {
            init_start,
            ..Default::default()
        }
    }

    pub fn stage(&mut self, name: &str, start: Duration, end: Duration, outcome: Outcome) {
        self.stages.push(Stage {
            name: name.to_string(),
            start,
            end,
            outcome,
        });
    }

    pub fn mark(&mut self, name: &str, at: Duration) {
        self.marks.push((name.to_string(), at));
    }

    /// `ramboot: kernel 1.52s → /init; early 4ms, drivers 31ms, root 120ms; handoff at 1.68s (157ms in /init)`
    pub fn summary(&self) -> String {
        let mut s = format!(
            "ramboot: kernel {:.2}s → /init;",
            self.init_start.as_secs_f64()
        );
        let parts: Vec<String> = self
            .stages
            .iter()
            .map(|st| {
                let flag = match &st.outcome {
                    Outcome::Ok => "",
                    Outcome::Degraded(_) => " (degraded)",
                    Outcome::Failed(_) => " (failed)",
                };
                format!(
                    "{} {:.0}ms{flag}",
                    st.name,
                    ms(st.end.saturating_sub(st.start))
                )
            })
            .collect();
        let _ = write!(s, " {}", parts.join(", "));
        let slowest = self.slowest_modules();
        if !slowest.is_empty() {
            let _ = write!(s, "; slowest modules {}", slowest.join(", "));
        }
        if let Some(h) = self.handoff {
            let _ = write!(
                s,
                "; handoff at {:.2}s ({:.0}ms in /init)",
                h.as_secs_f64(),
                ms(h.saturating_sub(self.init_start))
            );
        }
        s
    }

    /// `usb_storage 41ms`, slowest first by their own time (without waits for the CPU); loads
    /// under a millisecond are not worth a mention.
    fn slowest_modules(&self) -> Vec<String> {
        let mut by_time: Vec<(&str, Duration)> = self
            .modules
            .iter()
            .map(|m| (m.name.as_str(), m.own()))
            .filter(|(_, d)| *d >= Duration::from_millis(1))
            .collect();
        crate::sys::sort::sort_by(&mut by_time, |a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        by_time
            .iter()
            .take(SLOWEST_SHOWN)
            .map(|(n, d)| format!("{n} {:.0}ms", ms(*d)))
            .collect()
    }

    pub fn to_json(&self) -> String {
        let mut fields = vec![("init_start_ms", Json::Num(ms(self.init_start)))];
        if let Some(h) = self.handoff {
            fields.push(("handoff_ms", Json::Num(ms(h))));
            fields.push((
                "in_init_ms",
                Json::Num(ms(h.saturating_sub(self.init_start))),
            ));
        }
        let stages = self.stages.iter().map(|st| {
            let mut s = vec![
                ("name", Json::str(&st.name)),
                ("start_ms", Json::Num(ms(st.start))),
                ("end_ms", Json::Num(ms(st.end))),
                (
                    "duration_ms",
                    Json::Num(ms(st.end.saturating_sub(st.start))),
                ),
            ];
            let (outcome, note) = match &st.outcome {
                Outcome::Ok => ("ok", None),
                Outcome::Degraded(w) => ("degraded", Some(w)),
                Outcome::Failed(w) => ("failed", Some(w)),
            };
            s.push(("outcome", Json::str(outcome)));
            s.extend(note.map(|w| ("note", Json::str(w))));
            Json::obj(s)
        });
        fields.push(("stages", Json::Arr(stages.collect())));
        let marks = self
            .marks
            .iter()
            .map(|(n, at)| Json::obj([("name", Json::str(n)), ("at_ms", Json::Num(ms(*at)))]));
        fields.push(("marks", Json::Arr(marks.collect())));
        let modules = self.modules.iter().map(|m| {
            Json::obj([
                ("name", Json::str(&m.name)),
                ("start_ms", Json::Num(ms(m.start))),
                ("duration_ms", Json::Num(ms(m.end.saturating_sub(m.start)))),
                ("cpu_wait_ms", Json::Num(ms(m.cpu_wait))),
            ])
        });
        fields.push(("modules", Json::Arr(modules.collect())));
        Json::obj(fields).render(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_and_json() {
        let mut t = Timeline::new(Duration::from_millis(1500));
        t.stage(
            "early",
            Duration::from_millis(1500),
            Duration::from_millis(1504),
            Outcome::Ok,
        );
        t.stage(
            "root",
            Duration::from_millis(1504),
            Duration::from_millis(1620),
            Outcome::Degraded("x \"y\"".into()),
        );
        t.mark("device vda", Duration::from_millis(1600));
        t.handoff = Some(Duration::from_millis(1650));
        assert_eq!(t.summary(), "ramboot: kernel 1.50s → /init; early 4ms, root 116ms (degraded); handoff at 1.65s (150ms in /init)");
        let j = t.to_json();
        assert!(j.starts_with("{\"init_start_ms\":1500,\"handoff_ms\":1650,\"in_init_ms\":150,\"stages\":[{\"name\":\"early\""), "{j}");
        assert!(j.contains("\"note\":\"x \\\"y\\\"\""));
        assert!(j.ends_with("\"marks\":[{\"name\":\"device vda\",\"at_ms\":1600}],\"modules\":[]}"));
    }

    /// The slowest loads are named in the summary (at most three, none under a millisecond, by
    /// their own time: `loop` waited 87 of its 90 ms for the CPU); the JSON lists every load.
    #[test]
    fn module_loads_are_in_the_summary_and_the_json() {
        let mut t = Timeline::new(Duration::from_millis(1000));
        let load = |name: &str, start: u64, micros: u64| ModuleTime {
            name: name.into(),
            start: Duration::from_millis(start),
            end: Duration::from_millis(start) + Duration::from_micros(micros),
            cpu_wait: Duration::ZERO,
        };
        let mut waited = load("loop", 1001, 90_000);
        waited.cpu_wait = Duration::from_millis(87);
        t.modules = vec![
            waited,
            load("usb_storage", 1002, 41_000),
            load("tiny", 1003, 400),
            load("sd_mod", 1004, 12_000),
            load("scsi_mod", 1005, 20_000),
        ];
        t.handoff = Some(Duration::from_millis(1100));
        assert_eq!(
            t.summary(),
            "ramboot: kernel 1.00s → /init; ; slowest modules usb_storage 41ms, scsi_mod 20ms, sd_mod 12ms; handoff at 1.10s (100ms in /init)"
        );
        let j = t.to_json();
        assert!(
            j.contains("\"modules\":[{\"name\":\"loop\",\"start_ms\":1001,\"duration_ms\":90,\"cpu_wait_ms\":87},"),
            "{j}"
        );
        assert!(
            j.ends_with(
                "{\"name\":\"scsi_mod\",\"start_ms\":1005,\"duration_ms\":20,\"cpu_wait_ms\":0}]}"
            ),
            "{j}"
        );
    }
}
