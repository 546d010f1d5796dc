//! The profile file as written: serde records with spans, no meaning yet. Every table refuses
//! unknown fields, so a typo is an error naming the field and its line instead of a setting
//! that silently does nothing. [`super::build`] gives them their meaning.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

pub type Text = Spanned<String>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    pub hostname: Option<Text>,
    #[serde(default)]
    pub packages: Vec<Text>,
    #[serde(default)]
    pub repositories: Vec<Text>,
    pub timezone: Option<Text>,
    #[serde(default)]
    pub cmdline: Vec<Text>,
    pub default_boot_services: Option<bool>,
    pub service_mode: Option<Spanned<bool>>,
    /// Runlevel name → OpenRC services.
    #[serde(default)]
    pub openrc: BTreeMap<String, Spanned<Vec<Text>>>,
    #[serde(default, rename = "service")]
    pub services: Vec<Spanned<RawService>>,
    #[serde(default, rename = "user")]
    pub users: Vec<Spanned<RawUser>>,
    #[serde(default, rename = "group")]
    pub groups: Vec<Spanned<RawGroup>>,
    pub network: Option<RawNetwork>,
    #[serde(default, rename = "file")]
    pub files: Vec<Spanned<RawFile>>,
}

/// A ramboot service directory (`/etc/ramboot/services/<name>/`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub name: Text,
    pub run: Text,
    pub finish: Option<Text>,
    pub log: Option<Text>,
    pub user: Option<Text>,
    #[serde(default)]
    pub depends: Vec<Text>,
    #[serde(default)]
    pub down: bool,
    #[serde(default)]
    pub env: BTreeMap<String, Text>,
    pub notification_fd: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    pub name: Text,
    pub uid: Option<Spanned<i64>>,
    #[serde(default)]
    pub groups: Vec<Text>,
    pub shell: Option<Text>,
    pub home: Option<Text>,
    pub password_hash: Option<Text>,
    #[serde(default)]
    pub ssh_keys: Vec<Text>,
}

/// An extra group (a package's group a user must join, such as seatd's `seat`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pub name: Text,
    pub gid: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    #[serde(default)]
    pub dns: Vec<Text>,
    #[serde(default, rename = "interface")]
    pub interfaces: Vec<Spanned<RawInterface>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInterface {
    pub name: Text,
    #[serde(default)]
    pub dhcp: bool,
    /// `ADDRESS/PREFIX`.
    pub address: Option<Text>,
    pub gateway: Option<Text>,
    /// Also configure it in the initramfs (kernel `ip=`).
    #[serde(default)]
    pub at_boot: bool,
}

/// A mode as an integer (`0o644`) or octal text (`"0644"`).
#[derive(Deserialize)]
#[serde(untagged)]
pub enum RawMode {
    Number(i64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    pub path: Text,
    pub content: Option<Text>,
    pub source: Option<Text>,
    pub link: Option<Text>,
    #[serde(default)]
    pub directory: bool,
    pub mode: Option<Spanned<RawMode>>,
    pub owner: Option<Text>,
}
