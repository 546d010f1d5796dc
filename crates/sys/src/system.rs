//! The real kernel calls behind the service-mode methods of [`Sys`](crate::Sys): the handoff
//! through a sealed memfd, and the few settings system set-up makes (hostname, loopback,
//! swap, entropy, clock). Kept apart from `real.rs` so the handoff can be read in one place.

use rustix::fd::{AsRawFd, BorrowedFd, OwnedFd};
use rustix::fs::{MemfdFlags, SealFlags};
use std::ffi::{CString, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The name the memfd shows in `/proc/1/exe` (`/memfd:ramboot (deleted)`).
pub const IMAGE_NAME: &str = "ramboot";

/// Copies the running binary into a sealed memfd: a file that lives in no filesystem, so it
/// survives the initramfs being freed and writes nothing into the new root.
pub fn self_image() -> io::Result<OwnedFd> {
    let fd = rustix::fs::memfd_create(IMAGE_NAME, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
    let mut exe = std::fs::File::open("/proc/self/exe")?;
    let mut image = std::fs::File::from(fd);
    io::copy(&mut exe, &mut image)?;
    let fd = OwnedFd::from(image);
    rustix::fs::fcntl_add_seals(
        &fd,
        SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE,
    )?;
    Ok(fd)
}

/// `execveat(fd, "", argv, env, AT_EMPTY_PATH)`: only returns on failure.
pub fn exec_image(
    image: BorrowedFd<'_>,
    argv: &[OsString],
    env: &[(OsString, OsString)],
) -> io::Error {
    use crate::real::forkexec::CStrings;
    let argv = match CStrings::new(argv.iter().map(|a| a.as_bytes())) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let env = match CStrings::env(env) {
        Ok(e) => e,
        Err(e) => return e,
    };
    // SAFETY: every pointer refers to a NUL-terminated string owned by `argv`/`env`, both
    // arrays end with a null pointer, and all of them outlive the call; on success the process
    // image is replaced and nothing here is used again.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            image.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            env.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
    }
    io::Error::last_os_error()
}

/// `sethostname(2)`.
pub fn set_hostname(name: &str) -> io::Result<()> {
    rustix::system::sethostname(name.as_bytes())?;
    Ok(())
}

/// Sets `IFF_UP` on an interface (`SIOCGIFFLAGS` then `SIOCSIFFLAGS` on a datagram socket).
pub fn link_set(name: &str, up: bool) -> io::Result<()> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad interface name",
        ));
    }
    let sock = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )?;
    // SAFETY: an all-zero ifreq is valid (a name and a union of plain integers).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: `req` is a valid ifreq for both requests, which read the name and read or write
    // `ifru_flags`; the socket is open for the whole call.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        if up {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        } else {
            req.ifr_ifru.ifru_flags &= !(libc::IFF_UP as libc::c_short);
        }
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `swapon(2)` with the default priority.
pub fn swapon(device: &Path) -> io::Result<()> {
    let path = CString::new(device.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in path"))?;
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    if unsafe { libc::swapon(path.as_ptr(), 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Mixes `seed` into the kernel's pool (`RNDADDENTROPY` on `/dev/urandom`), crediting
/// `credit_bits` of entropy.
pub fn add_entropy(seed: &[u8], credit_bits: u32) -> io::Result<()> {
    let dev = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/urandom")?;
    // struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
    let mut info = Vec::with_capacity(8 + seed.len());
    info.extend_from_slice(&(credit_bits as i32).to_ne_bytes());
    info.extend_from_slice(&(seed.len() as i32).to_ne_bytes());
    info.extend_from_slice(seed);
    // RNDADDENTROPY = _IOW('R', 0x03, int[2])
    const RNDADDENTROPY: libc::c_ulong = 0x4008_5203;
    // SAFETY: `info` holds the header the kernel reads followed by `buf_size` bytes.
    if unsafe { libc::ioctl(dev.as_raw_fd(), RNDADDENTROPY as _, info.as_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `clock_settime(CLOCK_REALTIME)`.
pub fn set_clock(since_epoch: std::time::Duration) -> io::Result<()> {
    let ts = rustix::time::Timespec {
        tv_sec: since_epoch.as_secs() as _,
        tv_nsec: since_epoch.subsec_nanos() as _,
    };
    rustix::time::clock_settime(rustix::time::ClockId::Realtime, ts)?;
    Ok(())
}
