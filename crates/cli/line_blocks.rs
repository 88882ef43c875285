//! Reads NDJSON input on a thread of its own, handing the engine thread blocks of
//! whole lines, decoded there too when there are cores to share: reading and decoding
//! then overlap the engine's folding (decoding is about a third of file mode's work).
//! On one core the engine thread decodes each line as it folds it, which spares handing
//! decoded events over. Either way the engine thread never blocks on a quiet pipe (so
//! metrics stay fresh while `stdin` waits for more).

use std::borrow::Cow;
use std::io::{self, Read};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::Duration;

use omnimeter_engine::{Event, EventType, RejectReason, decode, decode_str, tie_hash};

const BLOCK: usize = 1 << 20;

pub(crate) struct LineBlocks {
    blocks: Receiver<io::Result<Block>>,
    recycle: SyncSender<Block>,
}

/// What waiting for input gave.
pub(crate) enum Next {
    /// Whole lines, each ending in `\n`, except perhaps the input's last.
    Block(Block),
    /// Nothing arrived within the timeout; the input is still open.
    Idle,
    End,
}

/// What `decode` made of a line, and the line's `tie_hash` (0 when rejected).
pub(crate) type Decoding<'a> = (Result<Event<'a>, RejectReason>, u64);

/// A block of whole lines, and what `decode` made of each when the input thread decoded them.
#[derive(Default)]
pub(crate) struct Block {
    /// Input bytes in `..len`; the rest is stale. The buffer keeps its full length
    /// between uses, because zeroing a MiB per block before each read cost about a
    /// tenth of what decoding it does.
    bytes: Vec<u8>,
    len: usize,
    /// `bytes[..len]` is UTF-8 as a whole.
    valid: bool,
    /// `lines` holds every line's decoding; otherwise the engine thread decodes as it reads them.
    decoded: bool,
    lines: Vec<Line>,
    /// The decoded events' strings, one after the other (`Text` ranges point here).
    text: String,
}

/// Where a decoded string is: most are a range of the block's own bytes (no escapes,
/// and the block is valid UTF-8 as a whole), others a range of `Block::text`.
#[derive(Clone, Copy)]
enum Text {
    Bytes(u32, u32),
    Copied(u32, u32),
}

/// One line: its bytes in `Block::bytes` (without `\n` or a final `\r`) and its decoding.
struct Line {
    start: u32,
    end: u32,
    decoded: Decoded,
}

enum Decoded {
    /// Only whitespace: skipped, but it still takes an offset.
    Blank,
    Rejected(RejectReason),
    Event(DecodedEvent),
}

/// An `Event` whose strings were moved to `Block::text`, so that it can cross threads with its block.
struct DecodedEvent {
    /// `tie_hash` of the line, hashed here while its bytes are in this core's cache.
    tie: u64,
    ts: i64,
    value: Option<f64>,
    event_type: EventType,
    event_id: Text,
    customer_id: Option<Text>,
    journey_id: Option<Text>,
    channel: Text,
    step: Option<Text>,
    /// Empty (no allocation) for the events that have none.
    identities: Vec<(Text, Text)>,
}

impl Block {
    /// Decodes every line of `bytes` (which ends at a line end, or at the input's end).
    fn decode(&mut self) {
        self.lines.clear();
        self.text.clear();
        let data = &self.bytes[..self.len];
        // One validation for the whole block, so that each line's strings can stay where
        // they are instead of being copied (the engine thread validates again to borrow
        // them: safe code cannot carry "valid UTF-8" across threads without a String).
        let valid = simdutf8::basic::from_utf8(data).ok();
        for (start, line) in line_spans(data) {
            let decoded = match decode_line(valid, start, line) {
                None => Decoded::Blank,
                Some(decoded) => match decoded {
                    Ok(e) => {
                        // Strings borrowed from an invalid block are copied: `lines` cannot borrow them.
                        let block = if valid.is_some() { Some(data) } else { None };
                        let mut keep = |s: &Cow<'_, str>| keep(&mut self.text, block, s);
                        Decoded::Event(DecodedEvent {
                            tie: tie_hash(line),
                            ts: e.ts,
                            value: e.value,
                            event_type: e.event_type,
                            event_id: keep(&e.event_id),
                            customer_id: e.customer_id.as_ref().map(&mut keep),
                            journey_id: e.journey_id.as_ref().map(&mut keep),
                            channel: keep(&e.channel),
                            step: e.step.as_ref().map(&mut keep),
                            identities: e.identities.iter().map(|(t, v)| (keep(t), keep(v))).collect(),
                        })
                    }
                    Err(reason) => Decoded::Rejected(reason),
                },
            };
            // Blocks are at most a few MiB (a line is at most as long as the input allows,
            // but a block holding more than 4 GiB would need a line that long).
            self.lines.push(Line { start: start as u32, end: (start + line.len()) as u32, decoded });
        }
        self.valid = valid.is_some();
        self.decoded = true;
    }

    /// Calls `f` with each line's bytes and its decoding with the line's `tie_hash` (0 for
    /// a rejected line; `None` for a blank one), in input order, until `f` fails.
    /// (A callback, not an iterator: an event passed through iterator adapters was copied
    /// at each, and an event is a few hundred bytes.)
    pub(crate) fn try_each_line<E>(
        &self,
        mut f: impl FnMut(&[u8], Option<Decoding<'_>>) -> Result<(), E>,
    ) -> Result<(), E> {
        let data = &self.bytes[..self.len];
        if !self.decoded {
            // Not decoded by the input thread: decoded here, line by line, borrowing from
            // the block (one UTF-8 validation, no copies of the strings' positions).
            let valid = simdutf8::basic::from_utf8(data).ok();
            for (start, line) in line_spans(data) {
                match decode_line(valid, start, line) {
                    None => f(line, None)?,
                    Some(Ok(e)) => f(line, Some((Ok(e), tie_hash(line))))?,
                    Some(Err(r)) => f(line, Some((Err(r), 0)))?,
                }
            }
            return Ok(());
        }
        // Only a valid block has `Text::Bytes` ranges.
        let bytes = if self.valid { simdutf8::basic::from_utf8(data).ok() } else { None };
        let text = move |t: Text| match t {
            Text::Bytes(a, b) => bytes.and_then(|s| s.get(a as usize..b as usize)).unwrap_or_default(),
            Text::Copied(a, b) => self.text.get(a as usize..b as usize).unwrap_or_default(),
        };
        for l in &self.lines {
            let raw = &self.bytes[l.start as usize..l.end as usize];
            let decoded = match &l.decoded {
                Decoded::Blank => None,
                Decoded::Rejected(r) => Some((Err(*r), 0)),
                Decoded::Event(e) => Some((
                    Ok(Event {
                        event_id: Cow::Borrowed(text(e.event_id)),
                        ts: e.ts,
                        customer_id: e.customer_id.map(|t| Cow::Borrowed(text(t))),
                        journey_id: e.journey_id.map(|t| Cow::Borrowed(text(t))),
                        channel: Cow::Borrowed(text(e.channel)),
                        event_type: e.event_type,
                        step: e.step.map(|t| Cow::Borrowed(text(t))),
                        value: e.value,
                        identities: e
                            .identities
                            .iter()
                            .map(|&(t, v)| (Cow::Borrowed(text(t)), Cow::Borrowed(text(v))))
                            .collect(),
                        anonymous: false,
                    }),
                    e.tie,
                )),
            };
            f(raw, decoded)?;
        }
        Ok(())
    }
}

/// Each line of `data` (a block: whole lines, the last perhaps without `\n`) with where it
/// starts, without its `\n` or a final `\r`.
fn line_spans(data: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let body = data.strip_suffix(b"\n").unwrap_or(data).len();
    let mut start = 0;
    std::iter::from_fn(move || {
        if start > body {
            return None;
        }
        let end = next_newline(&data[..body], start);
        let line = &data[start..end];
        let at = start;
        start = end + 1;
        Some((at, line.strip_suffix(b"\r").unwrap_or(line)))
    })
}

/// What `decode` makes of a line at `start` of a block (`None` when only whitespace:
/// skipped, but it still takes an offset). `valid` is the block as text when it is UTF-8.
fn decode_line<'a>(valid: Option<&'a str>, start: usize, line: &'a [u8]) -> Option<Result<Event<'a>, RejectReason>> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    // Lines end at `\n` (or `\r\n`), so a valid block slices into valid lines.
    Some(match valid.and_then(|v| v.get(start..start + line.len())) {
        Some(text) => decode_str(text),
        None => decode(line),
    })
}

/// Where `s` is: in `block` when it was borrowed from it (an unescaped copy is
/// elsewhere), else copied to `text`.
fn keep(text: &mut String, block: Option<&[u8]>, s: &str) -> Text {
    if let Some(block) = block {
        // Address arithmetic only (no dereference): is `s` inside the block?
        let offset = (s.as_ptr() as usize).wrapping_sub(block.as_ptr() as usize);
        if offset <= block.len() && s.len() <= block.len() - offset {
            return Text::Bytes(offset as u32, (offset + s.len()) as u32);
        }
    }
    let start = text.len() as u32;
    text.push_str(s);
    Text::Copied(start, text.len() as u32)
}

/// Index of the first `\n` at or after `i`, or the length (memchr: SIMD, 32 bytes a step).
fn next_newline(b: &[u8], i: usize) -> usize {
    b.get(i..).and_then(|rest| memchr::memchr(b'\n', rest)).map_or(b.len(), |p| i + p)
}

impl LineBlocks {
    /// Starts the input thread. With `decode`, it also decodes each block (the engine
    /// thread gets events ready to fold: two cores share the work); without, it only
    /// reads, and [`Block::lines`] decodes on the engine thread, sparing the hand-over of
    /// decoded events (on one core, where nothing runs beside the engine anyway).
    pub(crate) fn spawn(reader: Box<dyn Read + Send>, decode: bool) -> io::Result<Self> {
        // Two blocks in flight bound memory to a few MiB whatever the input size.
        let (tx, blocks) = sync_channel(2);
        let (recycle, spare) = sync_channel::<Block>(4);
        std::thread::Builder::new()
            .name("omnimeter-input".into())
            .spawn(move || read_loop(reader, &tx, &spare, decode))?;
        Ok(LineBlocks { blocks, recycle })
    }

    pub(crate) fn next(&self, timeout: Duration) -> io::Result<Next> {
        match self.blocks.recv_timeout(timeout) {
            Ok(Ok(b)) => Ok(Next::Block(b)),
            Ok(Err(e)) => Err(e),
            Err(RecvTimeoutError::Timeout) => Ok(Next::Idle),
            Err(RecvTimeoutError::Disconnected) => Ok(Next::End),
        }
    }

    /// Hands a processed block back for reuse.
    pub(crate) fn give_back(&self, mut b: Block) {
        b.len = 0;
        let _ = self.recycle.try_send(b);
    }
}

fn read_loop(
    mut reader: Box<dyn Read + Send>,
    tx: &SyncSender<io::Result<Block>>,
    spare: &Receiver<Block>,
    decode: bool,
) {
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let mut block = spare.try_recv().unwrap_or_default();
        let buf = &mut block.bytes;
        if buf.len() < carry.len() + BLOCK {
            buf.resize(carry.len() + BLOCK, 0);
        }
        buf[..carry.len()].copy_from_slice(&carry);
        let mut filled = carry.len();
        carry.clear();
        // Read until the block holds at least one whole line (or the input ends).
        let eof = loop {
            if buf.len() - filled < BLOCK / 4 {
                buf.resize(buf.len() + BLOCK, 0);
            }
            match reader.read(&mut buf[filled..]) {
                Ok(0) => break true,
                Ok(n) => {
                    filled += n;
                    if buf[filled - n..filled].contains(&b'\n') {
                        break false;
                    }
                    // Line positions are kept as u32: a block past 4 GiB is one line that long.
                    if filled > u32::MAX as usize {
                        let _ =
                            tx.send(Err(io::Error::new(io::ErrorKind::InvalidData, "an input line longer than 4 GiB")));
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        };
        block.len = filled;
        block.decoded = false;
        if eof {
            if filled > 0 {
                if decode {
                    block.decode();
                }
                let _ = tx.send(Ok(block));
            }
            return;
        }
        if let Some(last_nl) = block.bytes[..filled].iter().rposition(|&b| b == b'\n') {
            carry.extend_from_slice(&block.bytes[last_nl + 1..filled]);
            block.len = last_nl + 1;
        }
        if decode {
            block.decode();
        }
        if tx.send(Ok(block)).is_err() {
            return; // the engine thread stopped
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A reader that hands out its bytes a few at a time, like a pipe.
    struct Trickle(Vec<u8>, usize);

    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(out.len()).min(self.0.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0.drain(..n);
            Ok(n)
        }
    }

    fn collect(input: &[u8], step: usize, decode: bool) -> Vec<Vec<u8>> {
        let blocks = LineBlocks::spawn(Box::new(Trickle(input.to_vec(), step)), decode).unwrap();
        let mut out = Vec::new();
        loop {
            match blocks.next(Duration::from_secs(5)).unwrap() {
                Next::Block(b) => {
                    assert!(b.bytes[..b.len].ends_with(b"\n") || !input.ends_with(b"\n"), "blocks end at a line end");
                    b.try_each_line(|l, _| {
                        out.push(l.to_vec());
                        Ok::<_, ()>(())
                    })
                    .unwrap();
                    blocks.give_back(b);
                }
                Next::Idle => panic!("a trickling reader never idles 5 s"),
                Next::End => return out,
            }
        }
    }

    #[test]
    fn lines_survive_any_read_boundaries() {
        let input = b"a\n\nbb\r\nccc\nlast-without-newline".to_vec();
        let want: Vec<Vec<u8>> =
            vec![b"a".to_vec(), b"".to_vec(), b"bb".to_vec(), b"ccc".to_vec(), b"last-without-newline".to_vec()];
        for decode in [true, false] {
            for step in [1, 2, 3, 7, 1 << 20] {
                assert_eq!(collect(&input, step, decode), want, "reads of {step} bytes, decode {decode}");
            }
            assert_eq!(collect(b"x\n", 1, decode), vec![b"x".to_vec()]);
            assert!(collect(b"", 1, decode).is_empty());
        }
    }

    #[test]
    fn each_line_comes_with_what_decode_makes_of_it() {
        let lines: [&[u8]; 5] = [
            br#"{"event_id":"e\u00e9","ts":1793606400000,"customer_id":"c","journey_id":"j","channel":"web","type":"conversion","step":"pay","value":2.5}"#,
            b"  ",
            br#"{"event_id":"e2","ts":"2026-11-02T08:00:00Z","customer_id":"c\n","channel":"app","type":"touch"}"#,
            b"not json",
            b"\xff",
        ];
        // A block with an invalid line decodes line by line; a valid one borrows its strings.
        // Decoded on the input thread or as the engine thread reads: the same lines.
        for (lines, on_input) in [(&lines[..], true), (&lines[..4], true), (&lines[..], false), (&lines[..4], false)] {
            // Ending in a line end: one block holds every line.
            let input = [lines.join(&b"\r\n"[..]), b"\r\n".to_vec()].concat();
            let blocks = LineBlocks::spawn(Box::new(Trickle(input, 1 << 20)), on_input).unwrap();
            let mut want = lines.iter();
            while let Next::Block(b) = blocks.next(Duration::from_secs(5)).unwrap() {
                assert_eq!((b.decoded, b.valid), (on_input, on_input && lines.len() == 4));
                b.try_each_line(|raw, decoded| {
                    let want = want.next().unwrap();
                    assert_eq!(raw, *want);
                    match decoded {
                        None => assert!(want.iter().all(u8::is_ascii_whitespace)),
                        Some((d, tie)) => {
                            assert_eq!(tie, if d.is_ok() { tie_hash(want) } else { 0 });
                            assert_eq!(d, decode(want));
                        }
                    }
                    Ok::<_, ()>(())
                })
                .unwrap();
            }
            assert!(want.next().is_none(), "every line came");
        }
    }

    #[test]
    fn finds_newlines_anywhere_in_a_word() {
        let text = b"0123456789abcdef\n0123\n\n";
        for start in 0..text.len() {
            let want = text[start..].iter().position(|&c| c == b'\n').map_or(text.len(), |p| start + p);
            assert_eq!(next_newline(text, start), want, "from {start}");
        }
    }

    #[test]
    fn a_line_longer_than_a_block_stays_whole() {
        let long = vec![b'x'; 3 * BLOCK + 17];
        let mut input = long.clone();
        input.extend_from_slice(b"\ny\n");
        for decode in [true, false] {
            assert_eq!(collect(&input, 1 << 16, decode), vec![long.clone(), b"y".to_vec()]);
        }
    }
}
