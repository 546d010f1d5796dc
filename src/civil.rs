//! Calendar date and time of day of a Unix time, UTC, without a time-zone library: lbu's backup
//! names (`ramboot commit`) and FAT timestamps (`ramboot sdimage`) need nothing more.

/// A UTC date and time of day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl Civil {
    /// The UTC date and time of `secs` since 1970-01-01 (days to civil date: Howard Hinnant's
    /// algorithm, exact over the proleptic Gregorian calendar).
    pub fn from_unix(secs: i64) -> Civil {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        Civil {
            year: yoe + era * 400 + i64::from(month <= 2),
            month: month as u32,
            day: day as u32,
            hour: (rem / 3600) as u32,
            minute: (rem / 60 % 60) as u32,
            second: (rem % 60) as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Civil;

    #[test]
    fn known_dates() {
        let c = |y, mo, d, h, mi, s| Civil {
            year: y,
            month: mo,
            day: d,
            hour: h,
            minute: mi,
            second: s,
        };
        assert_eq!(Civil::from_unix(0), c(1970, 1, 1, 0, 0, 0));
        assert_eq!(Civil::from_unix(951_782_400), c(2000, 2, 29, 0, 0, 0));
        assert_eq!(Civil::from_unix(1_700_000_000), c(2023, 11, 14, 22, 13, 20));
        assert_eq!(Civil::from_unix(-1), c(1969, 12, 31, 23, 59, 59));
    }
}
