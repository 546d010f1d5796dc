//! Targets for the line-based text formats: the kernel command line, APKINDEX and `.PKGINFO`,
//! the installed database, dependency atoms and versions, fstab and inittab.

use super::{json_check, parts, text};
use crate::apk::checksum::{base64_decode, base64_encode, hex, unhex, Checksum};
use crate::apk::db::{installed_text, parse_installed, read_scripts, scripts_tar, Db};
use crate::apk::dep::{list_text, name_cmp, Dep};
use crate::apk::pkg::{parse_index, PkgInfo};
use crate::apk::stream::ScriptKind;
use crate::apk::version;
use crate::boot::sysroot::{parse_fstab, root_tmpfs_options, setup_inittab_consoles};
use crate::sys::RecordingSys;
use std::cmp::Ordering;
use std::fs;

/// Input: `/proc/cmdline` as the kernel hands it over (any bytes).
///
/// Parsing, planning and explaining never panic; `explain --json` is always JSON; a word without
/// blanks or quotes parses back to itself.
pub fn cmdline(data: &[u8]) {
    let options = crate::cmdline::parse_bytes(data);
    let plan = crate::cmdline::plan(&options);
    let _ = crate::cmdline::explain(&options, &plan);
    let json = crate::cmdline::explain_json(&options, &plan);
    if let Err(at) = json_check::validate(&json) {
        panic!("explain_json is not JSON at byte {at}: {json}");
    }
    for word in &options.words {
        let plain = !word.text.is_empty()
            && !word
                .text
                .contains(|c: char| c == '"' || c.is_ascii_whitespace() || c == '\x0b');
        if plain {
            let again = crate::cmdline::parse(&word.text);
            assert_eq!(
                again.words,
                std::slice::from_ref(word),
                "word {:?} reparsed",
                word.text
            );
        }
    }
    // modprobe reads module options and blacklists from the same line.
    let mut config = crate::hw::modules::ModprobeConfig::default();
    config.parse_cmdline(&text(data));
}

fn render_index(pkgs: &[PkgInfo]) -> String {
    let mut out = String::new();
    for p in pkgs {
        p.write_index_header(&mut out);
        out.push('\n');
    }
    out
}

/// Input: APKINDEX text; the same text is also read as a `.PKGINFO`.
///
/// A parsed index written back parses to the same records (what `write_index_header` keeps), and
/// a parsed `.PKGINFO` written back parses to the same package.
pub fn apkindex(data: &[u8]) {
    let text = text(data);
    if let Ok(pkgs) = parse_index(&text, "fuzz") {
        let first = render_index(&pkgs);
        let again = parse_index(&first, "fuzz")
            .unwrap_or_else(|e| panic!("a written index does not parse: {e}\n{first}"));
        assert_eq!(render_index(&again), first, "APKINDEX round trip");
        for p in &pkgs {
            let _ = p.provides_name(&p.name);
        }
    }
    if let Ok(info) = PkgInfo::parse_pkginfo(&text) {
        let written = info.write_pkginfo();
        let again = PkgInfo::parse_pkginfo(&written)
            .unwrap_or_else(|e| panic!("a written .PKGINFO does not parse: {e}\n{written}"));
        assert_eq!(again, info, ".PKGINFO round trip:\n{written}");
    }
}

/// Input: `lib/apk/db/installed` text, [`super::PART_SPLIT`], then `lib/apk/db/scripts.tar`.
///
/// A parsed database written back parses to the same text, and its scripts survive a trip
/// through `scripts.tar`.
pub fn installed_db(data: &[u8]) {
    let p = parts(data, 2);
    let Ok(mut packages) = parse_installed(&text(p[0])) else {
        return;
    };
    read_scripts(p[1], &mut packages);
    let db = Db {
        packages,
        world: Vec::new(),
    };
    let first = installed_text(&db);
    let again = parse_installed(&first)
        .unwrap_or_else(|e| panic!("a written installed db does not parse: {e}\n{first}"));
    let mut again = Db {
        packages: again,
        world: Vec::new(),
    };
    assert_eq!(installed_text(&again), first, "installed db round trip");
    for p in &db.packages {
        let _ = p.file_paths().count();
    }
    let _ = crate::apk::db::triggers_text(&db);

    // Scripts: written in install order, read back by identity.
    let tar = scripts_tar(&db);
    for p in &mut again.packages {
        p.scripts.clear();
    }
    read_scripts(&tar, &mut again.packages);
    for p in &db.packages {
        let Some(id) = p.info.identity else { continue };
        let unique = db
            .packages
            .iter()
            .filter(|o| o.info.identity == Some(id))
            .count()
            == 1;
        let fits = format!("{}-{}.{id}.post-upgrade", p.info.name, p.info.version).len() <= 99;
        if !unique || !fits || p.info.name.contains('\0') || p.info.version.contains('\0') {
            continue;
        }
        let back = again
            .packages
            .iter()
            .find(|o| o.info.identity == Some(id))
            .expect("package kept");
        for kind in ScriptKind::ALL {
            let first_of = |s: &[(ScriptKind, Vec<u8>)]| {
                s.iter().find(|(k, _)| *k == kind).map(|(_, b)| b.clone())
            };
            assert_eq!(
                first_of(&back.scripts),
                first_of(&p.scripts),
                "{} script of {} lost in scripts.tar",
                kind.name(),
                p.info.name
            );
        }
    }
}

/// Input: text, one candidate per line. Each line is read as an atom, an atom list, a version
/// and a checksum; neighbouring lines are compared as versions.
///
/// Atoms and checksums print back to themselves; version order is reflexive, antisymmetric,
/// and transitive on valid versions; base64 and hex decode what they encode.
pub fn dep_atoms(data: &[u8]) {
    let text = text(data);
    let lines: Vec<&str> = text.split('\n').collect();
    for &l in &lines {
        if let Ok(dep) = Dep::parse(l) {
            let printed = dep.to_string();
            let back = Dep::parse(&printed)
                .unwrap_or_else(|e| panic!("atom {l:?} printed as {printed:?}: {e}"));
            assert_eq!(back, dep, "atom {l:?} printed as {printed:?}");
            for have in &lines[..lines.len().min(4)] {
                let _ = dep.matches_provider(Some(have), None);
            }
            let _ = dep.matches_provider(None, Checksum::parse(l).as_ref());
        }
        if let Ok(list) = Dep::parse_list(l) {
            let printed = list_text(&list);
            assert_eq!(
                Dep::parse_list(&printed).ok().as_deref(),
                Some(&list[..]),
                "atom list {l:?} printed as {printed:?}"
            );
        }
        if let Some(c) = Checksum::parse(l) {
            assert_eq!(Checksum::parse(&c.to_string()), Some(c), "checksum {l:?}");
        }
        let _ = version::validate(l);
        assert_eq!(version::compare(l, l), Ordering::Equal, "version {l:?}");
        assert_eq!(name_cmp(l, l), Ordering::Equal);
    }
    for w in lines.windows(2) {
        let (a, b) = (w[0], w[1]);
        for fuzzy in [false, true] {
            assert_eq!(
                version::compare_fuzzy(a, b, fuzzy),
                version::compare_fuzzy(b, a, fuzzy).reverse(),
                "versions {a:?} {b:?} (fuzzy: {fuzzy})"
            );
        }
        assert_eq!(name_cmp(a, b), name_cmp(b, a).reverse());
    }
    for w in lines.windows(3) {
        let mut v = [w[0], w[1], w[2]];
        if v.iter().all(|x| version::validate(x)) {
            v.sort_by(|a, b| version::compare(a, b));
            assert_ne!(
                version::compare(v[0], v[2]),
                Ordering::Greater,
                "versions not transitive: {v:?}"
            );
        }
    }
    assert_eq!(base64_decode(&base64_encode(data)).as_deref(), Some(data));
    assert_eq!(unhex(&hex(data)).as_deref(), Some(data));
    let _ = base64_decode(&text);
    let _ = unhex(&text);
}

/// Input: an fstab, [`super::PART_SPLIT`], the new root's `etc/inittab`,
/// [`super::PART_SPLIT`], console names (blank-separated; those that are not alphanumeric or
/// longer than 32 bytes are dropped, and a console whose name starts with `x` has no device
/// node).
///
/// fstab fields are never empty and never hold blanks or comments; inittab keeps every line it
/// had, gets a getty line for each new console with a device node, and a second run adds nothing.
pub fn fstab(data: &[u8]) {
    let p = parts(data, 3);
    let entries = parse_fstab(&text(p[0]));
    for e in &entries {
        for field in [&e.spec, &e.file, &e.vfstype, &e.options] {
            assert!(
                !field.is_empty() && !field.contains('#') && !field.contains(char::is_whitespace),
                "fstab field {field:?}"
            );
        }
    }
    let _ = root_tmpfs_options(&entries);

    let consoles: Vec<String> = text(p[2])
        .split_whitespace()
        .filter(|n| n.len() <= 32 && n.bytes().all(|b| b.is_ascii_alphanumeric()))
        .take(8)
        .map(String::from)
        .collect();
    let scratch = super::streams::Scratch::new("inittab");
    let sysroot = scratch.path().join("initramfs");
    let newroot = scratch.path().join("sysroot");
    fs::create_dir_all(sysroot.join("dev")).expect("scratch dev");
    fs::create_dir_all(newroot.join("etc")).expect("scratch etc");
    for c in consoles.iter().filter(|c| !c.starts_with('x')) {
        fs::write(sysroot.join("dev").join(c), b"").expect("scratch console");
    }
    let before = text(p[1]);
    let inittab = newroot.join("etc/inittab");
    fs::write(&inittab, &before).expect("scratch inittab");
    fs::write(newroot.join("etc/securetty"), "console\n").expect("scratch securetty");
    let sys = RecordingSys::new(&sysroot);
    let added = setup_inittab_consoles(&sys, &newroot, &consoles).expect("inittab written");
    let after = fs::read_to_string(&inittab).expect("inittab read");
    assert!(
        after.starts_with(before.trim_end_matches('\n')),
        "inittab lost lines:\n{before}\n---\n{after}"
    );
    for tty in &added {
        assert!(
            after.lines().any(|l| l.starts_with(&format!("{tty}:"))),
            "no line for {tty}"
        );
    }
    let securetty = fs::read_to_string(newroot.join("etc/securetty")).expect("securetty read");
    for tty in &added {
        assert_eq!(
            securetty.lines().filter(|l| l == tty).count(),
            1,
            "securetty {tty}"
        );
    }
    let again = setup_inittab_consoles(&sys, &newroot, &consoles).expect("inittab rewritten");
    assert!(again.is_empty(), "second run added {again:?}");
}
