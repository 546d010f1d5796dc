//! The boot timeline: each stage's start and end on `CLOCK_BOOTTIME`, plus marks for single
//! events (a device appeared, the media was ready). Printed as one line at handoff and written as
//! JSON into the new root, so "where did the boot spend its time" has an answer on every boot.

use crate::decimal::Decimal;
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
    pub handoff: Option<Duration>,
}

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
            Decimal::secs(self.init_start)
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
                    Decimal::millis(st.end.saturating_sub(st.start))
                )
            })
            .collect();
        let _ = write!(s, " {}", parts.join(", "));
        if let Some(h) = self.handoff {
            let _ = write!(
                s,
                "; handoff at {:.2}s ({:.0}ms in /init)",
                Decimal::secs(h),
                Decimal::millis(h.saturating_sub(self.init_start))
            );
        }
        s
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
        assert!(j.ends_with("\"marks\":[{\"name\":\"device vda\",\"at_ms\":1600}]}"));
    }
}
