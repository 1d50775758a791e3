//! Appends many small pieces to a `String` with fixed-size copies.
//!
//! Appending a 5-byte word to a `String` is a `memcpy` call of unknown length, and the
//! call also forces the caller's registers to the stack: that was most of the cost of a
//! generated tweet. Here a piece of at most [`PAD`] bytes, read from a source that has
//! [`PAD`] spare bytes after its last piece, is copied as exactly [`PAD`] bytes into a
//! stack buffer; the surplus is overwritten by the next piece or cut off at the end. The
//! buffer reaches the `String` in one copy when it is full or dropped.

/// The fixed copy size, and how many spare bytes a padded source needs at its end.
pub const PAD: usize = 16;
const CAP: usize = 256;

/// A `String` being appended to through a stack buffer (flushed when dropped).
pub struct ShortText<'a> {
    out: &'a mut String,
    buf: [u8; CAP],
    len: usize,
}

impl<'a> ShortText<'a> {
    pub fn new(out: &'a mut String) -> Self {
        ShortText {
            out,
            buf: [0; CAP],
            len: 0,
        }
    }

    /// Appends `src[start..start + len]`, which must lie on char boundaries; a fixed
    /// [`PAD`]-byte copy when `len <= PAD` and `src` has [`PAD`] bytes from `start`.
    #[inline(always)]
    pub fn push_padded(&mut self, src: &str, start: usize, len: usize) {
        let end = self.len + PAD;
        match src.as_bytes().get(start..start + PAD) {
            Some(chunk) if len <= PAD && end <= CAP => {
                self.buf[self.len..end].copy_from_slice(chunk);
                self.len += len;
            }
            _ => {
                self.push_str(src.get(start..start + len).unwrap_or_default());
            }
        }
    }

    /// Appends `s`; returns where its first byte went, for [`Self::uppercase_ascii_at`].
    #[inline]
    pub fn push_str(&mut self, s: &str) -> Place {
        if self.len + s.len() > CAP {
            self.flush();
        }
        match self.buf.get_mut(self.len..self.len + s.len()) {
            Some(dst) => {
                dst.copy_from_slice(s.as_bytes());
                self.len += s.len();
                Place::Buffer(self.len - s.len())
            }
            None => {
                self.out.push_str(s);
                Place::Out(self.out.len() - s.len())
            }
        }
    }

    /// ASCII-uppercases the byte at `at` (nothing if it is not an ASCII letter).
    pub fn uppercase_ascii_at(&mut self, at: Place) {
        match at {
            Place::Buffer(i) => {
                if let Some(b) = self.buf.get_mut(i) {
                    b.make_ascii_uppercase();
                }
            }
            Place::Out(i) => {
                if let Some(s) = self.out.get_mut(i..i + 1) {
                    s.make_ascii_uppercase();
                }
            }
        }
    }

    fn flush(&mut self) {
        let bytes = &self.buf[..self.len];
        // Whole pieces cut on char boundaries: always valid UTF-8.
        match std::str::from_utf8(bytes) {
            Ok(s) => self.out.push_str(s),
            Err(_) => self.out.push_str(&String::from_utf8_lossy(bytes)),
        }
        self.len = 0;
    }
}

/// Where a piece was put: in the stack buffer, or straight into the `String`.
#[derive(Clone, Copy, Debug)]
pub enum Place {
    Buffer(usize),
    Out(usize),
}

impl Drop for ShortText<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_of_every_size_come_out_in_order() {
        let words = [
            "a",
            "héllo",
            "",
            "x".repeat(40).as_str(),
            "0123456789abcdef",
        ]
        .map(String::from);
        let mut src = String::new();
        let mut spans = Vec::new();
        for w in &words {
            spans.push((src.len(), w.len()));
            src.push_str(w);
        }
        src.push_str(&" ".repeat(PAD));
        let mut expected = String::from("start:");
        let mut out = String::from("start:");
        {
            let mut t = ShortText::new(&mut out);
            // Past the buffer's size, so it flushes on the way.
            for round in 0..30 {
                for (k, &(start, len)) in spans.iter().enumerate() {
                    if (round + k) % 2 == 0 {
                        t.push_padded(&src, start, len);
                    } else {
                        let at = t.push_str(&words[k]);
                        t.uppercase_ascii_at(at);
                    }
                }
            }
            // An unpadded source end: copied exactly.
            t.push_padded("tail", 1, 3);
        }
        for round in 0..30 {
            for (k, w) in words.iter().enumerate() {
                if (round + k) % 2 == 0 {
                    expected.push_str(w);
                } else {
                    let mut w = w.clone();
                    if let Some(s) = w.get_mut(0..1) {
                        s.make_ascii_uppercase();
                    }
                    expected.push_str(&w);
                }
            }
        }
        expected.push_str("ail");
        assert_eq!(out, expected);
    }
}
