//! Durations and sizes written as decimals from integers, without `f64` formatting.
//!
//! Every number the init prints (seconds, milliseconds, MiB) is a ratio of integers with a
//! terminating decimal expansion. Writing them through `f64`'s `Display` linked the standard
//! library's float-to-decimal code (Grisu, Dragon4 and their tables: about 12 KB of the aarch64
//! init's size budget, tests/static_build.rs). [`Decimal`] writes the same text from integer
//! arithmetic: `{}` gives every digit with trailing zeros dropped (`1.5`, `2`), `{:.N}` gives N
//! decimals rounded half to even, as `f64` does.

use std::fmt;
use std::time::Duration;

/// `num / den`, written in decimal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decimal {
    num: u64,
    den: u64,
}

/// Digits written after the point at most when no precision is given: enough for nanoseconds
/// and for any number of bytes divided by 2^20.
const MAX_DIGITS: usize = 20;

impl Decimal {
    /// `d` in seconds.
    pub fn secs(d: Duration) -> Self {
        Self::ratio(nanos(d), 1_000_000_000)
    }

    /// `d` in milliseconds.
    pub fn millis(d: Duration) -> Self {
        Self::ratio(nanos(d), 1_000_000)
    }

    /// `bytes` in MiB.
    pub fn mib(bytes: u64) -> Self {
        Self::ratio(bytes, 1 << 20)
    }

    /// `num / den`; `den` is not zero.
    pub(crate) fn ratio(num: u64, den: u64) -> Self {
        Self { num, den }
    }
}

/// Saturates at about 584 years, far beyond any duration ramboot prints.
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (mut int, mut rem) = (self.num / self.den, self.num % self.den);
        let Some(places) = f.precision() else {
            write!(f, "{int}")?;
            if rem != 0 {
                f.write_str(".")?;
            }
            for _ in 0..MAX_DIGITS {
                if rem == 0 {
                    break;
                }
                rem *= 10;
                write!(f, "{}", rem / self.den)?;
                rem %= self.den;
            }
            return Ok(());
        };
        // 10^19 still fits in a u64; no caller asks for more than three places.
        let places = places.min(18);
        let mut frac: u64 = 0;
        for _ in 0..places {
            rem *= 10;
            frac = frac * 10 + rem / self.den;
            rem %= self.den;
        }
        let last_odd = if places == 0 {
            int % 2 == 1
        } else {
            frac % 2 == 1
        };
        if rem * 2 > self.den || (rem * 2 == self.den && last_odd) {
            frac += 1;
            if frac == 10u64.pow(places as u32) {
                (frac, int) = (0, int + 1);
            }
        }
        if places == 0 {
            write!(f, "{int}")
        } else {
            write!(f, "{int}.{frac:0places$}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn without_precision_every_digit_and_no_trailing_zeros() {
        assert_eq!(Decimal::secs(ms(5000)).to_string(), "5");
        assert_eq!(Decimal::secs(ms(1500)).to_string(), "1.5");
        assert_eq!(Decimal::secs(ms(0)).to_string(), "0");
        assert_eq!(
            Decimal::secs(Duration::from_secs(10) / 3).to_string(),
            "3.333333333"
        );
        assert_eq!(
            Decimal::secs(Duration::from_nanos(1)).to_string(),
            "0.000000001"
        );
        assert_eq!(Decimal::mib(3 << 19).to_string(), "1.5");
        assert_eq!(Decimal::mib(1).to_string(), "0.00000095367431640625");
    }

    #[test]
    fn precision_rounds_half_to_even_and_carries() {
        assert_eq!(format!("{:.1}", Decimal::secs(ms(250))), "0.2");
        assert_eq!(format!("{:.1}", Decimal::secs(ms(350))), "0.4");
        assert_eq!(format!("{:.1}", Decimal::secs(ms(251))), "0.3");
        assert_eq!(format!("{:.1}", Decimal::secs(ms(999))), "1.0");
        assert_eq!(
            format!("{:.0}", Decimal::millis(Duration::from_micros(2500))),
            "2"
        );
        assert_eq!(
            format!("{:.0}", Decimal::millis(Duration::from_micros(3500))),
            "4"
        );
        assert_eq!(
            format!("{:.0}", Decimal::millis(Duration::from_micros(3499))),
            "3"
        );
        assert_eq!(format!("{:.2}", Decimal::secs(ms(1520))), "1.52");
        assert_eq!(format!("{:.3}", Decimal::secs(ms(7))), "0.007");
        assert_eq!(format!("{:.3}", Decimal::secs(ms(2))), "0.002");
        assert_eq!(format!("{:.1}", Decimal::mib(0)), "0.0");
    }

    /// Where the float has no tie to break, the text is the float's own. For `{}` the float is
    /// the correctly rounded quotient: `as_secs_f64` adds seconds and nanoseconds as two floats
    /// and is sometimes one unit in the last place off (`1.0166520000000001` for 1.016652 s),
    /// which the integers do not reproduce.
    #[test]
    fn same_text_as_the_float_it_replaces() {
        for n in (0..200_000u64).step_by(7) {
            let micros = n * 13;
            let d = Duration::from_micros(micros);
            let exact = micros as f64 / 1e6;
            assert_eq!(Decimal::secs(d).to_string(), exact.to_string(), "{d:?}");
            let secs = d.as_secs_f64();
            if micros % 10_000 != 5_000 {
                assert_eq!(format!("{:.2}", Decimal::secs(d)), format!("{secs:.2}"));
            }
            if micros % 1_000 != 500 {
                assert_eq!(format!("{:.3}", Decimal::secs(d)), format!("{secs:.3}"));
            }
            let millis = d.as_secs_f64() * 1000.0;
            if micros % 1000 != 500 {
                assert_eq!(format!("{:.0}", Decimal::millis(d)), format!("{millis:.0}"));
            }
            let bytes = n * 4099;
            let mib = bytes as f64 / (1024.0 * 1024.0);
            assert_eq!(
                format!("{:.1}", Decimal::mib(bytes)),
                format!("{mib:.1}"),
                "{bytes}"
            );
        }
    }
}
