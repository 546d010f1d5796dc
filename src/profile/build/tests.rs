use super::*;
use crate::cmdline::{parse_ip, IpConfig};
use crate::profile::Body;

fn load(text: &str) -> Res<Profile> {
    build(text, Path::new("/nonexistent/p.toml"))
}

fn err(text: &str) -> String {
    match load(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unknown_fields_are_named_with_their_line() {
    let e = err("hostname = \"a\"\n\n[[user]]\nname = \"kiosk\"\nssh_key = [\"x\"]\n");
    assert!(
        e.starts_with("/nonexistent/p.toml:5: unknown field `ssh_key`"),
        "{e}"
    );
    assert!(e.contains("ssh_keys"), "the message lists the fields: {e}");
    let e = err("hostnme = \"a\"\n");
    assert!(
        e.starts_with("/nonexistent/p.toml:1: unknown field `hostnme`"),
        "{e}"
    );
    let e = err("packages = \"alpine-base\"\n");
    assert!(e.starts_with("/nonexistent/p.toml:1: invalid type"), "{e}");
    let e = err("hostname = \n");
    assert!(e.starts_with("/nonexistent/p.toml:1: "), "{e}");
}

#[test]
fn bad_modes_are_refused_with_field_and_line() {
    for mode in ["\"0999\"", "\"rw-r--r--\"", "0o17777", "-1", "\"\""] {
        let text = format!("[[file]]\npath = \"/etc/x\"\ncontent = \"\"\nmode = {mode}\n");
        let e = err(&text);
        assert_eq!(
            e, "/nonexistent/p.toml:4: file[0].mode: an octal mode up to 7777",
            "{mode}"
        );
    }
    let ok = load("[[file]]\npath = \"/etc/x\"\ncontent = \"\"\nmode = \"4755\"\n").unwrap();
    assert_eq!(ok.tree.get("etc/x").unwrap().mode, 0o4755);
    let ok = load("[[file]]\npath = \"/etc/x\"\ncontent = \"\"\nmode = 0o600\n").unwrap();
    assert_eq!(ok.tree.get("etc/x").unwrap().mode, 0o600);
}

#[test]
fn a_missing_source_file_names_the_file_field_and_line() {
    let d = tempfile::tempdir().unwrap();
    let profile = d.path().join("p.toml");
    let text = "hostname = \"h\"\n[[file]]\npath = \"/etc/motd\"\nsource = \"files/motd\"\n";
    std::fs::write(&profile, text).unwrap();
    let e = Profile::load(&profile).err().unwrap().to_string();
    let want = format!(
        "{}:4: file[0].source: cannot read {}: ",
        profile.display(),
        d.path().join("files/motd").display()
    );
    assert!(e.starts_with(&want), "{e}");
    std::fs::create_dir(d.path().join("files")).unwrap();
    std::fs::write(d.path().join("files/motd"), "hello\n").unwrap();
    let p = Profile::load(&profile).unwrap();
    let motd = p.tree.get("etc/motd").unwrap();
    assert_eq!(motd.body, Body::File(b"hello\n".to_vec()));
}

#[test]
fn values_are_checked_where_they_are_written() {
    let cases = [
        ("hostname = \"bad_host\"\n", "1: hostname: not a host name"),
        (
            "packages = [\"a b\"]\n",
            "1: packages: \"a b\" is not an apk world atom",
        ),
        (
            "[[user]]\nname = \"k\"\ngroups = [\"nosuch\"]\n",
            "3: user[0].groups: no group \"nosuch\"",
        ),
        (
            "[[user]]\nname = \"Bad\"\n",
            "2: user[0].name: user names are",
        ),
        (
            "[[user]]\nname = \"sshd\"\n",
            "2: user[0].name: sshd is one of Alpine's",
        ),
        (
            "[[user]]\nname = \"a\"\nuid = 18\n",
            "3: user[0].uid: uid (and gid) 18 is",
        ),
        (
            "[[user]]\nname = \"root\"\nuid = 5\n",
            "3: user[0].uid: root's uid is 0",
        ),
        (
            "[[file]]\npath = \"etc/x\"\ncontent = \"\"\n",
            "2: file[0].path: an absolute path",
        ),
        (
            "[[file]]\npath = \"/etc/../x\"\ncontent = \"\"\n",
            "2: file[0].path: an absolute path",
        ),
        (
            "[[file]]\npath = \"/etc/x\"\ncontent = \"\"\nlink = \"/y\"\n",
            "1: file[0]: exactly one of",
        ),
        (
            "[[file]]\npath = \"/etc/x\"\ncontent = \"\"\nowner = \"nobody-here\"\n",
            "4: file[0].owner: user[:group]",
        ),
        (
            "hostname = \"h\"\n[[file]]\npath = \"/etc/hostname\"\ncontent = \"x\"\n",
            "3: file[0]: /etc/hostname is also written by hostname",
        ),
        (
            "[[network.interface]]\nname = \"eth0\"\naddress = \"10.0.0.1\"\n",
            "3: network.interface[0].address: expected an IPv4 ADDRESS/PREFIX",
        ),
        (
            "[[network.interface]]\nname = \"eth0\"\n",
            "1: network.interface[0]: set dhcp = true or address",
        ),
        (
            "[openrc]\ndefault = [\"../x\"]\n",
            "2: openrc.default: not a service name",
        ),
        (
            "service_mode = false\n[[service]]\nname = \"a\"\nrun = \"x\"\n",
            "2: service: ramboot services run only in service mode",
        ),
        (
            "[[service]]\nname = \"a\"\nrun = \"x\"\nenv = { A = \"1\\n2\" }\n",
            "4: service[0].env: A: a variable name and a one-line value",
        ),
        (
            "timezone = \"../etc/passwd\"\n",
            "1: timezone: not a zoneinfo name",
        ),
        ("cmdline = [\"a b\"]\n", "1: cmdline: one word per entry"),
        (
            "[[group]]\nname = \"audio\"\n",
            "2: group[0].name: a new group name",
        ),
        (
            "[[group]]\nname = \"g\"\ngid = 18\n",
            "3: group[0].gid: a gid from 1",
        ),
        (
            "[[user]]\nname = \"k\"\nhome = \"/\"\n",
            "3: user[0].home: an absolute path other than /",
        ),
    ];
    for (text, want) in cases {
        let e = err(text);
        let want = format!("/nonexistent/p.toml:{want}");
        assert!(e.starts_with(&want), "{text}\n got {e}\nwant {want}");
    }
}

/// The `ip=` words a profile adds are read back by the boot's own parser as the interface.
#[test]
fn at_boot_interfaces_become_ip_words_the_boot_parses() {
    let p = load(
        "hostname = \"h\"\n[[network.interface]]\nname = \"eth1\"\naddress = \"10.1.2.3/16\"\n\
         gateway = \"10.1.0.1\"\nat_boot = true\n[[network.interface]]\nname = \"eth0\"\ndhcp = true\n",
    )
    .unwrap();
    let ip = &p.cmdline_additions()[0];
    let (cfg, problems) = parse_ip(ip.strip_prefix("ip=").unwrap());
    assert!(problems.is_empty(), "{problems:?}");
    let IpConfig::Static(s) = cfg else {
        panic!("{ip}")
    };
    assert_eq!(s.client.to_string(), "10.1.2.3");
    assert_eq!(s.netmask.unwrap().to_string(), "255.255.0.0");
    assert_eq!(s.gateway.unwrap().to_string(), "10.1.0.1");
    assert_eq!(s.device.as_deref(), Some("eth1"));
    let Body::File(ifaces) = &p.tree.get("etc/network/interfaces").unwrap().body else {
        panic!()
    };
    assert_eq!(
        String::from_utf8_lossy(ifaces),
        "auto lo\niface lo inet loopback\n\n\
         auto eth1\niface eth1 inet static\n\taddress 10.1.2.3\n\tnetmask 255.255.0.0\n\tgateway 10.1.0.1\n\n\
         auto eth0\niface eth0 inet dhcp\n"
    );
    let dhcp =
        load("[[network.interface]]\nname = \"wlan0\"\ndhcp = true\nat_boot = true\n").unwrap();
    let (cfg, _) = parse_ip(dhcp.cmdline_additions()[0].strip_prefix("ip=").unwrap());
    assert_eq!(
        cfg,
        IpConfig::Dhcp {
            device: Some("wlan0".into())
        }
    );
    assert!(dhcp
        .services()
        .openrc
        .contains(&("boot".into(), "networking".into())));
}

#[test]
fn without_packages_the_boots_default_world_applies() {
    let p = load("hostname = \"h\"\n").unwrap();
    assert!(p.tree.get("etc/apk/world").is_none());
    assert!(p.world().is_empty());
    let p = load("timezone = \"UTC\"\npackages = [\"tzdata\", \"alpine-base\"]\n").unwrap();
    assert_eq!(p.world(), ["alpine-base", "tzdata"]);
}

#[test]
fn service_mode_follows_the_services() {
    let p = load("[[service]]\nname = \"a\"\nrun = \"exec sleep 1\"\n").unwrap();
    assert_eq!(p.cmdline_additions(), ["ramboot_init"]);
    let p = load("service_mode = true\ncmdline = [\"quiet\"]\n").unwrap();
    assert_eq!(p.cmdline_additions(), ["ramboot_init", "quiet"]);
    let p = load("cmdline = [\"quiet\"]\n").unwrap();
    assert_eq!(p.cmdline_additions(), ["quiet"]);
}

/// A profile that only gives root keys leaves Alpine's account tables alone.
#[test]
fn root_keys_alone_do_not_replace_the_account_tables() {
    let p = load("[[user]]\nname = \"root\"\nssh_keys = [\"ssh-ed25519 AAAA k\"]\n").unwrap();
    assert!(p.tree.get("etc/passwd").is_none());
    assert_eq!(p.tree.get("root").unwrap().mode, 0o700);
    assert_eq!(p.tree.get("root/.ssh").unwrap().mode, 0o700);
    let keys = p.tree.get("root/.ssh/authorized_keys").unwrap();
    assert_eq!(keys.mode, 0o600);
    assert_eq!(keys.body, Body::File(b"ssh-ed25519 AAAA k\n".to_vec()));
}

/// The field reference in the module's documentation is a profile that loads.
#[test]
fn the_documented_example_loads() {
    let doc = include_str!("../mod.rs");
    let start = doc.find("//! ```toml\n").unwrap() + "//! ```toml\n".len();
    let end = start + doc[start..].find("//! ```\n").unwrap();
    let text: String = doc[start..end]
        .lines()
        .map(|l| {
            l.strip_prefix("//! ")
                .unwrap_or(l.trim_start_matches("//!"))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let p = load(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(p.hostname(), Some("kiosk"));
    assert_eq!(p.groups()[0].name, "seat");
    assert_eq!(p.groups()[0].gid, 1001, "after the user's 1000");
    assert_eq!(
        p.cmdline_additions()[0],
        "ip=192.168.1.10::192.168.1.1:255.255.255.0:kiosk:eth0:none"
    );
    let Body::File(tz) = &p.tree.get("etc/profile.d/timezone.sh").unwrap().body else {
        panic!()
    };
    assert_eq!(tz, b"export TZ='Europe/Berlin'\n");
    let Body::File(hosts) = &p.tree.get("etc/hosts").unwrap().body else {
        panic!()
    };
    assert!(hosts.starts_with(b"127.0.0.1\tkiosk localhost localhost.localdomain\n"));
}

#[test]
fn what_a_package_must_supply_is_a_warning() {
    let p = load(
        "packages = [\"alpine-base\"]\n[[user]]\nname = \"root\"\nssh_keys = [\"k\"]\n\
         [[service]]\nname = \"web\"\nrun = \"x\"\nuser = \"www:www\"\n",
    )
    .unwrap();
    assert_eq!(
        p.warnings(),
        [
            "/nonexistent/p.toml:8: service[0].user: www is neither a [[user]] nor an Alpine \
             system account: a package must create it",
            "/nonexistent/p.toml: SSH keys are given but no openssh or dropbear is in packages",
        ]
    );
    let p = load(
        "packages = [\"openssh\"]\n[[user]]\nname = \"root\"\nssh_keys = [\"k\"]\n\
         [[service]]\nname = \"web\"\nrun = \"x\"\nuser = \"nobody\"\n",
    )
    .unwrap();
    assert!(p.warnings().is_empty(), "{:?}", p.warnings());
}
