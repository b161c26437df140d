//! Which examples each step sees, and in which tensor shapes.
//!
//! On the CPU backends every batch is cut to what it holds (dynamic padding, a short last
//! batch): that is the fastest there. On accelerator backends (CUDA through cubecl) every new
//! tensor shape JIT-compiles and autotunes new kernels, 0.1–2 s each, so shapes that change with
//! every batch keep the GPU waiting on the compiler. With *static shapes* the batchers keep a
//! handful of shapes: the last, short batch of an epoch is filled up to the batch size with
//! repeats of its own examples (weighted out of the loss, see [`Batch::real`]), BERT pads
//! sequence lengths up to a multiple ([`padded_len`], transformers' `pad_to_multiple_of`) and
//! the MLP's sparse input gets a fixed number of entries.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// One step's examples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Indices into the training set.
    pub idx: Vec<usize>,
    /// How many of `idx`, from the front, count: the rest repeat examples of the same batch so
    /// that every step has the same number of rows, and are left out of the loss and the
    /// accuracy. Equal to `idx.len()` unless the batch was filled up.
    pub real: usize,
}

impl Batch {
    /// The counted examples.
    pub fn real_idx(&self) -> &[usize] {
        &self.idx[..self.real]
    }

    /// True when the batch was filled up with repeats.
    pub fn is_filled(&self) -> bool {
        self.real < self.idx.len()
    }
}

/// The batches of one epoch: a permutation drawn from the seed and the epoch alone (so a resumed
/// run draws the same ones), cut into batches; with `lengths`, grouped by length: each block of
/// 50 batches of the shuffled order is sorted by length before it is cut into batches, and the
/// batches are then shuffled (Hugging Face's `group_by_length`).
pub fn epoch_batches(
    n: usize,
    batch_size: usize,
    seed: u64,
    epoch: usize,
    lengths: Option<&[usize]>,
) -> Vec<Vec<usize>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch as u64);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    match lengths {
        None => order.chunks(batch_size).map(<[usize]>::to_vec).collect(),
        Some(len) => {
            let mut batches: Vec<Vec<usize>> = Vec::with_capacity(n.div_ceil(batch_size));
            for mega in order.chunks_mut(batch_size * 50) {
                mega.sort_by_key(|&i| std::cmp::Reverse(len[i]));
                batches.extend(mega.chunks(batch_size).map(<[usize]>::to_vec));
            }
            batches.shuffle(&mut rng);
            batches
        }
    }
}

/// [`epoch_batches`] as steps; with `fill`, batches shorter than `batch_size` are filled up with
/// repeats of their own examples (same lengths, so BERT's padded length does not change).
pub fn epoch_steps(
    n: usize,
    batch_size: usize,
    seed: u64,
    epoch: usize,
    lengths: Option<&[usize]>,
    fill: bool,
) -> Vec<Batch> {
    epoch_batches(n, batch_size, seed, epoch, lengths)
        .into_iter()
        .map(|idx| {
            let real = idx.len();
            if fill && real < batch_size {
                Batch { idx: idx.iter().copied().cycle().take(batch_size).collect(), real }
            } else {
                Batch { idx, real }
            }
        })
        .collect()
}

/// The padded length of a batch whose longest text has `longest` tokens: that length, or with
/// `multiple` the next multiple of it, never above `max_len` (texts are cut there already).
pub fn padded_len(longest: usize, multiple: Option<usize>, max_len: usize) -> usize {
    let longest = longest.max(1);
    match multiple {
        Some(m) if m > 1 => longest.div_ceil(m).saturating_mul(m).min(max_len.max(longest)),
        _ => longest,
    }
}

/// Indices `0..n` in chunks of `size`; with `fill` the last chunk is filled up with repeats of
/// its own first entries (evaluation batches of one shape). Returns the chunks and how many
/// entries of each count.
pub fn eval_chunks(n: usize, size: usize, fill: bool) -> Vec<Batch> {
    let all: Vec<usize> = (0..n).collect();
    all.chunks(size.max(1))
        .map(|c| {
            let real = c.len();
            let idx =
                if fill && real < size { c.iter().copied().cycle().take(size).collect() } else { c.to_vec() };
            Batch { idx, real }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_batches_cover_every_example_once_and_bucket_by_length() {
        let n = 1000;
        let lengths: Vec<usize> = (0..n).map(|i| (i * 7919) % 61 + 3).collect();
        for lens in [None, Some(lengths.as_slice())] {
            let b = epoch_batches(n, 8, 7, 1, lens);
            assert_eq!(b.len(), n.div_ceil(8));
            let mut all: Vec<usize> = b.concat();
            all.sort_unstable();
            assert_eq!(all, (0..n).collect::<Vec<_>>(), "a permutation");
            assert_eq!(b, epoch_batches(n, 8, 7, 1, lens), "same seed and epoch, same batches");
            assert_ne!(b, epoch_batches(n, 8, 7, 2, lens), "another epoch, other batches");
        }
        // Padding (sum over batches of size × longest) falls with buckets.
        let padded = |b: &[Vec<usize>]| {
            b.iter().map(|x| x.len() * x.iter().map(|&i| lengths[i]).max().unwrap()).sum::<usize>()
        };
        let plain = padded(&epoch_batches(n, 8, 7, 1, None));
        let bucketed = padded(&epoch_batches(n, 8, 7, 1, Some(&lengths)));
        let real: usize = lengths.iter().sum();
        assert!(
            bucketed < plain && (bucketed as f64) < 1.1 * real as f64,
            "plain {plain}, bucketed {bucketed}, tokens {real}"
        );
    }

    #[test]
    fn filled_steps_have_one_size_and_count_each_example_once() {
        let lengths: Vec<usize> = (0..103).map(|i| i % 40 + 1).collect();
        for lens in [None, Some(lengths.as_slice())] {
            let steps = epoch_steps(103, 10, 3, 1, lens, true);
            assert!(steps.iter().all(|s| s.idx.len() == 10), "one batch size");
            assert_eq!(steps.iter().filter(|s| s.is_filled()).count(), 1, "only the short batch is filled");
            let short = steps.iter().find(|s| s.is_filled()).unwrap();
            assert_eq!(short.real, 3);
            // The repeats are the batch's own examples (no new lengths).
            assert!(short.idx[3..].iter().all(|i| short.real_idx().contains(i)));
            let mut counted: Vec<usize> = steps.iter().flat_map(|s| s.real_idx().to_vec()).collect();
            counted.sort_unstable();
            assert_eq!(counted, (0..103).collect::<Vec<_>>());
            // Without filling, the same batches as epoch_batches.
            let plain: Vec<Vec<usize>> =
                epoch_steps(103, 10, 3, 1, lens, false).into_iter().map(|s| s.idx).collect();
            assert_eq!(plain, epoch_batches(103, 10, 3, 1, lens));
        }
    }

    #[test]
    fn lengths_round_up_to_the_multiple_within_the_limit() {
        assert_eq!(padded_len(17, Some(16), 64), 32);
        assert_eq!(padded_len(32, Some(16), 64), 32);
        assert_eq!(padded_len(60, Some(16), 64), 64);
        assert_eq!(padded_len(49, Some(16), 50), 50, "capped at max_len");
        assert_eq!(padded_len(17, None, 64), 17);
        assert_eq!(padded_len(17, Some(1), 64), 17);
        assert_eq!(padded_len(0, Some(8), 64), 8);
        let e = eval_chunks(10, 4, true);
        assert_eq!(e.iter().map(|b| (b.idx.len(), b.real)).collect::<Vec<_>>(), [(4, 4), (4, 4), (4, 2)]);
        assert_eq!(e[2].idx, [8, 9, 8, 9]);
        assert_eq!(eval_chunks(10, 4, false)[2].idx, [8, 9]);
    }
}
