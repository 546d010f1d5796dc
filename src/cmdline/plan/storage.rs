//! The root's storage layers (`cryptroot=`, `resume=`, LVM, ...) and `root=` itself.

use super::*;

impl Planner<'_> {
    pub(super) fn storage(&mut self) -> Storage {
        let mut s = Storage::default();
        if let Some(dev) = self.value(Opt::Cryptroot) {
            let device = self.device(Opt::Cryptroot, dev);
            let key = match self.get(Opt::Cryptkey) {
                Some(Setting::Bare) => Some(CryptKey::File {
                    path: DEFAULT_CRYPT_KEYFILE.to_string(),
                    offset: None,
                    size: None,
                }),
                Some(Setting::Value(v)) if !v.is_empty() => Some(parse_cryptkey(v)),
                _ => None,
            };
            s.crypt = Some(Crypt {
                device,
                dm_name: self.value(Opt::Cryptdm).map(str::to_string),
                header: self.value(Opt::Cryptheader).map(str::to_string),
                key,
                offset: self.number(Opt::Cryptoffset),
                discards: self.flag(Opt::Cryptdiscards, false),
            });
            self.unsupported(Opt::Cryptroot, "unlocking an encrypted device");
        } else {
            for opt in [
                Opt::Cryptdm,
                Opt::Cryptheader,
                Opt::Cryptkey,
                Opt::Cryptoffset,
                Opt::Cryptdiscards,
            ] {
                if self.get(opt).is_some() {
                    self.warn(
                        WarningKind::Ignored,
                        opt.name(),
                        "only used with cryptroot=",
                    );
                }
            }
        }
        if let Some(dev) = self.value(Opt::Resume) {
            let device = self.device(Opt::Resume, dev);
            s.resume = Some(Resume {
                device,
                offset: self.number(Opt::ResumeOffset),
            });
            self.unsupported(Opt::Resume, "resuming from hibernation");
        }
        if let Some(v) = self.value(Opt::Nbd) {
            s.nbd = comma_list(v);
            self.unsupported(Opt::Nbd, "network block devices");
        }
        let aoe = match self.get(Opt::Aoe) {
            Some(Setting::Bare) => Some(Vec::new()),
            Some(Setting::Value(v)) if v == "yes" => Some(Vec::new()),
            Some(Setting::Value(v)) if !v.is_empty() => Some(comma_list(v)),
            _ => None,
        };
        if let Some(targets) = aoe {
            s.aoe = Some(Aoe {
                targets,
                interfaces: self
                    .value(Opt::AoeIflist)
                    .map(comma_list)
                    .unwrap_or_default(),
                mtu: self.number(Opt::AoeMtu),
            });
            self.unsupported(Opt::Aoe, "ATA over Ethernet");
        }
        if let Some(v) = self.value(Opt::Wireguard) {
            let mut parts = v.split(';');
            let interface = parts.next().unwrap_or_default().to_string();
            let addresses = parts.next().map(comma_list).unwrap_or_default();
            let config = parts
                .next()
                .filter(|c| !c.is_empty())
                .unwrap_or(DEFAULT_WIREGUARD_CONF)
                .to_string();
            s.wireguard = Some(Wireguard {
                interface,
                addresses,
                config,
            });
            self.unsupported(Opt::Wireguard, "WireGuard in the initramfs");
        }
        s.memdisk = self.flag(Opt::Memdisk, false);
        if s.memdisk {
            self.unsupported(Opt::Memdisk, "syslinux memdisk");
        }
        for (opt, list) in [(Opt::Zfcp, &mut s.zfcp), (Opt::Dasd, &mut s.dasd)] {
            if let Some(v) = self.value(opt) {
                *list = comma_list(v);
                self.unsupported(opt, "s390x device set-up");
            }
        }
        if let Some(v) = self.value(Opt::S390xNet) {
            s.s390x_net = Some(v.to_string());
            self.unsupported(Opt::S390xNet, "s390x device set-up");
        }
        s
    }

    pub(super) fn root_spec(
        &mut self,
        device: DeviceSpec,
        fstype: Option<String>,
        modules: &[String],
    ) -> RootSpec {
        for opt in [
            Opt::Apkovl,
            Opt::AlpineRepo,
            Opt::Pkgs,
            Opt::Usbdelay,
            Opt::RootSize,
            Opt::KeepApkNew,
            Opt::BootstrapUsrMerged,
        ] {
            if self.get(opt).is_some() {
                self.warn(
                    WarningKind::Ignored,
                    opt.name(),
                    "only used in diskless mode (without root=)",
                );
            }
        }
        if matches!(device, DeviceSpec::Zfs(_)) {
            self.warn(
                WarningKind::Unsupported,
                "root",
                "a ZFS root (zpool import) is not supported by ramboot yet",
            );
        }
        let rootflags = self.value(Opt::Rootflags);
        let overlay = self.flag(Opt::Overlaytmpfs, false);
        let overlay_flags = self.value(Opt::Overlaytmpfsflags);
        let (flags, overlay_tmpfs) = if overlay {
            let flags = match rootflags {
                Some(f) => format!("{f},ro"),
                None => "ro".to_string(),
            };
            let tmpfs = match overlay_flags {
                Some(f) => format!("mode=0755,{f},rw"),
                None => "mode=0755,rw".to_string(),
            };
            (flags, Some(tmpfs))
        } else {
            if overlay_flags.is_some() {
                self.warn(
                    WarningKind::Ignored,
                    "overlaytmpfsflags",
                    "only used with overlaytmpfs=yes",
                );
            }
            (rootflags.unwrap_or("ro").to_string(), None)
        };
        let usr = match self.get(Opt::Usrflags) {
            Some(Setting::Value(v)) if v == "disable" => UsrMount::Disabled,
            Some(Setting::Negated) => UsrMount::Disabled,
            _ => UsrMount::Flags(self.value(Opt::Usrflags).unwrap_or("ro").to_string()),
        };
        let btrfs_scan = modules.iter().any(|m| m == "btrfs");
        RootSpec {
            device,
            fstype,
            flags,
            overlay_tmpfs,
            usr,
            btrfs_scan,
            zfs_force: self.flag(Opt::ZfsForce, false),
        }
    }
}
