//! The bookkeeping of a paged KV cache (vLLM's block manager with automatic
//! prefix caching, Kwon et al. 2023): which fixed-size blocks of one pool
//! ([`model::kv_cache::KvPool`]) each sequence holds, in order (its block
//! table), how many sequences share each block, and which full blocks hold the
//! keys and values of which token prefix.
//!
//! A full block is keyed by a hash chain: the hash of its parent's key and its
//! own tokens, so it names the whole prefix up to its end. A new prompt takes
//! the longest run of cached blocks that match its prefix (whoever computed
//! them) and only computes the rest. Blocks are reference-counted; a block
//! shared by several sequences is copied before one of them writes into it
//! (copy-on-write: [`BlockManager::reserve`] returns the copies to make). A
//! sequence's blocks are released at once when it ends; a released full block
//! stays in the prefix cache until its room is needed, the least recently used
//! first.
//!
//! Nothing here touches the keys and values themselves: the caller copies
//! blocks in the pool and runs the forward pass through the block tables.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

/// The pool has no free block left, and none to evict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("out of KV cache blocks: {needed} needed, {available} available")]
pub struct OutOfBlocks {
    /// Blocks the request needed.
    pub needed: usize,
    /// Blocks free or evictable.
    pub available: usize,
}

/// One block's state.
#[derive(Clone, Debug, Default)]
struct Block {
    /// Sequences holding the block.
    refs: u32,
    /// The prefix key, when the block is full and in the prefix cache.
    key: Option<u64>,
    /// Its parent's key and its tokens, to tell hash collisions from hits.
    content: Option<(u64, Vec<u32>)>,
    /// When the block was last released (its place in the eviction order).
    released: u64,
}

/// A sequence's blocks: its block table, and the tokens whose keys and values
/// are in them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeqBlocks {
    /// Block ids, in position order: position `p` is in `table[p / block_len]`.
    pub table: Vec<u32>,
    /// Tokens whose keys and values the blocks hold (positions `0..len`).
    pub tokens: Vec<u32>,
    /// Prefix keys of the sequence's full blocks, in order.
    keys: Vec<u64>,
    /// The parent key of its first block: 0, or what sets its keys and
    /// values apart from the base model's (LoRA adapters), so that only
    /// sequences computed alike share blocks.
    root: u64,
}

impl SeqBlocks {
    /// Positions already in the cache.
    pub fn n_past(&self) -> usize {
        self.tokens.len()
    }
}

/// The key of a full block of `tokens` after the prefix keyed `parent` (0 for
/// the first block).
fn block_key(parent: u64, tokens: &[u32]) -> u64 {
    let mut h = DefaultHasher::new();
    parent.hash(&mut h);
    tokens.hash(&mut h);
    h.finish()
}

/// Reference counts, the free list and the prefix cache of a pool of
/// `n_blocks` blocks of `block_len` positions.
#[derive(Debug)]
pub struct BlockManager {
    block_len: usize,
    blocks: Vec<Block>,
    /// Unreferenced blocks outside the prefix cache.
    free: Vec<u32>,
    /// Unreferenced cached blocks by release time: the eviction order.
    evictable: BTreeMap<u64, u32>,
    /// Prefix key → the block holding that prefix's last block.
    cached: HashMap<u64, u32>,
    clock: u64,
}

impl BlockManager {
    /// A manager of `n_blocks` blocks of `block_len` positions, all free.
    pub fn new(n_blocks: usize, block_len: usize) -> BlockManager {
        assert!(block_len > 0, "blocks hold at least one position");
        BlockManager {
            block_len,
            blocks: vec![Block::default(); n_blocks],
            free: (0..n_blocks as u32).rev().collect(),
            evictable: BTreeMap::new(),
            cached: HashMap::new(),
            clock: 0,
        }
    }

    /// Positions per block.
    pub fn block_len(&self) -> usize {
        self.block_len
    }

    /// Blocks that can be handed out now: free, or cached and unreferenced.
    pub fn n_available(&self) -> usize {
        self.free.len() + self.evictable.len()
    }

    /// Sequences holding block `id`.
    pub fn refs(&self, id: u32) -> u32 {
        self.blocks[id as usize].refs
    }

    /// Blocks in the prefix cache (referenced or not).
    pub fn n_cached(&self) -> usize {
        self.cached.len()
    }

    /// Starts a sequence for `prompt`: takes the longest run of cached full
    /// blocks matching its prefix, never the block of its last token (whose
    /// logits must be computed). Returns the sequence, holding those blocks
    /// and their tokens, and how many prompt tokens are cached.
    pub fn start(&mut self, prompt: &[u32]) -> SeqBlocks {
        self.start_under(prompt, 0)
    }

    /// [`BlockManager::start`] for a sequence whose keys and values depend
    /// on more than its tokens (`root`, e.g. its LoRA adapters): it shares
    /// blocks only with sequences started under the same `root`.
    pub fn start_under(&mut self, prompt: &[u32], root: u64) -> SeqBlocks {
        let mut seq = SeqBlocks {
            root,
            ..SeqBlocks::default()
        };
        let reusable = prompt.len().saturating_sub(1) / self.block_len;
        let mut parent = root;
        for chunk in prompt.chunks_exact(self.block_len).take(reusable) {
            let key = block_key(parent, chunk);
            let Some(&id) = self.cached.get(&key) else {
                break;
            };
            let block = &self.blocks[id as usize];
            if block.content.as_ref() != Some(&(parent, chunk.to_vec())) {
                break;
            }
            self.take(id);
            seq.table.push(id);
            seq.keys.push(key);
            seq.tokens.extend_from_slice(chunk);
            parent = key;
        }
        seq
    }

    /// A second sequence sharing all of `seq`'s blocks (parallel samples of
    /// one prompt); the first write into a shared block copies it.
    pub fn fork(&mut self, seq: &SeqBlocks) -> SeqBlocks {
        for &id in &seq.table {
            self.take(id);
        }
        seq.clone()
    }

    /// Makes room in `seq` for `n` more tokens: blocks for the positions
    /// `n_past..n_past + n`, and a private copy of its last block if that is
    /// partly filled and shared. Returns the copies to make in the pool
    /// before the forward pass, `(from, to)`. Fails, changing nothing, if the
    /// pool cannot supply the blocks.
    pub fn reserve(
        &mut self,
        seq: &mut SeqBlocks,
        n: usize,
    ) -> Result<Vec<(u32, u32)>, OutOfBlocks> {
        let have = seq.table.len();
        let need = (seq.n_past() + n).div_ceil(self.block_len);
        let partial = !seq.n_past().is_multiple_of(self.block_len);
        let cow = partial && n > 0 && self.blocks[seq.table[have - 1] as usize].refs > 1;
        let needed = need.saturating_sub(have) + usize::from(cow);
        if needed > self.n_available() {
            return Err(OutOfBlocks {
                needed,
                available: self.n_available(),
            });
        }
        let mut copies = Vec::new();
        if cow {
            let old = seq.table[have - 1];
            let new = self.allocate();
            self.release(old);
            seq.table[have - 1] = new;
            copies.push((old, new));
        }
        while seq.table.len() < need {
            let id = self.allocate();
            seq.table.push(id);
        }
        Ok(copies)
    }

    /// Records that the keys and values of `tokens` were written at the
    /// sequence's next positions (room made by [`BlockManager::reserve`]),
    /// and puts every block they fill into the prefix cache.
    pub fn commit(&mut self, seq: &mut SeqBlocks, tokens: &[u32]) {
        assert!(
            (seq.n_past() + tokens.len()).div_ceil(self.block_len) <= seq.table.len(),
            "commit without reserve"
        );
        seq.tokens.extend_from_slice(tokens);
        let full = seq.n_past() / self.block_len;
        while seq.keys.len() < full {
            let i = seq.keys.len();
            let parent = seq.keys.last().copied().unwrap_or(seq.root);
            let chunk = &seq.tokens[i * self.block_len..(i + 1) * self.block_len];
            let key = block_key(parent, chunk);
            let id = seq.table[i];
            // Another sequence may have cached the same prefix first: keep
            // that block, this one is freed with its sequence.
            if !self.cached.contains_key(&key) && self.blocks[id as usize].key.is_none() {
                self.cached.insert(key, id);
                let block = &mut self.blocks[id as usize];
                block.key = Some(key);
                block.content = Some((parent, chunk.to_vec()));
            }
            seq.keys.push(key);
        }
    }

    /// Ends a sequence: releases its blocks at once.
    pub fn free(&mut self, seq: SeqBlocks) {
        for id in seq.table.into_iter().rev() {
            self.release(id);
        }
    }

    /// Takes a reference to block `id`, out of the eviction order if it was
    /// there.
    fn take(&mut self, id: u32) {
        let block = &mut self.blocks[id as usize];
        if block.refs == 0 {
            self.evictable.remove(&block.released);
        }
        block.refs += 1;
    }

    /// Drops a reference to block `id`: an unreferenced cached block waits in
    /// the eviction order, any other goes back to the free list.
    fn release(&mut self, id: u32) {
        let block = &mut self.blocks[id as usize];
        block.refs -= 1;
        if block.refs > 0 {
            return;
        }
        if block.key.is_some() {
            self.clock += 1;
            block.released = self.clock;
            self.evictable.insert(self.clock, id);
        } else {
            self.free.push(id);
        }
    }

    /// A block for one sequence: a free one, else the least recently released
    /// cached one, dropped from the prefix cache. The caller checked that one
    /// is available.
    fn allocate(&mut self) -> u32 {
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                let (_, id) = self.evictable.pop_first().expect("a block is available");
                let block = &mut self.blocks[id as usize];
                if let Some(key) = block.key.take() {
                    self.cached.remove(&key);
                }
                block.content = None;
                id
            }
        };
        self.blocks[id as usize].refs = 1;
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Starts `prompt`, reserves and commits what is not cached; returns the
    /// sequence and how many tokens were cached.
    fn run_prompt(m: &mut BlockManager, prompt: &[u32]) -> (SeqBlocks, usize) {
        let mut seq = m.start(prompt);
        let cached = seq.n_past();
        let rest = &prompt[cached..];
        assert!(m.reserve(&mut seq, rest.len()).unwrap().is_empty());
        m.commit(&mut seq, rest);
        (seq, cached)
    }

    #[test]
    fn a_shared_prefix_is_computed_once_and_its_blocks_shared() {
        let mut m = BlockManager::new(8, 4);
        let system: Vec<u32> = (0..8).collect();
        let a: Vec<u32> = system.iter().copied().chain([100, 101, 102]).collect();
        let b: Vec<u32> = system.iter().copied().chain([200]).collect();
        let (sa, cached) = run_prompt(&mut m, &a);
        assert_eq!((cached, sa.table.len()), (0, 3));
        let (sb, cached) = run_prompt(&mut m, &b);
        // Both full blocks of the shared 8 tokens are reused; b's last token
        // goes to a block of its own.
        assert_eq!(cached, 8);
        assert_eq!(sb.table[..2], sa.table[..2]);
        assert_ne!(sb.table[2], sa.table[2]);
        assert_eq!(m.refs(sa.table[0]), 2);
        assert_eq!(m.n_available(), 8 - 4);
        // Same block tokens after another prefix: a different chain, no hit.
        let c: Vec<u32> = (4..8).chain(0..4).chain([1]).collect();
        assert_eq!(m.start(&c).n_past(), 0);
    }

    #[test]
    fn the_block_of_the_last_prompt_token_is_always_computed() {
        let mut m = BlockManager::new(4, 4);
        let p: Vec<u32> = (0..8).collect();
        let (s, _) = run_prompt(&mut m, &p);
        m.free(s);
        // 8 tokens, both blocks cached: the second holds the last token, so
        // only the first is reused.
        let s = m.start(&p);
        assert_eq!(s.n_past(), 4);
    }

    #[test]
    fn writing_into_a_shared_block_copies_it_first() {
        let mut m = BlockManager::new(6, 4);
        let (mut a, _) = run_prompt(&mut m, &[1, 2, 3, 4, 5, 6]);
        let mut b = m.fork(&a);
        assert_eq!(m.refs(a.table[1]), 2);
        // a appends into its partly filled, shared second block: copied.
        let copies = m.reserve(&mut a, 1).unwrap();
        assert_eq!(copies, [(b.table[1], a.table[1])]);
        assert_ne!(a.table[1], b.table[1]);
        assert_eq!((m.refs(a.table[1]), m.refs(b.table[1])), (1, 1));
        assert_eq!(m.refs(a.table[0]), 2);
        m.commit(&mut a, &[7]);
        // b now owns its block alone: no copy.
        assert!(m.reserve(&mut b, 1).unwrap().is_empty());
        m.commit(&mut b, &[9]);
        assert_eq!(a.tokens, [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(b.tokens, [1, 2, 3, 4, 5, 6, 9]);
    }

    #[test]
    fn released_prefixes_are_evicted_least_recently_used_first() {
        let mut m = BlockManager::new(4, 2);
        let (s1, _) = run_prompt(&mut m, &[1, 1, 9]);
        let (s2, _) = run_prompt(&mut m, &[2, 2, 9]);
        assert_eq!(m.n_available(), 0);
        m.free(s1);
        m.free(s2);
        // [1 1] and [2 2] are cached and unreferenced; the partial blocks
        // went back to the free list.
        assert_eq!((m.n_available(), m.n_cached()), (4, 2));
        // A 5-token prompt needs 3 blocks: 2 free ones, then [1 1] (released
        // first) is evicted.
        let (s3, cached) = run_prompt(&mut m, &[3, 3, 4, 4, 5]);
        assert_eq!(cached, 0);
        assert_eq!(m.start(&[1, 1, 9]).n_past(), 0);
        let hit = m.start(&[2, 2, 9]);
        assert_eq!(hit.n_past(), 2);
        m.free(hit);
        m.free(s3);
    }

    #[test]
    fn running_out_of_blocks_fails_without_changing_anything() {
        let mut m = BlockManager::new(2, 4);
        let (mut s, _) = run_prompt(&mut m, &[1, 2, 3, 4, 5]);
        let before = (s.clone(), m.n_available());
        assert_eq!(
            m.reserve(&mut s, 4),
            Err(OutOfBlocks {
                needed: 1,
                available: 0
            })
        );
        assert_eq!((s.clone(), m.n_available()), before);
        // Freeing the sequence returns its blocks at once.
        m.free(s);
        assert_eq!(m.n_available(), 2);
    }
}
