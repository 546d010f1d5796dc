//! Phase 5: triggers. Each package installed now that has a trigger script runs it once, with
//! the directories (of every package and of the overlay) its globs match.

use super::prepare::Target;
use super::scripts::ScriptRunner;
use super::InstallReport;
use crate::db::Db;
use crate::fnmatch::fnmatch_pathname as fnmatch;
use crate::stream::ScriptKind;

/// Runs the triggers of the packages at `installed_now` (indices into the db). A failing
/// trigger marks its package but does not count as an error.
pub(super) fn run(
    target: &Target,
    db: &mut Db,
    installed_now: &[usize],
    scripts: &ScriptRunner<'_>,
    report: &mut InstallReport,
) {
    let mut all_dirs: Vec<String> = db
        .packages
        .iter()
        .flat_map(|p| p.dirs.iter().map(|d| d.path.clone()))
        .collect();
    all_dirs.extend(target.overlay_dirs.iter().cloned());
    ramboot_sys::sort::sort(&mut all_dirs);
    all_dirs.dedup();
    for &i in installed_now {
        let p = &db.packages[i];
        let Some((_, body)) = p.scripts.iter().find(|(k, _)| *k == ScriptKind::Trigger) else {
            continue;
        };
        let matched: Vec<String> = all_dirs
            .iter()
            .map(|d| format!("/{d}"))
            .filter(|d| {
                p.info
                    .triggers
                    .iter()
                    .any(|g| g.starts_with('/') && fnmatch(g, d))
            })
            .collect();
        if matched.is_empty() {
            continue;
        }
        if let Err(m) = scripts.run(
            &p.info,
            ScriptKind::Trigger,
            body,
            &matched,
            &mut report.warnings,
        ) {
            let m = format!("{}: {m}", p.info.nv());
            log::warn!("apk: {m}");
            report.warnings.push(m);
            db.packages[i].broken_script = true;
        }
    }
}
