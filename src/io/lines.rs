//! Newline-delimited framing, one for every line source: one framing core and a front-end
//! per way the bytes arrive: [`LineReader`] reads an async stream (the socket spout),
//! [`BlockingLineReader`] a file (the file spout), and [`LineSplitter`] is handed chunks
//! (the body of an HTTP stream: the Twitter spout).
//!
//! [`LineReader`] yields one [`LineEvent`] per input line. Lines longer than
//! [`LineOptions::max_line_bytes`] are skipped without being buffered, and invalid
//! UTF-8 is replaced or skipped; both are reported as counted anomalies rather
//! than errors, so one bad line never ends the stream.

use std::io;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::data::columns::StrColumn;

/// Default maximum line length: 1 MiB.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;

/// Default read buffer size.
pub const DEFAULT_READ_BUFFER_BYTES: usize = 64 * 1024;

/// Configuration errors for [`LineOptions`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinesError {
    /// `max_line_bytes` was zero, which would reject every non-empty line.
    #[error("max_line_bytes must be positive")]
    ZeroMaxLineBytes,
}

/// What to do with a line that is not valid UTF-8.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvalidUtf8 {
    /// Replace invalid sequences with U+FFFD and keep the line.
    #[default]
    Replace,
    /// Drop the line.
    Skip,
}

/// Options for [`LineReader`]; every field has a default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LineOptions {
    /// Longest accepted line, in bytes, excluding the `\n` / `\r\n` terminator.
    pub max_line_bytes: usize,
    /// Handling of invalid UTF-8.
    pub invalid_utf8: InvalidUtf8,
}

impl Default for LineOptions {
    fn default() -> Self {
        Self {
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            invalid_utf8: InvalidUtf8::Replace,
        }
    }
}

impl LineOptions {
    /// Checks the options for values that make no sense.
    pub fn validate(&self) -> Result<(), LinesError> {
        if self.max_line_bytes == 0 {
            return Err(LinesError::ZeroMaxLineBytes);
        }
        Ok(())
    }
}

/// One framed line or a counted anomaly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineEvent {
    /// A valid UTF-8 line without its terminator.
    Line(String),
    /// A line longer than `max_line_bytes` was skipped; `bytes` is its length
    /// excluding the terminator.
    Oversized {
        /// Length of the skipped line.
        bytes: u64,
    },
    /// A line with invalid UTF-8, decoded with replacement characters.
    InvalidUtf8Replaced(String),
    /// A line with invalid UTF-8 was dropped.
    InvalidUtf8Skipped,
}

/// Counters kept by a [`LineReader`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LineStats {
    /// Lines returned as text (`Line` and `InvalidUtf8Replaced`).
    pub lines: u64,
    /// Bytes read from the source, terminators and skipped bytes included.
    pub bytes: u64,
    /// Oversized lines skipped.
    pub oversized: u64,
    /// Lines with invalid UTF-8 (replaced or skipped).
    pub invalid_utf8: u64,
}

/// Progress through an oversized line that is being discarded.
#[derive(Debug, Clone, Copy)]
struct Discard {
    bytes: u64,
    last_was_cr: bool,
}

/// Where the line a [`Framer`] found is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framed {
    /// The first `len` bytes of what was fed: the whole line was there.
    Direct(usize),
    /// In the framer's buffer (the caller clears it once used).
    Buffered,
    /// A line longer than the maximum was skipped; its length.
    Oversized(u64),
}

/// The line framing both readers share: fed the bytes a buffered reader has, it finds
/// the next line, keeping at most `max + 1` bytes of a partial line and only counting the
/// bytes of a line that is already too long.
#[derive(Debug)]
struct Framer {
    max: usize,
    /// Partial line; never longer than `max + 1` (room for a `\r`).
    buf: Vec<u8>,
    discard: Option<Discard>,
}

impl Framer {
    fn new(max: usize) -> Self {
        Framer {
            max,
            buf: Vec::new(),
            discard: None,
        }
    }

    /// Frames the start of `available` (not empty): the line found, if any, and how many
    /// bytes of `available` were used.
    fn feed(&mut self, available: &[u8]) -> (Option<Framed>, usize) {
        let max = self.max;
        match find_newline(available) {
            Some(i) => {
                let ends_cr = match i {
                    0 => match self.discard {
                        Some(d) => d.last_was_cr,
                        None => self.buf.last() == Some(&b'\r'),
                    },
                    _ => available[i - 1] == b'\r',
                };
                let framed = if let Some(d) = self.discard.take() {
                    let total = d.bytes.saturating_add(i as u64);
                    Framed::Oversized(total - u64::from(ends_cr))
                } else {
                    let len = self.buf.len() + i - usize::from(ends_cr);
                    if len > max {
                        self.buf.clear();
                        Framed::Oversized(len as u64)
                    } else if self.buf.is_empty() {
                        Framed::Direct(len)
                    } else {
                        self.buf.extend_from_slice(&available[..i]);
                        self.buf.truncate(len);
                        Framed::Buffered
                    }
                };
                (Some(framed), i + 1)
            }
            None => {
                let n = available.len();
                let last_was_cr = available[n - 1] == b'\r';
                if let Some(d) = &mut self.discard {
                    d.bytes = d.bytes.saturating_add(n as u64);
                    d.last_was_cr = last_was_cr;
                } else if self.buf.len() + n > max.saturating_add(1) {
                    self.discard = Some(Discard {
                        bytes: (self.buf.len() + n) as u64,
                        last_was_cr,
                    });
                    self.buf.clear();
                } else {
                    self.buf.extend_from_slice(available);
                }
                (None, n)
            }
        }
    }

    /// At the end of the input: a final unterminated line (a trailing `\r` is stripped).
    fn finish(&mut self) -> Option<Framed> {
        if let Some(d) = self.discard.take() {
            return Some(Framed::Oversized(d.bytes - u64::from(d.last_was_cr)));
        }
        if self.buf.is_empty() {
            return None;
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        if self.buf.len() > self.max {
            let bytes = self.buf.len() as u64;
            self.buf.clear();
            return Some(Framed::Oversized(bytes));
        }
        Some(Framed::Buffered)
    }
}

/// Reads newline-delimited lines from an async byte stream.
///
/// `next_line` is cancel-safe: all partial-line state lives in the reader and no
/// input is lost if the future is dropped (e.g. in `tokio::select!`).
#[derive(Debug)]
pub struct LineReader<R> {
    inner: BufReader<R>,
    opts: LineOptions,
    framer: Framer,
    stats: LineStats,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// Wraps `reader` with the default read buffer size.
    pub fn new(reader: R, opts: LineOptions) -> Self {
        Self::with_capacity(reader, opts, DEFAULT_READ_BUFFER_BYTES)
    }

    /// Wraps `reader` with a read buffer of `capacity` bytes (at least 1).
    pub fn with_capacity(reader: R, opts: LineOptions, capacity: usize) -> Self {
        Self {
            inner: BufReader::with_capacity(capacity.max(1), reader),
            opts,
            framer: Framer::new(opts.max_line_bytes),
            stats: LineStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> LineStats {
        self.stats
    }

    /// The options in use.
    pub fn options(&self) -> &LineOptions {
        &self.opts
    }

    /// Whether bytes are buffered that have not been framed yet, i.e. whether the next
    /// `next_line` may complete without reading from the source. Lets callers batch
    /// the lines of one read.
    pub fn has_buffered(&self) -> bool {
        !self.inner.buffer().is_empty()
    }

    /// The underlying reader.
    pub fn get_ref(&self) -> &R {
        self.inner.get_ref()
    }

    /// Returns the underlying reader; buffered but unread bytes are lost.
    pub fn into_inner(self) -> R {
        self.inner.into_inner()
    }

    /// Reads the next line or anomaly; `Ok(None)` at end of stream. A final line
    /// without a terminator is returned like any other line.
    pub async fn next_line(&mut self) -> Result<Option<LineEvent>, io::Error> {
        self.next_with(decode).await
    }

    /// Reads the next line or anomaly into `lines` (a line, or a line with replacement
    /// characters, is appended as one row; nothing else is); `Ok(None)` at end of
    /// stream. No allocation per line: the lines of many reads share one arena.
    pub async fn next_line_into(
        &mut self,
        lines: &mut StrColumn,
    ) -> Result<Option<LineKind>, io::Error> {
        self.next_with(|bytes, mode| decode_into(bytes, mode, lines))
            .await
    }

    /// The framing loop of both `next_*` methods: `take` turns the bytes of a line into
    /// what is returned.
    async fn next_with<E: Classify>(
        &mut self,
        mut take: impl FnMut(&[u8], InvalidUtf8) -> E,
    ) -> Result<Option<E>, io::Error> {
        loop {
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                return Ok(self.finish_at_eof(take));
            }
            let (framed, used) = self.framer.feed(available);
            let event = framed.map(|f| match f {
                Framed::Direct(len) => take(&available[..len], self.opts.invalid_utf8),
                Framed::Buffered => {
                    let e = take(&self.framer.buf, self.opts.invalid_utf8);
                    self.framer.buf.clear();
                    e
                }
                Framed::Oversized(bytes) => E::oversized(bytes),
            });
            self.inner.consume(used);
            self.stats.bytes = self.stats.bytes.saturating_add(used as u64);
            if let Some(event) = event {
                self.count(event.kind());
                return Ok(Some(event));
            }
        }
    }

    /// Flushes a final unterminated line.
    fn finish_at_eof<E: Classify>(
        &mut self,
        take: impl FnOnce(&[u8], InvalidUtf8) -> E,
    ) -> Option<E> {
        let event = match self.framer.finish()? {
            Framed::Oversized(bytes) => E::oversized(bytes),
            Framed::Direct(_) | Framed::Buffered => {
                let e = take(&self.framer.buf, self.opts.invalid_utf8);
                self.framer.buf.clear();
                e
            }
        };
        self.count(event.kind());
        Some(event)
    }

    fn count(&mut self, kind: LineKind) {
        let s = &mut self.stats;
        match kind {
            LineKind::Line => s.lines += 1,
            LineKind::Oversized { bytes } => {
                s.oversized += 1;
                tracing::debug!(bytes, "skipped oversized line");
            }
            LineKind::InvalidUtf8Replaced => {
                s.lines += 1;
                s.invalid_utf8 += 1;
            }
            LineKind::InvalidUtf8Skipped => {
                s.invalid_utf8 += 1;
                tracing::debug!("skipped line with invalid UTF-8");
            }
        }
    }
}

/// What [`LineReader::next_line_into`] found: a [`LineEvent`] without the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// A valid UTF-8 line (appended).
    Line,
    /// A line longer than `max_line_bytes` was skipped (nothing appended).
    Oversized { bytes: u64 },
    /// A line with invalid UTF-8, appended with replacement characters.
    InvalidUtf8Replaced,
    /// A line with invalid UTF-8 was dropped (nothing appended).
    InvalidUtf8Skipped,
}

/// The kind of what a `next_*` method returns.
trait Classify {
    fn kind(&self) -> LineKind;
    fn oversized(bytes: u64) -> Self;
}

impl Classify for LineEvent {
    fn kind(&self) -> LineKind {
        match self {
            LineEvent::Line(_) => LineKind::Line,
            LineEvent::Oversized { bytes } => LineKind::Oversized { bytes: *bytes },
            LineEvent::InvalidUtf8Replaced(_) => LineKind::InvalidUtf8Replaced,
            LineEvent::InvalidUtf8Skipped => LineKind::InvalidUtf8Skipped,
        }
    }
    fn oversized(bytes: u64) -> Self {
        LineEvent::Oversized { bytes }
    }
}

impl Classify for LineKind {
    fn kind(&self) -> LineKind {
        *self
    }
    fn oversized(bytes: u64) -> Self {
        LineKind::Oversized { bytes }
    }
}

/// One line of a [`BlockingLineReader`] or a [`LineSplitter`]: its bytes, or that it was
/// too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawLine<'a> {
    /// The line without its `\n` / `\r\n` terminator (bytes as read, not checked as UTF-8).
    Line(&'a [u8]),
    /// A line longer than the maximum was skipped, unbuffered; its length without the
    /// terminator.
    Oversized(u64),
}

/// Reads newline-delimited lines from a blocking reader (a file) with the same framing
/// as [`LineReader`]: a line longer than `max_line_bytes` is skipped while it is read,
/// so memory stays bounded whatever the input (a multi-GB line, a file without newline).
#[derive(Debug)]
pub struct BlockingLineReader<R> {
    inner: std::io::BufReader<R>,
    framer: Framer,
    /// Bytes of `inner`'s buffer given out as the last line: consumed at the next call.
    given: usize,
    /// The last line was given out of the framer's buffer: cleared at the next call.
    given_buffered: bool,
}

impl<R: io::Read> BlockingLineReader<R> {
    /// Wraps `reader` with the default read buffer size.
    pub fn new(reader: R, max_line_bytes: usize) -> Self {
        Self::with_capacity(reader, max_line_bytes, DEFAULT_READ_BUFFER_BYTES)
    }

    /// Wraps `reader` with a read buffer of `capacity` bytes (at least 1).
    pub fn with_capacity(reader: R, max_line_bytes: usize, capacity: usize) -> Self {
        BlockingLineReader {
            inner: std::io::BufReader::with_capacity(capacity.max(1), reader),
            framer: Framer::new(max_line_bytes),
            given: 0,
            given_buffered: false,
        }
    }

    /// The next line; `Ok(None)` at the end of the input. A final line without a
    /// terminator is returned like any other line.
    pub fn next_line(&mut self) -> Result<Option<RawLine<'_>>, io::Error> {
        use std::io::BufRead;
        self.inner.consume(std::mem::take(&mut self.given));
        if std::mem::take(&mut self.given_buffered) {
            self.framer.buf.clear();
        }
        loop {
            let available = match self.inner.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                return Ok(match self.framer.finish() {
                    None => None,
                    Some(Framed::Oversized(bytes)) => Some(RawLine::Oversized(bytes)),
                    Some(Framed::Direct(_) | Framed::Buffered) => {
                        self.given_buffered = true;
                        Some(RawLine::Line(&self.framer.buf))
                    }
                });
            }
            let (framed, used) = self.framer.feed(available);
            match framed {
                None => self.inner.consume(used),
                Some(Framed::Oversized(bytes)) => {
                    self.inner.consume(used);
                    return Ok(Some(RawLine::Oversized(bytes)));
                }
                Some(Framed::Direct(len)) => {
                    self.given = used;
                    return Ok(Some(RawLine::Line(&self.inner.buffer()[..len])));
                }
                Some(Framed::Buffered) => {
                    self.inner.consume(used);
                    self.given_buffered = true;
                    return Ok(Some(RawLine::Line(&self.framer.buf)));
                }
            }
        }
    }

    /// Bytes held for a partial line (its buffer's capacity): at most about twice
    /// `max_line_bytes`, whatever the input.
    pub fn held_bytes(&self) -> usize {
        self.framer.buf.capacity()
    }
}

/// A buffer this large is let go once its line is handed out (one long line should not
/// keep its memory for the life of a connection).
const KEEP_BUFFER_BYTES: usize = 64 * 1024;

/// Splits bytes handed over in chunks (the body of an HTTP stream) into lines with the
/// same framing as [`LineReader`]: a line longer than `max_line_bytes` is skipped while it
/// arrives, so at most `max_line_bytes + 1` bytes of a partial line are held.
#[derive(Debug)]
pub struct LineSplitter {
    framer: Framer,
}

impl LineSplitter {
    /// Lines longer than `max_line_bytes` bytes (terminator excluded) are skipped.
    pub fn new(max_line_bytes: usize) -> Self {
        LineSplitter {
            framer: Framer::new(max_line_bytes),
        }
    }

    /// Bytes of a partial line held.
    pub fn pending(&self) -> usize {
        self.framer.buf.len()
    }

    /// Feeds a chunk, calling `on` for every line it completes (an empty line too); the
    /// start of a line not ended yet is kept for the next chunk.
    pub fn feed(&mut self, mut chunk: &[u8], mut on: impl FnMut(RawLine<'_>)) {
        while !chunk.is_empty() {
            let (framed, used) = self.framer.feed(chunk);
            match framed {
                None => {}
                Some(Framed::Direct(len)) => on(RawLine::Line(&chunk[..len])),
                Some(Framed::Buffered) => {
                    on(RawLine::Line(&self.framer.buf));
                    self.framer.buf.clear();
                    if self.framer.buf.capacity() > KEEP_BUFFER_BYTES {
                        self.framer.buf = Vec::new();
                    }
                }
                Some(Framed::Oversized(bytes)) => on(RawLine::Oversized(bytes)),
            }
            chunk = &chunk[used..];
        }
    }
}

/// Appends line bytes (terminator already removed) to `lines` as [`decode`] would
/// make its event.
fn decode_into(bytes: &[u8], mode: InvalidUtf8, lines: &mut StrColumn) -> LineKind {
    match std::str::from_utf8(bytes) {
        Ok(s) => {
            lines.push(s);
            LineKind::Line
        }
        Err(_) => match mode {
            InvalidUtf8::Replace => {
                lines.push(&String::from_utf8_lossy(bytes));
                LineKind::InvalidUtf8Replaced
            }
            InvalidUtf8::Skip => LineKind::InvalidUtf8Skipped,
        },
    }
}

/// Turns line bytes (terminator already removed) into an event.
fn decode(bytes: &[u8], mode: InvalidUtf8) -> LineEvent {
    match std::str::from_utf8(bytes) {
        Ok(s) => LineEvent::Line(s.to_owned()),
        Err(_) => match mode {
            InvalidUtf8::Replace => {
                LineEvent::InvalidUtf8Replaced(String::from_utf8_lossy(bytes).into_owned())
            }
            InvalidUtf8::Skip => LineEvent::InvalidUtf8Skipped,
        },
    }
}

/// Position of the first `\n`, scanning a machine word at a time.
fn find_newline(haystack: &[u8]) -> Option<usize> {
    const LO: u64 = u64::from_ne_bytes([0x01; 8]);
    const HI: u64 = u64::from_ne_bytes([0x80; 8]);
    const NL: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let mut chunks = haystack.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_ne_bytes(word) ^ NL;
        // Nonzero iff some byte of x is zero, i.e. some byte was '\n'.
        if x.wrapping_sub(LO) & !x & HI != 0 {
            return chunk.iter().position(|&b| b == b'\n').map(|i| offset + i);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| offset + i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error as DeError, MapDeserializer};
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    fn line(s: &str) -> LineEvent {
        LineEvent::Line(s.to_owned())
    }

    /// Sends `chunks` over a real TCP connection (flushing and pausing between
    /// chunks when `pause`), then reads every event on the accepting side.
    async fn over_tcp(
        chunks: Vec<Vec<u8>>,
        opts: LineOptions,
        pause: bool,
    ) -> (Vec<LineEvent>, LineStats) {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("addr: {e}"));
        let writer = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr)
                .await
                .unwrap_or_else(|e| panic!("connect: {e}"));
            s.set_nodelay(true)
                .unwrap_or_else(|e| panic!("nodelay: {e}"));
            for c in chunks {
                s.write_all(&c)
                    .await
                    .unwrap_or_else(|e| panic!("write: {e}"));
                s.flush().await.unwrap_or_else(|e| panic!("flush: {e}"));
                if pause {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            s.shutdown()
                .await
                .unwrap_or_else(|e| panic!("shutdown: {e}"));
        });
        let (sock, _) = listener
            .accept()
            .await
            .unwrap_or_else(|e| panic!("accept: {e}"));
        let mut r = LineReader::new(sock, opts);
        let mut out = Vec::new();
        while let Some(ev) = r.next_line().await.unwrap_or_else(|e| panic!("read: {e}")) {
            out.push(ev);
        }
        writer.await.unwrap_or_else(|e| panic!("writer: {e}"));
        (out, r.stats())
    }

    async fn tcp_one(data: &[u8], opts: LineOptions) -> (Vec<LineEvent>, LineStats) {
        over_tcp(vec![data.to_vec()], opts, false).await
    }

    fn opts(max: usize, mode: InvalidUtf8) -> LineOptions {
        LineOptions {
            max_line_bytes: max,
            invalid_utf8: mode,
        }
    }

    #[tokio::test]
    async fn normal_lines() {
        let (ev, st) = tcp_one(b"hello world\n\nfoo bar\n", LineOptions::default()).await;
        assert_eq!(ev, vec![line("hello world"), line(""), line("foo bar")]);
        assert_eq!(
            st,
            LineStats {
                lines: 3,
                bytes: 21,
                oversized: 0,
                invalid_utf8: 0
            }
        );
    }

    #[tokio::test]
    async fn crlf_is_stripped_once() {
        let (ev, _) = tcp_one(b"a\r\nb\r\r\n\r\nc\rd\n", LineOptions::default()).await;
        assert_eq!(ev, vec![line("a"), line("b\r"), line(""), line("c\rd")]);
    }

    #[tokio::test]
    async fn oversized_line_skipped_following_lines_intact() {
        let mut data = b"ok1\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', 100_000));
        data.extend_from_slice(b"\r\nok2\nexact\n");
        let (ev, st) = tcp_one(&data, opts(5, InvalidUtf8::Replace)).await;
        assert_eq!(
            ev,
            vec![
                line("ok1"),
                LineEvent::Oversized { bytes: 100_000 },
                line("ok2"),
                line("exact"),
            ]
        );
        assert_eq!(st.oversized, 1);
        assert_eq!(st.lines, 3);
        assert_eq!(st.bytes, data.len() as u64);
    }

    #[tokio::test]
    async fn oversized_line_split_across_many_writes() {
        let mut chunks = vec![b"first\n".to_vec()];
        for _ in 0..50 {
            chunks.push(vec![b'y'; 97]);
        }
        chunks.push(b"\nsecond\nthird".to_vec());
        let (ev, st) = over_tcp(chunks, opts(64, InvalidUtf8::Replace), true).await;
        assert_eq!(
            ev,
            vec![
                line("first"),
                LineEvent::Oversized { bytes: 4_850 },
                line("second"),
                line("third"),
            ]
        );
        assert_eq!(st.oversized, 1);
    }

    #[tokio::test]
    async fn limit_excludes_crlf_terminator() {
        let (ev, _) = tcp_one(b"abcd\r\nabcde\r\nab\r", opts(4, InvalidUtf8::Replace)).await;
        assert_eq!(
            ev,
            vec![line("abcd"), LineEvent::Oversized { bytes: 5 }, line("ab")]
        );
    }

    #[tokio::test]
    async fn invalid_utf8_replaced() {
        let (ev, st) = tcp_one(b"ok\nbad \xff\xfe end\r\nnext\n", LineOptions::default()).await;
        assert_eq!(
            ev,
            vec![
                line("ok"),
                LineEvent::InvalidUtf8Replaced("bad \u{FFFD}\u{FFFD} end".to_owned()),
                line("next"),
            ]
        );
        assert_eq!((st.lines, st.invalid_utf8), (3, 1));
    }

    #[tokio::test]
    async fn invalid_utf8_skipped() {
        let (ev, st) = tcp_one(
            b"ok\nbad \xc3\x28\nnext\n",
            opts(DEFAULT_MAX_LINE_BYTES, InvalidUtf8::Skip),
        )
        .await;
        assert_eq!(
            ev,
            vec![line("ok"), LineEvent::InvalidUtf8Skipped, line("next")]
        );
        assert_eq!((st.lines, st.invalid_utf8), (2, 1));
    }

    #[tokio::test]
    async fn multibyte_char_split_across_writes_is_valid() {
        // "é" is 0xC3 0xA9; split it across two TCP writes.
        let chunks = vec![b"caf\xc3".to_vec(), b"\xa9\n".to_vec()];
        let (ev, st) = over_tcp(chunks, LineOptions::default(), true).await;
        assert_eq!(ev, vec![line("café")]);
        assert_eq!(st.invalid_utf8, 0);
    }

    #[tokio::test]
    async fn final_unterminated_line_is_returned() {
        let (ev, st) = tcp_one(b"one\ntwo", LineOptions::default()).await;
        assert_eq!(ev, vec![line("one"), line("two")]);
        assert_eq!(st.lines, 2);
        let (ev, _) = tcp_one(b"", LineOptions::default()).await;
        assert!(ev.is_empty());
        let (ev, _) = tcp_one(b"only\r", LineOptions::default()).await;
        assert_eq!(ev, vec![line("only")]);
        let (ev, _) = tcp_one(b"ok\ntoolong", opts(3, InvalidUtf8::Skip)).await;
        assert_eq!(ev, vec![line("ok"), LineEvent::Oversized { bytes: 7 }]);
    }

    #[tokio::test]
    async fn line_split_across_many_small_writes() {
        let text = "the quick brown fox jumps over the lazy dog\nsecond line\r\n";
        let chunks: Vec<Vec<u8>> = text.as_bytes().chunks(3).map(<[u8]>::to_vec).collect();
        let (ev, st) = over_tcp(chunks, LineOptions::default(), true).await;
        assert_eq!(
            ev,
            vec![
                line("the quick brown fox jumps over the lazy dog"),
                line("second line")
            ]
        );
        assert_eq!(st.bytes, text.len() as u64);
    }

    #[tokio::test]
    async fn many_lines_bulk() {
        let mut data = Vec::new();
        for i in 0..20_000 {
            data.extend_from_slice(format!("line number {i}\n").as_bytes());
        }
        let (ev, st) = tcp_one(&data, LineOptions::default()).await;
        assert_eq!(ev.len(), 20_000);
        assert_eq!(ev[12_345], line("line number 12345"));
        assert_eq!(st.lines, 20_000);
        assert_eq!(st.bytes, data.len() as u64);
    }

    /// Straightforward reference framing used to cross-check the streaming one.
    fn reference(data: &[u8], o: LineOptions) -> Vec<LineEvent> {
        let mut out = Vec::new();
        let mut parts: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
        if parts.last().is_some_and(|p| p.is_empty()) {
            parts.pop();
        }
        for mut p in parts {
            if p.last() == Some(&b'\r') {
                p = &p[..p.len() - 1];
            }
            if p.len() > o.max_line_bytes {
                out.push(LineEvent::Oversized {
                    bytes: p.len() as u64,
                });
            } else {
                out.push(decode(p, o.invalid_utf8));
            }
        }
        out
    }

    /// `len` bytes drawn from `alphabet` by an xorshift stream (`seed` moves on).
    fn random_bytes(seed: &mut u64, alphabet: &[u8], len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                alphabet[(*seed % alphabet.len() as u64) as usize]
            })
            .collect()
    }

    #[tokio::test]
    async fn matches_reference_for_all_buffer_sizes() {
        let mut seed = 0x1234_5678_9abc_def1u64;
        let alphabet = b"ab\n\r\xffc\n";
        for round in 0..40 {
            let len = 1 + round * 7;
            let data = random_bytes(&mut seed, alphabet, len);
            for max in [1, 2, 3, 5, 8] {
                for mode in [InvalidUtf8::Replace, InvalidUtf8::Skip] {
                    let o = opts(max, mode);
                    for cap in [1, 2, 3, 7, 16, 4096] {
                        let mut r = LineReader::with_capacity(&data[..], o, cap);
                        let mut got = Vec::new();
                        while let Some(ev) = r.next_line().await.unwrap_or_else(|e| panic!("{e}")) {
                            got.push(ev);
                        }
                        assert_eq!(
                            got,
                            reference(&data, o),
                            "data={data:?} max={max} cap={cap}"
                        );
                        assert_eq!(r.stats().bytes, data.len() as u64);
                    }
                }
            }
        }
    }

    /// Every event of a blocking reader over `data`, decoded as the async reader does.
    fn blocking(data: &[u8], o: LineOptions, cap: usize) -> Vec<LineEvent> {
        let mut r = BlockingLineReader::with_capacity(data, o.max_line_bytes, cap);
        let mut out = Vec::new();
        while let Some(l) = r.next_line().unwrap_or_else(|e| panic!("{e}")) {
            out.push(match l {
                RawLine::Line(b) => decode(b, o.invalid_utf8),
                RawLine::Oversized(bytes) => LineEvent::Oversized { bytes },
            });
        }
        out
    }

    #[test]
    fn the_blocking_reader_frames_as_the_reference_for_all_buffer_sizes() {
        let mut seed = 0x0fed_cba9_8765_4321u64;
        let alphabet = b"ab\n\r\xffc\n";
        for round in 0..40 {
            let len = 1 + round * 7;
            let data = random_bytes(&mut seed, alphabet, len);
            for max in [1, 2, 3, 5, 8] {
                let o = opts(max, InvalidUtf8::Replace);
                for cap in [1, 2, 3, 7, 16, 4096] {
                    assert_eq!(
                        blocking(&data, o, cap),
                        reference(&data, o),
                        "data={data:?} max={max} cap={cap}"
                    );
                }
            }
        }
    }

    /// Every event of a splitter fed `data` in chunks of `size` bytes.
    fn split(data: &[u8], o: LineOptions, size: usize) -> Vec<LineEvent> {
        let mut s = LineSplitter::new(o.max_line_bytes);
        let mut out = Vec::new();
        for chunk in data.chunks(size) {
            s.feed(chunk, |l| {
                out.push(match l {
                    RawLine::Line(b) => decode(b, o.invalid_utf8),
                    RawLine::Oversized(bytes) => LineEvent::Oversized { bytes },
                })
            });
            assert!(s.pending() <= o.max_line_bytes + 1, "held {}", s.pending());
        }
        out
    }

    #[test]
    fn the_splitter_frames_as_the_reference_for_all_chunk_sizes() {
        let mut seed = 0x5eed_1234_abcd_0001u64;
        let alphabet = b"ab\n\r\xffc\n";
        for round in 0..40 {
            let len = 1 + round * 7;
            let mut data = random_bytes(&mut seed, alphabet, len);
            // A line not ended yet is held, not handed out: end the last one.
            data.push(b'\n');
            for max in [1, 2, 3, 5, 8] {
                let o = opts(max, InvalidUtf8::Replace);
                for size in [1, 2, 3, 7, 16, 4096] {
                    assert_eq!(
                        split(&data, o, size),
                        reference(&data, o),
                        "data={data:?} max={max} size={size}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_splitter_holds_a_partial_line_and_lets_a_big_buffer_go() {
        let mut s = LineSplitter::new(200_000);
        let mut lines = Vec::new();
        s.feed(b"one\r\ntw", |l| lines.push(format!("{l:?}")));
        assert_eq!(s.pending(), 2);
        let long = vec![b'x'; 100_000];
        s.feed(&long, |l| lines.push(format!("{l:?}")));
        s.feed(b"\r\n", |l| {
            assert!(matches!(l, RawLine::Line(b) if b.len() == 100_002));
        });
        assert_eq!(s.pending(), 0);
        assert_eq!(
            s.framer.buf.capacity(),
            0,
            "the long line's buffer is let go"
        );
        assert_eq!(lines, [format!("{:?}", RawLine::Line(b"one"))]);
    }

    #[test]
    fn the_blocking_reader_skips_a_huge_line_without_holding_it() {
        // 64 MB without a newline, then two lines: read whole before the framer was
        // shared, it grew a buffer of the line's size.
        struct Huge(u64);
        impl io::Read for Huge {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let n = (out.len() as u64).min(self.0) as usize;
                out[..n].fill(b'x');
                self.0 -= n as u64;
                Ok(n)
            }
        }
        let huge = 64u64 << 20;
        let tail: &[u8] = b"\nnext\r\nlast";
        let mut r = BlockingLineReader::new(io::Read::chain(Huge(huge), tail), 1024);
        let first = r.next_line().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first, Some(RawLine::Oversized(huge)));
        assert!(r.held_bytes() <= 2 * 1025, "held {} bytes", r.held_bytes());
        let next = r.next_line().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(next, Some(RawLine::Line(b"next")));
        let last = r.next_line().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(last, Some(RawLine::Line(b"last")));
        assert_eq!(r.next_line().unwrap_or_else(|e| panic!("{e}")), None);
    }

    #[test]
    fn find_newline_matches_naive() {
        let mut buf = vec![b'a'; 40];
        assert_eq!(find_newline(&buf), None);
        assert_eq!(find_newline(&[]), None);
        for i in 0..40 {
            buf[i] = b'\n';
            assert_eq!(find_newline(&buf), Some(i));
            assert_eq!(find_newline(&buf[..=i]), Some(i));
            buf[i] = 0x8a; // high-bit byte with the same low bits as '\n'
            assert_eq!(find_newline(&buf), None);
            buf[i] = b'a';
        }
        assert_eq!(find_newline(b"\x0b\x09\x0a"), Some(2));
    }

    #[test]
    fn options_defaults_and_serde() {
        let d = LineOptions::default();
        assert_eq!(d.max_line_bytes, 1 << 20);
        assert_eq!(d.invalid_utf8, InvalidUtf8::Replace);
        assert_eq!(d.validate(), Ok(()));
        assert_eq!(
            opts(0, InvalidUtf8::Skip).validate(),
            Err(LinesError::ZeroMaxLineBytes)
        );
        let skip: Result<InvalidUtf8, DeError> =
            InvalidUtf8::deserialize("skip".into_deserializer());
        assert_eq!(skip, Ok(InvalidUtf8::Skip));
        let replace: Result<InvalidUtf8, DeError> =
            InvalidUtf8::deserialize("replace".into_deserializer());
        assert_eq!(replace, Ok(InvalidUtf8::Replace));
        let bad: Result<InvalidUtf8, DeError> =
            InvalidUtf8::deserialize("Skip".into_deserializer());
        assert!(bad.is_err());
        let empty = MapDeserializer::<_, DeError>::new(std::iter::empty::<(&str, u64)>());
        assert_eq!(LineOptions::deserialize(empty), Ok(LineOptions::default()));
        let partial =
            MapDeserializer::<_, DeError>::new(vec![("max_line_bytes", 16u64)].into_iter());
        assert_eq!(
            LineOptions::deserialize(partial),
            Ok(opts(16, InvalidUtf8::Replace))
        );
    }

    /// Fuzz properties (see `crate::fuzz_support`): whatever the bytes (CR, NUL, invalid
    /// UTF-8, over-long lines) and wherever the reads end, each front-end gives the lines
    /// of a plain split of the whole input, counts every byte, and never holds more than
    /// `max_line_bytes + 1` bytes of a partial line.
    mod fuzz {
        use super::*;
        use crate::fuzz_support::{config, framing_bytes};
        use proptest::prelude::*;
        use std::pin::Pin;
        use std::task::{Context, Poll};

        /// Hands `data` out in reads of the sizes in `sizes` (cycled).
        struct Chunked {
            data: Vec<u8>,
            at: usize,
            sizes: Vec<usize>,
            next: usize,
        }

        impl Chunked {
            fn new(data: &[u8], sizes: &[usize]) -> Self {
                Chunked {
                    data: data.to_vec(),
                    at: 0,
                    sizes: sizes.to_vec(),
                    next: 0,
                }
            }

            fn take(&mut self, room: usize) -> &[u8] {
                let size = self.sizes[self.next % self.sizes.len()];
                self.next += 1;
                let n = size.min(room).min(self.data.len() - self.at);
                self.at += n;
                &self.data[self.at - n..self.at]
            }
        }

        impl io::Read for Chunked {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let got = self.take(out.len());
                out[..got.len()].copy_from_slice(got);
                Ok(got.len())
            }
        }

        impl AsyncRead for Chunked {
            fn poll_read(
                self: Pin<&mut Self>,
                _cx: &mut Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                let me = self.get_mut();
                let got = me.take(buf.remaining());
                buf.put_slice(got);
                Poll::Ready(Ok(()))
            }
        }

        /// The most a partial-line buffer may hold for `max`: its bytes are at most
        /// `max + 1`, its allocation at most twice that.
        fn bound(max: usize) -> usize {
            2 * (max + 1).max(8)
        }

        fn input() -> impl Strategy<Value = (Vec<u8>, usize, Vec<usize>, usize)> {
            (
                framing_bytes(400),
                prop_oneof![1usize..10, 10usize..100],
                prop::collection::vec(1usize..40, 1..8),
                prop_oneof![1usize..8, Just(64), Just(4096)],
            )
        }

        proptest! {
            #![proptest_config(config(256))]

            #[test]
            fn fuzz_line_reader_matches_reference((data, max, sizes, cap) in input(), skip: bool) {
                let mode = if skip { InvalidUtf8::Skip } else { InvalidUtf8::Replace };
                let o = opts(max, mode);
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let (got, stats) = rt.block_on(async {
                    let mut r = LineReader::with_capacity(Chunked::new(&data, &sizes), o, cap);
                    let mut got = Vec::new();
                    while let Some(ev) = r.next_line().await? {
                        assert!(r.framer.buf.len() <= max + 1);
                        assert!(r.framer.buf.capacity() <= bound(max));
                        got.push(ev);
                    }
                    Ok::<_, io::Error>((got, r.stats()))
                }).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let want = reference(&data, o);
                prop_assert_eq!(stats.bytes, data.len() as u64);
                let oversized = want.iter().filter(|e| matches!(e, LineEvent::Oversized { .. })).count();
                prop_assert_eq!(stats.oversized, oversized as u64);
                prop_assert_eq!(got, want);
            }

            /// Lines read into a column are the lines `next_line` returns, with the same
            /// anomalies and counts.
            #[test]
            fn fuzz_lines_into_a_column_match_next_line((data, max, sizes, cap) in input(), skip: bool) {
                let mode = if skip { InvalidUtf8::Skip } else { InvalidUtf8::Replace };
                let o = opts(max, mode);
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let (got, kinds, stats) = rt.block_on(async {
                    let mut r = LineReader::with_capacity(Chunked::new(&data, &sizes), o, cap);
                    let mut col = StrColumn::default();
                    let mut kinds = Vec::new();
                    while let Some(k) = r.next_line_into(&mut col).await? {
                        kinds.push(k);
                    }
                    Ok::<_, io::Error>((col, kinds, r.stats()))
                }).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let want = reference(&data, o);
                let want_lines: Vec<&str> = want.iter().filter_map(|e| match e {
                    LineEvent::Line(l) | LineEvent::InvalidUtf8Replaced(l) => Some(l.as_str()),
                    _ => None,
                }).collect();
                prop_assert_eq!(got.iter().collect::<Vec<_>>(), want_lines.clone());
                prop_assert_eq!(kinds, want.iter().map(Classify::kind).collect::<Vec<_>>());
                prop_assert_eq!(stats.bytes, data.len() as u64);
                prop_assert_eq!(stats.lines, want_lines.len() as u64);
            }

            #[test]
            fn fuzz_blocking_reader_matches_reference((data, max, sizes, cap) in input()) {
                let o = opts(max, InvalidUtf8::Replace);
                let mut r = BlockingLineReader::with_capacity(Chunked::new(&data, &sizes), max, cap);
                let mut got = Vec::new();
                while let Some(l) = r.next_line().map_err(|e| TestCaseError::fail(e.to_string()))? {
                    got.push(match l {
                        RawLine::Line(b) => decode(b, o.invalid_utf8),
                        RawLine::Oversized(bytes) => LineEvent::Oversized { bytes },
                    });
                    prop_assert!(r.framer.buf.len() <= max + 1);
                    prop_assert!(r.held_bytes() <= bound(max));
                }
                prop_assert_eq!(got, reference(&data, o));
            }

            #[test]
            fn fuzz_splitter_matches_reference((mut data, max, sizes, _cap) in input()) {
                // A line not ended yet is held, not handed out: end the last one.
                data.push(b'\n');
                let o = opts(max, InvalidUtf8::Replace);
                let mut s = LineSplitter::new(max);
                let mut got = Vec::new();
                let mut rest = &data[..];
                let mut k = 0;
                while !rest.is_empty() {
                    let n = sizes[k % sizes.len()].min(rest.len());
                    k += 1;
                    s.feed(&rest[..n], |l| got.push(match l {
                        RawLine::Line(b) => decode(b, o.invalid_utf8),
                        RawLine::Oversized(bytes) => LineEvent::Oversized { bytes },
                    }));
                    rest = &rest[n..];
                    prop_assert!(s.pending() <= max + 1);
                    prop_assert!(s.framer.buf.capacity() <= bound(max));
                }
                prop_assert_eq!(got, reference(&data, o));
            }
        }
    }
}
