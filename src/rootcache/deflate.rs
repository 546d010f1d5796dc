//! A small zlib (RFC 1950) compressor for the cached root's squashfs blocks.
//!
//! The init has little room left (its aarch64 size budget), and the linked zlib-rs carries only
//! its inflate half: a full deflate would cost tens of KB. This one is greedy LZ77 over a
//! one-entry hash table with the fixed Huffman code of RFC 1951 §3.2.6: a few KB of code, about
//! half the ratio gap to `gzip -9` on binaries, and fast. The kernel's squashfs `gzip`
//! decompressor reads it like any zlib stream. Speed matters little: it runs in the background.

/// Appends bits least significant first, as deflate packs them.
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u32, count: u32) {
        self.acc |= u64::from(value) << self.n;
        self.n += count;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// A Huffman code, which deflate stores most significant bit first.
    fn code(&mut self, code: u32, len: u32) {
        self.put(code.reverse_bits() >> (32 - len), len);
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// The fixed code of a literal/length symbol (RFC 1951 §3.2.6).
fn literal(bits: &mut Bits, sym: u32) {
    match sym {
        0..=143 => bits.code(0x30 + sym, 8),
        144..=255 => bits.code(0x190 + sym - 144, 9),
        256..=279 => bits.code(sym - 256, 7),
        _ => bits.code(0xc0 + sym - 280, 8),
    }
}

/// Base values of the length symbols 257..=285 and of the distance symbols 0..=29.
const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];

fn len_extra(i: usize) -> u32 {
    if (8..28).contains(&i) {
        (i as u32 - 4) / 4
    } else {
        0
    }
}

fn dist_extra(i: usize) -> u32 {
    if i >= 4 {
        (i as u32 - 2) / 2
    } else {
        0
    }
}

/// The last index whose base is at most `v`.
fn bucket(table: &[u16], v: u16) -> usize {
    table.partition_point(|&b| b <= v) - 1
}

fn copy(bits: &mut Bits, len: usize, dist: usize) {
    let li = bucket(&LEN_BASE, len as u16);
    literal(bits, 257 + li as u32);
    bits.put(len as u32 - u32::from(LEN_BASE[li]), len_extra(li));
    let di = bucket(&DIST_BASE, dist as u16);
    bits.code(di as u32, 5);
    bits.put(dist as u32 - u32::from(DIST_BASE[di]), dist_extra(di));
}

const WINDOW: usize = 32 * 1024;
const MAX_MATCH: usize = 258;
const HASH_BITS: u32 = 14;

fn hash(d: &[u8]) -> usize {
    let v = u32::from(d[0]) | u32::from(d[1]) << 8 | u32::from(d[2]) << 16;
    (v.wrapping_mul(0x9E37_79B1) >> (32 - HASH_BITS)) as usize
}

/// Adler-32 of `data` (the zlib trailer).
fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &x in chunk {
            a += u32::from(x);
            b += a;
        }
        a %= 65521;
        b %= 65521;
    }
    b << 16 | a
}

/// `data` as one zlib stream (a single fixed-Huffman block).
pub fn zlib(data: &[u8]) -> Vec<u8> {
    let mut bits = Bits {
        out: Vec::with_capacity(data.len() / 2 + 64),
        acc: 0,
        n: 0,
    };
    // CMF: deflate with a 32 KiB window; FLG: fastest level, check bits making it a multiple of 31.
    bits.out.extend_from_slice(&[0x78, 0x01]);
    bits.put(1, 1); // the last block
    bits.put(1, 2); // fixed Huffman
    let mut head = vec![u32::MAX; 1 << HASH_BITS];
    let mut i = 0;
    while i < data.len() {
        let mut best = 0;
        let mut dist = 0;
        if i + 3 <= data.len() {
            let h = hash(&data[i..]);
            let cand = head[h];
            head[h] = i as u32;
            if cand != u32::MAX && i - cand as usize <= WINDOW {
                let c = cand as usize;
                let max = MAX_MATCH.min(data.len() - i);
                let n = data[c..c + max]
                    .iter()
                    .zip(&data[i..i + max])
                    .take_while(|(a, b)| a == b)
                    .count();
                if n >= 3 {
                    best = n;
                    dist = i - c;
                }
            }
        }
        if best >= 3 {
            copy(&mut bits, best, dist);
            // Positions inside the match go into the table too (cheap, better matches later).
            for j in i + 1..(i + best).min(data.len().saturating_sub(2)) {
                head[hash(&data[j..])] = j as u32;
            }
            i += best;
        } else {
            literal(&mut bits, u32::from(data[i]));
            i += 1;
        }
    }
    literal(&mut bits, 256);
    let mut out = bits.finish();
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn inflate(z: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(z)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn every_kind_of_input_round_trips_through_a_standard_inflater() {
        let mut binary = Vec::new();
        let mut x = 1u32;
        for _ in 0..200_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            binary.push((x >> 16) as u8 % 7);
        }
        let text = "the quick brown fox jumps over the lazy dog\n".repeat(3000);
        let inputs: [&[u8]; 6] = [
            b"",
            b"a",
            b"abcabcabcabcabcabc",
            &[0u8; 100_000],
            text.as_bytes(),
            &binary,
        ];
        for data in inputs {
            let z = zlib(data);
            assert_eq!(inflate(&z), data, "length {}", data.len());
        }
        assert!(zlib(text.as_bytes()).len() < text.len() / 10);
        assert!(zlib(&[0u8; 100_000]).len() < 1000);
    }

    #[test]
    fn every_length_and_distance_bucket_is_encoded_right() {
        // Matches of every length at many distances.
        let mut data = Vec::new();
        for len in 3..=258usize {
            let start = data.len().saturating_sub(len * 37 % 30_000);
            let piece: Vec<u8> = data[start..].iter().take(len).copied().collect();
            data.extend_from_slice(&piece);
            data.extend((0..len as u32).map(|i| (i * 131 + len as u32) as u8));
        }
        assert_eq!(inflate(&zlib(&data)), data);
    }
}
