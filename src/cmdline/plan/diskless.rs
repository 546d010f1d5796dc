//! The diskless mode: where the apkovl, the repositories and the packages come from.

use super::*;
use std::time::Duration;

impl Planner<'_> {
    pub(super) fn diskless(&mut self, service_mode: bool) -> Diskless {
        for opt in [
            Opt::Overlaytmpfs,
            Opt::Overlaytmpfsflags,
            Opt::Usrflags,
            Opt::ZfsForce,
        ] {
            if self.get(opt).is_some() {
                self.warn(WarningKind::Ignored, opt.name(), "only used with root=");
            }
        }
        let mut tmpfs_flags = String::from("mode=0755");
        if let Some(size) = self.value(Opt::RootSize) {
            self.warn(
                WarningKind::Deprecated,
                "root_size",
                format!("deprecated; use rootflags=size={size}"),
            );
            tmpfs_flags.push_str(",size=");
            tmpfs_flags.push_str(size);
        }
        if let Some(flags) = self.value(Opt::Rootflags) {
            tmpfs_flags.push(',');
            tmpfs_flags.push_str(flags);
        }
        let pkgs = self
            .value(Opt::Pkgs)
            .map(|p| {
                p.split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let usbdelay = self.usbdelay();
        let ssh_key = self.value(Opt::SshKey).map(str::to_string);
        Diskless {
            apkovl: self.apkovl(),
            repos: self.repos(),
            pkgs,
            usbdelay,
            tmpfs_flags,
            ssh_key,
            apkovl_key: self.value(Opt::ApkovlKey).map(PathBuf::from),
            keep_apk_new: self.flag(Opt::KeepApkNew, false),
            bootstrap_usr_merged: self.flag(Opt::BootstrapUsrMerged, false),
            root_cache: self.flag(Opt::RambootCache, true),
            lkg_tries: self.lkg_tries(service_mode),
        }
    }

    /// `ramboot_lkg`: how many unconfirmed boots of an apkovl before the previous one is used.
    /// On by default only in service mode, where ramboot itself confirms a boot.
    fn lkg_tries(&mut self, service_mode: bool) -> u32 {
        let default = if service_mode { DEFAULT_LKG_TRIES } else { 0 };
        let v = match self.get(Opt::RambootLkg) {
            None => return default,
            Some(Setting::Bare) => return DEFAULT_LKG_TRIES,
            Some(Setting::Negated) => return 0,
            Some(Setting::Value(v)) => v.clone(),
        };
        match v.as_str() {
            "" => default,
            "no" | "off" | "0" => 0,
            "yes" => DEFAULT_LKG_TRIES,
            n => match n.parse::<u32>() {
                Ok(n) if n <= 100 => n,
                _ => {
                    self.warn(
                        WarningKind::InvalidValue,
                        "ramboot_lkg",
                        format!("`ramboot_lkg={v}` is not a number of boots (1 to 100) or no; using {DEFAULT_LKG_TRIES}"),
                    );
                    DEFAULT_LKG_TRIES
                }
            },
        }
    }

    fn usbdelay(&mut self) -> Option<Duration> {
        let v = self.value(Opt::Usbdelay)?;
        match parse_seconds(v) {
            Some(d) if d <= Duration::from_secs(3600) => Some(d),
            _ => {
                self.warn(
                    WarningKind::InvalidValue,
                    "usbdelay",
                    format!("`{v}` is not a number of seconds (0 to 3600); using the default 0.25"),
                );
                None
            }
        }
    }

    fn apkovl(&mut self) -> ApkovlSource {
        let v = match self.get(Opt::Apkovl) {
            None => return ApkovlSource::Auto,
            Some(Setting::Negated) => return ApkovlSource::None,
            Some(Setting::Bare) => {
                self.warn(
                    WarningKind::InvalidValue,
                    "apkovl",
                    "`apkovl` without a value; searching boot media as usual",
                );
                return ApkovlSource::Auto;
            }
            Some(Setting::Value(v)) => v.as_str(),
        };
        if v.is_empty() {
            return ApkovlSource::Auto;
        }
        if v == "no" || v == "none" {
            return ApkovlSource::None;
        }
        if is_url(v) {
            return ApkovlSource::Url(v.to_string());
        }
        let fields: Vec<&str> = v.split(':').collect();
        let (dev, fstype, path) = match fields.as_slice() {
            [dev, path] => (*dev, None, *path),
            [dev, fstype, path] => (*dev, Some(*fstype), *path),
            _ => return ApkovlSource::Path(PathBuf::from(v)),
        };
        let device = self.device(Opt::Apkovl, dev);
        ApkovlSource::Device {
            device,
            fstype: fstype.filter(|f| !f.is_empty()).map(str::to_string),
            path: path.to_string(),
        }
    }

    fn repos(&mut self) -> RepoSource {
        match self.get(Opt::AlpineRepo) {
            None => RepoSource::Auto,
            Some(Setting::Negated) => RepoSource::None,
            Some(Setting::Value(v)) if v.is_empty() || v == "auto" => RepoSource::Auto,
            Some(Setting::Value(v)) => RepoSource::List(comma_list(v)),
            Some(Setting::Bare) => {
                self.value(Opt::AlpineRepo);
                RepoSource::Auto
            }
        }
    }
}

/// Seconds as `sleep` takes them in Alpine's init (`5`, `0.25`, `.5`): digits with an optional
/// fraction, to the nanosecond. No float parsing: it would cost the init build ~15 KB of tables.
fn parse_seconds(v: &str) -> Option<Duration> {
    let (whole, fraction) = v.split_once('.').unwrap_or((v, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
        return None;
    }
    let secs = if whole.is_empty() {
        0
    } else {
        whole.parse::<u64>().ok()?
    };
    let nanos = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(9)
        .fold(0u32, |n, b| n * 10 + u32::from(b - b'0'));
    Some(Duration::new(secs, nanos))
}

#[cfg(test)]
mod seconds_tests {
    use super::parse_seconds;
    use std::time::Duration;

    #[test]
    fn seconds_with_and_without_a_fraction() {
        assert_eq!(parse_seconds("5"), Some(Duration::from_secs(5)));
        assert_eq!(parse_seconds("0.25"), Some(Duration::from_millis(250)));
        assert_eq!(parse_seconds(".5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_seconds("2."), Some(Duration::from_secs(2)));
        assert_eq!(parse_seconds("1.0000000019"), Some(Duration::new(1, 1)));
        for bad in ["", ".", "abc", "-1", "1e2", "inf", "1.2.3", "+1", " 1"] {
            assert_eq!(parse_seconds(bad), None, "{bad:?}");
        }
    }
}
