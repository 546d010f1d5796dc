//! From the file as written ([`super::schema`]) to a checked [`Profile`]: every value is
//! validated with the line it came from, then turned into the apkovl's files in the formats
//! Alpine's own tools write them (`lbu`'s runlevel links, `setup-interfaces`'
//! `etc/network/interfaces`, apk's world), and ramboot's service directories.

use super::accounts::{self, Group, User};
use super::schema::{Raw, RawFile, RawGroup, RawInterface, RawMode, RawService, RawUser, Text};
use super::tree::{Node, Tree};
use super::{Profile, ProfileError, Services};
use std::net::Ipv4Addr;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use toml::Spanned;

/// Where errors point: the profile's path and text (for line numbers).
struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn line(&self, span: Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text[..end].matches('\n').count() + 1
    }

    fn invalid(&self, span: Range<usize>, field: &str, reason: impl Into<String>) -> ProfileError {
        ProfileError::Invalid {
            path: self.path.into(),
            line: self.line(span),
            field: field.into(),
            reason: reason.into(),
        }
    }
}

type Res<T> = Result<T, ProfileError>;

pub fn build(text: &str, path: &Path) -> Res<Profile> {
    let cx = Ctx { path, text };
    let raw: Raw = toml::from_str(text).map_err(|e| ProfileError::Syntax {
        path: path.into(),
        line: cx.line(e.span().unwrap_or(0..0)),
        message: e.message().to_string(),
    })?;
    Builder {
        cx: &cx,
        tree: Tree::default(),
        services: Services::default(),
        cmdline: Vec::new(),
        warnings: Vec::new(),
    }
    .run(raw)
}

struct Builder<'a> {
    cx: &'a Ctx<'a>,
    tree: Tree,
    services: Services,
    cmdline: Vec<String>,
    warnings: Vec<String>,
}

impl Builder<'_> {
    fn run(mut self, raw: Raw) -> Res<Profile> {
        let hostname = raw
            .hostname
            .as_ref()
            .map(|h| self.hostname(h))
            .transpose()?;
        let (world, repositories) = self.apk_files(&raw)?;
        let groups = self.groups(&raw.groups)?;
        let (users, groups) = self.users(&raw.users, groups)?;
        if let Some(net) = &raw.network {
            self.network(net, hostname.as_deref())?;
        }
        for (level, names) in &raw.openrc {
            self.runlevel(level, names)?;
        }
        self.service_mode(&raw)?;
        for (i, s) in raw.services.iter().enumerate() {
            self.service(i, s)?;
        }
        for (i, f) in raw.files.iter().enumerate() {
            self.file(i, f, &users, &groups)?;
        }
        self.extra_cmdline(&raw.cmdline)?;
        self.warn_unmet(&raw, &world, &users);
        Ok(Profile {
            hostname,
            world,
            repositories,
            cmdline: self.cmdline,
            services: self.services,
            users,
            groups,
            tree: self.tree,
            warnings: self.warnings,
        })
    }

    /// What loads but will not work as written unless a package supplies it.
    fn warn_unmet(&mut self, raw: &Raw, world: &[String], users: &[User]) {
        let known = |name: &str| {
            users.iter().any(|u| u.name == name) || accounts::system_user(name).is_some()
        };
        for (i, s) in raw.services.iter().enumerate() {
            let Some(u) = &s.get_ref().user else { continue };
            let name = u.get_ref().split(':').next().unwrap_or_default();
            if !name.is_empty() && !known(name) && name.parse::<u32>().is_err() {
                self.warnings.push(format!(
                    "{}:{}: service[{i}].user: {name} is neither a [[user]] nor an Alpine system \
                     account: a package must create it",
                    self.cx.path.display(),
                    self.cx.line(u.span())
                ));
            }
        }
        let has_keys = users.iter().any(|u| !u.ssh_keys.is_empty());
        let has_ssh = world
            .iter()
            .any(|w| w.starts_with("openssh") || w.starts_with("dropbear"));
        if has_keys && !has_ssh {
            self.warnings.push(format!(
                "{}: SSH keys are given but no openssh or dropbear is in packages",
                self.cx.path.display()
            ));
        }
    }

    /// World, repositories, timezone and the default-services marker; returns the world and
    /// the repositories. Without packages no world is written: the boot's default applies.
    fn apk_files(&mut self, raw: &Raw) -> Res<(Vec<String>, Vec<String>)> {
        let mut world = self.world(&raw.packages)?;
        let repositories = self.lines(&raw.repositories, "repositories")?;
        if !repositories.is_empty() {
            let text = repositories.join("\n") + "\n";
            let node = Node::file(text, 0o644);
            self.put("etc/apk/repositories", node, "repositories")?;
        }
        if let Some(tz) = &raw.timezone {
            self.timezone(tz)?;
            world.push("tzdata".into());
        }
        world.sort();
        world.dedup();
        if !world.is_empty() {
            let text: String = world.iter().map(|w| format!("{w}\n")).collect();
            self.put("etc/apk/world", Node::file(text, 0o644), "packages")?;
        }
        if raw.default_boot_services.unwrap_or(true) {
            // Alpine's init adds its default runlevels when this marker is in the apkovl.
            let marker = Node::file("", 0o644);
            self.put(
                "etc/.default_boot_services",
                marker,
                "default_boot_services",
            )?;
        }
        Ok((world, repositories))
    }

    fn extra_cmdline(&mut self, words: &[Text]) -> Res<()> {
        for word in words {
            let w = word.get_ref();
            if w.is_empty() || w.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(self
                    .cx
                    .invalid(word.span(), "cmdline", "one word per entry"));
            }
            self.cmdline.push(w.clone());
        }
        Ok(())
    }

    /// Adds a node; a conflict is reported at the start of the file (its field is named).
    fn put(&mut self, path: &str, node: Node, field: &str) -> Res<()> {
        self.put_at(path, node, field, 0..0)
    }

    fn put_at(&mut self, path: &str, node: Node, field: &str, span: Range<usize>) -> Res<()> {
        self.tree
            .add(path, node, field)
            .map_err(|why| self.cx.invalid(span, field, why))
    }

    fn hostname(&mut self, h: &Text) -> Res<String> {
        let name = h.get_ref();
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if name.len() > 253 || !name.split('.').all(label_ok) {
            let why = "not a host name (letters, digits, `-`, dot-separated labels)";
            return Err(self.cx.invalid(h.span(), "hostname", why));
        }
        // The name and, for a qualified one, its first label resolve to the loopback address.
        let names = match name.split_once('.') {
            Some((short, _)) => format!("{name} {short}"),
            None => name.clone(),
        };
        self.put(
            "etc/hostname",
            Node::file(format!("{name}\n"), 0o644),
            "hostname",
        )?;
        let hosts = format!(
            "127.0.0.1\t{names} localhost localhost.localdomain\n\
             ::1\t\tlocalhost localhost.localdomain\n"
        );
        self.put("etc/hosts", Node::file(hosts, 0o644), "hostname")?;
        Ok(name.clone())
    }

    fn world(&self, packages: &[Text]) -> Res<Vec<String>> {
        let mut out = Vec::new();
        for p in packages {
            let atom = p.get_ref();
            let bad = atom.is_empty() || atom.chars().any(char::is_whitespace);
            if bad || crate::apk::dep::Dep::parse(atom).is_err() {
                let why = format!("{} is not an apk world atom", crate::quote::quoted(atom));
                return Err(self.cx.invalid(p.span(), "packages", why));
            }
            out.push(atom.clone());
        }
        Ok(out)
    }

    fn lines(&self, items: &[Text], field: &str) -> Res<Vec<String>> {
        let mut out = Vec::new();
        for item in items {
            let v = item.get_ref().trim();
            if v.is_empty() || v.contains(['\n', '\r']) {
                return Err(self
                    .cx
                    .invalid(item.span(), field, "one non-empty line each"));
            }
            out.push(v.to_string());
        }
        Ok(out)
    }

    /// `/etc/localtime` → the zone in tzdata (added to the world), as `setup-timezone -i`.
    fn timezone(&mut self, tz: &Text) -> Res<()> {
        let name = tz.get_ref();
        let ok = !name.is_empty()
            && name.split('/').all(|p| {
                !p.is_empty()
                    && p != ".."
                    && p != "."
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_+-".contains(c))
            });
        if !ok {
            let why = "not a zoneinfo name such as Europe/Berlin";
            return Err(self.cx.invalid(tz.span(), "timezone", why));
        }
        let link = Node::link(format!("/usr/share/zoneinfo/{name}"));
        self.put_at("etc/localtime", link, "timezone", tz.span())?;
        // What setup-timezone writes for login shells, beside the link every program reads.
        let file = Node::file(format!("export TZ='{name}'\n"), 0o644);
        self.put_at("etc/profile.d/timezone.sh", file, "timezone", tz.span())
    }

    /// Extra groups, with the gid given (or none yet: see [`Self::users`]).
    fn groups(&self, raw: &[Spanned<RawGroup>]) -> Res<Vec<(Group, bool)>> {
        let mut out: Vec<(Group, bool)> = Vec::new();
        for (i, g) in raw.iter().enumerate() {
            let g = g.get_ref();
            let field = format!("group[{i}]");
            let name = g.name.get_ref();
            let dup = out.iter().any(|(o, _)| &o.name == name);
            if !accounts::valid_name(name) || accounts::system_group(name).is_some() || dup {
                let why = "a new group name ([a-z_][a-z0-9_-]*, not a system group, once)";
                return Err(self
                    .cx
                    .invalid(g.name.span(), &format!("{field}.name"), why));
            }
            let gid = match &g.gid {
                None => None,
                Some(v) => {
                    let id = u32::try_from(*v.get_ref()).ok().filter(|&id| {
                        (1..=60000).contains(&id)
                            && !accounts::gid_taken(id)
                            && !out.iter().any(|(o, _)| o.gid == id)
                    });
                    let why = "a gid from 1 to 60000 that no other group has";
                    Some(id.ok_or_else(|| self.cx.invalid(v.span(), &format!("{field}.gid"), why))?)
                }
            };
            let group = Group {
                name: name.clone(),
                gid: gid.unwrap_or(0),
            };
            out.push((group, gid.is_some()));
        }
        Ok(out)
    }

    fn users(
        &mut self,
        raw: &[Spanned<RawUser>],
        mut groups: Vec<(Group, bool)>,
    ) -> Res<(Vec<User>, Vec<Group>)> {
        let mut users: Vec<User> = Vec::new();
        let mut next_uid = 1000;
        // Groups without a gid yet have 0 here, which no user can take.
        let fixed: Vec<Group> = groups.iter().map(|g| g.0.clone()).collect();
        for (i, u) in raw.iter().enumerate() {
            let user = self.user(i, u.get_ref(), &users, &fixed, &mut next_uid)?;
            users.push(user);
        }
        let mut next_gid = 1000;
        for (g, given) in groups.iter_mut().filter(|g| !g.1) {
            while accounts::gid_taken(next_gid)
                || users.iter().any(|u| u.gid == next_gid)
                || fixed.iter().any(|f| f.gid == next_gid)
            {
                next_gid += 1;
            }
            (g.gid, *given) = (next_gid, true);
            next_gid += 1;
        }
        let groups: Vec<Group> = groups.into_iter().map(|g| g.0).collect();
        let writes_tables = !groups.is_empty()
            || users
                .iter()
                .any(|u| u.name != "root" || u.shell != "/bin/sh" || !u.password.is_empty());
        if writes_tables {
            let t = accounts::tables(&users, &groups);
            self.put("etc/passwd", Node::file(t.passwd, 0o644), "user")?;
            self.put("etc/group", Node::file(t.group, 0o644), "user")?;
            let shadow = Node::file(t.shadow, 0o640).owned(0, accounts::SHADOW_GID);
            self.put("etc/shadow", shadow, "user")?;
        }
        for (i, u) in users.iter().enumerate() {
            self.user_files(i, u)?;
        }
        Ok((users, groups))
    }

    fn user(
        &self,
        i: usize,
        u: &RawUser,
        earlier: &[User],
        groups: &[Group],
        next: &mut u32,
    ) -> Res<User> {
        let field = |f: &str| format!("user[{i}].{f}");
        let name = u.name.get_ref().clone();
        if !accounts::valid_name(&name) {
            let why = "user names are [a-z_][a-z0-9_-]*, at most 32 characters";
            return Err(self.cx.invalid(u.name.span(), &field("name"), why));
        }
        if earlier.iter().any(|e| e.name == name) || groups.iter().any(|g| g.name == name) {
            let why = format!("user {name} is declared twice (or is a [[group]])");
            return Err(self.cx.invalid(u.name.span(), &field("name"), why));
        }
        let system = accounts::system_user(&name);
        if system.is_some() && name != "root" {
            let why = format!("{name} is one of Alpine's system accounts");
            return Err(self.cx.invalid(u.name.span(), &field("name"), why));
        }
        let uid = self.uid(u, &field("uid"), system.map(|s| s.0), earlier, groups, next)?;
        let gid = system.map_or(uid, |s| s.1);
        let mut member_of = Vec::new();
        for g in &u.groups {
            let known = accounts::system_group(g.get_ref()).is_some()
                || earlier.iter().any(|e| &e.name == g.get_ref())
                || groups.iter().any(|e| &e.name == g.get_ref());
            if !known {
                let why = format!("no group {}", crate::quote::quoted(g.get_ref()));
                return Err(self.cx.invalid(g.span(), &field("groups"), why));
            }
            member_of.push(g.get_ref().clone());
        }
        let default_home = if name == "root" {
            "/root".to_string()
        } else {
            format!("/home/{name}")
        };
        let home = self.abs_text(u.home.as_ref(), &field("home"))?;
        let shell = self.abs_text(u.shell.as_ref(), &field("shell"))?;
        let password = match &u.password_hash {
            Some(h) if h.get_ref().contains([':', '\n']) => {
                let why = "a crypt(3) hash has no `:` or newline";
                return Err(self.cx.invalid(h.span(), &field("password_hash"), why));
            }
            Some(h) => h.get_ref().clone(),
            None if name == "root" => String::new(),
            None => "*".into(),
        };
        let ssh_keys = self.lines(&u.ssh_keys, &field("ssh_keys"))?;
        Ok(User {
            name,
            uid,
            gid,
            home: home.unwrap_or(default_home),
            shell: shell.unwrap_or_else(|| "/bin/sh".into()),
            password,
            groups: member_of,
            ssh_keys,
        })
    }

    fn uid(
        &self,
        u: &RawUser,
        field: &str,
        system: Option<u32>,
        earlier: &[User],
        groups: &[Group],
        next: &mut u32,
    ) -> Res<u32> {
        let taken = |id: u32| {
            accounts::uid_taken(id)
                || accounts::gid_taken(id)
                || earlier.iter().any(|e| e.uid == id)
                || groups.iter().any(|g| g.gid == id)
        };
        match (&u.uid, system) {
            (Some(v), Some(s)) if *v.get_ref() != i64::from(s) => {
                Err(self.cx.invalid(v.span(), field, "root's uid is 0"))
            }
            (_, Some(s)) => Ok(s),
            (Some(v), None) => {
                let id = u32::try_from(*v.get_ref())
                    .ok()
                    .filter(|&id| (1..=60000).contains(&id));
                match id {
                    Some(id) if !taken(id) => Ok(id),
                    Some(id) => {
                        let why = format!("uid (and gid) {id} is already used");
                        Err(self.cx.invalid(v.span(), field, why))
                    }
                    None => Err(self.cx.invalid(v.span(), field, "uid must be 1..60000")),
                }
            }
            (None, None) => {
                while taken(*next) {
                    *next += 1;
                }
                Ok(*next)
            }
        }
    }

    fn abs_text(&self, v: Option<&Text>, field: &str) -> Res<Option<String>> {
        let Some(v) = v else { return Ok(None) };
        let s = v.get_ref();
        if clean_path(s).is_none() || s.contains([':', '\n']) {
            return Err(self.cx.invalid(
                v.span(),
                field,
                "an absolute path other than /, without `:` or `..`",
            ));
        }
        Ok(Some(s.clone()))
    }

    /// Home and `.ssh/authorized_keys` with the modes sshd's StrictModes wants.
    fn user_files(&mut self, i: usize, u: &User) -> Res<()> {
        let field = format!("user[{i}]");
        let home = u.home.trim_start_matches('/').to_string();
        let home_mode = if u.name == "root" { 0o700 } else { 0o755 };
        let owned = |n: Node| n.owned(u.uid, u.gid);
        if u.name != "root" || !u.ssh_keys.is_empty() {
            self.put(&home, owned(Node::dir(home_mode)), &field)?;
        }
        if u.ssh_keys.is_empty() {
            return Ok(());
        }
        let ssh = format!("{home}/.ssh");
        self.put(&ssh, owned(Node::dir(0o700)), &field)?;
        let keys: String = u.ssh_keys.iter().map(|k| format!("{k}\n")).collect();
        let file = owned(Node::file(keys, 0o600));
        self.put(&format!("{ssh}/authorized_keys"), file, &field)
    }

    fn network(&mut self, net: &super::schema::RawNetwork, host: Option<&str>) -> Res<()> {
        let mut text = String::from("auto lo\niface lo inet loopback\n");
        let mut at_boot = 0;
        for (i, iface) in net.interfaces.iter().enumerate() {
            let field = format!("network.interface[{i}]");
            let stanza = self.interface(iface, &field, host)?;
            text.push('\n');
            text.push_str(&stanza.0);
            if let Some(ip) = stanza.1 {
                at_boot += 1;
                if at_boot > 1 {
                    let why = "only one interface can be configured at boot (ip=)";
                    return Err(self.cx.invalid(iface.span(), &field, why));
                }
                self.cmdline.push(ip);
            }
        }
        if !net.interfaces.is_empty() {
            self.put("etc/network/interfaces", Node::file(text, 0o644), "network")?;
            self.link_service("boot", "networking", "network")?;
        }
        if !net.dns.is_empty() {
            let mut conf = String::new();
            for d in &net.dns {
                if d.get_ref().parse::<std::net::IpAddr>().is_err() {
                    let why = "not an IP address";
                    return Err(self.cx.invalid(d.span(), "network.dns", why));
                }
                conf.push_str(&format!("nameserver {}\n", d.get_ref()));
            }
            self.put("etc/resolv.conf", Node::file(conf, 0o644), "network.dns")?;
        }
        Ok(())
    }

    /// The interface's stanza and, when configured at boot, its `ip=` word.
    fn interface(
        &self,
        iface: &Spanned<RawInterface>,
        field: &str,
        host: Option<&str>,
    ) -> Res<(String, Option<String>)> {
        let i = iface.get_ref();
        let name = i.name.get_ref();
        if !valid_service_name(name) || name.len() > 15 {
            let why = "not an interface name";
            return Err(self
                .cx
                .invalid(i.name.span(), &format!("{field}.name"), why));
        }
        let host = host.unwrap_or("");
        if i.dhcp {
            if let Some(a) = i.address.as_ref().or(i.gateway.as_ref()) {
                let why = "dhcp = true takes no address or gateway";
                return Err(self.cx.invalid(a.span(), field, why));
            }
            let stanza = format!("auto {name}\niface {name} inet dhcp\n");
            let ip = format!("ip=::::{host}:{name}:dhcp");
            return Ok((stanza, i.at_boot.then_some(ip)));
        }
        let Some(addr) = &i.address else {
            let why = "set dhcp = true or address = \"ADDRESS/PREFIX\"";
            return Err(self.cx.invalid(iface.span(), field, why));
        };
        let (ip, mask) = parse_cidr(addr.get_ref()).ok_or_else(|| {
            let why = "expected an IPv4 ADDRESS/PREFIX such as 192.168.1.10/24";
            self.cx
                .invalid(addr.span(), &format!("{field}.address"), why)
        })?;
        let mut stanza =
            format!("auto {name}\niface {name} inet static\n\taddress {ip}\n\tnetmask {mask}\n");
        let mut gw_text = String::new();
        if let Some(gw) = &i.gateway {
            let g: Ipv4Addr = gw.get_ref().parse().map_err(|_| {
                self.cx.invalid(
                    gw.span(),
                    &format!("{field}.gateway"),
                    "not an IPv4 address",
                )
            })?;
            stanza.push_str(&format!("\tgateway {g}\n"));
            gw_text = g.to_string();
        }
        let ip_word = format!("ip={ip}::{gw_text}:{mask}:{host}:{name}:none");
        Ok((stanza, i.at_boot.then_some(ip_word)))
    }

    fn runlevel(&mut self, level: &str, names: &Spanned<Vec<Text>>) -> Res<()> {
        let field = format!("openrc.{level}");
        if !valid_service_name(level) {
            return Err(self.cx.invalid(names.span(), &field, "not a runlevel name"));
        }
        for n in names.get_ref() {
            if !valid_service_name(n.get_ref()) {
                let why = "not a service name (letters, digits, `._@-`)";
                return Err(self.cx.invalid(n.span(), &field, why));
            }
            self.link_service(level, n.get_ref(), &field)?;
        }
        Ok(())
    }

    /// `etc/runlevels/<level>/<name> -> /etc/init.d/<name>`, as `rc-update add` and `lbu` keep it.
    fn link_service(&mut self, level: &str, name: &str, field: &str) -> Res<()> {
        let entry = (level.to_string(), name.to_string());
        if self.services.openrc.contains(&entry) {
            return Ok(());
        }
        let link = Node::link(format!("/etc/init.d/{name}"));
        self.put(&format!("etc/runlevels/{level}/{name}"), link, field)?;
        self.services.openrc.push(entry);
        Ok(())
    }

    fn service_mode(&mut self, raw: &Raw) -> Res<()> {
        let wanted = raw.service_mode.as_ref().map(|s| *s.get_ref());
        if let (Some(false), Some(s)) = (wanted, raw.services.first()) {
            let why = "ramboot services run only in service mode (remove service_mode = false)";
            return Err(self.cx.invalid(s.span(), "service", why));
        }
        if wanted.unwrap_or(!raw.services.is_empty()) {
            self.cmdline.push("ramboot_init".into());
        }
        Ok(())
    }

    /// `etc/ramboot/services/<name>/` in the layout [`crate::supervise::service_dir`] reads.
    fn service(&mut self, i: usize, s: &Spanned<RawService>) -> Res<()> {
        let field = format!("service[{i}]");
        let f = |x: &str| format!("{field}.{x}");
        let r = s.get_ref();
        let name = r.name.get_ref();
        if !valid_service_name(name) || name == "log" {
            let why = "not a service name (letters, digits, `._@-`)";
            return Err(self.cx.invalid(r.name.span(), &f("name"), why));
        }
        if self.services.ramboot.contains(name) {
            let why = format!("service {name} is declared twice");
            return Err(self.cx.invalid(r.name.span(), &f("name"), why));
        }
        let dir = format!("etc/ramboot/services/{name}");
        let mut files = vec![("run".to_string(), script(r.run.get_ref()))];
        for (file, text) in [("finish", &r.finish), ("log/run", &r.log)] {
            if let Some(t) = text {
                files.push((file.to_string(), script(t.get_ref())));
            }
        }
        for (file, text) in files {
            let node = Node::file(text, 0o755);
            self.put(&format!("{dir}/{file}"), node, &field)?;
        }
        for (file, text) in self.service_settings(r, &field)? {
            let node = Node::file(text, 0o644);
            self.put(&format!("{dir}/{file}"), node, &field)?;
        }
        self.services.ramboot.push(name.clone());
        Ok(())
    }

    /// The service directory's settings files (name, content): `down`, `user`, `depends`,
    /// `env/*`, `notification-fd`.
    fn service_settings(&self, r: &RawService, field: &str) -> Res<Vec<(String, String)>> {
        let f = |x: &str| format!("{field}.{x}");
        let mut out = Vec::new();
        if r.down {
            out.push(("down".into(), String::new()));
        }
        if let Some(u) = &r.user {
            let parts: Vec<&str> = u.get_ref().split(':').collect();
            let ok = parts.len() <= 2
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && !p.contains(char::is_whitespace));
            if !ok {
                let why = "expected user[:group]";
                return Err(self.cx.invalid(u.span(), &f("user"), why));
            }
            out.push(("user".into(), format!("{}\n", u.get_ref())));
        }
        let mut depends = String::new();
        for d in &r.depends {
            if !valid_service_name(d.get_ref()) {
                let why = "not a service name";
                return Err(self.cx.invalid(d.span(), &f("depends"), why));
            }
            depends.push_str(&format!("{}\n", d.get_ref()));
        }
        if !depends.is_empty() {
            out.push(("depends".into(), depends));
        }
        for (var, value) in &r.env {
            let var_ok = var
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !var_ok || value.get_ref().contains(['\n', '\0']) {
                let why = format!("{var}: a variable name and a one-line value");
                return Err(self.cx.invalid(value.span(), &f("env"), why));
            }
            out.push((format!("env/{var}"), format!("{}\n", value.get_ref())));
        }
        if let Some(fd) = &r.notification_fd {
            if !(3..=1023).contains(fd.get_ref()) {
                let why = "a descriptor number from 3 to 1023";
                return Err(self.cx.invalid(fd.span(), &f("notification_fd"), why));
            }
            out.push(("notification-fd".into(), format!("{}\n", fd.get_ref())));
        }
        Ok(out)
    }

    fn file(
        &mut self,
        i: usize,
        f: &Spanned<RawFile>,
        users: &[User],
        groups: &[Group],
    ) -> Res<()> {
        let field = format!("file[{i}]");
        let sub = |x: &str| format!("{field}.{x}");
        let r = f.get_ref();
        let path = clean_path(r.path.get_ref()).ok_or_else(|| {
            let why = "an absolute path without `..`, not /";
            self.cx.invalid(r.path.span(), &sub("path"), why)
        })?;
        let kinds = [
            r.content.is_some(),
            r.source.is_some(),
            r.link.is_some(),
            r.directory,
        ];
        if kinds.iter().filter(|&&k| k).count() != 1 {
            let why = "exactly one of content, source, link or directory = true";
            return Err(self.cx.invalid(f.span(), &field, why));
        }
        let mut node = if let Some(c) = &r.content {
            Node::file(c.get_ref().as_bytes(), 0o644)
        } else if let Some(src) = &r.source {
            Node::file(self.read_source(src, &sub("source"))?, 0o644)
        } else if let Some(l) = &r.link {
            if l.get_ref().is_empty() || l.get_ref().contains('\0') {
                return Err(self
                    .cx
                    .invalid(l.span(), &sub("link"), "an empty link target"));
            }
            Node::link(l.get_ref().clone())
        } else {
            Node::dir(0o755)
        };
        if let Some(m) = &r.mode {
            if r.link.is_some() {
                return Err(self
                    .cx
                    .invalid(m.span(), &sub("mode"), "a link has no mode"));
            }
            node.mode = parse_mode(m.get_ref()).ok_or_else(|| {
                self.cx
                    .invalid(m.span(), &sub("mode"), "an octal mode up to 7777")
            })?;
        }
        if let Some(o) = &r.owner {
            let (uid, gid) = owner(o.get_ref(), users, groups).ok_or_else(|| {
                let why =
                    "user[:group], names of the profile or Alpine's system accounts, or numbers";
                self.cx.invalid(o.span(), &sub("owner"), why)
            })?;
            node = node.owned(uid, gid);
        }
        self.put_at(&path, node, &field, r.path.span())
    }

    fn read_source(&self, src: &Text, field: &str) -> Res<Vec<u8>> {
        let base = self.cx.path.parent().unwrap_or(Path::new("."));
        let file: PathBuf = base.join(src.get_ref());
        std::fs::read(&file).map_err(|source| ProfileError::Source {
            path: self.cx.path.into(),
            line: self.cx.line(src.span()),
            field: field.into(),
            file,
            source,
        })
    }
}

/// A service, runlevel or interface name: no path separators, not hidden.
fn valid_service_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c))
}

/// A script: the text as given when it has a `#!` line, else run by `/bin/sh`.
fn script(body: &str) -> String {
    let mut s = if body.starts_with("#!") {
        body.to_string()
    } else {
        format!("#!/bin/sh\n{body}")
    };
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// `/a/b` → `a/b`; None for `..`, `.`-only or empty paths, relative ones, and `/` itself.
fn clean_path(p: &str) -> Option<String> {
    if !p.starts_with('/') || p.contains('\0') {
        return None;
    }
    let mut parts = Vec::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(n) => parts.push(n.to_str()?),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn parse_mode(m: &RawMode) -> Option<u32> {
    let v = match m {
        RawMode::Number(n) => u32::try_from(*n).ok()?,
        RawMode::Text(t) => {
            let t = t.strip_prefix("0o").unwrap_or(t);
            if t.is_empty() || t.len() > 5 {
                return None;
            }
            u32::from_str_radix(t, 8).ok()?
        }
    };
    (v <= 0o7777).then_some(v)
}

/// `user[:group]` by name (the profile's users, Alpine's system accounts) or number.
fn owner(text: &str, users: &[User], groups: &[Group]) -> Option<(u32, u32)> {
    let (u, g) = match text.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (text, None),
    };
    let (uid, primary) = match u.parse::<u32>() {
        Ok(n) => (n, n),
        Err(_) => users
            .iter()
            .find(|x| x.name == u)
            .map(|x| (x.uid, x.gid))
            .or_else(|| accounts::system_user(u))?,
    };
    let gid = match g {
        None => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => users
                .iter()
                .find(|x| x.name == g && accounts::system_user(g).is_none())
                .map(|x| x.gid)
                .or_else(|| groups.iter().find(|x| x.name == g).map(|x| x.gid))
                .or_else(|| accounts::system_group(g))?,
        },
    };
    Some((uid, gid))
}

/// `192.168.1.10/24` → (address, netmask).
fn parse_cidr(text: &str) -> Option<(Ipv4Addr, Ipv4Addr)> {
    let (a, p) = text.split_once('/')?;
    let addr: Ipv4Addr = a.parse().ok()?;
    let bits: u32 = p.parse().ok().filter(|&b| (1..=32).contains(&b))?;
    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
    Some((addr, Ipv4Addr::from(mask)))
}

#[cfg(test)]
mod tests;
