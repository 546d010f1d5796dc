//! The feature lists of `initramfs/features/`, built into the binary so that `mkinitfs -F` works
//! from any directory and from an installed binary; `--features-dir` still reads lists from disk
//! (a user's own, or a changed copy).

use super::MkinitfsError;
use std::path::Path;

/// (name, contents of `<name>.modules`), sorted by name.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("ata", include_str!("../../initramfs/features/ata.modules")),
    (
        "base",
        include_str!("../../initramfs/features/base.modules"),
    ),
    (
        "cdrom",
        include_str!("../../initramfs/features/cdrom.modules"),
    ),
    (
        "ext4",
        include_str!("../../initramfs/features/ext4.modules"),
    ),
    ("mmc", include_str!("../../initramfs/features/mmc.modules")),
    (
        "nvme",
        include_str!("../../initramfs/features/nvme.modules"),
    ),
    ("rpi", include_str!("../../initramfs/features/rpi.modules")),
    (
        "scsi",
        include_str!("../../initramfs/features/scsi.modules"),
    ),
    (
        "squashfs",
        include_str!("../../initramfs/features/squashfs.modules"),
    ),
    ("usb", include_str!("../../initramfs/features/usb.modules")),
    (
        "vfat",
        include_str!("../../initramfs/features/vfat.modules"),
    ),
    (
        "virtio",
        include_str!("../../initramfs/features/virtio.modules"),
    ),
];

/// Where a feature list comes from.
pub enum Source<'a> {
    BuiltIn,
    Dir(&'a Path),
}

/// The built-in feature names, for messages.
pub fn built_in_names() -> String {
    BUILT_IN
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The entries of feature `name` (comments and blank lines dropped), or why there are none.
pub fn entries(name: &str, source: &Source<'_>) -> Result<Vec<String>, MkinitfsError> {
    let text = match source {
        Source::BuiltIn => BUILT_IN
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t.to_string())
            .ok_or_else(|| MkinitfsError::UnknownFeature { name: name.into() })?,
        Source::Dir(dir) => {
            let path = dir.join(format!("{name}.modules"));
            std::fs::read_to_string(&path).map_err(|source| MkinitfsError::ReadFeature {
                name: name.into(),
                path,
                source,
            })?
        }
    };
    Ok(text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_list_on_disk_is_built_in_unchanged() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("initramfs/features");
        let mut on_disk = Vec::new();
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let Some(name) = path
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .strip_suffix(".modules")
            else {
                continue;
            };
            let text = std::fs::read_to_string(&path).unwrap();
            let built_in = BUILT_IN.iter().find(|(n, _)| *n == name);
            assert_eq!(built_in.map(|(_, t)| *t), Some(text.as_str()), "{name}");
            on_disk.push(name.to_string());
        }
        assert_eq!(on_disk.len(), BUILT_IN.len());
    }

    #[test]
    fn built_in_and_directory_lists_read_the_same() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("initramfs/features");
        assert_eq!(
            entries("base", &Source::BuiltIn).unwrap(),
            entries("base", &Source::Dir(&dir)).unwrap()
        );
        assert!(entries("base", &Source::BuiltIn)
            .unwrap()
            .contains(&"squashfs".to_string()));
        let e = entries("nope", &Source::BuiltIn).unwrap_err().to_string();
        assert!(
            e.contains("unknown feature nope (built in: ata, base,"),
            "{e}"
        );
        let e = entries("nope", &Source::Dir(&dir)).unwrap_err().to_string();
        assert!(e.contains("nope.modules"), "{e}");
    }
}
