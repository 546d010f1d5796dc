//! The command line, option by option: each case is a command line, the warnings it must give
//! (kind and option, nothing more, nothing less) and checks on the plan.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use ramboot::cmdline::WarningKind::*;
use ramboot::cmdline::*;

type Check = fn(&BootPlan);

struct Case {
    line: &'static str,
    warnings: &'static [(WarningKind, &'static str)],
    check: Check,
}

const fn case(
    line: &'static str,
    warnings: &'static [(WarningKind, &'static str)],
    check: Check,
) -> Case {
    Case {
        line,
        warnings,
        check,
    }
}

fn diskless(p: &BootPlan) -> &Diskless {
    match &p.mode {
        Mode::Diskless(d) => d,
        Mode::Root(r) => panic!("expected diskless, got root {r:?}"),
    }
}

fn root(p: &BootPlan) -> &RootSpec {
    match &p.mode {
        Mode::Root(r) => r,
        Mode::Diskless(d) => panic!("expected root, got diskless {d:?}"),
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn path(p: &str) -> DeviceSpec {
    DeviceSpec::Path(PathBuf::from(p))
}

const CASES: &[Case] = &[
    // Defaults.
    case("", &[], |p| {
        let d = diskless(p);
        assert_eq!(d.apkovl, ApkovlSource::Auto);
        assert_eq!(d.repos, RepoSource::Auto);
        assert!(d.pkgs.is_empty());
        assert_eq!(d.usbdelay, None);
        assert_eq!(d.tmpfs_flags, "mode=0755");
        assert_eq!(d.ssh_key, None);
        assert_eq!(d.apkovl_key, None);
        assert!(!d.keep_apk_new && !d.bootstrap_usr_merged);
        assert!(p.modules.is_empty());
        assert_eq!(p.fixed_modules, strings(&["loop", "squashfs", "simpledrm"]));
        assert!(!p.quiet && !p.debug && !p.single && !p.chart && !p.tiny_cloud);
        assert_eq!(p.fail_policy, FailPolicy::Rescue);
        assert_eq!(p.init, PathBuf::from("/sbin/init"));
        assert!(p.init_args.is_empty() && p.consoles.is_empty());
        assert_eq!(p.switch_root_console, None);
        assert_eq!(p.autodetect_serial, AutodetectSerial::Yes);
        assert_eq!(p.ip, None);
        assert!(!p.needs_network);
        assert_eq!(p.uevent_buf_size, 4 << 20);
        assert_eq!(p.modloop, ModloopSpec::Auto);
        assert!(p.modloop_verify && p.hw_autodetect);
        assert_eq!(p.splash, Splash::On);
        assert_eq!(p.storage, Storage::default());
    }),
    // alpine_repo
    case("alpine_repo=auto", &[], |p| {
        assert_eq!(diskless(p).repos, RepoSource::Auto)
    }),
    case("alpine_repo=https://a/main,https://a/community", &[], |p| {
        assert_eq!(
            diskless(p).repos,
            RepoSource::List(strings(&["https://a/main", "https://a/community"]))
        );
        assert!(p.needs_network);
        assert_eq!(p.ip, None);
    }),
    case("alpine_repo=/media/sda1/apks", &[], |p| {
        assert_eq!(
            diskless(p).repos,
            RepoSource::List(strings(&["/media/sda1/apks"]))
        );
        assert!(!p.needs_network);
    }),
    case("noalpine_repo", &[], |p| {
        assert_eq!(diskless(p).repos, RepoSource::None)
    }),
    // aoe, aoe_iflist, aoe_mtu
    case(
        "aoe aoe_iflist=eth0,eth1 aoe_mtu=9000",
        &[(Unsupported, "aoe")],
        |p| {
            let a = p.storage.aoe.as_ref().unwrap();
            assert!(a.targets.is_empty());
            assert_eq!(a.interfaces, strings(&["eth0", "eth1"]));
            assert_eq!(a.mtu, Some(9000));
        },
    ),
    case("aoe=e1.2,e3.4", &[(Unsupported, "aoe")], |p| {
        assert_eq!(
            p.storage.aoe.as_ref().unwrap().targets,
            strings(&["e1.2", "e3.4"])
        )
    }),
    // apkovl
    case(
        "apkovl=https://example.com/{UUID}/foo.apkovl.tar.gz?x=1",
        &[],
        |p| {
            assert_eq!(
                diskless(p).apkovl,
                ApkovlSource::Url("https://example.com/{UUID}/foo.apkovl.tar.gz?x=1".into())
            );
            assert!(p.needs_network);
        },
    ),
    case("apkovl=/dev/sda1:foofs:bar.apkovl.tar.gz", &[], |p| {
        assert_eq!(
            diskless(p).apkovl,
            ApkovlSource::Device {
                device: path("/dev/sda1"),
                fstype: Some("foofs".into()),
                path: "bar.apkovl.tar.gz".into()
            }
        )
    }),
    case("apkovl=LABEL=boot:h.apkovl.tar.gz", &[], |p| {
        assert_eq!(
            diskless(p).apkovl,
            ApkovlSource::Device {
                device: DeviceSpec::Label("boot".into()),
                fstype: None,
                path: "h.apkovl.tar.gz".into()
            }
        )
    }),
    case("apkovl=sda1:h.apkovl.tar.gz", &[(InvalidValue, "apkovl")], |p| {
        assert!(matches!(&diskless(p).apkovl,
            ApkovlSource::Device { device, .. } if *device == path("/dev/sda1")))
    }),
    case("apkovl=/media/mmcblk0p1/h.apkovl.tar.gz", &[], |p| {
        assert_eq!(
            diskless(p).apkovl,
            ApkovlSource::Path("/media/mmcblk0p1/h.apkovl.tar.gz".into())
        )
    }),
    case("noapkovl", &[], |p| {
        assert_eq!(diskless(p).apkovl, ApkovlSource::None)
    }),
    case("apkovl=none", &[], |p| {
        assert_eq!(diskless(p).apkovl, ApkovlSource::None)
    }),
    case("apkovl=no", &[], |p| {
        assert_eq!(diskless(p).apkovl, ApkovlSource::None)
    }),
    case("apkovl", &[(InvalidValue, "apkovl")], |p| {
        assert_eq!(diskless(p).apkovl, ApkovlSource::Auto)
    }),
    // autodetect (noautodetect, read by hwdrivers)
    case("noautodetect", &[], |p| assert!(!p.hw_autodetect)),
    // autodetect_serial
    case("autodetect_serial=no", &[], |p| {
        assert_eq!(p.autodetect_serial, AutodetectSerial::No)
    }),
    case("noautodetect_serial", &[], |p| {
        assert_eq!(p.autodetect_serial, AutodetectSerial::No)
    }),
    case("autodetect_serial=setconsole", &[], |p| {
        assert_eq!(p.autodetect_serial, AutodetectSerial::SetConsole(vec![]))
    }),
    case(
        "autodetect_serial=setconsole=notfound,pnQEMUVirtualMachine",
        &[],
        |p| {
            assert_eq!(
                p.autodetect_serial,
                AutodetectSerial::SetConsole(strings(&["notfound", "pnQEMUVirtualMachine"]))
            )
        },
    ),
    case(
        "autodetect_serial=maybe",
        &[(InvalidValue, "autodetect_serial")],
        |p| assert_eq!(p.autodetect_serial, AutodetectSerial::Yes),
    ),
    // blacklist
    case("blacklist=dummy,evbug", &[], |p| {
        assert_eq!(p.blacklist, strings(&["dummy", "evbug"]))
    }),
    // BOOTIF
    case("BOOTIF=01-AA-bb-cc-dd-ee-ff", &[], |p| {
        assert_eq!(p.bootif.as_deref(), Some("aa:bb:cc:dd:ee:ff"))
    }),
    case("BOOTIF=02:00:00:00:00:03", &[], |p| {
        assert_eq!(p.bootif.as_deref(), Some("02:00:00:00:00:03"))
    }),
    case("BOOTIF=zz", &[(InvalidValue, "BOOTIF")], |p| {
        assert_eq!(p.bootif, None)
    }),
    // bootstrap_usr_merged
    case("bootstrap_usr_merged", &[], |p| {
        assert!(diskless(p).bootstrap_usr_merged)
    }),
    case("bootstrap_usr_merged=yes nobootstrap_usr_merged", &[(Duplicate, "bootstrap_usr_merged")], |p| {
        assert!(!diskless(p).bootstrap_usr_merged)
    }),
    // chart
    case("chart", &[(Unsupported, "chart")], |p| assert!(p.chart)),
    // crypt*
    case(
        "cryptroot=UUID=abc cryptdm=root cryptheader=/hdr.img cryptkey cryptoffset=2048 cryptdiscards",
        &[(Unsupported, "cryptroot")],
        |p| {
            let c = p.storage.crypt.as_ref().unwrap();
            assert_eq!(c.device, DeviceSpec::Uuid("abc".into()));
            assert_eq!(c.dm_name.as_deref(), Some("root"));
            assert_eq!(c.header.as_deref(), Some("/hdr.img"));
            assert_eq!(
                c.key,
                Some(CryptKey::File {
                    path: "/crypto_keyfile.bin".into(),
                    offset: None,
                    size: None
                })
            );
            assert_eq!(c.offset, Some(2048));
            assert!(c.discards);
        },
    ),
    case(
        "cryptroot=/dev/sda2 cryptkey=/dev/sdb:512:64",
        &[(Unsupported, "cryptroot")],
        |p| {
            assert_eq!(
                p.storage.crypt.as_ref().unwrap().key,
                Some(CryptKey::File {
                    path: "/dev/sdb".into(),
                    offset: Some(512),
                    size: Some(64)
                })
            )
        },
    ),
    case(
        "cryptroot=LABEL=x cryptkey=EXEC=/bin/getkey",
        &[(Unsupported, "cryptroot")],
        |p| {
            assert_eq!(
                p.storage.crypt.as_ref().unwrap().key,
                Some(CryptKey::Exec("/bin/getkey".into()))
            )
        },
    ),
    case("cryptdm=root", &[(Ignored, "cryptdm")], |p| {
        assert_eq!(p.storage.crypt, None)
    }),
    // dasd, zfcp, s390x_net
    case(
        "dasd=0.0.0100,0.0.0200 zfcp=0.0.1900:0x500:0x401 s390x_net=qeth_l2,0.0.1000",
        &[
            (Unsupported, "zfcp"),
            (Unsupported, "dasd"),
            (Unsupported, "s390x_net"),
        ],
        |p| {
            assert_eq!(p.storage.dasd, strings(&["0.0.0100", "0.0.0200"]));
            assert_eq!(p.storage.zfcp, strings(&["0.0.1900:0x500:0x401"]));
            assert_eq!(p.storage.s390x_net.as_deref(), Some("qeth_l2,0.0.1000"));
        },
    ),
    // debug_init: `nodebug_init` is off (Alpine: on).
    case("debug_init", &[], |p| assert!(p.debug)),
    case("nodebug_init", &[], |p| assert!(!p.debug)),
    case("debug_init=no", &[], |p| assert!(!p.debug)),
    // ds, tinycloud: `notinycloud` / `nods` are off (Alpine: on).
    case("ds=nocloud;s=http://10.0.0.1/", &[], |p| {
        assert!(p.tiny_cloud);
        assert!(!p.needs_network);
    }),
    case("tinycloud=cloud=nocloud", &[], |p| assert!(p.tiny_cloud)),
    case("notinycloud nods", &[], |p| assert!(!p.tiny_cloud)),
    // init, init_args
    case(r#"init=/bin/sh init_args="-x  -y""#, &[], |p| {
        assert_eq!(p.init, PathBuf::from("/bin/sh"));
        assert_eq!(p.init_args, strings(&["-x", "-y"]));
    }),
    case("init=sbin/openrc-init", &[(InvalidValue, "init")], |p| {
        assert_eq!(p.init, PathBuf::from("/sbin/openrc-init"))
    }),
    // ip
    case("ip=dhcp", &[], |p| {
        assert_eq!(p.ip, Some(IpConfig::Dhcp { device: None }));
        assert!(p.needs_network);
    }),
    case("ip=off apkovl=http://h/a.apkovl.tar.gz", &[(Ignored, "ip")], |p| {
        assert!(!p.needs_network)
    }),
    case("ip=:::::eth1:dhcp", &[], |p| {
        assert_eq!(
            p.ip,
            Some(IpConfig::Dhcp {
                device: Some("eth1".into())
            })
        )
    }),
    case("ip=off apkovl=http://x/a.apkovl.tar.gz", &[(Ignored, "ip")], |p| {
        assert_eq!(p.ip, Some(IpConfig::Off));
        assert!(!p.needs_network);
    }),
    case("ip=none", &[], |p| {
        assert_eq!(p.ip, Some(IpConfig::Off));
        assert!(!p.needs_network);
    }),
    case("noip", &[], |p| assert_eq!(p.ip, Some(IpConfig::Off))),
    case(
        "ip=192.168.1.10:192.168.1.1:192.168.1.254:255.255.255.0:pi:eth0:none:1.1.1.1:8.8.8.8:ntp.example",
        &[],
        |p| {
            assert_eq!(
                p.ip,
                Some(IpConfig::Static(StaticIp {
                    client: Ipv4Addr::new(192, 168, 1, 10),
                    server: Some("192.168.1.1".into()),
                    gateway: Some(Ipv4Addr::new(192, 168, 1, 254)),
                    netmask: Some(Ipv4Addr::new(255, 255, 255, 0)),
                    hostname: Some("pi".into()),
                    device: Some("eth0".into()),
                    dns: vec![Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(8, 8, 8, 8)],
                    ntp: Some("ntp.example".into()),
                }))
            );
            assert!(p.needs_network);
        },
    ),
    case("ip=10.0.0.2::10.0.0.1:24", &[], |p| {
        let Some(IpConfig::Static(s)) = &p.ip else {
            panic!("{:?}", p.ip)
        };
        assert_eq!(s.netmask, Some(Ipv4Addr::new(255, 255, 255, 0)));
        assert_eq!(s.gateway, Some(Ipv4Addr::new(10, 0, 0, 1)));
    }),
    case("ip=no.such.ip", &[(InvalidValue, "ip"), (InvalidValue, "ip")], |p| {
        assert_eq!(p.ip, Some(IpConfig::Dhcp { device: None }))
    }),
    // keep_apk_new
    case("keep_apk_new", &[], |p| assert!(diskless(p).keep_apk_new)),
    case("keep_apk_new=no", &[], |p| assert!(!diskless(p).keep_apk_new)),
    // memdisk
    case("memdisk", &[(Unsupported, "memdisk")], |p| {
        assert!(p.storage.memdisk)
    }),
    // modloop, modloop_verify
    case("modloop=none", &[], |p| assert_eq!(p.modloop, ModloopSpec::None)),
    case("nomodloop", &[], |p| assert_eq!(p.modloop, ModloopSpec::None)),
    case("modloop=https://x/modloop-virt modloop_verify=no", &[], |p| {
        assert_eq!(p.modloop, ModloopSpec::Url("https://x/modloop-virt".into()));
        assert!(!p.modloop_verify);
        assert!(p.needs_network);
    }),
    case("modloop=boot/modloop-rpi", &[], |p| {
        assert_eq!(p.modloop, ModloopSpec::Path("boot/modloop-rpi".into()))
    }),
    // modules (+ rootfstype, fixed ones kept apart)
    case(
        "modules=loop,squashfs,sd-mod,,usb-storage,sd-mod rootfstype=ext4",
        &[],
        |p| {
            assert_eq!(
                p.modules,
                strings(&["loop", "squashfs", "sd-mod", "usb-storage", "ext4"])
            );
            assert_eq!(p.fixed_modules, strings(&["simpledrm"]));
        },
    ),
    case("nomodules", &[], |p| assert!(p.modules.is_empty())),
    // nbd
    case("nbd=10.0.0.1:10809", &[(Unsupported, "nbd")], |p| {
        assert_eq!(p.storage.nbd, strings(&["10.0.0.1:10809"]));
        assert!(p.needs_network);
    }),
    // overlaytmpfs, overlaytmpfsflags
    case(
        "root=/dev/vda1 rootflags=noatime overlaytmpfs overlaytmpfsflags=size=1G",
        &[],
        |p| {
            let r = root(p);
            assert_eq!(r.flags, "noatime,ro");
            assert_eq!(r.overlay_tmpfs.as_deref(), Some("mode=0755,size=1G,rw"));
        },
    ),
    case("overlaytmpfs=yes", &[(Ignored, "overlaytmpfs")], |p| {
        diskless(p);
    }),
    // panic: any value panics; `nopanic` is off (Alpine: on).
    case("panic", &[], |p| {
        assert_eq!(p.fail_policy, FailPolicy::KernelPanic)
    }),
    case("panic=10", &[], |p| {
        assert_eq!(p.fail_policy, FailPolicy::KernelPanic)
    }),
    case("panic=soon", &[(InvalidValue, "panic")], |p| {
        assert_eq!(p.fail_policy, FailPolicy::KernelPanic)
    }),
    case("nopanic", &[], |p| {
        assert_eq!(p.fail_policy, FailPolicy::Rescue)
    }),
    // pkgs
    case(r#"pkgs=htop,vim pkgs="htop vim,tmux""#, &[(Duplicate, "pkgs")], |p| {
        assert_eq!(diskless(p).pkgs, strings(&["htop", "vim", "tmux"]))
    }),
    // quiet
    case("quiet", &[], |p| assert!(p.quiet)),
    case("quiet noquiet", &[(Duplicate, "quiet")], |p| assert!(!p.quiet)),
    case("quiet=1", &[], |p| assert!(p.quiet)),
    case("quiet=loud", &[(InvalidValue, "quiet")], |p| assert!(!p.quiet)),
    // resume, resume_offset
    case(
        "root=/dev/vda2 resume=UUID=swap resume_offset=3549184",
        &[(Unsupported, "resume")],
        |p| {
            assert_eq!(
                p.storage.resume,
                Some(Resume {
                    device: DeviceSpec::Uuid("swap".into()),
                    offset: Some(3549184)
                })
            )
        },
    ),
    // root
    case("root=/dev/vda1", &[], |p| {
        let r = root(p);
        assert_eq!(r.device, path("/dev/vda1"));
        assert_eq!(r.fstype, None);
        assert_eq!(r.flags, "ro");
        assert_eq!(r.overlay_tmpfs, None);
        assert_eq!(r.usr, UsrMount::Flags("ro".into()));
    }),
    case("root=UUID=1234-ABCD", &[], |p| {
        assert_eq!(root(p).device, DeviceSpec::Uuid("1234-ABCD".into()))
    }),
    case("root=LABEL=alpine", &[], |p| {
        assert_eq!(root(p).device, DeviceSpec::Label("alpine".into()))
    }),
    case("root=PARTUUID=abcd-02", &[], |p| {
        assert_eq!(root(p).device, DeviceSpec::PartUuid("abcd-02".into()))
    }),
    case("root=PARTLABEL=system", &[], |p| {
        assert_eq!(root(p).device, DeviceSpec::PartLabel("system".into()))
    }),
    case("root=ZFS=rpool/ROOT/alpine zfs_force", &[(Unsupported, "root")], |p| {
        let r = root(p);
        assert_eq!(r.device, DeviceSpec::Zfs("rpool/ROOT/alpine".into()));
        assert_eq!(r.fstype.as_deref(), Some("zfs"));
        assert!(r.zfs_force);
        assert_eq!(p.modules, strings(&["zfs"]));
    }),
    case("root=vda1", &[(InvalidValue, "root")], |p| {
        assert_eq!(root(p).device, path("/dev/vda1"))
    }),
    case("noroot", &[], |p| {
        diskless(p);
    }),
    case("root", &[(InvalidValue, "root")], |p| {
        diskless(p);
    }),
    case("debug-init singel", &[(Misspelled, "debug-init"), (Misspelled, "singel")], |p| {
        assert!(!p.debug && !p.single)
    }),
    case("root=", &[], |p| {
        diskless(p);
    }),
    case(
        "root=/dev/sda1 apkovl=x pkgs=a",
        &[(Ignored, "apkovl"), (Ignored, "pkgs")],
        |p| {
            root(p);
        },
    ),
    // root_size, rootflags (diskless)
    case(
        "root_size=200M rootflags=nr_inodes=0",
        &[(Deprecated, "root_size")],
        |p| {
            assert_eq!(
                diskless(p).tmpfs_flags,
                "mode=0755,size=200M,nr_inodes=0"
            )
        },
    ),
    // rootflags, rootfstype (root mode)
    case(
        "root=/dev/sda2 rootfstype=btrfs rootflags=subvol=@,compress=zstd",
        &[],
        |p| {
            let r = root(p);
            assert_eq!(r.fstype.as_deref(), Some("btrfs"));
            assert_eq!(r.flags, "subvol=@,compress=zstd");
            assert!(r.btrfs_scan);
        },
    ),
    // splash
    case("nosplash", &[], |p| assert_eq!(p.splash, Splash::Off)),
    case("splash=init", &[(Unsupported, "splash")], |p| {
        assert_eq!(p.splash, Splash::UntilInit)
    }),
    case("splash", &[(Unsupported, "splash")], |p| {
        assert_eq!(p.splash, Splash::On)
    }),
    // apkovl_key
    case("apkovl_key=/etc/apkovl.key", &[], |p| {
        assert_eq!(
            diskless(p).apkovl_key.as_deref(),
            Some(std::path::Path::new("/etc/apkovl.key"))
        )
    }),
    // ssh_key
    case(r#"ssh_key="ssh-ed25519 AAAAC3 me@host""#, &[], |p| {
        assert_eq!(
            diskless(p).ssh_key.as_deref(),
            Some("ssh-ed25519 AAAAC3 me@host")
        )
    }),
    // uevent_buf_size
    case("uevent_buf_size=8388608", &[], |p| {
        assert_eq!(p.uevent_buf_size, 8 << 20)
    }),
    case("uevent_buf_size=big", &[(InvalidValue, "uevent_buf_size")], |p| {
        assert_eq!(p.uevent_buf_size, 4 << 20)
    }),
    // ramboot_cache (issue 11): on unless turned off
    case("", &[], |p| assert!(diskless(p).root_cache)),
    case("ramboot_cache=no", &[], |p| assert!(!diskless(p).root_cache)),
    case("noramboot_cache", &[], |p| assert!(!diskless(p).root_cache)),
    case("ramboot_cache=maybe", &[(InvalidValue, "ramboot_cache")], |p| {
        assert!(diskless(p).root_cache)
    }),
    // ramboot_lkg (issue 13): 2 in service mode, off otherwise unless asked for
    case("", &[], |p| assert_eq!(diskless(p).lkg_tries, 0)),
    case("ramboot_init", &[], |p| assert_eq!(diskless(p).lkg_tries, 2)),
    case("ramboot_lkg", &[], |p| assert_eq!(diskless(p).lkg_tries, 2)),
    case("ramboot_lkg=3", &[], |p| assert_eq!(diskless(p).lkg_tries, 3)),
    case("ramboot_init noramboot_lkg", &[], |p| {
        assert_eq!(diskless(p).lkg_tries, 0)
    }),
    case("ramboot_init ramboot_lkg=no", &[], |p| {
        assert_eq!(diskless(p).lkg_tries, 0)
    }),
    case("ramboot_lkg=lots", &[(InvalidValue, "ramboot_lkg")], |p| {
        assert_eq!(diskless(p).lkg_tries, 2)
    }),
    // ramboot_init
    case("", &[], |p| assert!(!p.ramboot_init)),
    case("ramboot_init", &[], |p| assert!(p.ramboot_init)),
    case("ramboot_init=1", &[], |p| assert!(p.ramboot_init)),
    case("ramboot_init=yes", &[], |p| assert!(p.ramboot_init)),
    case("ramboot_init=no", &[], |p| assert!(!p.ramboot_init)),
    case("ramboot_init noramboot_init", &[(Duplicate, "ramboot_init")], |p| {
        assert!(!p.ramboot_init)
    }),
    case("ramboot_init init=/bin/sh", &[(Ignored, "init")], |p| {
        assert!(p.ramboot_init);
        assert_eq!(p.init, PathBuf::from("/bin/sh"));
    }),
    case("init=/bin/sh", &[], |p| assert!(!p.ramboot_init)),
    // ramboot_watchdog
    case("", &[], |p| assert_eq!(p.watchdog, None)),
    case("ramboot_watchdog", &[], |p| {
        assert_eq!(p.watchdog, Some(Duration::from_secs(60)))
    }),
    case("ramboot_watchdog=yes", &[], |p| {
        assert_eq!(p.watchdog, Some(Duration::from_secs(60)))
    }),
    case("ramboot_watchdog=15", &[], |p| {
        assert_eq!(p.watchdog, Some(Duration::from_secs(15)))
    }),
    case("ramboot_watchdog=0", &[], |p| assert_eq!(p.watchdog, None)),
    case("ramboot_watchdog=no", &[], |p| assert_eq!(p.watchdog, None)),
    case("ramboot_watchdog=30 noramboot_watchdog", &[(Duplicate, "ramboot_watchdog")], |p| {
        assert_eq!(p.watchdog, None)
    }),
    case(
        "ramboot_watchdog=1min",
        &[(InvalidValue, "ramboot_watchdog")],
        |p| assert_eq!(p.watchdog, Some(Duration::from_secs(60))),
    ),
    // usbdelay
    case("usbdelay=5", &[], |p| {
        assert_eq!(diskless(p).usbdelay, Some(Duration::from_secs(5)))
    }),
    case("usbdelay=0.5", &[], |p| {
        assert_eq!(diskless(p).usbdelay, Some(Duration::from_millis(500)))
    }),
    case("usbdelay=abc", &[(InvalidValue, "usbdelay")], |p| {
        assert_eq!(diskless(p).usbdelay, None)
    }),
    // usrflags
    case("root=/dev/sda2 usrflags=disable", &[], |p| {
        assert_eq!(root(p).usr, UsrMount::Disabled)
    }),
    case("root=/dev/sda2 usrflags=rw,noatime", &[], |p| {
        assert_eq!(root(p).usr, UsrMount::Flags("rw,noatime".into()))
    }),
    // wireguard
    case("wireguard=wg0;192.168.0.1/24", &[(Unsupported, "wireguard")], |p| {
        assert!(p.needs_network);
        assert_eq!(
            p.storage.wireguard,
            Some(Wireguard {
                interface: "wg0".into(),
                addresses: strings(&["192.168.0.1/24"]),
                config: "/etc/wireguard/initrd.conf".into()
            })
        )
    }),
    // Grammar: single, consoles, duplicates, unknown words, `=` in values, quotes, `--`.
    case("s", &[], |p| assert!(p.single)),
    case("single", &[], |p| assert!(p.single)),
    case("1", &[], |p| assert!(p.single)),
    case("console=tty0 console=ttyS0,115200n8", &[], |p| {
        assert_eq!(p.consoles, strings(&["tty0", "ttyS0"]));
        assert_eq!(p.switch_root_console.as_deref(), Some("ttyS0"));
    }),
    case("console=", &[(InvalidValue, "console")], |p| {
        assert!(p.consoles.is_empty())
    }),
    case("console", &[(InvalidValue, "console")], |p| {
        assert!(p.consoles.is_empty())
    }),
    case("init=/a init=/b", &[(Duplicate, "init")], |p| {
        assert_eq!(p.init, PathBuf::from("/b"))
    }),
    case("quiet quiet", &[], |p| assert!(p.quiet)),
    case("rootwait dwc_otg.lpm_enable=0 foo=bar=baz", &[], |p| {
        assert_eq!(
            p.passthrough,
            strings(&["rootwait", "dwc_otg.lpm_enable=0", "foo=bar=baz"])
        )
    }),
    case(
        "alpine_repo=http://h/alpine/edge/main?a=b&c=d",
        &[],
        |p| {
            assert_eq!(
                diskless(p).repos,
                RepoSource::List(strings(&["http://h/alpine/edge/main?a=b&c=d"]))
            )
        },
    ),
    case(r#""init_args=a b" "#, &[], |p| {
        assert_eq!(p.init_args, strings(&["a", "b"]))
    }),
    case("quiet -- single panic", &[], |p| {
        assert!(!p.single);
        assert_eq!(p.fail_policy, FailPolicy::Rescue);
        assert_eq!(p.kernel_init_args, strings(&["single", "panic"]));
    }),
    case(
        "modlues=sd-mod apkvol=x quite noquite QUIET",
        &[
            (Misspelled, "modlues"),
            (Misspelled, "apkvol"),
            (Misspelled, "quite"),
            (Misspelled, "noquite"),
            (Misspelled, "QUIET"),
        ],
        |p| {
            assert!(p.modules.is_empty() && !p.quiet);
            assert_eq!(diskless(p).apkovl, ApkovlSource::Auto);
        },
    ),
    case("noquiet=1", &[(Ignored, "noquiet")], |p| assert!(!p.quiet)),
    // Root mode: ip= alone brings nothing up (Alpine calls configure_ip only for nbd/wireguard).
    case("root=/dev/sda1 ip=dhcp", &[(Ignored, "ip")], |p| {
        assert!(!p.needs_network)
    }),
    case(
        "root=/dev/sda1 ip=dhcp nbd=h:1",
        &[(Unsupported, "nbd")],
        |p| assert!(p.needs_network),
    ),
    // Empty values are unset, as in Alpine.
    case("quiet= panic= autodetect_serial= modules= apkovl= ip=", &[], |p| {
        assert!(!p.quiet);
        assert_eq!(p.fail_policy, FailPolicy::Rescue);
        assert_eq!(p.autodetect_serial, AutodetectSerial::Yes);
        assert!(p.modules.is_empty());
        assert_eq!(diskless(p).apkovl, ApkovlSource::Auto);
        assert_eq!(p.ip, None);
    }),
];

#[test]
fn table() {
    for c in CASES {
        let options = parse(c.line);
        let plan = plan(&options);
        let got: Vec<(WarningKind, &str)> = plan
            .warnings
            .iter()
            .map(|w| (w.kind, w.option.as_str()))
            .collect();
        assert_eq!(
            got, c.warnings,
            "warnings for {:?}: {:#?}",
            c.line, plan.warnings
        );
        (c.check)(&plan);
        // Every case also explains without trouble.
        assert!(explain(&options, &plan).contains("Boot plan"));
        assert!(explain_json(&options, &plan).starts_with('{'));
    }
}

#[test]
fn table_covers_every_option() {
    for &opt in Opt::ALL {
        let covered = CASES.iter().any(|c| {
            parse(c.line)
                .words
                .iter()
                .any(|w| matches!(&w.kind, WordKind::Known { opt: o, .. } if *o == opt))
        });
        assert!(covered, "no case uses `{opt}`");
    }
}

#[test]
fn example_command_lines_parse_cleanly() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kernel-cmdline");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "txt") {
            let plan = plan(&parse_bytes(&std::fs::read(&path).unwrap()));
            assert!(
                plan.warnings.is_empty(),
                "{}: {:#?}",
                path.display(),
                plan.warnings
            );
            seen += 1;
        }
    }
    assert!(seen >= 3);
}

#[test]
fn raspberry_pi_image() {
    let p = plan(&parse(
        "modules=loop,squashfs,sd-mod,usb-storage quiet console=tty1\n",
    ));
    assert_eq!(
        p.modules,
        strings(&["loop", "squashfs", "sd-mod", "usb-storage"])
    );
    assert_eq!(p.fixed_modules, strings(&["simpledrm"]));
    assert!(p.quiet);
    assert_eq!(p.switch_root_console.as_deref(), Some("tty1"));
    assert_eq!(diskless(&p).apkovl, ApkovlSource::Auto);
    assert!(!p.needs_network);
}

/// Why the network is configured, in the user's words: `ip=` whole (not cut to the address),
/// the URLs that need it; nothing with `ip=off`.
#[test]
fn network_needed_by_shows_the_options_as_written() {
    for (line, by) in [
        ("ip=dhcp", &["ip=dhcp"][..]),
        ("ip=:::::eth1:dhcp", &["ip=:::::eth1:dhcp"]),
        ("ip", &["ip"]),
        (
            "ip=10.0.0.5:::255.0.0.0 alpine_repo=/media/a,http://r/b modloop=https://m/x",
            &[
                "ip=10.0.0.5:::255.0.0.0",
                "alpine_repo=http://r/b",
                "modloop=https://m/x",
            ],
        ),
        // The last ip= counts, as for the plan.
        (
            "ip=dhcp ip=10.0.0.5::10.0.0.1:24",
            &["ip=10.0.0.5::10.0.0.1:24"],
        ),
        ("ip=off apkovl=http://h/a.apkovl.tar.gz", &[]),
        (
            "apkovl=http://h/a.apkovl.tar.gz",
            &["apkovl=http://h/a.apkovl.tar.gz"],
        ),
    ] {
        let o = parse(line);
        assert_eq!(network_needed_by(&o, &plan(&o)), strings(by), "{line}");
    }
}

#[test]
fn explain_mentions_the_decisions() {
    let o = parse(
        "modlues=x root_size=1G apkovl=https://h/x.apkovl.tar.gz console=ttyAMA0 panic=5 bogus",
    );
    let p = plan(&o);
    let text = explain(&o, &p);
    for needle in [
        "diskless",
        "download https://h/x.apkovl.tar.gz",
        "DHCP (the default) on the first interface with a link; needed by apkovl=https://h/x.apkovl.tar.gz;",
        "IPv6 SLAAC by the kernel at the same time as DHCPv4: up with the first that gives what the boot needs (SLAAC: address, default route, RA DNS when a URL names a host), a DHCPv4 lease within 1s after SLAAC still taken and used",
        "kernel panic",
        "switch_root -c /dev/ttyAMA0",
        "did you mean `modules`",
        "warning[deprecated] root_size",
        "left for the kernel and init",
    ] {
        assert!(text.contains(needle), "{needle:?} missing in:\n{text}");
    }
    let json = explain_json(&o, &p);
    for needle in [
        r#""kind": "diskless""#,
        r#""fail_policy": "kernel-panic""#,
        r#""needs_network": true"#,
        r#""ipv6": "slaac-alongside""#,
        "\"network_needed_by\": [\n      \"apkovl=https://h/x.apkovl.tar.gz\"\n    ]",
        r#""kind": "misspelled""#,
        r#""watchdog_timeout": null"#,
    ] {
        assert!(json.contains(needle), "{needle:?} missing in:\n{json}");
    }
    // A static ip= is shown whole, as written, not cut to its address.
    let o = parse("ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0");
    let p = plan(&o);
    let text = explain(&o, &p);
    let needle = "static 10.0.2.15 on eth0 netmask 255.255.255.0 gateway 10.0.2.2; needed by \
                  ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0;";
    assert!(text.contains(needle), "{needle:?} missing in:\n{text}");
    let json = explain_json(&o, &p);
    let needle =
        "\"network_needed_by\": [\n      \"ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0\"\n    ]";
    assert!(json.contains(needle), "{needle:?} missing in:\n{json}");
}

#[test]
fn explain_shows_service_mode_and_that_it_beats_init() {
    let o = parse("ramboot_init init=/bin/sh");
    let p = plan(&o);
    let (text, json) = (explain(&o, &p), explain_json(&o, &p));
    assert!(
        text.contains("service mode (ramboot_init): ramboot stays PID 1"),
        "{text}"
    );
    assert!(text.contains("(not /bin/sh)"), "{text}");
    assert!(
        text.contains("`init=` is ignored: `ramboot_init` keeps ramboot as PID 1"),
        "{text}"
    );
    assert!(json.contains(r#""ramboot_init": true"#), "{json}");
    let o = parse("");
    assert!(explain_json(&o, &plan(&o)).contains(r#""ramboot_init": false"#));
}

#[test]
fn explain_shows_the_watchdog() {
    let o = parse("ramboot_watchdog=30");
    let p = plan(&o);
    let (text, json) = (explain(&o, &p), explain_json(&o, &p));
    assert!(
        text.contains("PID 1 feeds /dev/watchdog (30 s timeout, every 10 s)"),
        "{text}"
    );
    assert!(json.contains(r#""watchdog_timeout": 30"#), "{json}");
}

#[test]
fn cli_explains_text_and_files() {
    use std::ffi::OsString;
    let run = |args: &[&str]| {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = cli::run(&args, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    };
    let (code, out, _) = run(&["explain", "quiet", "modules=a,b"]);
    assert_eq!(code, 0);
    assert!(out.contains("a b"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cmdline.txt");
    std::fs::write(&file, b"root=/dev/vda1 \xff quiet\n").unwrap();
    let (code, out, _) = run(&["explain", "--json", "--file", file.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(out.contains(r#""kind": "root""#), "{out}");

    let (code, _, err) = run(&["explain", "--file", "/nonexistent/cmdline.txt"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read"));
    let (code, _, err) = run(&["explain", "x", "--file", "y"]);
    assert_eq!(code, 2);
    assert!(err.contains("usage"));
}

/// Issue 10 (5): explain says when tiny-cloud is added, and that `notinycloud` turns it off.
#[test]
fn explain_shows_when_tiny_cloud_is_added() {
    let text = |line: &str| {
        let o = parse(line);
        explain(&o, &plan(&o))
    };
    assert!(text("").contains(
        "added when a filesystem is labelled cidata/CIDATA or the DMI product_serial starts with ds=: packages tiny-cloud ifupdown-ng doas"
    ));
    assert!(text("ds=nocloud").contains("wanted (tinycloud=/ds=): packages tiny-cloud"));
    assert!(text("ds=nocloud nods").contains("off (notinycloud/nods): never added"));
    assert!(
        !text("root=/dev/vda1").contains("tiny-cloud"),
        "diskless only"
    );
    let o = parse("notinycloud");
    assert!(explain_json(&o, &plan(&o)).contains(r#""tiny_cloud_off": true"#));
}
