//! Shell-style pattern matching (`fnmatch(3)`), in the two flavours the project needs.
//!
//! [`fnmatch`] has no flags: `*` also matches `/` and a leading `.`, which is what kmod
//! (`modules.alias`, `modprobe.d`), `find -path` (feature lists) and nlplug-findfs (apkovl names,
//! `*.apkovl.tar.gz*`) rely on. [`fnmatch_pathname`] is `FNM_PATHNAME`: wildcards never match
//! `/`, as apk matches trigger globs and protected paths.

/// True when `text` matches `pattern`: `*` any run, `?` one byte, `[a-z]`/`[!x]`/`[^x]` a class,
/// `\c` a literal `c`. An unterminated `[` is a literal.
pub fn fnmatch(pattern: &str, text: &str) -> bool {
    matches(pattern, text, false)
}

/// [`fnmatch`] with `FNM_PATHNAME`: `*`, `?` and `[...]` never match `/`.
pub fn fnmatch_pathname(pattern: &str, text: &str) -> bool {
    matches(pattern, text, true)
}

fn matches(pattern: &str, text: &str, pathname: bool) -> bool {
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    let (mut pi, mut ti) = (0usize, 0usize);
    // Where to resume after the last `*`: (pattern index after it, text index it swallowed up to).
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let step = match p.get(pi) {
            Some(b'*') => {
                star = Some((pi + 1, ti));
                pi += 1;
                continue;
            }
            Some(b'?') if pathname && t[ti] == b'/' => None,
            Some(b'?') => Some(pi + 1),
            Some(b'[') if pathname && t[ti] == b'/' => None,
            Some(b'[') => match class(p, pi, t[ti]) {
                Some((true, next)) => Some(next),
                Some((false, _)) => None,
                None => (t[ti] == b'[').then_some(pi + 1),
            },
            Some(b'\\') if pi + 1 < p.len() => (p[pi + 1] == t[ti]).then_some(pi + 2),
            Some(&c) => (c == t[ti]).then_some(pi + 1),
            None => None,
        };
        match (step, star) {
            (Some(next), _) => {
                pi = next;
                ti += 1;
            }
            // With FNM_PATHNAME a `*` cannot swallow a `/`.
            (None, Some((_, st))) if pathname && t[st] == b'/' => return false,
            (None, Some((sp, st))) => {
                // Let the last `*` swallow one more byte and retry.
                pi = sp;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            (None, None) => return false,
        }
    }
    p[pi.min(p.len())..].iter().all(|&c| c == b'*')
}

/// Matches byte `c` against the class starting at `p[start] == '['`.
/// Returns (matched, index after `]`), or `None` when the class is unterminated.
fn class(p: &[u8], start: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let lo = *p.get(i)?;
        if lo == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if p.get(i + 1) == Some(&b'-') && p.get(i + 2).is_some_and(|&hi| hi != b']') {
            let hi = p[i + 2];
            matched |= lo <= c && c <= hi;
            i += 3;
        } else {
            matched |= lo == c;
            i += 1;
        }
    }
}

/// True when `pattern` has glob metacharacters.
pub fn has_magic(pattern: &str) -> bool {
    pattern.bytes().any(|b| matches!(b, b'*' | b'?' | b'['))
}

#[cfg(test)]
mod tests {
    use super::{fnmatch, fnmatch_pathname};

    #[test]
    fn basics() {
        assert!(fnmatch("*.apkovl.tar.gz*", "host.apkovl.tar.gz"));
        assert!(fnmatch(
            "*.apkovl.tar.gz*",
            "host.apkovl.tar.gz.aes-256-cbc"
        ));
        assert!(!fnmatch("*.apkovl.tar.gz*", "host.apkovl.tar"));
        assert!(fnmatch(
            "pci:v00001AF4d*sv*sd*bc*sc*i*",
            "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00"
        ));
        assert!(fnmatch(
            "of:N*T*Cbrcm,bcm2835-sdhostC*",
            "of:NmmcT(null)Cbrcm,bcm2835-sdhostCfoo"
        ));
        assert!(fnmatch(
            "of:N*T*Cbrcm,bcm2835-sdhost",
            "of:NmmcT(null)Cbrcm,bcm2835-sdhost"
        ));
        assert!(fnmatch("a?c", "abc"));
        assert!(!fnmatch("a?c", "ac"));
        assert!(fnmatch("[a-c]x", "bx"));
        assert!(!fnmatch("[!a-c]x", "bx"));
        assert!(fnmatch("[^a-c]x", "dx"));
        assert!(fnmatch("[]]", "]"));
        assert!(fnmatch("[", "["));
        assert!(fnmatch("a\\*", "a*"));
        assert!(!fnmatch("a\\*", "ab"));
        assert!(fnmatch(
            "kernel/drivers/mmc/host/*",
            "kernel/drivers/mmc/host/sub/x.ko"
        ));
        assert!(fnmatch("**", ""));
        assert!(!fnmatch("", "a"));
        assert!(fnmatch("*a*b*c", "xxaxxbxxbc"));
    }

    #[test]
    fn pathname_globs() {
        assert!(fnmatch_pathname("/usr/share/*", "/usr/share/x"));
        assert!(!fnmatch_pathname("/usr/share/*", "/usr/share/x/y"));
        assert!(fnmatch_pathname("/lib/modules/*", "/lib/modules/6.1"));
        assert!(fnmatch_pathname("etc", "etc"));
        assert!(fnmatch_pathname("e?c", "etc"));
        assert!(fnmatch_pathname("[a-f]tc", "etc"));
        assert!(!fnmatch_pathname("[!e]tc", "etc"));
        assert!(fnmatch_pathname("*", "anything"));
        assert!(!fnmatch_pathname("*", "a/b"));
        assert!(fnmatch_pathname("*.list", "x.list"));
    }
}
