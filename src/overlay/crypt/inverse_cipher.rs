//! AES decryption (the FIPS-197 inverse cipher) for 128-, 192- and 256-bit keys, written
//! byte by byte with the S-boxes computed at compile time.
//!
//! Why not the `aes` crate here: on aarch64 it links an ARMv8 and a fixsliced software
//! backend for each of the three key sizes, ~9 KB of the init's size budget, to decrypt an
//! apkovl of a few kilobytes once per boot (the key derivation costs more than the
//! decryption). The host tool's writers still encrypt with the `aes` crate, which the tests
//! use as this decryptor's oracle.

/// One block decryptor: the expanded key schedule and its round count.
#[derive(Clone)]
pub(super) struct Aes {
    /// Round keys 0..=rounds, 16 bytes each.
    round_keys: [u8; 240],
    rounds: usize,
}

impl Aes {
    /// `key` is 16, 24 or 32 bytes (AES-128, -192, -256); any other length is a caller bug.
    pub(super) fn new(key: &[u8]) -> Aes {
        let nk = key.len() / 4;
        assert!(
            matches!(nk, 4 | 6 | 8) && key.len() % 4 == 0,
            "AES key length"
        );
        let rounds = nk + 6;
        let words = 4 * (rounds + 1);
        let mut w = [0u8; 240];
        w[..key.len()].copy_from_slice(key);
        let mut rcon = 1u8;
        for i in nk..words {
            let mut t = [w[4 * i - 4], w[4 * i - 3], w[4 * i - 2], w[4 * i - 1]];
            if i % nk == 0 {
                t = [
                    SBOX[t[1] as usize] ^ rcon,
                    SBOX[t[2] as usize],
                    SBOX[t[3] as usize],
                    SBOX[t[0] as usize],
                ];
                rcon = xtime(rcon);
            } else if nk == 8 && i % nk == 4 {
                t = t.map(|b| SBOX[b as usize]);
            }
            for j in 0..4 {
                w[4 * i + j] = w[4 * (i - nk) + j] ^ t[j];
            }
        }
        Aes {
            round_keys: w,
            rounds,
        }
    }

    pub(super) fn decrypt(&self, block: &mut [u8; 16]) {
        self.add_round_key(block, self.rounds);
        for round in (0..self.rounds).rev() {
            inv_shift_rows_sub_bytes(block);
            self.add_round_key(block, round);
            if round > 0 {
                inv_mix_columns(block);
            }
        }
    }

    fn add_round_key(&self, block: &mut [u8; 16], round: usize) {
        let key = &self.round_keys[16 * round..16 * round + 16];
        for (b, k) in block.iter_mut().zip(key) {
            *b ^= k;
        }
    }
}

/// Row r (bytes r, r+4, r+8, r+12: the state is column-major) moves r places right, and
/// every byte goes through the inverse S-box.
fn inv_shift_rows_sub_bytes(block: &mut [u8; 16]) {
    let old = *block;
    for (out, from) in block.iter_mut().zip(INV_SHIFT_ROWS) {
        *out = INV_SBOX[old[from as usize] as usize];
    }
}

/// Where each byte of the state comes from in InvShiftRows.
const INV_SHIFT_ROWS: [u8; 16] = [0, 13, 10, 7, 4, 1, 14, 11, 8, 5, 2, 15, 12, 9, 6, 3];

/// InvMixColumns as MixColumns after a multiplication by the circulant {05 00 04 00}
/// (circulant matrices commute): eight doublings per column instead of the ~48 of the
/// 14-11-13-9 products.
fn inv_mix_columns(block: &mut [u8; 16]) {
    for column in block.chunks_exact_mut(4) {
        let u = xtime(xtime(column[0] ^ column[2]));
        let v = xtime(xtime(column[1] ^ column[3]));
        let a = [column[0] ^ u, column[1] ^ v, column[2] ^ u, column[3] ^ v];
        let all = a[0] ^ a[1] ^ a[2] ^ a[3];
        column[0] = a[0] ^ all ^ xtime(a[0] ^ a[1]);
        column[1] = a[1] ^ all ^ xtime(a[1] ^ a[2]);
        column[2] = a[2] ^ all ^ xtime(a[2] ^ a[3]);
        column[3] = a[3] ^ all ^ xtime(a[3] ^ a[0]);
    }
}

/// Multiplication by x in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1.
const fn xtime(b: u8) -> u8 {
    (b << 1) ^ ((b >> 7) * 0x1b)
}

const SBOX: [u8; 256] = sboxes().0;
const INV_SBOX: [u8; 256] = sboxes().1;

/// The S-box (multiplicative inverse in GF(2^8), then the affine map) and its inverse. The
/// walk visits every non-zero element once: p runs through the powers of the generator 3 and
/// q through the powers of its inverse, so q is always p's inverse.
const fn sboxes() -> ([u8; 256], [u8; 256]) {
    let mut sbox = [0u8; 256];
    let mut inv = [0u8; 256];
    let mut p: u8 = 1;
    let mut q: u8 = 1;
    loop {
        p ^= xtime(p);
        q ^= q << 1;
        q ^= q << 2;
        q ^= q << 4;
        if q & 0x80 != 0 {
            q ^= 0x09;
        }
        let s =
            q ^ q.rotate_left(1) ^ q.rotate_left(2) ^ q.rotate_left(3) ^ q.rotate_left(4) ^ 0x63;
        sbox[p as usize] = s;
        inv[s as usize] = p;
        if p == 1 {
            break;
        }
    }
    sbox[0] = 0x63;
    inv[0x63] = 0;
    (sbox, inv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::{BlockCipherEncrypt, KeyInit};

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn decrypt(key: &[u8], cipher: &str) -> Vec<u8> {
        let mut block: [u8; 16] = hex(cipher).try_into().unwrap();
        Aes::new(key).decrypt(&mut block);
        block.to_vec()
    }

    #[test]
    fn sbox_known_entries() {
        assert_eq!(SBOX[0x00], 0x63);
        assert_eq!(SBOX[0x01], 0x7c);
        assert_eq!(SBOX[0x53], 0xed);
        assert_eq!(SBOX[0xff], 0x16);
        assert_eq!(INV_SBOX[0xed], 0x53);
        for b in 0..=255u8 {
            assert_eq!(INV_SBOX[SBOX[b as usize] as usize], b);
        }
    }

    /// FIPS-197 appendix C: the example vectors of the three key sizes.
    #[test]
    fn fips_197_vectors() {
        let plain = hex("00112233445566778899aabbccddeeff");
        let key: Vec<u8> = (0..32).collect();
        assert_eq!(
            decrypt(&key[..16], "69c4e0d86a7b0430d8cdb78070b4c55a"),
            plain
        );
        assert_eq!(
            decrypt(&key[..24], "dda97ca4864cdfe06eaf70a0ec0d7191"),
            plain
        );
        assert_eq!(
            decrypt(&key[..32], "8ea2b7ca516745bfeafc49904b496089"),
            plain
        );
    }

    /// Inverts the `aes` crate's encryption for many keys and blocks of each size.
    #[test]
    fn inverts_the_aes_crate() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        };
        for _ in 0..50 {
            let key: [u8; 32] = std::array::from_fn(|_| next());
            let plain: [u8; 16] = std::array::from_fn(|_| next());
            for len in [16, 24, 32] {
                let mut block = plain;
                match len {
                    16 => aes::Aes128Enc::new(key[..16].try_into().unwrap())
                        .encrypt_block((&mut block).into()),
                    24 => aes::Aes192Enc::new(key[..24].try_into().unwrap())
                        .encrypt_block((&mut block).into()),
                    _ => aes::Aes256Enc::new(key[..32].try_into().unwrap())
                        .encrypt_block((&mut block).into()),
                }
                Aes::new(&key[..len]).decrypt(&mut block);
                assert_eq!(block, plain, "key length {len}");
            }
        }
    }
}
