//! Compressed modules: which format a file is in, and decompressing it when the kernel cannot.

use std::io::{self, Read};

/// Compression of a module file, from its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
}

impl Compression {
    pub fn of(path: &str) -> Compression {
        if path.ends_with(".gz") {
            Compression::Gzip
        } else if path.ends_with(".xz") {
            Compression::Xz
        } else if path.ends_with(".zst") {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The word `/sys/module/compression` uses for this format.
    pub(super) fn kernel_name(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        }
    }
}

/// Decompresses a module image in userspace (gzip, xz; zstd is refused with the reason).
pub fn decompress(compression: Compression, mut input: impl Read) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    match compression {
        Compression::None => {
            input.read_to_end(&mut out)?;
        }
        Compression::Gzip => {
            flate2::read::GzDecoder::new(input).read_to_end(&mut out)?;
        }
        Compression::Xz => {
            let mut r = io::BufReader::new(input);
            lzma_rs::xz_decompress(&mut r, &mut out)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("xz: {e}")))?;
        }
        Compression::Zstd => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "zstd-compressed, and the kernel does not decompress zstd modules itself \
                 (no CONFIG_MODULE_DECOMPRESS with zstd); ramboot decompresses gzip and xz only",
            ));
        }
    }
    Ok(out)
}
