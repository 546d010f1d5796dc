//! Encrypted apkovls: reading the `openssl enc` files Alpine's `lbu commit -e` writes, and
//! ramboot's own authenticated format; writing both (`ramboot commit --encrypt`).
//!
//! **openssl** (`<host>.apkovl.tar.gz.<cipher>`): lbu pipes the tar.gz through
//! `openssl enc -<cipher> -salt`, and Alpine's init reads it back with `openssl enc -d -<cipher>`.
//! The file is `Salted__`, an 8-byte salt, then the ciphertext with PKCS#7 padding. The key and
//! IV come from the passphrase and the salt; the file does not say how, so all three ways
//! openssl has used are tried, each checked against the gzip magic in the first block:
//! EVP_BytesToKey (one round) with SHA-256 (the default since OpenSSL 1.1.0: what lbu writes
//! today), with MD5 (the default before, and LibreSSL's, for old apkovls), and PBKDF2-HMAC-SHA256
//! with 10000 rounds (`-pbkdf2`). Ciphers: AES-128/192/256 in CBC and ECB mode, the AES entries
//! of `openssl list -cipher-commands` that lbu accepts; the others (aria, camellia, des, sm4) are
//! refused by name. This format has no integrity: a wrong passphrase shows as a first block that
//! is not gzip, or as bad padding at the end; damage shows in the gzip CRC.
//!
//! **ramboot** (`<host>.apkovl.tar.gz.ramboot`, see DESIGN.md "Encrypted apkovls"): 64 KiB
//! chunks, each AES-256-CBC then HMAC-SHA256 over the header, the chunk's number, a last-chunk
//! flag, its IV and ciphertext (encrypt-then-MAC, the AEAD construction of RFC 7518 §5.2), keys
//! from PBKDF2-HMAC-SHA256 with the rounds in the header, and a key-check MAC in the header: a
//! wrong passphrase, damage, reordering and truncation each have their own error, and no chunk
//! is decrypted before its MAC is checked. Built from what the openssl format needs already (AES
//! decryption, SHA-256, HMAC), it costs the init almost nothing more.
//!
//! Decryption streams: the apkovl is read twice (checked whole, then extracted), each time
//! through a fresh reader from [`Unlocked::reader`]; the key is derived once.

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use hmac::{Hmac, Mac};
use inverse_cipher::Aes;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

/// The suffix of ramboot's own format: `<host>.apkovl.tar.gz.ramboot`.
pub const RAMBOOT_SUFFIX: &str = "ramboot";
/// lbu's `DEFAULT_CIPHER`.
pub const DEFAULT_CIPHER: &str = "aes-256-cbc";

const SALTED: &[u8; 8] = b"Salted__";
const MAGIC: &[u8; 8] = b"RBAPKOVL";
const VERSION: u8 = 1;
const KDF_PBKDF2_SHA256: u8 = 1;
/// AES-256-CBC with PKCS#7 padding, then HMAC-SHA256 (encrypt-then-MAC).
const AEAD_AES256_CBC_HMAC_SHA256: u8 = 1;
/// `openssl enc -pbkdf2` without `-iter`.
const OPENSSL_PBKDF2_ROUNDS: u32 = 10_000;
/// The writer's PBKDF2 rounds (OWASP's 2023 figure for PBKDF2-HMAC-SHA256).
pub const DEFAULT_ROUNDS: u32 = 600_000;
/// A header asking for more is refused: a hostile file must not stall the boot for hours.
const MAX_ROUNDS: u32 = 20_000_000;
/// Plaintext bytes per chunk written.
pub const DEFAULT_CHUNK: u32 = 64 * 1024;
const MAX_CHUNK: u32 = 1 << 20;
const TAG: usize = 32;
/// A chunk's record: its IV, its ciphertext (the plaintext padded to whole blocks: 1 to 16
/// bytes more) and its MAC.
const RECORD_OVERHEAD: usize = 16 + 16 + TAG;
/// magic, version, kdf, aead, reserved, rounds, chunk size, salt.
const HEADER_AAD: usize = 8 + 4 + 4 + 4 + 16;
const HEADER: usize = HEADER_AAD + TAG;
/// The flag of the header's key-check MAC: never a chunk's (theirs is 0 or 1).
const CHECK_FLAG: u8 = 2;

/// Errors of encrypted apkovls.
#[derive(Debug, thiserror::Error)]
pub enum CryptError {
    #[error("cipher {cipher} is not supported by ramboot (it reads aes-128-cbc, aes-192-cbc, aes-256-cbc, the -ecb ones and .{RAMBOOT_SUFFIX})")]
    UnsupportedCipher { cipher: String },
    #[error("not an `openssl enc -salt` file (no Salted__ header)")]
    NotSalted,
    #[error("wrong passphrase (or not an encrypted tar.gz)")]
    WrongKey,
    #[error("the file is truncated")]
    Truncated,
    #[error("the file is damaged ({0})")]
    Damaged(&'static str),
    #[error("unsupported header: {0}")]
    BadHeader(&'static str),
    #[error("no passphrase given")]
    NoPassphrase,
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl From<CryptError> for io::Error {
    fn from(e: CryptError) -> io::Error {
        match e {
            CryptError::Io(e) => e,
            e => io::Error::new(io::ErrorKind::InvalidData, e),
        }
    }
}

/// The cipher suffix of an encrypted apkovl's name (`x.apkovl.tar.gz.aes-256-cbc` →
/// `aes-256-cbc`), or of its backup (`x.20250101120000.tar.gz.aes-256-cbc`, which a
/// last-known-good boot may apply); None for a plain one. Leftover endings (`.new`, `.bak`,
/// `~`...) are not ciphers: `x.apkovl.tar.gz.new` is plain, `x.apkovl.tar.gz.aes-256-cbc.bak`
/// is aes-256-cbc.
pub fn suffix_of(path: &Path) -> Option<&str> {
    let name = path.file_name()?.to_str()?;
    let (_, mut suffix) = name.split_once(".tar.gz")?;
    suffix = suffix.trim_end_matches('~');
    for leftover in [".new", ".bak", ".old", ".orig", ".tmp", ".save"] {
        suffix = suffix.strip_suffix(leftover).unwrap_or(suffix);
    }
    suffix.strip_prefix('.').filter(|s| !s.is_empty())
}

/// An openssl cipher ramboot reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cipher {
    pub name: &'static str,
    key_len: usize,
    cbc: bool,
}

const CIPHERS: [Cipher; 6] = [
    Cipher::new("aes-128-cbc", 16, true),
    Cipher::new("aes-192-cbc", 24, true),
    Cipher::new("aes-256-cbc", 32, true),
    Cipher::new("aes-128-ecb", 16, false),
    Cipher::new("aes-192-ecb", 24, false),
    Cipher::new("aes-256-ecb", 32, false),
];

impl Cipher {
    const fn new(name: &'static str, key_len: usize, cbc: bool) -> Cipher {
        Cipher { name, key_len, cbc }
    }

    /// The cipher `openssl enc -<name>` means, or the refusal naming it.
    pub fn by_name(name: &str) -> Result<Cipher, CryptError> {
        CIPHERS
            .into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| CryptError::UnsupportedCipher {
                cipher: name.to_string(),
            })
    }

    fn iv_len(self) -> usize {
        if self.cbc {
            16
        } else {
            0
        }
    }
}

/// AES encryption, for the writers (the host tool).
enum AesEnc {
    A128(aes::Aes128Enc),
    A192(aes::Aes192Enc),
    A256(aes::Aes256Enc),
}

impl AesEnc {
    fn new(key: &[u8]) -> AesEnc {
        match key.len() {
            16 => AesEnc::A128(aes::Aes128Enc::new(key.try_into().expect("16-byte key"))),
            24 => AesEnc::A192(aes::Aes192Enc::new(key.try_into().expect("24-byte key"))),
            _ => AesEnc::A256(aes::Aes256Enc::new(key.try_into().expect("32-byte key"))),
        }
    }

    fn encrypt(&self, block: &mut [u8; 16]) {
        let b = block.into();
        match self {
            AesEnc::A128(c) => c.encrypt_block(b),
            AesEnc::A192(c) => c.encrypt_block(b),
            AesEnc::A256(c) => c.encrypt_block(b),
        }
    }
}

/// CBC encryption of whole blocks in place, chained from `prev` (None: ECB).
fn cbc_encrypt(aes: &AesEnc, prev: &mut Option<[u8; 16]>, data: &mut [u8]) {
    for block in data.chunks_exact_mut(16) {
        let b: &mut [u8; 16] = block.try_into().expect("16 bytes");
        if let Some(prev) = prev {
            xor(b, prev);
        }
        aes.encrypt(b);
        if let Some(prev) = prev {
            *prev = *b;
        }
    }
}

/// CBC decryption of whole blocks in place, chained from `prev` (None: ECB).
fn cbc_decrypt(aes: &Aes, prev: &mut Option<[u8; 16]>, data: &mut [u8]) {
    for block in data.chunks_exact_mut(16) {
        let b: &mut [u8; 16] = block.try_into().expect("16 bytes");
        let c = *b;
        aes.decrypt(b);
        if let Some(prev) = prev {
            xor(b, prev);
            *prev = c;
        }
    }
}

fn xor(block: &mut [u8; 16], with: &[u8; 16]) {
    for (b, w) in block.iter_mut().zip(with) {
        *b ^= w;
    }
}

/// Strips PKCS#7 padding; false when it is not valid.
fn unpad(data: &mut Vec<u8>) -> bool {
    let Some(&pad) = data.last() else {
        return false;
    };
    let pad = pad as usize;
    let ok = (1..=16).contains(&pad)
        && pad <= data.len()
        && data[data.len() - pad..].iter().all(|&b| b as usize == pad);
    if ok {
        data.truncate(data.len() - pad);
    }
    ok
}

/// Appends PKCS#7 padding (1 to 16 bytes).
fn pad(data: &mut Vec<u8>) {
    let n = 16 - data.len() % 16;
    data.resize(data.len() + n, n as u8);
}

/// How `openssl enc` turned the passphrase into key and IV.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpensslKdf {
    /// EVP_BytesToKey, one round, SHA-256: `openssl enc` since 1.1.0 (lbu today).
    Sha256,
    /// EVP_BytesToKey, one round, MD5: OpenSSL before 1.1.0 and LibreSSL (`-md md5`).
    Md5,
    /// `-pbkdf2`: PBKDF2-HMAC-SHA256, 10000 rounds.
    Pbkdf2,
}

const KDFS: [OpensslKdf; 3] = [OpensslKdf::Sha256, OpensslKdf::Md5, OpensslKdf::Pbkdf2];

/// Key then IV, `len` bytes, as openssl derives them.
fn openssl_key_iv(kdf: OpensslKdf, pass: &[u8], salt: &[u8], len: usize) -> Vec<u8> {
    match kdf {
        OpensslKdf::Pbkdf2 => {
            let mut out = vec![0; len];
            pbkdf2::pbkdf2_hmac::<Sha256>(pass, salt, OPENSSL_PBKDF2_ROUNDS, &mut out);
            out
        }
        OpensslKdf::Sha256 => bytes_to_key::<Sha256>(pass, salt, len),
        OpensslKdf::Md5 => bytes_to_key::<md5::Md5>(pass, salt, len),
    }
}

/// EVP_BytesToKey with one round: D1 = H(pass salt), Di = H(Di-1 pass salt), concatenated.
fn bytes_to_key<D: Digest>(pass: &[u8], salt: &[u8], len: usize) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(len + 64);
    let mut prev: Vec<u8> = Vec::new();
    while out.len() < len {
        let mut h = D::new();
        h.update(&prev);
        h.update(pass);
        h.update(salt);
        prev = h.finalize().to_vec();
        out.extend_from_slice(&prev);
    }
    out.truncate(len);
    out
}

/// The passphrase in a key file: its first line, as `openssl enc -pass file:` reads it.
pub fn passphrase_from_file(bytes: &[u8]) -> &[u8] {
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A derived key, checked against the file: opens fresh decrypting readers of it.
#[derive(Clone)]
pub struct Unlocked {
    kind: UnlockedKind,
}

#[derive(Clone)]
enum UnlockedKind {
    Openssl {
        aes: Box<Aes>,
        cbc: bool,
        iv: [u8; 16],
        kdf: OpensslKdf,
    },
    Ramboot {
        keys: Box<RambootKeys>,
        header: [u8; HEADER_AAD],
    },
}

/// The two keys of ramboot's format: the MAC's and the cipher's.
#[derive(Clone)]
struct RambootKeys {
    mac: Hmac<Sha256>,
    aes: Aes,
}

impl Unlocked {
    /// Derives the key for `path` (its name tells the format) and checks it against the file.
    pub fn new(path: &Path, pass: &[u8]) -> Result<Unlocked, CryptError> {
        let suffix = suffix_of(path).unwrap_or(RAMBOOT_SUFFIX);
        let mut f = File::open(path)?;
        Unlocked::from_reader(&mut f, suffix, pass)
    }

    /// As [`Unlocked::new`] on an open stream, with the format given by `suffix`.
    pub fn from_reader(src: &mut dyn Read, suffix: &str, pass: &[u8]) -> Result<Self, CryptError> {
        if suffix == RAMBOOT_SUFFIX {
            return unlock_ramboot(src, pass);
        }
        let cipher = Cipher::by_name(suffix)?;
        let mut head = [0u8; 32];
        read_full(src, &mut head).map_err(|e| match e {
            CryptError::Truncated if !head.starts_with(SALTED) => CryptError::NotSalted,
            e => e,
        })?;
        if &head[..8] != SALTED {
            return Err(CryptError::NotSalted);
        }
        let salt = &head[8..16];
        let first: [u8; 16] = head[16..].try_into().expect("16 bytes");
        for kdf in KDFS {
            let material = openssl_key_iv(kdf, pass, salt, cipher.key_len + cipher.iv_len());
            let (key, iv_bytes) = material.split_at(cipher.key_len);
            let aes = Aes::new(key);
            let mut iv = [0u8; 16];
            iv[..iv_bytes.len()].copy_from_slice(iv_bytes);
            let mut block = first;
            aes.decrypt(&mut block);
            xor(&mut block, &iv);
            // gzip: 1f 8b, deflate (8), no reserved flag bits.
            if block[..3] == [0x1f, 0x8b, 8] && block[3] & 0xe0 == 0 {
                return Ok(Unlocked {
                    kind: UnlockedKind::Openssl {
                        aes: Box::new(aes),
                        cbc: cipher.cbc,
                        iv,
                        kdf,
                    },
                });
            }
        }
        Err(CryptError::WrongKey)
    }

    /// For openssl files, which key derivation matched (the others: None).
    pub fn openssl_kdf(&self) -> Option<OpensslKdf> {
        match &self.kind {
            UnlockedKind::Openssl { kdf, .. } => Some(*kdf),
            UnlockedKind::Ramboot { .. } => None,
        }
    }

    /// A reader of the plaintext of `path`.
    pub fn reader(&self, path: &Path) -> io::Result<Decrypt<File>> {
        self.decrypt(File::open(path)?)
    }

    /// A reader of the plaintext of `src` (read from its start).
    pub fn decrypt<R: Read>(&self, mut src: R) -> io::Result<Decrypt<R>> {
        let state = match &self.kind {
            UnlockedKind::Openssl { aes, cbc, iv, .. } => {
                let mut head = [0u8; 16];
                read_full(&mut src, &mut head)?;
                State::Openssl {
                    aes: aes.clone(),
                    prev: cbc.then_some(*iv),
                }
            }
            UnlockedKind::Ramboot { keys, header } => {
                let mut head = [0u8; HEADER];
                read_full(&mut src, &mut head)?;
                if head[..HEADER_AAD] != header[..] {
                    return Err(CryptError::Damaged("the header changed").into());
                }
                State::Ramboot {
                    keys: keys.clone(),
                    header: *header,
                    chunk: chunk_size(header) as usize,
                    counter: 0,
                }
            }
        };
        Ok(Decrypt {
            src,
            state,
            input: Vec::new(),
            out: Vec::new(),
            pos: 0,
            done: false,
        })
    }
}

/// Fills `buf` from `src`; a short stream is [`CryptError::Truncated`].
fn read_full(src: &mut dyn Read, buf: &mut [u8]) -> Result<(), CryptError> {
    let n = fill(src, buf)?;
    if n < buf.len() {
        return Err(CryptError::Truncated);
    }
    Ok(())
}

/// Reads until `buf` is full or the stream ends; the bytes read.
fn fill(src: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn chunk_size(header: &[u8; HEADER_AAD]) -> u32 {
    u32::from_be_bytes(header[16..20].try_into().expect("4 bytes"))
}

/// The MAC of chunk `counter` (`flag` 1: the last one) over the header, the counter, the flag,
/// then `data`: the chunk's IV and ciphertext.
fn chunk_mac(
    mac: &Hmac<Sha256>,
    header: &[u8; HEADER_AAD],
    counter: u32,
    flag: u8,
    data: &[u8],
) -> Hmac<Sha256> {
    let mut m = mac.clone();
    m.update(header);
    m.update(&counter.to_be_bytes());
    m.update(&[flag]);
    m.update(data);
    m
}

fn unlock_ramboot(src: &mut dyn Read, pass: &[u8]) -> Result<Unlocked, CryptError> {
    let mut head = [0u8; HEADER];
    read_full(src, &mut head)?;
    if &head[..8] != MAGIC {
        return Err(CryptError::BadHeader("not a ramboot encrypted apkovl"));
    }
    if head[8] != VERSION {
        return Err(CryptError::BadHeader("unknown version"));
    }
    if head[9] != KDF_PBKDF2_SHA256 || head[10] != AEAD_AES256_CBC_HMAC_SHA256 {
        return Err(CryptError::BadHeader("unknown key derivation or cipher"));
    }
    let rounds = u32::from_be_bytes(head[12..16].try_into().expect("4 bytes"));
    let header: [u8; HEADER_AAD] = head[..HEADER_AAD].try_into().expect("header");
    let chunk = chunk_size(&header);
    if rounds == 0 || rounds > MAX_ROUNDS {
        return Err(CryptError::BadHeader("key derivation rounds out of range"));
    }
    if chunk == 0 || chunk > MAX_CHUNK || chunk % 16 != 0 {
        return Err(CryptError::BadHeader("chunk size out of range"));
    }
    let (mac, enc) = ramboot_keys(pass, &header[20..36], rounds);
    chunk_mac(&mac, &header, u32::MAX, CHECK_FLAG, &[])
        .verify_slice(&head[HEADER_AAD..])
        .map_err(|_| CryptError::WrongKey)?;
    Ok(Unlocked {
        kind: UnlockedKind::Ramboot {
            keys: Box::new(RambootKeys {
                mac,
                aes: Aes::new(&enc),
            }),
            header,
        },
    })
}

/// The MAC key and the AES-256 key: PBKDF2-HMAC-SHA256 gives 64 bytes, the MAC key first (as
/// RFC 7518 §5.2.2.1 splits its key).
fn ramboot_keys(pass: &[u8], salt: &[u8], rounds: u32) -> (Hmac<Sha256>, [u8; 32]) {
    let mut keys = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<Sha256>(pass, salt, rounds, &mut keys);
    let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&keys[..32]).expect("any key length");
    (mac, keys[32..].try_into().expect("32 bytes"))
}

enum State {
    Openssl {
        aes: Box<Aes>,
        /// The previous ciphertext block in CBC mode; None in ECB mode.
        prev: Option<[u8; 16]>,
    },
    Ramboot {
        keys: Box<RambootKeys>,
        header: [u8; HEADER_AAD],
        chunk: usize,
        counter: u32,
    },
}

/// The plaintext of an encrypted apkovl, decrypted as it is read. Errors are
/// [`io::ErrorKind::InvalidData`] carrying a [`CryptError`].
pub struct Decrypt<R> {
    src: R,
    state: State,
    /// Ciphertext read but not yet decrypted.
    input: Vec<u8>,
    out: Vec<u8>,
    pos: usize,
    done: bool,
}

/// openssl ciphertext read at a time.
const OPENSSL_BUF: usize = 16 * 1024;

impl<R: Read> Decrypt<R> {
    /// Decrypts the next piece into `out`.
    fn refill(&mut self) -> Result<(), CryptError> {
        self.out.clear();
        self.pos = 0;
        match &mut self.state {
            State::Openssl { aes, prev } => {
                // One block more than is decrypted stays behind: the last one holds the padding.
                let have = self.input.len();
                self.input.resize(OPENSSL_BUF + 16, 0);
                let n = fill(&mut self.src, &mut self.input[have..])?;
                self.input.truncate(have + n);
                let eof = self.input.len() < OPENSSL_BUF + 16;
                if eof && (self.input.is_empty() || self.input.len() % 16 != 0) {
                    return Err(CryptError::Truncated);
                }
                let take = if eof {
                    self.input.len()
                } else {
                    (self.input.len() / 16 - 1) * 16
                };
                self.out.extend(self.input.drain(..take));
                cbc_decrypt(aes, prev, &mut self.out);
                if eof {
                    self.done = true;
                    if !unpad(&mut self.out) {
                        return Err(CryptError::Damaged(
                            "bad padding: truncated, or a wrong passphrase",
                        ));
                    }
                }
            }
            State::Ramboot {
                keys,
                header,
                chunk,
                counter,
            } => {
                let full = *chunk + RECORD_OVERHEAD;
                self.input.resize(full, 0);
                let n = fill(&mut self.src, &mut self.input)?;
                // A full record is never the last one: a file whose size is a multiple of the
                // chunk ends with an empty last chunk, so a cut at a chunk boundary is seen.
                let last = n < full;
                if n < RECORD_OVERHEAD || (n - TAG) % 16 != 0 {
                    return Err(CryptError::Truncated);
                }
                let (sealed, tag) = self.input[..n].split_at(n - TAG);
                chunk_mac(&keys.mac, header, *counter, last as u8, sealed)
                    .verify_slice(tag)
                    .map_err(|_| {
                        CryptError::Damaged(if last {
                            "a chunk fails authentication, or the file is truncated"
                        } else {
                            "a chunk fails authentication"
                        })
                    })?;
                let mut prev = Some(<[u8; 16]>::try_from(&sealed[..16]).expect("IV"));
                self.out.extend_from_slice(&sealed[16..]);
                cbc_decrypt(&keys.aes, &mut prev, &mut self.out);
                if !unpad(&mut self.out) {
                    return Err(CryptError::Damaged("bad padding in an authentic chunk"));
                }
                *counter = counter
                    .checked_add(1)
                    .ok_or(CryptError::Damaged("too many chunks"))?;
                self.done = last;
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for Decrypt<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.out.len() {
            if self.done {
                return Ok(0);
            }
            self.refill()?;
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The [`CryptError`] inside an I/O error from [`Decrypt`], if that is what it is.
pub fn crypt_error(e: &io::Error) -> Option<&CryptError> {
    e.get_ref()?.downcast_ref::<CryptError>()
}

// --- writing (the host tool) ---------------------------------------------------------------------

/// Random bytes from the kernel.
fn random<const N: usize>() -> io::Result<[u8; N]> {
    let mut buf = [0u8; N];
    let mut n = 0;
    while n < N {
        n += rustix::rand::getrandom(&mut buf[n..], rustix::rand::GetRandomFlags::empty())?;
    }
    Ok(buf)
}

/// Writes `plain` as `openssl enc -<cipher> -salt` does with OpenSSL's default key derivation
/// (EVP_BytesToKey, SHA-256): what lbu writes and Alpine's init reads. `salt`: None for a random
/// one.
pub fn write_openssl(
    plain: &mut dyn Read,
    out: &mut dyn Write,
    cipher: Cipher,
    pass: &[u8],
    salt: Option<[u8; 8]>,
) -> io::Result<()> {
    let salt = match salt {
        Some(s) => s,
        None => random()?,
    };
    let material = openssl_key_iv(
        OpensslKdf::Sha256,
        pass,
        &salt,
        cipher.key_len + cipher.iv_len(),
    );
    let (key, iv_bytes) = material.split_at(cipher.key_len);
    let aes = AesEnc::new(key);
    let mut prev = cipher.cbc.then(|| {
        let mut iv = [0u8; 16];
        iv.copy_from_slice(iv_bytes);
        iv
    });
    out.write_all(SALTED)?;
    out.write_all(&salt)?;
    let mut buf = Vec::with_capacity(OPENSSL_BUF + 16);
    loop {
        buf.resize(OPENSSL_BUF, 0);
        let n = fill(plain, &mut buf)?;
        buf.truncate(n);
        let last = n < OPENSSL_BUF;
        if last {
            pad(&mut buf);
        }
        cbc_encrypt(&aes, &mut prev, &mut buf);
        out.write_all(&buf)?;
        if last {
            return Ok(());
        }
    }
}

/// An apkovl's bytes encrypted for the name suffix `suffix` ([`RAMBOOT_SUFFIX`]: ramboot's
/// format with the default parameters; an openssl cipher name: lbu's format): what
/// `ramboot commit --encrypt` stores as `<host>.apkovl.tar.gz.<suffix>`.
pub fn seal(plain: &[u8], suffix: &str, pass: &[u8]) -> Result<Vec<u8>, CryptError> {
    let mut out = Vec::with_capacity(plain.len() + plain.len() / 1024 + 128);
    if suffix == RAMBOOT_SUFFIX {
        write_ramboot(&mut &plain[..], &mut out, pass, RambootParams::default())?;
    } else {
        write_openssl(
            &mut &plain[..],
            &mut out,
            Cipher::by_name(suffix)?,
            pass,
            None,
        )?;
    }
    Ok(out)
}

/// The plaintext of the encrypted apkovl at `path` (its name tells the format), whole.
pub fn open_to_vec(path: &Path, pass: &[u8]) -> Result<Vec<u8>, CryptError> {
    let mut plain = Vec::new();
    Unlocked::new(path, pass)?
        .reader(path)?
        .read_to_end(&mut plain)?;
    Ok(plain)
}

/// Parameters of ramboot's format that a writer chooses.
#[derive(Clone, Copy, Debug)]
pub struct RambootParams {
    pub rounds: u32,
    /// Plaintext bytes per chunk: a multiple of 16.
    pub chunk: u32,
}

impl Default for RambootParams {
    fn default() -> Self {
        RambootParams {
            rounds: DEFAULT_ROUNDS,
            chunk: DEFAULT_CHUNK,
        }
    }
}

/// Writes `plain` in ramboot's authenticated format (DESIGN.md "Encrypted apkovls").
pub fn write_ramboot(
    plain: &mut dyn Read,
    out: &mut dyn Write,
    pass: &[u8],
    params: RambootParams,
) -> io::Result<()> {
    let RambootParams { rounds, chunk } = params;
    if rounds == 0 || rounds > MAX_ROUNDS || chunk == 0 || chunk > MAX_CHUNK || chunk % 16 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "key derivation rounds or chunk size out of range",
        ));
    }
    let salt: [u8; 16] = random()?;
    let mut header = [0u8; HEADER_AAD];
    header[..8].copy_from_slice(MAGIC);
    header[8] = VERSION;
    header[9] = KDF_PBKDF2_SHA256;
    header[10] = AEAD_AES256_CBC_HMAC_SHA256;
    header[12..16].copy_from_slice(&rounds.to_be_bytes());
    header[16..20].copy_from_slice(&chunk.to_be_bytes());
    header[20..36].copy_from_slice(&salt);
    let (mac, enc) = ramboot_keys(pass, &salt, rounds);
    let aes = AesEnc::new(&enc);
    let check = chunk_mac(&mac, &header, u32::MAX, CHECK_FLAG, &[]).finalize();
    out.write_all(&header)?;
    out.write_all(&check.into_bytes())?;
    let chunk = chunk as usize;
    let mut record = Vec::with_capacity(chunk + RECORD_OVERHEAD);
    let mut counter: u32 = 0;
    loop {
        let iv: [u8; 16] = random()?;
        record.clear();
        record.extend_from_slice(&iv);
        record.resize(16 + chunk, 0);
        let n = fill(plain, &mut record[16..])?;
        record.truncate(16 + n);
        let last = n < chunk;
        // The IV is one block: the padded plaintext after it is whole blocks too.
        pad(&mut record);
        cbc_encrypt(&aes, &mut Some(iv), &mut record[16..]);
        let tag = chunk_mac(&mac, &header, counter, last as u8, &record).finalize();
        out.write_all(&record)?;
        out.write_all(&tag.into_bytes())?;
        if last {
            return Ok(());
        }
        counter = counter
            .checked_add(1)
            .ok_or_else(|| io::Error::other("apkovl too large for the chunk counter"))?;
    }
}

mod inverse_cipher;
#[cfg(test)]
mod tests;
