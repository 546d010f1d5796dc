//! Warnings about the words themselves: likely typos, repeated options, odd forms.
//!
//! Alpine ignores what it does not know, so `modlues=…` or `apkvol=…` silently boot something
//! else than meant. We still ignore them (the kernel and init may want them), but say so when
//! an unknown name is a small edit away from a known one.

use std::collections::BTreeMap;

use super::options::{BootOptions, Opt, Setting, WordKind};
use super::plan::{Warning, WarningKind};

/// Kernel and bootloader parameters that are not Alpine's but common enough on a boot line
/// that a near miss with an Alpine name must not be reported.
const KERNEL_PARAMS: &[&str] = &[
    "BOOT_IMAGE",
    "acpi",
    "amd_iommu",
    "apic",
    "apparmor",
    "audit",
    "cgroup_enable",
    "cgroup_memory",
    "cma",
    "coherent_pool",
    "consoleblank",
    "crashkernel",
    "debug",
    "dyndbg",
    "earlycon",
    "earlyprintk",
    "elevator",
    "fbcon",
    "hugepages",
    "ignore_loglevel",
    "initrd",
    "intel_iommu",
    "iommu",
    "isolcpus",
    "kaslr",
    "kgdboc",
    "loglevel",
    "lsm",
    "maxcpus",
    "mem",
    "mitigations",
    "nfsaddrs",
    "nfsroot",
    "noapic",
    "noinitrd",
    "nokaslr",
    "nomodeset",
    "nosmp",
    "nr_cpus",
    "pci",
    "printk",
    "rdinit",
    "ro",
    "rootdelay",
    "rootwait",
    "rw",
    "security",
    "selinux",
    "swapaccount",
    "vga",
    "video",
];

/// Adds warnings about the words of `options` to `warnings`.
pub(crate) fn check_words(options: &BootOptions, warnings: &mut Vec<Warning>) {
    let mut seen: BTreeMap<Opt, Vec<&Setting>> = BTreeMap::new();
    for word in &options.words {
        match &word.kind {
            WordKind::Known { opt, setting } => seen.entry(*opt).or_default().push(setting),
            WordKind::Unknown { name, value } => {
                if let Some(w) = check_unknown(name, value.is_some()) {
                    warnings.push(w);
                }
            }
            WordKind::Single | WordKind::Console(_) => {}
        }
    }
    for (opt, settings) in seen {
        let last = settings[settings.len() - 1];
        if settings.iter().any(|s| *s != last) {
            warnings.push(Warning {
                kind: WarningKind::Duplicate,
                option: opt.name().to_string(),
                message: format!(
                    "given {} times with different values; the last ({}) wins",
                    settings.len(),
                    setting_text(opt, last)
                ),
            });
        }
    }
}

/// How a setting is written.
pub fn setting_text(opt: Opt, setting: &Setting) -> String {
    match setting {
        Setting::Value(v) => format!("{opt}={v}"),
        Setting::Bare => opt.name().to_string(),
        Setting::Negated => format!("no{opt}"),
    }
}

fn check_unknown(name: &str, has_value: bool) -> Option<Warning> {
    let warning = |kind, message: String| {
        Some(Warning {
            kind,
            option: name.to_string(),
            message,
        })
    };
    if name == "console" {
        return warning(
            WarningKind::InvalidValue,
            "`console` needs a device (`console=ttyS0`); ignored".to_string(),
        );
    }
    if let Some(opt) = name.strip_prefix("no").and_then(Opt::from_name) {
        if has_value {
            return warning(
                WarningKind::Ignored,
                format!("the `no{opt}` form takes no value; the word is ignored (write `no{opt}` or `{opt}=...`)"),
            );
        }
    }
    if name.contains('.') || KERNEL_PARAMS.contains(&name) {
        return None;
    }
    let (prefix, stem) = match name.strip_prefix("no") {
        Some(stem) if !has_value && stem.len() > 2 => ("no", stem),
        _ => ("", name),
    };
    let suggestion = closest(name).map(|k| k.to_string()).or_else(|| {
        (!prefix.is_empty())
            .then(|| closest(stem))
            .flatten()
            .map(|k| format!("{prefix}{k}"))
    })?;
    warning(
        WarningKind::Misspelled,
        format!("unknown option; did you mean `{suggestion}`? (ignored)"),
    )
}

/// The known name nearest to `name`, if near enough to be a typo.
fn closest(name: &str) -> Option<&'static str> {
    let len = name.chars().count();
    let limit = match len {
        0..=2 => return None,
        3..=6 => 1,
        _ => 2,
    };
    let lower = name.to_ascii_lowercase();
    let candidates = Opt::ALL
        .iter()
        .map(|o| o.name())
        .chain(["console", "single"]);
    candidates
        .filter(|k| k.len().abs_diff(len) <= limit)
        .map(|k| (distance(&lower, &k.to_ascii_lowercase()), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of
/// neighbours each cost one (`modlues` → `modules` is 1).
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            d[i * width + j] = if i == 0 {
                j
            } else if j == 0 {
                i
            } else {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut best = (d[(i - 1) * width + j] + 1)
                    .min(d[i * width + j - 1] + 1)
                    .min(d[(i - 1) * width + j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    best = best.min(d[(i - 2) * width + j - 2] + 1);
                }
                best
            };
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("modlues", "modules"), 1);
        assert_eq!(distance("apkvol", "apkovl"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestions() {
        assert_eq!(closest("modlues"), Some("modules"));
        assert_eq!(closest("apkvol"), Some("apkovl"));
        assert_eq!(closest("quite"), Some("quiet"));
        assert_eq!(closest("bootif"), Some("BOOTIF"));
        assert_eq!(closest("rootwait"), None);
        assert_eq!(closest("ro"), None);
        assert!(check_unknown("noquite", false).is_some());
        assert!(check_unknown("rootwait", false).is_none());
        assert!(check_unknown("dwc_otg.lpm_enable", true).is_none());
    }
}
