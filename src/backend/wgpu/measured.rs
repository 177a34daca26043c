//! What the runtime's measured choices share: a measurement ([`Race`]) of each candidate's
//! time for one shape, the fastest taken for every shape of its class. The products'
//! tiles (`gemm_measure`, a [`Race`] of tiles per product shape) and the layer pipeline
//! (`pipeline_measure`, of chunk counts per stack shape and pass) are measured so, as
//! `torch.backends.cudnn.benchmark` picks cuDNN's algorithms.

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
