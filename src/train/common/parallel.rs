//! Data parallelism for training on a few CPU cores: whole length-sorted chunks run on worker
//! threads, each chunk with single-threaded kernels and its own autograd graph.
//!
//! Why not candle's intra-op threads: every candle op splits its work over a barrier pool and
//! every matmul over rayon, so one training step is ~2,000 fork/join points of a few
//! microseconds each. Measured with `ontovec bench train` (all-MiniLM-L6-v2, 96 strings a step,
//! 2 cores, 2026-12-06): 2 intra-op threads gave 41 strings/s on a quiet machine and 12–15 at
//! load ~4 (perf: 31% of cycles spinning in `BarrierGuard::drop`, 14% in idle workers), while one
//! kernel thread gave 48 strings/s at the same load. So the trainer turns candle's threads off
//! ([`single_threaded_kernels`]) and runs [`workers`] chunks at once instead: no barrier inside a
//! chunk, one join per stage of a step.
//!
//! A step is then three stages (see [`ChunkedEmbeddings`]): chunk forwards in parallel; the loss
//! on the detached, concatenated embeddings (cheap, one thread) giving d loss / d embedding; chunk
//! backwards in parallel, each seeded with its rows of that gradient. By the chain rule the summed
//! chunk gradients equal the gradient of one big graph (a test checks this).

use candle_core::backprop::GradStore;
use candle_core::{Device, Result, Tensor};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Turn off candle's intra-op threads (barrier pool and matmul threads) for this process.
/// Call first thing in a training command, before any candle op runs: candle reads these
/// variables on every op, and changing the environment while other threads read it is unsound.
pub fn single_threaded_kernels() {
    std::env::set_var("RAYON_NUM_THREADS", "1");
    std::env::set_var("CANDLE_NUM_THREADS", "1");
}

/// Worker threads for data-parallel chunks: `ONTOVEC_TRAIN_THREADS`, else the available cores.
pub fn workers() -> usize {
    std::env::var("ONTOVEC_TRAIN_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

/// `f(i)` for every `i` in `order` on up to `workers` threads (items taken in `order`, so put
/// the expensive ones first); results by item index. The first error wins.
pub fn map_items<T: Send, F>(n: usize, order: &[usize], workers: usize, f: F) -> Result<Vec<T>>
where
    F: Fn(usize) -> Result<T> + Sync,
{
    let slots: Vec<Mutex<Option<T>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let failed: Mutex<Option<candle_core::Error>> = Mutex::new(None);
    let work = || loop {
        let k = next.fetch_add(1, Ordering::Relaxed);
        let Some(&i) = order.get(k) else { break };
        if failed.lock().map(|f| f.is_some()).unwrap_or(true) {
            break;
        }
        match f(i) {
            Ok(v) => *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(v),
            Err(e) => {
                let mut slot = failed.lock().unwrap_or_else(|e| e.into_inner());
                slot.get_or_insert(e);
            }
        }
    };
    let threads = workers.clamp(1, order.len().max(1));
    if threads == 1 {
        work();
    } else {
        std::thread::scope(|s| {
            for _ in 1..threads {
                s.spawn(work);
            }
            work();
        });
    }
    if let Some(e) = failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    slots
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .ok_or_else(|| candle_core::Error::Msg("a parallel item did not run".into()))
        })
        .collect()
}

/// Split `n` length-sorted sequences into chunks of at most `chunk`, with a chunk count that is
/// a multiple of `workers` when there is enough work (so no worker idles at the end of a stage).
/// Returns the ranges over sorted positions.
pub fn chunk_ranges(n: usize, chunk: usize, workers: usize) -> Vec<std::ops::Range<usize>> {
    let chunk = chunk.max(1);
    let mut count = n.div_ceil(chunk).max(1);
    if workers > 1 && n >= workers {
        count = count.div_ceil(workers) * workers;
    }
    let size = n.div_ceil(count).max(1);
    (0..n).step_by(size).map(|s| s..(s + size).min(n)).collect()
}

/// The forward half of a data-parallel step: one autograd graph per chunk, plus whatever the
/// chunk's backward needs besides its gradient store (`E`, e.g. the leaf its word embeddings were
/// looked up into).
pub struct ChunkedEmbeddings<E> {
    /// Input indices of each chunk's rows, in the chunk's row order.
    members: Vec<Vec<u32>>,
    /// Each chunk's embeddings, still attached to its graph.
    outputs: Vec<Tensor>,
    extras: Vec<E>,
    workers: usize,
}

impl<E: Send + Sync> ChunkedEmbeddings<E> {
    /// Run `embed(chunk index, member input indices)` for every chunk of the length-sorted
    /// `lens`, on `workers` threads, longest chunks first. `embed` returns the chunk's (rows, H)
    /// embeddings attached to the parameters' graph, and its extra.
    pub fn forward<F>(lens: &[usize], chunk: usize, workers: usize, embed: F) -> Result<Self>
    where
        F: Fn(usize, &[u32]) -> Result<(Tensor, E)> + Sync,
    {
        let mut order: Vec<u32> = (0..lens.len() as u32).collect();
        order.sort_by_key(|&i| (lens[i as usize], i));
        let members: Vec<Vec<u32>> = chunk_ranges(lens.len(), chunk, workers)
            .into_iter()
            .map(|r| order[r].to_vec())
            .collect();
        let longest_first: Vec<usize> = (0..members.len()).rev().collect();
        let (outputs, extras) = map_items(members.len(), &longest_first, workers, |c| {
            embed(c, &members[c])
        })?
        .into_iter()
        .unzip();
        Ok(Self {
            members,
            outputs,
            extras,
            workers,
        })
    }

    /// All embeddings in input order, detached from the graphs (the loss is computed on this
    /// and differentiated only down to it).
    pub fn detached(&self) -> Result<Tensor> {
        let sorted = Tensor::cat(&self.outputs, 0)?.detach();
        let n: usize = self.members.iter().map(|m| m.len()).sum();
        let mut inverse = vec![0u32; n];
        for (pos, &i) in self.members.iter().flatten().enumerate() {
            inverse[i as usize] = pos as u32;
        }
        sorted.index_select(&Tensor::from_vec(inverse, n, &Device::Cpu)?, 0)
    }

    /// Backpropagate `grad` (d loss / d embedding, input order, same shape as [`Self::detached`])
    /// through every chunk's graph in parallel; `finish(store, extra)` turns each chunk's
    /// gradient store into the result (the results' sum is the step's gradient).
    pub fn backward<R, G>(&self, grad: &Tensor, finish: G) -> Result<Vec<R>>
    where
        R: Send,
        G: Fn(GradStore, &E) -> Result<R> + Sync,
    {
        let longest_first: Vec<usize> = (0..self.members.len()).rev().collect();
        map_items(self.members.len(), &longest_first, self.workers, |c| {
            let idx = Tensor::new(self.members[c].as_slice(), &Device::Cpu)?;
            let g = grad.index_select(&idx, 0)?.detach();
            let store = (&self.outputs[c] * g)?.sum_all()?.backward()?;
            finish(store, &self.extras[c])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_everything_once_and_balance_workers() {
        for (n, chunk, workers) in [
            (96, 32, 2),
            (95, 32, 2),
            (5, 32, 2),
            (1, 32, 2),
            (100, 7, 3),
        ] {
            let r = chunk_ranges(n, chunk, workers);
            assert_eq!(r.first().unwrap().start, 0);
            assert_eq!(r.last().unwrap().end, n);
            assert!(r.windows(2).all(|w| w[0].end == w[1].start));
            assert!(r.iter().all(|x| x.len() <= chunk && !x.is_empty()));
            if n >= workers * chunk {
                assert_eq!(r.len() % workers, 0, "{n} {chunk} {workers}: {}", r.len());
            }
        }
    }

    #[test]
    fn map_items_returns_by_index_and_propagates_errors() {
        let order = [3, 2, 1, 0];
        let v = map_items(4, &order, 2, |i| Ok(i * 10)).unwrap();
        assert_eq!(v, vec![0, 10, 20, 30]);
        let e = map_items(4, &order, 2, |i| {
            if i == 1 {
                Err(candle_core::Error::Msg("boom".into()))
            } else {
                Ok(i)
            }
        });
        assert!(e.is_err());
    }
}
