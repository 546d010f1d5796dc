//! The TLS-enabled init build: the same program as `ramboot-init`, built with the `tls` feature
//! (HTTPS for `apkovl=`, `alpine_repo=`, `modloop=` and `ssh_key=` URLs). A separate name so
//! that both builds can sit beside `ramboot`: `ramboot mkinitfs --tls` picks this one.
//! Build: `cargo build --release --features tls --bin ramboot-init-tls`.

#[path = "ramboot-init.rs"]
mod init;

fn main() {
    init::main()
}
