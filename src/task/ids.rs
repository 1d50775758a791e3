//! Random 64-bit ids for tuple roots and edges (SplitMix64, seeded from the OS).

/// A fast, per-task generator of random non-zero 64-bit ids.
pub(crate) struct IdGen(u64);

impl IdGen {
    pub(crate) fn new() -> Self {
        IdGen(rand::random::<u64>())
    }

    #[inline]
    pub(crate) fn next_id(&mut self) -> u64 {
        loop {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            if z != 0 {
                return z;
            }
        }
    }
}

/// A hasher for keys that are already random 64-bit ids: the identity.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ b as u64;
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
}

pub(crate) type IdBuildHasher = std::hash::BuildHasherDefault<IdHasher>;
