//! [`SpanArena`]: the encoded spans of every buffered trace, in a few large blocks instead of buffers
//! per trace.
//!
//! Spans are appended to the newest block in *runs*: a 16-byte header (where the trace's next run is,
//! the context id, the run's length) followed by length-delimited spans. A span of the trace that wrote
//! the newest run, under the same context, extends that run, so a request carrying many spans of one
//! trace costs one header. Each trace links its runs from its first to its last. A block is freed when
//! the last run in it is released; traces are decided about in the order they arrived, so blocks are
//! freed about in the order they were filled, and the arena stays close to the bytes it holds.
use std::collections::VecDeque;

/// Bytes of a run header: next block, next offset, context id, length of the spans (u32 each, LE).
const HEADER: usize = 16;
/// The `offset` of [`RunRef::NONE`]: no block is that large.
const NO_OFFSET: u32 = u32::MAX;

/// Where a run starts: a block number (wrapping) and the offset in that block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunRef {
    block: u32,
    offset: u32,
}

impl RunRef {
    /// No run: the end of a trace's chain, or a trace with no span yet.
    pub const NONE: RunRef = RunRef { block: 0, offset: NO_OFFSET };

    fn is_none(self) -> bool {
        self.offset == NO_OFFSET
    }
}

#[derive(Debug)]
struct Block {
    /// Allocated once at its full size, never grown (so run positions stay valid).
    data: Vec<u8>,
    /// Runs in this block not yet released.
    live: u32,
}

/// What [`SpanArena::append`] did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Appended {
    /// The trace's last run now.
    pub tail: RunRef,
    /// Bytes written (span and, for a new run, its header).
    pub bytes: usize,
    /// Whether a new run was opened (it holds a reference to its context).
    pub new_run: bool,
}

/// Blocks of runs, oldest first.
#[derive(Debug)]
pub(crate) struct SpanArena {
    blocks: VecDeque<Block>,
    /// The number of `blocks[0]`; later blocks follow on (wrapping).
    first: u32,
    block_size: usize,
    allocated: u64,
    /// The newest run and its context: the only run that can be extended.
    open: Option<(RunRef, u32)>,
}

impl SpanArena {
    /// An empty arena whose blocks hold `block_size` bytes (larger spans get a block of their own size).
    pub fn new(block_size: usize) -> Self {
        SpanArena { blocks: VecDeque::new(), first: 0, block_size, allocated: 0, open: None }
    }

    /// Changes the size of blocks allocated from now on.
    pub fn set_block_size(&mut self, block_size: usize) {
        self.block_size = block_size;
    }

    /// Bytes allocated for blocks.
    pub fn allocated(&self) -> u64 {
        self.allocated
    }

    /// Appends `span` (encoded) to the trace whose last run is `tail` ([`RunRef::NONE`] for a trace
    /// without spans).
    pub fn append(&mut self, tail: RunRef, context: u32, span: &[u8]) -> Appended {
        let len = span.len();
        let framed = len + prost::length_delimiter_len(len);
        if let Some((open, open_context)) = self.open
            && open == tail
            && open_context == context
            && let Some(block) = self.block_mut(open.block)
            && block.data.capacity() - block.data.len() >= framed
        {
            encode(span, &mut block.data);
            let at = open.offset as usize + 12;
            let run_len = read_u32(&block.data, at) + framed as u32;
            block.data[at..at + 4].copy_from_slice(&run_len.to_le_bytes());
            return Appended { tail, bytes: framed, new_run: false };
        }
        let needed = HEADER + framed;
        let room = self.blocks.back().map_or(0, |block| block.data.capacity() - block.data.len());
        if room < needed {
            let capacity = self.block_size.max(needed);
            self.allocated += capacity as u64;
            self.blocks.push_back(Block { data: Vec::with_capacity(capacity), live: 0 });
        }
        let number = self.first.wrapping_add(self.blocks.len() as u32 - 1);
        let Some(block) = self.blocks.back_mut() else { return Appended { tail, bytes: 0, new_run: false } };
        let at = RunRef { block: number, offset: block.data.len() as u32 };
        for field in [RunRef::NONE.block, RunRef::NONE.offset, context, framed as u32] {
            block.data.extend_from_slice(&field.to_le_bytes());
        }
        encode(span, &mut block.data);
        block.live += 1;
        if !tail.is_none()
            && let Some(previous) = self.block_mut(tail.block)
        {
            let offset = tail.offset as usize;
            previous.data[offset..offset + 4].copy_from_slice(&at.block.to_le_bytes());
            previous.data[offset + 4..offset + 8].copy_from_slice(&at.offset.to_le_bytes());
        }
        self.open = Some((at, context));
        Appended { tail: at, bytes: needed, new_run: true }
    }

    /// The runs of a trace from `head`: each run's context id and its length-delimited spans.
    pub fn runs(&self, head: RunRef) -> Runs<'_> {
        Runs { arena: self, next: head }
    }

    /// Releases the runs of a trace from `head`, freeing blocks left without runs.
    pub fn release(&mut self, head: RunRef) {
        let mut next = head;
        let newest = self.blocks.len().saturating_sub(1);
        while let Some(index) = (!next.is_none()).then(|| self.block_index(next.block)).flatten() {
            let offset = next.offset as usize;
            let block = &mut self.blocks[index];
            next = RunRef { block: read_u32(&block.data, offset), offset: read_u32(&block.data, offset + 4) };
            block.live = block.live.saturating_sub(1);
            if block.live > 0 {
                continue;
            }
            if index == newest {
                // Reuse the newest block from its start: nothing in it is referenced any more.
                block.data.clear();
                self.open = None;
            } else {
                self.allocated -= block.data.capacity() as u64;
                block.data = Vec::new();
            }
        }
        while self.blocks.len() > 1 && self.blocks.front().is_some_and(|block| block.data.capacity() == 0) {
            self.blocks.pop_front();
            self.first = self.first.wrapping_add(1);
        }
    }

    fn block_index(&self, number: u32) -> Option<usize> {
        let index = number.wrapping_sub(self.first) as usize;
        (index < self.blocks.len()).then_some(index)
    }

    fn block_mut(&mut self, number: u32) -> Option<&mut Block> {
        let index = self.block_index(number)?;
        self.blocks.get_mut(index)
    }
}

/// Iterator over a trace's runs (see [`SpanArena::runs`]).
pub(crate) struct Runs<'a> {
    arena: &'a SpanArena,
    next: RunRef,
}

impl<'a> Iterator for Runs<'a> {
    type Item = (u32, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.next.is_none() {
            return None;
        }
        let block = &self.arena.blocks[self.arena.block_index(self.next.block)?];
        let offset = self.next.offset as usize;
        let data = &block.data;
        let context = read_u32(data, offset + 8);
        let len = read_u32(data, offset + 12) as usize;
        self.next = RunRef { block: read_u32(data, offset), offset: read_u32(data, offset + 4) };
        data.get(offset + HEADER..offset + HEADER + len).map(|spans| (context, spans))
    }
}

fn encode(span: &[u8], into: &mut Vec<u8>) {
    stella_otlp::wire::view::put_varint(into, span.len() as u64);
    into.extend_from_slice(span);
}

fn read_u32(data: &[u8], at: usize) -> u32 {
    data.get(at..at + 4).and_then(|bytes| bytes.try_into().ok()).map_or(0, u32::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use stella_otlp::proto::trace::v1::Span;

    use super::*;

    fn span(n: u8, size: usize) -> Span {
        Span { trace_id: vec![n; 16], span_id: vec![n; 8], name: "x".repeat(size), ..Default::default() }
    }

    fn decoded(arena: &SpanArena, head: RunRef) -> Vec<(u32, Vec<u8>)> {
        let mut spans = Vec::new();
        for (context, mut bytes) in arena.runs(head) {
            while !bytes.is_empty() {
                match Span::decode_length_delimited(&mut bytes) {
                    Ok(span) => spans.push((context, span.span_id)),
                    Err(error) => panic!("{error}"),
                }
            }
        }
        spans
    }

    #[test]
    fn runs_chain_a_traces_spans_across_blocks_and_contexts() {
        let mut arena = SpanArena::new(256);
        let (mut a_head, mut a_tail, mut b_head, mut b_tail) = (RunRef::NONE, RunRef::NONE, RunRef::NONE, RunRef::NONE);
        let mut runs = 0;
        for step in 0..20u8 {
            let (head, tail, context) = if step % 3 == 0 {
                (&mut b_head, &mut b_tail, 9)
            } else {
                (&mut a_head, &mut a_tail, u32::from(step / 10))
            };
            let appended = arena.append(*tail, context, &span(step, 40).encode_to_vec());
            runs += usize::from(appended.new_run);
            if head.is_none() {
                *head = appended.tail;
            }
            *tail = appended.tail;
        }
        assert!(runs < 20, "consecutive spans of a trace share a run");
        assert!(arena.blocks.len() > 3, "spans spilled over several blocks");
        let a: Vec<(u32, Vec<u8>)> =
            (0..20u8).filter(|step| step % 3 != 0).map(|step| (u32::from(step / 10), vec![step; 8])).collect();
        assert_eq!(decoded(&arena, a_head), a);
        let b: Vec<(u32, Vec<u8>)> = (0..20u8).filter(|step| step % 3 == 0).map(|step| (9, vec![step; 8])).collect();
        assert_eq!(decoded(&arena, b_head), b);
        arena.release(a_head);
        assert_eq!(decoded(&arena, b_head), b, "releasing one trace leaves the other intact");
        arena.release(b_head);
        assert_eq!(arena.blocks.len(), 1, "every block but the newest is freed");
        assert!(arena.allocated() <= 256);
    }

    #[test]
    fn a_span_larger_than_a_block_gets_its_own_block() {
        let mut arena = SpanArena::new(64);
        let appended = arena.append(RunRef::NONE, 1, &span(1, 1000).encode_to_vec());
        assert!(appended.new_run && appended.bytes > 1000);
        assert_eq!(decoded(&arena, appended.tail), vec![(1, vec![1; 8])]);
        arena.release(appended.tail);
        let next = arena.append(RunRef::NONE, 2, &span(2, 10).encode_to_vec());
        assert_eq!(decoded(&arena, next.tail), vec![(2, vec![2; 8])]);
    }
}
