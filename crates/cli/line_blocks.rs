//! Reads NDJSON input on a thread of its own, handing the engine thread blocks of
//! whole lines: reading overlaps processing, and the engine thread never blocks on
//! a quiet pipe (so metrics stay fresh while `stdin` waits for more).

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::Duration;

const BLOCK: usize = 1 << 20;

pub(crate) struct LineBlocks {
    blocks: Receiver<io::Result<Vec<u8>>>,
    recycle: SyncSender<Vec<u8>>,
}

/// What waiting for input gave.
pub(crate) enum Next {
    /// Whole lines, each ending in `\n`, except perhaps the input's last.
    Block(Vec<u8>),
    /// Nothing arrived within the timeout; the input is still open.
    Idle,
    End,
}

impl LineBlocks {
    pub(crate) fn spawn(reader: Box<dyn Read + Send>) -> io::Result<Self> {
        // Two blocks in flight bound memory to a few MiB whatever the input size.
        let (tx, blocks) = sync_channel(2);
        let (recycle, spare) = sync_channel::<Vec<u8>>(4);
        std::thread::Builder::new().name("omnimeter-input".into()).spawn(move || read_loop(reader, &tx, &spare))?;
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
    pub(crate) fn give_back(&self, mut b: Vec<u8>) {
        b.clear();
        let _ = self.recycle.try_send(b);
    }
}

fn read_loop(mut reader: Box<dyn Read + Send>, tx: &SyncSender<io::Result<Vec<u8>>>, spare: &Receiver<Vec<u8>>) {
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let mut buf = spare.try_recv().unwrap_or_else(|_| Vec::with_capacity(BLOCK));
        buf.append(&mut carry);
        // Read until the block holds at least one whole line (or the input ends).
        let eof = loop {
            let start = buf.len();
            if buf.capacity() - start < BLOCK / 4 {
                buf.reserve(BLOCK);
            }
            buf.resize(buf.capacity(), 0);
            let read = reader.read(&mut buf[start..]);
            buf.truncate(start + *read.as_ref().unwrap_or(&0));
            match read {
                Ok(0) => break true,
                Ok(_) if buf[start..].contains(&b'\n') => break false,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        };
        if eof {
            if !buf.is_empty() {
                let _ = tx.send(Ok(buf));
            }
            return;
        }
        if let Some(last_nl) = buf.iter().rposition(|&b| b == b'\n') {
            carry.extend_from_slice(&buf[last_nl + 1..]);
            buf.truncate(last_nl + 1);
        }
        if tx.send(Ok(buf)).is_err() {
            return; // the engine thread stopped
        }
    }
}

/// Splits a block into lines without their `\n`.
pub(crate) fn lines(block: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = block.strip_suffix(b"\n").unwrap_or(block);
    body.split(|&b| b == b'\n')
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

    fn collect(input: &[u8], step: usize) -> Vec<Vec<u8>> {
        let blocks = LineBlocks::spawn(Box::new(Trickle(input.to_vec(), step))).unwrap();
        let mut out = Vec::new();
        loop {
            match blocks.next(Duration::from_secs(5)).unwrap() {
                Next::Block(b) => {
                    assert!(b.ends_with(b"\n") || !input.ends_with(b"\n"), "blocks end at a line end");
                    out.extend(lines(&b).map(<[u8]>::to_vec));
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
            vec![b"a".to_vec(), b"".to_vec(), b"bb\r".to_vec(), b"ccc".to_vec(), b"last-without-newline".to_vec()];
        for step in [1, 2, 3, 7, 1 << 20] {
            assert_eq!(collect(&input, step), want, "reads of {step} bytes");
        }
        assert_eq!(collect(b"x\n", 1), vec![b"x".to_vec()]);
        assert!(collect(b"", 1).is_empty());
    }

    #[test]
    fn a_line_longer_than_a_block_stays_whole() {
        let long = vec![b'x'; 3 * BLOCK + 17];
        let mut input = long.clone();
        input.extend_from_slice(b"\ny\n");
        assert_eq!(collect(&input, 1 << 16), vec![long, b"y".to_vec()]);
    }
}
