//! `ramboot apkovl encrypt|decrypt`: encrypted apkovls on the host ([`crate::overlay::crypt`]).
//! `encrypt` writes ramboot's authenticated format (`<host>.apkovl.tar.gz.ramboot`), or with
//! `--openssl` the file `lbu commit -e` writes (`<host>.apkovl.tar.gz.aes-256-cbc`), which
//! Alpine's own initramfs reads; `decrypt` reads both back (to inspect or diff one).

use super::args::{number, unexpected, ArgError, Args, Long, Short, Usage, Value};
use crate::overlay::crypt::{self, Cipher, RambootParams, Unlocked, RAMBOOT_SUFFIX};
use std::ffi::OsString;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

const USAGE: Usage = Usage {
    prog: "ramboot apkovl",
    text: "\
usage: ramboot apkovl encrypt [--openssl] [--cipher NAME] [--key-file FILE] [--rounds N] IN OUT
       ramboot apkovl decrypt [--key-file FILE] [--cipher NAME] IN OUT

encrypt: IN (a .apkovl.tar.gz) to OUT in ramboot's authenticated format (name it
         <host>.apkovl.tar.gz.ramboot), or with --openssl as `openssl enc -<cipher> -salt`
         writes it for lbu (name it <host>.apkovl.tar.gz.<cipher>; Alpine's initramfs reads it).
decrypt: an encrypted apkovl back to its .tar.gz (the format from OUT's magic or IN's name).

  --openssl          openssl-compatible output (no integrity check, for Alpine's initramfs)
  --cipher NAME      openssl cipher: aes-128-cbc, aes-192-cbc, aes-256-cbc (default), -ecb
  --key-file FILE    the passphrase is FILE's first line (default: asked on the terminal)
  --rounds N         PBKDF2 rounds of the ramboot format (default 600000)
",
    status: 2,
};

/// What was typed.
#[derive(Default)]
struct Raw {
    help: bool,
    openssl: bool,
    cipher: Option<String>,
    key_file: Option<PathBuf>,
    rounds: Option<u32>,
    files: Vec<PathBuf>,
}

/// A checked request.
struct Request {
    encrypt: bool,
    openssl: Option<Cipher>,
    key_file: Option<PathBuf>,
    rounds: u32,
    input: PathBuf,
    output: PathBuf,
}

fn raw(mut p: Args) -> Result<Raw, ArgError> {
    let mut r = Raw::default();
    while let Some(arg) = p.next_arg()? {
        match arg {
            Short('h') | Long("help") => r.help = true,
            Long("openssl") => r.openssl = true,
            Long("cipher") => r.cipher = Some(p.string()?),
            Long("key-file") => r.key_file = Some(p.path()?),
            Long("rounds") => r.rounds = Some(number("--rounds", &p.string()?)?),
            Value(v) => r.files.push(v.into()),
            other => return Err(unexpected(other)),
        }
    }
    Ok(r)
}

fn validate(encrypt: bool, r: Raw) -> Result<Request, ArgError> {
    let [input, output]: [PathBuf; 2] = r
        .files
        .try_into()
        .map_err(|_| ArgError::Missing("IN and OUT (two files)".into()))?;
    let cipher = match &r.cipher {
        Some(name) => Some(
            Cipher::by_name(name)
                .map_err(|e| ArgError::invalid("--cipher", name, e.to_string()))?,
        ),
        None => None,
    };
    if encrypt && cipher.is_some() && !r.openssl {
        return Err(ArgError::Conflict(
            "--cipher names an openssl cipher: add --openssl".into(),
        ));
    }
    let openssl = match (encrypt, r.openssl) {
        (true, true) => {
            Some(cipher.unwrap_or(Cipher::by_name(crypt::DEFAULT_CIPHER).expect("known")))
        }
        (true, false) => None,
        (false, _) => cipher,
    };
    Ok(Request {
        encrypt,
        openssl,
        key_file: r.key_file,
        rounds: r.rounds.unwrap_or(crypt::DEFAULT_ROUNDS),
        input,
        output,
    })
}

/// `ramboot apkovl ...`; the exit status.
pub fn main(args: &[OsString]) -> i32 {
    let encrypt = match args.first().and_then(|a| a.to_str()) {
        Some("encrypt") => true,
        Some("decrypt") => false,
        Some("-h" | "--help" | "help") => {
            print!("{}", USAGE.text);
            return 0;
        }
        other => {
            let e = ArgError::invalid("command", other.unwrap_or(""), "not encrypt or decrypt");
            return USAGE.refuse(&e, &mut io::stderr());
        }
    };
    let request = USAGE.two_stage(&args[1..], raw, |r| r.help, |r| validate(encrypt, r));
    match request.map(|r| run(&r)) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            eprintln!("ramboot apkovl: {e}");
            1
        }
        Err(code) => code,
    }
}

fn run(r: &Request) -> Result<(), String> {
    let pass = passphrase(r.key_file.as_deref(), r.encrypt)?;
    let named = |p: &Path, e: io::Error| format!("{}: {e}", p.display());
    let mut input = fs::File::open(&r.input).map_err(|e| named(&r.input, e))?;
    if r.encrypt {
        let mut out = Vec::new();
        match r.openssl {
            Some(cipher) => crypt::write_openssl(&mut input, &mut out, cipher, &pass, None),
            None => {
                let params = RambootParams {
                    rounds: r.rounds,
                    ..Default::default()
                };
                crypt::write_ramboot(&mut input, &mut out, &pass, params)
            }
        }
        .map_err(|e| named(&r.input, e))?;
        return write_new(&r.output, &out).map_err(|e| named(&r.output, e));
    }
    let suffix = match (r.openssl, crypt::suffix_of(&r.input)) {
        (Some(c), _) => c.name,
        (None, Some(s)) => s,
        (None, None) => RAMBOOT_SUFFIX,
    };
    let key = Unlocked::from_reader(&mut input, suffix, &pass)
        .map_err(|e| format!("{}: {e}", r.input.display()))?;
    let mut plain = Vec::new();
    key.reader(&r.input)
        .and_then(|mut d| d.read_to_end(&mut plain))
        .map_err(|e| named(&r.input, e))?;
    write_new(&r.output, &plain).map_err(|e| named(&r.output, e))
}

/// Writes `bytes` to a new file beside `path`, then renames it over `path`: never half a file.
fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = PathBuf::from(tmp);
    let mut f = fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}

/// The key file's first line, or a passphrase typed on the terminal (twice when encrypting).
fn passphrase(key_file: Option<&Path>, encrypt: bool) -> Result<Vec<u8>, String> {
    if let Some(f) = key_file {
        let bytes = fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?;
        return Ok(crypt::passphrase_from_file(&bytes).to_vec());
    }
    let sys: &dyn crate::sys::Sys = &crate::sys::RealSys;
    let wait = std::time::Duration::from_secs(600);
    let ask = |prompt: &str| match sys.read_secret(prompt, wait) {
        Ok(Some(p)) => Ok(p),
        Ok(None) => Err("no passphrase typed".to_string()),
        Err(e) => Err(format!("cannot read a passphrase: {e}")),
    };
    let pass = ask("Passphrase: ")?;
    if encrypt && ask("Passphrase again: ")? != pass {
        return Err("the passphrases differ".into());
    }
    Ok(pass)
}
