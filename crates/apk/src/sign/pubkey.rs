//! RSA public keys and PKCS#1 v1.5 signature verification, small enough for the init build.
//!
//! Verifying is a public-key operation: `s^e mod n`, compared with the encoded message that the
//! digest must give (RFC 8017 §8.2.2). Nothing secret is involved, so plain variable-time code
//! is fine. The `rsa` crate (with its big-number library, DER and PEM decoders) did the same
//! for about 30 KB of the aarch64 init's size budget (tests/static_build.rs); it stays for the
//! host tool's key generation and signing, and as the oracle of this module's tests.
//!
//! Accepted keys are those `rsa` 0.9 accepts: an odd modulus of at most 4096 bits (Montgomery
//! multiplication needs it odd, and every RSA modulus is), an odd exponent from 3 to
//! 2^33 - 1, below the modulus.

/// The largest modulus accepted, in bits (the `rsa` crate's limit for public keys).
const MAX_MODULUS_BITS: usize = 4096;
/// The largest public exponent accepted (the `rsa` crate's limit).
const MAX_EXPONENT: u64 = (1 << 33) - 1;

/// DER object identifier `rsaEncryption` (1.2.840.113549.1.1.1), content bytes.
const RSA_ENCRYPTION_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// An RSA public key, ready for Montgomery arithmetic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    /// The modulus, 64-bit limbs least significant first.
    n: Vec<u64>,
    /// The public exponent.
    e: u64,
    /// The modulus' length in bytes: every signature has exactly this length.
    size: usize,
    /// `-n^-1 mod 2^64`.
    n0_inv: u64,
    /// `R^2 mod n` with `R = 2^(64 * limbs)`: takes numbers into Montgomery form.
    rr: Vec<u64>,
}

impl PublicKey {
    /// The key with big-endian modulus `n` and exponent `e` (leading zero bytes allowed); None
    /// when `rsa` would refuse it or the modulus is even.
    pub fn from_components(n: &[u8], e: &[u8]) -> Option<Self> {
        let n = limbs_from_be(n);
        let bits = bit_len(&n);
        if !(2..=MAX_MODULUS_BITS).contains(&bits) || n[0] & 1 == 0 {
            return None;
        }
        let e = u64_from_be(e)?;
        let below_n = bits > 64 || e < n[0];
        if !(2..=MAX_EXPONENT).contains(&e) || e & 1 == 0 || !below_n {
            return None;
        }
        Some(Self::odd_modulus(n[..bits.div_ceil(64)].to_vec(), e))
    }

    /// The key for the odd modulus `n` (at least 3, without high zero limbs) and exponent
    /// `e >= 1`, without `rsa`'s limits.
    fn odd_modulus(n: Vec<u64>, e: u64) -> Self {
        let bits = bit_len(&n);
        let mut key = PublicKey {
            n0_inv: neg_inverse(n[0]),
            size: bits.div_ceil(8),
            rr: Vec::new(),
            e,
            n,
        };
        key.rr = key.r_squared(bits);
        key
    }

    /// A PEM `PUBLIC KEY` (SubjectPublicKeyInfo, as in `etc/apk/keys`) or `RSA PUBLIC KEY`
    /// (PKCS#1); surrounding whitespace is ignored.
    pub fn from_pem(pem: &str) -> Option<Self> {
        let (label, der) = pem_decode(pem.trim())?;
        let rsa_key = match label {
            "PUBLIC KEY" => spki_rsa_key(&der)?,
            "RSA PUBLIC KEY" => &der[..],
            _ => return None,
        };
        let (n, e) = rsa_public_key(rsa_key)?;
        Self::from_components(n, e)
    }

    /// The modulus' length in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The modulus, big-endian, without leading zeros.
    pub fn modulus(&self) -> Vec<u8> {
        let mut be: Vec<u8> = self.n.iter().rev().flat_map(|l| l.to_be_bytes()).collect();
        be.drain(..be.len() - self.size);
        be
    }

    /// The public exponent.
    pub fn exponent(&self) -> u64 {
        self.e
    }

    /// Whether `sig` is a PKCS#1 v1.5 signature of `digest` with the DER `DigestInfo`
    /// `prefix` (RFC 8017 §8.2.2, as `rsa`'s `Pkcs1v15Sign` verifies it).
    pub fn verify_pkcs1v15(&self, prefix: &[u8], digest: &[u8], sig: &[u8]) -> bool {
        let k = self.size;
        let t_len = prefix.len() + digest.len();
        if sig.len() != k || k < t_len + 11 {
            return false;
        }
        let s = limbs_from_be(sig);
        if !less_than(&s, &self.n) {
            return false;
        }
        let em = self.public_op(&s);
        // EM = 0x00 || 0x01 || 0xff... || 0x00 || prefix || digest
        let ps_end = k - t_len - 1;
        em[0] == 0
            && em[1] == 1
            && em[2..ps_end].iter().all(|&b| b == 0xff)
            && em[ps_end] == 0
            && &em[ps_end + 1..k - digest.len()] == prefix
            && &em[k - digest.len()..] == digest
    }

    /// `s^e mod n` as `size` big-endian bytes; `s < n`.
    fn public_op(&self, s: &[u64]) -> Vec<u8> {
        let s = self.mont_mul(&self.pad(s), &self.rr);
        let m = self.mont_pow(&s, self.e);
        let mut one = vec![0; self.n.len()];
        one[0] = 1;
        let m = self.mont_mul(&m, &one);
        let be: Vec<u8> = m.iter().rev().flat_map(|l| l.to_be_bytes()).collect();
        be[be.len() - self.size..].to_vec()
    }

    /// `s` with as many limbs as the modulus (`s < n`, so it has no more).
    fn pad(&self, s: &[u64]) -> Vec<u64> {
        let mut v = s[..s.len().min(self.n.len())].to_vec();
        v.resize(self.n.len(), 0);
        v
    }

    /// `R^2 mod n`: `R mod n` (the top power of two below `n`, doubled up to `R`) is the
    /// Montgomery form of 1; doubled once more, of 2; raised to the `64 * limbs`-th power,
    /// the Montgomery form of `R`, which is `R^2 mod n`.
    fn r_squared(&self, bits: usize) -> Vec<u64> {
        let limbs = self.n.len();
        let mut two = vec![0; limbs];
        two[(bits - 1) / 64] = 1 << ((bits - 1) % 64);
        for _ in 0..64 * limbs - bits + 2 {
            self.double_mod(&mut two);
        }
        self.mont_pow(&two, 64 * limbs as u64)
    }

    /// `x = 2x mod n`, for `x < n`.
    fn double_mod(&self, x: &mut [u64]) {
        let mut carry = 0;
        for limb in x.iter_mut() {
            let top = *limb >> 63;
            *limb = (*limb << 1) | carry;
            carry = top;
        }
        if carry == 1 || !less_than(x, &self.n) {
            sub_in_place(x, &self.n);
        }
    }

    /// `base^e` in Montgomery form, `base` in Montgomery form; `e >= 1`. Left-to-right
    /// square-and-multiply.
    fn mont_pow(&self, base: &[u64], e: u64) -> Vec<u64> {
        let mut acc = base.to_vec();
        for bit in (0..63 - e.leading_zeros()).rev() {
            acc = self.mont_mul(&acc, &acc);
            if e >> bit & 1 == 1 {
                acc = self.mont_mul(&acc, base);
            }
        }
        acc
    }

    /// `a * b / R mod n` (Montgomery multiplication, coarsely integrated operand scanning);
    /// `a, b < n`, both with the modulus' limb count.
    fn mont_mul(&self, a: &[u64], b: &[u64]) -> Vec<u64> {
        let n = &self.n;
        let l = n.len();
        let mut t = vec![0u64; l + 2];
        for &ai in a {
            let mut carry = 0u64;
            for (tj, &bj) in t.iter_mut().zip(b) {
                let s = u128::from(*tj) + u128::from(ai) * u128::from(bj) + u128::from(carry);
                *tj = s as u64;
                carry = (s >> 64) as u64;
            }
            let s = u128::from(t[l]) + u128::from(carry);
            t[l] = s as u64;
            t[l + 1] = (s >> 64) as u64;
            let m = t[0].wrapping_mul(self.n0_inv);
            let s = u128::from(t[0]) + u128::from(m) * u128::from(n[0]);
            let mut carry = (s >> 64) as u64;
            for j in 1..l {
                let s = u128::from(t[j]) + u128::from(m) * u128::from(n[j]) + u128::from(carry);
                t[j - 1] = s as u64;
                carry = (s >> 64) as u64;
            }
            let s = u128::from(t[l]) + u128::from(carry);
            t[l - 1] = s as u64;
            t[l] = t[l + 1] + (s >> 64) as u64;
            t[l + 1] = 0;
        }
        // t < 2n: at most one subtraction.
        if t[l] != 0 || !less_than(&t[..l], n) {
            sub_in_place(&mut t[..l], n);
        }
        t.truncate(l);
        t
    }
}

/// `-x^-1 mod 2^64` for odd `x`, by Newton's iteration (each step doubles the correct bits).
fn neg_inverse(x: u64) -> u64 {
    let mut inv = x; // correct to 3 bits: x * x = 1 mod 8 for odd x
    for _ in 0..5 {
        inv = inv.wrapping_mul(2u64.wrapping_sub(x.wrapping_mul(inv)));
    }
    inv.wrapping_neg()
}

/// Big-endian bytes as little-endian limbs.
fn limbs_from_be(bytes: &[u8]) -> Vec<u64> {
    bytes
        .rchunks(8)
        .map(|c| c.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b)))
        .collect()
}

/// A big-endian number that fits in 64 bits.
fn u64_from_be(bytes: &[u8]) -> Option<u64> {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let bytes = &bytes[start..];
    (bytes.len() <= 8).then(|| bytes.iter().fold(0, |acc, &b| acc << 8 | u64::from(b)))
}

/// The number of significant bits.
fn bit_len(x: &[u64]) -> usize {
    x.iter()
        .rposition(|&l| l != 0)
        .map_or(0, |i| 64 * i + 64 - x[i].leading_zeros() as usize)
}

/// `a < b`, numbers of any limb counts.
fn less_than(a: &[u64], b: &[u64]) -> bool {
    let len = a.len().max(b.len());
    let limb = |x: &[u64], i: usize| x.get(i).copied().unwrap_or(0);
    for i in (0..len).rev() {
        let (x, y) = (limb(a, i), limb(b, i));
        if x != y {
            return x < y;
        }
    }
    false
}

/// `a -= b` modulo `2^(64 * a.len())`; `b` has no more limbs than `a`.
fn sub_in_place(a: &mut [u64], b: &[u64]) {
    let mut borrow = false;
    for (i, x) in a.iter_mut().enumerate() {
        let (d, b1) = x.overflowing_sub(b.get(i).copied().unwrap_or(0));
        let (d, b2) = d.overflowing_sub(u64::from(borrow));
        *x = d;
        borrow = b1 || b2;
    }
}

/// The label and decoded body of a PEM text that is exactly one block.
fn pem_decode(text: &str) -> Option<(&str, Vec<u8>)> {
    let rest = text.strip_prefix("-----BEGIN ")?;
    let (label, rest) = rest.split_once("-----")?;
    let body = rest.strip_suffix(&format!("-----END {label}-----"))?;
    Some((label, base64_decode(body)?))
}

/// Standard base64 with `=` padding; ASCII whitespace (line breaks) is skipped.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits, mut padding) = (0u32, 0, 0);
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace()) {
        if c == b'=' {
            padding += 1;
            continue;
        }
        let v = crate::checksum::base64_digit(c)?;
        if padding > 0 {
            return None;
        }
        acc = (acc << 6 | u32::from(v)) & 0xfff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    // Whole quads only; the bits left over are zero.
    let quads_ok =
        (bits == 0 && padding == 0) || (bits == 4 && padding == 2) || (bits == 2 && padding == 1);
    (quads_ok && acc & ((1 << bits) - 1) == 0).then_some(out)
}

/// One DER element at the start of `der`: (tag, content, rest). Definite lengths only, in
/// their shortest form.
fn der_element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 2 || rest.len() < count || rest[0] == 0 {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0, |acc, &b| acc << 8 | usize::from(b));
        if len < 0x80 {
            return None;
        }
        (len, &rest[count..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The content of the element with `tag` at the start of `der`, and what follows it.
fn expect(der: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (t, content, rest) = der_element(der)?;
    (t == tag).then_some((content, rest))
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const NULL: u8 = 0x05;
const OID: u8 = 0x06;

/// The PKCS#1 `RSAPublicKey` inside a SubjectPublicKeyInfo for `rsaEncryption`.
fn spki_rsa_key(der: &[u8]) -> Option<&[u8]> {
    let (spki, rest) = expect(der, SEQUENCE)?;
    let (algorithm, spki) = expect(spki, SEQUENCE)?;
    let (bits, spki) = expect(spki, BIT_STRING)?;
    let (oid, params) = expect(algorithm, OID)?;
    if !rest.is_empty() || !spki.is_empty() || oid != RSA_ENCRYPTION_OID || params != [NULL, 0] {
        return None;
    }
    // No unused bits: the key is whole bytes.
    bits.strip_prefix(&[0])
}

/// (modulus, exponent) of a PKCS#1 `RSAPublicKey`, big-endian.
fn rsa_public_key(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (seq, rest) = expect(der, SEQUENCE)?;
    let (n, seq) = expect(seq, INTEGER)?;
    let (e, seq) = expect(seq, INTEGER)?;
    (rest.is_empty() && seq.is_empty()).then_some((positive(n)?, positive(e)?))
}

/// The magnitude of a DER INTEGER that is positive and minimally encoded.
fn positive(int: &[u8]) -> Option<&[u8]> {
    match int {
        [] => None,
        [b, ..] if b & 0x80 != 0 => None,
        [0, next, ..] if next & 0x80 == 0 => None,
        [0, rest @ ..] if !rest.is_empty() => Some(rest),
        _ => Some(int),
    }
}

#[cfg(test)]
mod tests {
    //! The `rsa` crate (and its big-number library) is the oracle: same results on thousands of
    //! random moduli, keys, signatures and forgeries.

    use super::*;
    use crate::sign::{verify, SigAlgo};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use rsa::pkcs1::EncodeRsaPublicKey;
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    use rsa::traits::{PrivateKeyParts, PublicKeyParts};
    use rsa::{BigUint, RsaPrivateKey, RsaPublicKey};

    /// A random odd number of exactly `bits` bits, big-endian.
    fn odd_modulus(rng: &mut StdRng, bits: usize) -> Vec<u8> {
        let mut n = vec![0u8; bits.div_ceil(8)];
        rng.fill(&mut n[..]);
        let top = (bits - 1) % 8;
        n[0] &= ((1u16 << (top + 1)) - 1) as u8;
        n[0] |= 1 << top;
        *n.last_mut().unwrap() |= 1;
        n
    }

    fn ours(rsa: &RsaPublicKey) -> PublicKey {
        PublicKey::from_components(&rsa.n().to_bytes_be(), &rsa.e().to_bytes_be()).unwrap()
    }

    #[test]
    fn modular_exponentiation_agrees_with_num_bigint() {
        let mut rng = StdRng::seed_from_u64(0x5eed_0001);
        for case in 0..3000 {
            // Mostly small moduli (fast), every limb boundary, and some of full size.
            let bits = match case % 10 {
                0 => 4096,
                1 => 64 * rng.gen_range(1..=64) + rng.gen_range(0..=1),
                _ => rng.gen_range(2..=1100usize),
            };
            let n_be = odd_modulus(&mut rng, bits);
            let e = match case % 3 {
                0 => 65537,
                1 => rng.gen_range(1..=MAX_EXPONENT / 2) * 2 + 1,
                _ => rng.gen_range(1..=150) * 2 + 1,
            };
            let key = PublicKey::odd_modulus(limbs_from_be(&n_be), e);
            let n = BigUint::from_bytes_be(&n_be);
            let mut s = vec![0u8; key.size()];
            rng.fill(&mut s[..]);
            let s = BigUint::from_bytes_be(&s) % &n;
            let want = s.modpow(&BigUint::from(e), &n);
            let mut s_be = s.to_bytes_be();
            while s_be.len() < key.size() {
                s_be.insert(0, 0);
            }
            let got = key.public_op(&limbs_from_be(&s_be));
            assert_eq!(got.len(), key.size());
            assert_eq!(
                BigUint::from_bytes_be(&got),
                want,
                "case {case}: {bits} bits, e = {e}"
            );
            assert_eq!(key.modulus(), n_be);
        }
    }

    /// Every signature `rsa` makes verifies; every change to the signature or the digest is
    /// refused by both.
    #[test]
    fn signatures_and_forgeries_agree_with_rsa() {
        let mut rng = StdRng::seed_from_u64(0x5eed_0002);
        let algos = [SigAlgo::Sha1, SigAlgo::Sha256, SigAlgo::Sha512];
        let sizes = [512, 520, 576, 777, 1000, 1024, 1032, 1536, 2048];
        for (i, bits) in sizes.iter().cycle().take(27).enumerate() {
            let exp = if i % 4 == 3 { 3u32 } else { 65537 };
            let private = RsaPrivateKey::new_with_exp(&mut rng, *bits, &BigUint::from(exp))
                .expect("key generation");
            let public = private.to_public_key();
            let key = ours(&public);
            assert_eq!(key.size(), public.size());
            for round in 0..40 {
                let algo = algos[round % 3];
                let scheme = algo.scheme();
                let mut digest = vec![0u8; algo.hash_len()];
                rng.fill(&mut digest[..]);
                let both = |digest: &[u8], sig: &[u8]| {
                    let theirs = public.verify(algo.scheme(), digest, sig).is_ok();
                    assert_eq!(
                        verify(&key, algo, digest, sig),
                        theirs,
                        "{bits}-bit key, e = {exp}, {algo:?}"
                    );
                    theirs
                };
                let Ok(sig) = private.sign(scheme, &digest) else {
                    // The key is too small for SHA-512's DigestInfo: so is ours.
                    assert!(!both(&digest, &vec![0; key.size()]));
                    continue;
                };
                assert!(both(&digest, &sig), "a genuine signature");
                let mut flipped = sig.clone();
                let bit = rng.gen_range(0..8 * flipped.len());
                flipped[bit / 8] ^= 1 << (bit % 8);
                assert!(!both(&digest, &flipped), "one bit of the signature flipped");
                let mut other = digest.clone();
                let at = rng.gen_range(0..other.len());
                other[at] ^= 1 << rng.gen_range(0..8);
                assert!(!both(&other, &sig), "one bit of the digest flipped");
                let mut random = vec![0u8; sig.len()];
                rng.fill(&mut random[..]);
                both(&digest, &random);
                assert!(!both(&digest, &sig[1..]), "a short signature");
                assert!(!both(&digest, &[&[0][..], &sig].concat()), "a long one");
                assert!(!both(&digest[1..], &sig), "a short digest");
                assert!(!both(&digest, &public.n().to_bytes_be()), "s = n");
            }
        }
    }

    /// Signatures crafted with a wrong encoding (padding, separator, prefix) under a known
    /// modulus: `s = m^d` needs the private key, so they are made by `rsa`'s raw decryption.
    #[test]
    fn badly_encoded_messages_are_refused_as_rsa_refuses_them() {
        let mut rng = StdRng::seed_from_u64(0x5eed_0003);
        let private = RsaPrivateKey::new(&mut rng, 1024).unwrap();
        let public = private.to_public_key();
        let key = ours(&public);
        let k = key.size();
        let algo = SigAlgo::Sha256;
        let digest = [0xab; 32];
        let prefix = algo.digest_info_prefix();
        let good: Vec<u8> = [
            &[0u8, 1][..],
            &vec![0xff; k - 3 - prefix.len() - 32],
            &[0],
            prefix,
            &digest,
        ]
        .concat();
        let d = private.d();
        let n = public.n();
        let sign_raw = |em: &[u8]| {
            let mut s = BigUint::from_bytes_be(em).modpow(d, n).to_bytes_be();
            while s.len() < k {
                s.insert(0, 0);
            }
            s
        };
        assert!(verify(&key, algo, &digest, &sign_raw(&good)));
        for at in 0..k {
            let mut em = good.clone();
            em[at] ^= 0x40;
            if BigUint::from_bytes_be(&em) >= *n {
                continue;
            }
            let sig = sign_raw(&em);
            let theirs = public.verify(algo.scheme(), &digest, &sig).is_ok();
            assert!(!theirs, "byte {at} changed");
            assert!(!verify(&key, algo, &digest, &sig), "byte {at} changed");
        }
    }

    #[test]
    fn pem_keys_parse_as_rsa_writes_them() {
        let mut rng = StdRng::seed_from_u64(0x5eed_0004);
        for bits in [512, 1000, 2048] {
            let public = RsaPrivateKey::new(&mut rng, bits).unwrap().to_public_key();
            let spki = public.to_public_key_pem(LineEnding::LF).unwrap();
            let pkcs1 = public.to_pkcs1_pem(LineEnding::CRLF).unwrap();
            for pem in [&spki, &pkcs1, &format!("\n{spki}\n\n")] {
                let key = PublicKey::from_pem(pem).expect("parses");
                assert_eq!(key.modulus(), public.n().to_bytes_be());
                assert_eq!(BigUint::from(key.exponent()), *public.e());
            }
            let broken = [
                spki.replace("PUBLIC KEY-----\n", "PUBLIC KEY-----\n!"),
                spki.replace("-----END PUBLIC KEY-----", "-----END RSA PUBLIC KEY-----"),
                spki.replace("BEGIN PUBLIC KEY", "BEGIN PRIVATE KEY")
                    .replace("END PUBLIC KEY", "END PRIVATE KEY"),
                format!("junk\n{spki}"),
                spki.replacen('A', "", 1),
                pkcs1.replace("RSA PUBLIC KEY", "PUBLIC KEY"),
            ];
            for pem in &broken {
                assert_eq!(PublicKey::from_pem(pem), None, "{pem}");
            }
            // Any single changed character: never a panic; a key only when rsa reads one too.
            let bytes = spki.as_bytes();
            for _ in 0..300 {
                let mut m = bytes.to_vec();
                let at = rng.gen_range(0..m.len());
                m[at] = b"AZaz09+/=\n-x"[rng.gen_range(0..12)];
                let Ok(text) = std::str::from_utf8(&m) else {
                    continue;
                };
                if let Some(key) = PublicKey::from_pem(text) {
                    use rsa::pkcs8::DecodePublicKey;
                    if let Ok(theirs) = RsaPublicKey::from_public_key_pem(text) {
                        assert_eq!(key.modulus(), theirs.n().to_bytes_be());
                    }
                }
            }
        }
    }

    #[test]
    fn key_limits_are_rsa_s() {
        let mut rng = StdRng::seed_from_u64(0x5eed_0005);
        let accepts = |n: &[u8], e: u64| {
            let theirs = RsaPublicKey::new(BigUint::from_bytes_be(n), BigUint::from(e)).is_ok();
            let ours = PublicKey::from_components(n, &e.to_be_bytes()).is_some();
            assert_eq!(ours, theirs, "{} bits, e = {e}", n.len() * 8);
            ours
        };
        let n4096 = odd_modulus(&mut rng, 4096);
        assert!(accepts(&n4096, 65537));
        assert!(!accepts(&odd_modulus(&mut rng, 4097), 65537));
        assert!(!accepts(&n4096, 1));
        assert!(!accepts(&n4096, 2));
        assert!(accepts(&n4096, 3));
        assert!(!accepts(&n4096, 65536));
        assert!(accepts(&n4096, MAX_EXPONENT));
        assert!(!accepts(&n4096, MAX_EXPONENT + 2));
        let mut even = n4096.clone();
        *even.last_mut().unwrap() &= 0xfe;
        assert!(!accepts(&even, 65537));
        assert!(accepts(&[0x01, 0x00, 0x03], 65537));
        assert!(!accepts(&[0x01, 0x00, 0x01], 65537));
        assert!(!accepts(&[0x01], 3));
        // Leading zero bytes are not part of the size.
        let padded = [&[0, 0][..], &n4096].concat();
        let key = PublicKey::from_components(&padded, &[0, 1, 0, 1]).unwrap();
        assert_eq!((key.size(), key.exponent()), (512, 65537));
    }

    #[test]
    fn base64_is_strict_about_padding() {
        assert_eq!(base64_decode("TWFu").unwrap(), b"Man");
        assert_eq!(base64_decode("TWE=").unwrap(), b"Ma");
        assert_eq!(base64_decode("TQ==\n").unwrap(), b"M");
        for bad in ["TWE", "TQ=", "TQ===", "TR==", "TW=u", "TWFu=", "TW!u"] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
    }
}
