//! Accounts: the system accounts of Alpine's `alpine-baselayout-data` and the users a profile
//! adds. An apkovl's `etc/passwd` replaces the package's file whole (it is on apk's overlay
//! list, so the package's copy becomes `.apk-new`), so a profile that adds a user writes the
//! whole table: the system accounts with Alpine's ids (packages, mdev rules and files refer to
//! `tty`, `audio`, `video`, `wheel`... by these numbers), then its users, each with a group of
//! its own name and number as busybox `adduser` makes.
//!
//! Passwords: root's field is empty as in Alpine's own `etc/shadow` unless the profile gives a
//! hash; a new user gets `*` (no password login, but not "locked": OpenSSH refuses every
//! login, keys too, to an account whose hash starts with `!`, which is what `adduser -D`
//! writes), or the profile's hash.

/// (name, uid, primary gid, home, shell) of Alpine's system accounts.
const SYSTEM_USERS: &[(&str, u32, u32, &str, &str)] = &[
    ("root", 0, 0, "/root", "/bin/sh"),
    ("bin", 1, 1, "/bin", NOLOGIN),
    ("daemon", 2, 2, "/sbin", NOLOGIN),
    ("adm", 3, 4, "/var/adm", NOLOGIN),
    ("lp", 4, 7, "/var/spool/lpd", NOLOGIN),
    ("sync", 5, 0, "/sbin", "/bin/sync"),
    ("shutdown", 6, 0, "/sbin", "/sbin/shutdown"),
    ("halt", 7, 0, "/sbin", "/sbin/halt"),
    ("mail", 8, 12, "/var/mail", NOLOGIN),
    ("news", 9, 13, "/usr/lib/news", NOLOGIN),
    ("uucp", 10, 14, "/var/spool/uucppublic", NOLOGIN),
    ("cron", 16, 16, "/var/spool/cron", NOLOGIN),
    ("ftp", 21, 21, "/var/lib/ftp", NOLOGIN),
    ("sshd", 22, 22, "/dev/null", NOLOGIN),
    ("games", 35, 35, "/usr/games", NOLOGIN),
    ("ntp", 123, 123, "/var/empty", NOLOGIN),
    ("guest", 405, 100, "/dev/null", NOLOGIN),
    ("nobody", 65534, 65534, "/", NOLOGIN),
];

const NOLOGIN: &str = "/sbin/nologin";

/// (name, gid) of Alpine's system groups (device groups included: mdev's rules and udev's
/// name them).
const SYSTEM_GROUPS: &[(&str, u32)] = &[
    ("root", 0),
    ("bin", 1),
    ("daemon", 2),
    ("sys", 3),
    ("adm", 4),
    ("tty", 5),
    ("disk", 6),
    ("lp", 7),
    ("mem", 8),
    ("kmem", 9),
    ("wheel", 10),
    ("floppy", 11),
    ("mail", 12),
    ("news", 13),
    ("uucp", 14),
    ("cron", 16),
    ("console", 17),
    ("audio", 18),
    ("cdrom", 19),
    ("dialout", 20),
    ("ftp", 21),
    ("sshd", 22),
    ("input", 23),
    ("tape", 26),
    ("video", 27),
    ("netdev", 28),
    ("kvm", 34),
    ("games", 35),
    ("shadow", 42),
    ("cdrw", 80),
    ("www-data", 82),
    ("usb", 85),
    ("users", 100),
    ("ntp", 123),
    ("nofiles", 200),
    ("locate", 245),
    ("abuild", 300),
    ("utmp", 406),
    ("ping", 999),
    ("nogroup", 65533),
    ("nobody", 65534),
];

/// The gid of Alpine's `shadow` group, owner of `etc/shadow` (0640).
pub const SHADOW_GID: u32 = 42;

/// A user the profile declares (root included, when it changes root's entry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
    /// The shadow password field.
    pub password: String,
    pub groups: Vec<String>,
    pub ssh_keys: Vec<String>,
}

pub fn system_user(name: &str) -> Option<(u32, u32)> {
    SYSTEM_USERS
        .iter()
        .find(|u| u.0 == name)
        .map(|u| (u.1, u.2))
}

pub fn system_group(name: &str) -> Option<u32> {
    SYSTEM_GROUPS.iter().find(|g| g.0 == name).map(|g| g.1)
}

pub fn uid_taken(uid: u32) -> bool {
    SYSTEM_USERS.iter().any(|u| u.1 == uid)
}

pub fn gid_taken(gid: u32) -> bool {
    SYSTEM_GROUPS.iter().any(|g| g.1 == gid)
}

/// `name` as a user name busybox and shadow accept: `[a-z_][a-z0-9_-]*`, at most 32.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    first_ok
        && name.len() <= 32
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// A group the profile adds (name, gid).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
}

/// The account tables with `users` (root replaced when it is among them) and `groups`.
pub struct Tables {
    pub passwd: String,
    pub group: String,
    pub shadow: String,
}

pub fn tables(users: &[User], groups: &[Group]) -> Tables {
    let mut t = Tables {
        passwd: String::new(),
        group: String::new(),
        shadow: String::new(),
    };
    for &(name, uid, gid, home, shell) in SYSTEM_USERS {
        match users.iter().find(|u| u.name == name) {
            Some(u) => push_user(&mut t, u),
            None => {
                let pw = if name == "root" { "" } else { "!" };
                t.passwd
                    .push_str(&format!("{name}:x:{uid}:{gid}:{name}:{home}:{shell}\n"));
                t.shadow.push_str(&format!("{name}:{pw}::0:::::\n"));
            }
        }
    }
    let new_users = users.iter().filter(|u| system_user(&u.name).is_none());
    for u in new_users.clone() {
        push_user(&mut t, u);
    }
    let members = |name: &str| -> String {
        let m: Vec<&str> = users
            .iter()
            .filter(|u| u.groups.iter().any(|g| g == name))
            .map(|u| u.name.as_str())
            .collect();
        m.join(",")
    };
    let extra = groups.iter().map(|g| (g.name.as_str(), g.gid));
    for (name, gid) in SYSTEM_GROUPS.iter().copied().chain(extra) {
        t.group
            .push_str(&format!("{name}:x:{gid}:{}\n", members(name)));
    }
    for u in new_users {
        let name = &u.name;
        t.group
            .push_str(&format!("{name}:x:{}:{}\n", u.gid, members(name)));
    }
    t
}

fn push_user(t: &mut Tables, u: &User) {
    let User {
        name,
        uid,
        gid,
        home,
        shell,
        password,
        ..
    } = u;
    t.passwd
        .push_str(&format!("{name}:x:{uid}:{gid}:{name}:{home}:{shell}\n"));
    t.shadow.push_str(&format!("{name}:{password}::0:::::\n"));
}

/// The names stored beside numeric owners in the archive.
pub fn names(users: &[User], groups: &[Group], uid: u32, gid: u32) -> (String, String) {
    let user = users
        .iter()
        .find(|u| u.uid == uid)
        .map(|u| u.name.clone())
        .or_else(|| SYSTEM_USERS.iter().find(|u| u.1 == uid).map(|u| u.0.into()));
    let group = users
        .iter()
        .find(|u| u.gid == gid && system_group(&u.name).is_none())
        .map(|u| u.name.clone())
        .or_else(|| groups.iter().find(|g| g.gid == gid).map(|g| g.name.clone()))
        .or_else(|| {
            SYSTEM_GROUPS
                .iter()
                .find(|g| g.1 == gid)
                .map(|g| g.0.into())
        });
    (user.unwrap_or_default(), group.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_user_gets_its_group_and_joins_system_groups() {
        let kiosk = User {
            name: "kiosk".into(),
            uid: 1000,
            gid: 1000,
            home: "/home/kiosk".into(),
            shell: "/bin/sh".into(),
            password: "*".into(),
            groups: vec!["audio".into(), "video".into(), "seat".into()],
            ssh_keys: vec![],
        };
        let seat = Group {
            name: "seat".into(),
            gid: 1001,
        };
        let t = tables(std::slice::from_ref(&kiosk), std::slice::from_ref(&seat));
        assert!(t.passwd.starts_with("root:x:0:0:root:/root:/bin/sh\n"));
        assert!(t
            .passwd
            .ends_with("kiosk:x:1000:1000:kiosk:/home/kiosk:/bin/sh\n"));
        assert!(t.group.contains("\naudio:x:18:kiosk\n"));
        assert!(t.group.contains("\nvideo:x:27:kiosk\n"));
        assert!(t.group.ends_with("seat:x:1001:kiosk\nkiosk:x:1000:\n"));
        assert!(t.shadow.starts_with("root:::0:::::\n"));
        assert!(t.shadow.ends_with("kiosk:*::0:::::\n"));
        assert!(t.shadow.contains("\nsshd:!::0:::::\n"));
        let n = names(&[kiosk], &[seat], 1000, 1001);
        assert_eq!(n, ("kiosk".into(), "seat".into()));
    }

    #[test]
    fn user_names_follow_busybox_rules() {
        for ok in ["kiosk", "_svc", "web-dev", "a1"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "Kiosk", "1a", "a:b", "a b", &"x".repeat(33)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
