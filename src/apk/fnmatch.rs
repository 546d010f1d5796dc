//! `fnmatch(3)` with `FNM_PATHNAME`, for trigger globs and protected paths.

/// Matches `name` against a shell glob where `*`, `?` and `[...]` never match `/`.
pub fn fnmatch(pattern: &str, name: &str) -> bool {
    matches(pattern.as_bytes(), name.as_bytes())
}

fn matches(p: &[u8], n: &[u8]) -> bool {
    let (mut pi, mut ni) = (0usize, 0usize);
    // Backtrack point for the last `*`: (pattern index after it, name index it matched to).
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() || pi < p.len() {
        if pi < p.len() {
            match p[pi] {
                b'*' => {
                    star = Some((pi + 1, ni));
                    pi += 1;
                    continue;
                }
                b'?' if ni < n.len() && n[ni] != b'/' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                b'[' if ni < n.len() && n[ni] != b'/' => {
                    if let Some((ok, len)) = class(&p[pi..], n[ni]) {
                        if ok {
                            pi += len;
                            ni += 1;
                            continue;
                        }
                    } else if n[ni] == b'[' {
                        pi += 1;
                        ni += 1;
                        continue;
                    }
                }
                b'\\' if pi + 1 < p.len() && ni < n.len() && p[pi + 1] == n[ni] => {
                    pi += 2;
                    ni += 1;
                    continue;
                }
                c if c != b'?' && c != b'[' && c != b'\\' && ni < n.len() && c == n[ni] => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        }
        // Mismatch: let the last `*` eat one more character, unless that is a `/`.
        match star {
            Some((sp, sn)) if sn < n.len() && n[sn] != b'/' => {
                star = Some((sp, sn + 1));
                pi = sp;
                ni = sn + 1;
            }
            _ => return false,
        }
    }
    true
}

/// Parses a `[...]` class at the start of `p`; returns (matches c, length) or None if unclosed.
fn class(p: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some(b'!') | Some(b'^'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == b']' && !first {
            return Some((hit != negate, i + 1));
        }
        first = false;
        let lo = p[i];
        if i + 2 < p.len() && p[i + 1] == b'-' && p[i + 2] != b']' {
            if (lo..=p[i + 2]).contains(&c) {
                hit = true;
            }
            i += 3;
        } else {
            if lo == c {
                hit = true;
            }
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::fnmatch;

    #[test]
    fn globs() {
        assert!(fnmatch("/usr/share/*", "/usr/share/x"));
        assert!(!fnmatch("/usr/share/*", "/usr/share/x/y"));
        assert!(fnmatch("/lib/modules/*", "/lib/modules/6.1"));
        assert!(fnmatch("etc", "etc"));
        assert!(fnmatch("e?c", "etc"));
        assert!(fnmatch("[a-f]tc", "etc"));
        assert!(!fnmatch("[!e]tc", "etc"));
        assert!(fnmatch("*", "anything"));
        assert!(!fnmatch("*", "a/b"));
        assert!(fnmatch("*.list", "x.list"));
    }
}
