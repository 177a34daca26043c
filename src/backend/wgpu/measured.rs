//! What the runtime's measured choices share: a measurement ([`Race`]) of each candidate's
//! time for one shape, the fastest taken for every shape of its class. The products'
//! tiles (`gemm_measure`, a [`Race`] of tiles per product shape), the steps' K slices
//! (`slices_measure`, per step shape and pass) and the layer pipeline
//! (`pipeline_measure`, of chunk counts per stack shape and pass) are measured so, as
//! `torch.backends.cudnn.benchmark` picks cuDNN's algorithms, and kept between runs in a
//! file per kind beside the autotune table ([`Stored`]).

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::autotune::{AdapterKey, keep_newest, read_kept, write_whole};
use super::runtime::Gpu;

/// A shape a measurement is for, and the shapes its choice also serves: those of the same
/// class.
pub trait Classed {
    /// What decides the class.
    type Class: PartialEq;
    /// This shape's class.
    fn class(&self) -> Self::Class;
    /// The shape in a few words, for a measurement's line.
    fn label(&self) -> String;
}

/// One measurement: each candidate's time for shapes of `shape`'s class, and the fastest.
#[derive(Clone, Debug, PartialEq)]
pub struct Race<S, C> {
    /// The shape it was measured on.
    pub shape: S,
    /// The candidates it chose among (a choice serves only the same candidates).
    pub candidates: Vec<C>,
    /// Each candidate (as it ran) and its least seconds.
    pub times: Vec<(C, f64)>,
    /// The fastest candidate.
    pub chosen: C,
    /// Read from the file of an earlier run rather than measured in this one.
    pub stored: bool,
}

impl<S: Classed, C: Copy + PartialEq> Race<S, C> {
    /// Whether its choice serves `shape` among `candidates`: the same class and the same
    /// candidates.
    pub fn serves(&self, shape: &S, candidates: &[C]) -> bool {
        self.shape.class() == shape.class() && self.candidates == candidates
    }

    /// One line: the shape, each candidate's time by its `name`, the chosen one first.
    pub fn line(&self, name: impl Fn(C) -> String) -> String {
        let mut times = self.times.clone();
        times.sort_by(|a, b| a.1.total_cmp(&b.1));
        let each: Vec<String> = times
            .iter()
            .map(|&(c, s)| format!("{} {:.4} ms", name(c), s * 1e3))
            .collect();
        let stored = if self.stored { " (stored)" } else { "" };
        format!("{}: {}{stored}", self.shape.label(), each.join(", "))
    }
}

/// A backend's measurements of one kind: those the run took or read so far, in that order,
/// and its file's, read once.
#[derive(Debug)]
pub struct Kept<S, C> {
    /// Taken or read so far.
    pub races: Vec<Race<S, C>>,
    stored: Option<Vec<Race<S, C>>>,
}

impl<S, C> Default for Kept<S, C> {
    fn default() -> Self {
        Kept {
            races: Vec::new(),
            stored: None,
        }
    }
}

impl<S: Classed + Clone, C: Copy + PartialEq> Kept<S, C> {
    /// The choice for `shape` among `candidates` known without measuring: one the run took or
    /// read, else one of the file's, which `read` reads (`None` where there is no file); the
    /// file is read once, and a choice taken from it is kept as read.
    pub fn known(
        &mut self,
        shape: &S,
        candidates: &[C],
        read: impl FnOnce() -> Option<Vec<Race<S, C>>>,
    ) -> Option<C> {
        if let Some(r) = self.races.iter().find(|r| r.serves(shape, candidates)) {
            return Some(r.chosen);
        }
        if self.stored.is_none() {
            self.stored = read();
        }
        let stored = self.stored.as_ref()?;
        let r = stored.iter().find(|r| r.serves(shape, candidates))?.clone();
        let chosen = r.chosen;
        self.races.push(r);
        Some(chosen)
    }

    /// Drops the file's measurements read so far (the file changed), keeping the run's.
    pub fn forget_stored(&mut self) {
        self.stored = None;
    }
}

/// A measurement as a file keeps it between runs: for which adapter and version of wgrnn,
/// each candidate by its name `N` (a tile's `--gemm` name, a chunk count).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Stored<S, N> {
    adapter: AdapterKey,
    version: String,
    shape: S,
    candidates: Vec<N>,
    times: Vec<(N, f64)>,
    chosen: N,
}

/// A file of measurements: every adapter's.
#[derive(Debug, Serialize, Deserialize)]
struct StoredFile<S, N> {
    measured: Vec<Stored<S, N>>,
}

impl<S, N> Default for StoredFile<S, N> {
    fn default() -> Self {
        StoredFile {
            measured: Vec::new(),
        }
    }
}

impl<S: Clone, C: Copy> Race<S, C> {
    /// The measurement as a file keeps it for `adapter`, each candidate by its `name`.
    pub fn stored<N>(&self, adapter: &AdapterKey, name: impl Fn(C) -> N) -> Stored<S, N> {
        Stored {
            adapter: adapter.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            shape: self.shape.clone(),
            candidates: self.candidates.iter().map(|&c| name(c)).collect(),
            times: self.times.iter().map(|&(c, s)| (name(c), s)).collect(),
            chosen: name(self.chosen),
        }
    }
}

impl<S, N> Stored<S, N> {
    /// The shape it was measured on.
    pub fn shape(&self) -> &S {
        &self.shape
    }

    /// The measurement, read from a file, each candidate `named` by its name: `None` where
    /// a name is not one this version knows.
    pub fn race<C: Copy>(self, named: impl Fn(&N) -> Option<C>) -> Option<Race<S, C>> {
        let times = self
            .times
            .iter()
            .map(|(n, s)| Some((named(n)?, *s)))
            .collect::<Option<Vec<_>>>()?;
        Some(Race {
            candidates: self.candidates.iter().map(&named).collect::<Option<_>>()?,
            chosen: named(&self.chosen)?,
            shape: self.shape,
            times,
            stored: true,
        })
    }
}

/// The measurements of `what` kept in the file at `path` for `adapter` by this version of
/// wgrnn (none where there is no file; one that cannot be read is said so, [`read_kept`]).
pub fn load<S: DeserializeOwned, N: DeserializeOwned>(
    path: &Path,
    what: &str,
    adapter: &AdapterKey,
) -> Vec<Stored<S, N>> {
    let file: StoredFile<S, N> = read_kept(path, what);
    file.measured
        .into_iter()
        .filter(|s| &s.adapter == adapter && s.version == env!("CARGO_PKG_VERSION"))
        .collect()
}

/// Adds `new` to the file of `what` at `path`, in place of one of the same adapter,
/// version, class and candidates, keeping the newest [`MAX_KEPT`](super::autotune::MAX_KEPT),
/// through a temporary file so a reader never sees half of it; a file that cannot be
/// written is said so on stderr (the run goes on with its measurement).
pub fn store<S, N>(path: &Path, what: &str, new: Stored<S, N>)
where
    S: Classed + Serialize + DeserializeOwned,
    N: PartialEq + Serialize + DeserializeOwned,
{
    let mut file: StoredFile<S, N> = read_kept(path, what);
    file.measured.retain(|s| {
        s.adapter != new.adapter
            || s.version != new.version
            || s.shape.class() != new.shape.class()
            || s.candidates != new.candidates
    });
    file.measured.push(new);
    keep_newest(&mut file.measured);
    let text = serde_json::to_string_pretty(&file).map_err(std::io::Error::other);
    if let Err(e) = text.and_then(|t| write_whole(path, &t)) {
        eprintln!(
            "warning: {}: {e}; the {what} measured are not kept",
            path.display()
        );
    }
}

/// Where measurements whose file is `name` are kept: beside the product tiles' file, where
/// those are kept (`Gpu::product_tiles_file`).
pub fn beside_tiles(gpu: &Gpu, name: &str) -> Option<PathBuf> {
    gpu.product_tiles_file().map(|p| p.with_file_name(name))
}

/// The measurements of `what` in the file at `path` for `adapter` by this version of
/// wgrnn ([`load`]), where every candidate is one `valid` takes and the chosen one is
/// among them: choices kept as they are measured (chunk counts, step tiles).
pub fn load_choices<S, C>(
    path: &Path,
    what: &str,
    adapter: &AdapterKey,
    valid: impl Fn(C) -> bool,
) -> Vec<Race<S, C>>
where
    S: DeserializeOwned,
    C: Copy + PartialEq + DeserializeOwned,
{
    load::<S, C>(path, what, adapter)
        .into_iter()
        .filter_map(|s| s.race(|&c| valid(c).then_some(c)))
        .filter(|r| r.candidates.contains(&r.chosen))
        .collect()
}

/// Adds `race`, whose choices are kept as they are, to the file of `what` at `path` for
/// `adapter` ([`store`]).
pub fn store_choices<S, C>(path: &Path, what: &str, adapter: &AdapterKey, race: &Race<S, C>)
where
    S: Classed + Clone + Serialize + DeserializeOwned,
    C: Copy + PartialEq + Serialize + DeserializeOwned,
{
    store(path, what, race.stored(adapter, |c| c));
}

/// Timed runs of each candidate after the one that sizes them ([`time_in_turns`]).
pub const ROUNDS: usize = 2;

/// Each of `candidates`' seconds per repetition, the least of its timed runs, taken in
/// turns so that none is timed only while the device's clocks rise. `run(c, reps)` runs
/// `c` `reps` times in one submission, waits for it and gives the seconds per repetition.
/// Each candidate runs once untimed (which builds its pipelines), once timed to size its
/// runs (enough repetitions to last `seconds`, at most `most`), then [`ROUNDS`] times.
pub fn time_in_turns<C: Copy>(
    candidates: &[C],
    seconds: f64,
    most: usize,
    mut run: impl FnMut(C, usize) -> f64,
) -> Vec<(C, f64)> {
    let mut times: Vec<(usize, f64)> = candidates
        .iter()
        .map(|&c| {
            run(c, 1);
            let once = run(c, 1);
            let reps = (seconds / once.max(1e-9)).ceil() as usize;
            (reps.clamp(1, most), once)
        })
        .collect();
    for _ in 0..ROUNDS {
        for (&c, (reps, best)) in candidates.iter().zip(&mut times) {
            *best = best.min(run(c, *reps));
        }
    }
    candidates
        .iter()
        .zip(times)
        .map(|(&c, (_, s))| (c, s))
        .collect()
}

/// The candidate of the least time, the first of equal ones.
pub fn fastest<C: Copy>(times: &[(C, f64)]) -> Option<C> {
    let mut best: Option<(C, f64)> = None;
    for &(c, s) in times {
        if best.is_none_or(|(_, b)| s < b) {
            best = Some((c, s));
        }
    }
    best.map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every candidate runs once untimed and once to size its runs, then in turns; the
    /// least time counts.
    #[test]
    fn candidates_are_timed_in_turns_and_keep_their_least_time() {
        let mut log = Vec::new();
        let mut clock = [5.0, 4.0, 6.0, 1.0, 9.0, 9.0].into_iter();
        let times = time_in_turns(&['a', 'b'], 10.0, 3, |c, reps| {
            log.push((c, reps));
            match log.len() {
                1 | 3 => 100.0,
                _ => clock.next().unwrap_or(0.0),
            }
        });
        // a: untimed, 5 (so 2 reps), 6, 9; b: untimed, 4 (so 3 reps), 1, 9.
        assert_eq!(
            log,
            [
                ('a', 1),
                ('a', 1),
                ('b', 1),
                ('b', 1),
                ('a', 2),
                ('b', 3),
                ('a', 2),
                ('b', 3)
            ]
        );
        assert_eq!(times, [('a', 5.0), ('b', 1.0)]);
    }

    #[test]
    fn the_fastest_is_the_least_time_and_the_first_of_a_tie() {
        assert_eq!(fastest(&[(1, 3.0), (4, 1.0), (8, 1.0)]), Some(4));
        assert_eq!(fastest(&[('a', 3.0)]), Some('a'));
        assert_eq!(fastest::<u8>(&[]), None);
    }

    #[derive(Clone, Debug, PartialEq)]
    struct Rows(usize);

    impl Classed for Rows {
        type Class = usize;
        fn class(&self) -> usize {
            self.0.next_power_of_two()
        }
        fn label(&self) -> String {
            format!("{} rows", self.0)
        }
    }

    #[test]
    fn a_race_serves_its_class_among_its_candidates_and_names_the_fastest_first() {
        let race = Race {
            shape: Rows(100),
            candidates: vec!['a', 'b'],
            times: vec![('a', 2e-3), ('b', 1e-3)],
            chosen: 'b',
            stored: true,
        };
        assert!(race.serves(&Rows(70), &['a', 'b']));
        assert!(!race.serves(&Rows(130), &['a', 'b']));
        assert!(!race.serves(&Rows(100), &['a']));
        assert_eq!(
            race.line(|c| c.to_string()),
            "100 rows: b 1.0000 ms, a 2.0000 ms (stored)"
        );
    }
}
