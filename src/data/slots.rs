//! Slot filling in the style of the lecture's "arrive Taipei on November 2nd" versus "leave
//! Taipei on November 2nd": the same city is the *destination* after "arrive" and the *place
//! of departure* after "leave", and the same date is the time of arrival or of departure.
//!
//! # Tags
//!
//! Simple labels without BIO prefixes (every slot word carries its slot's tag, a multi-word
//! slot such as "november 2nd" is two tagged words):
//!
//! | tag           | words                                                      |
//! |---------------|------------------------------------------------------------|
//! | `O`           | everything that is not a slot (verbs, fillers, prepositions) |
//! | `DEST`        | a city after "arrive"                                      |
//! | `DEPART`      | a city after "leave"                                       |
//! | `ARRIVE_TIME` | a month, day ordinal or time word after "arrive"           |
//! | `DEPART_TIME` | a month, day ordinal or time word after "leave"            |
//!
//! Which tag a slot word gets is decided by the nearest verb ("arrive" or "leave") *before*
//! it; every generated slot word has one. Between the verb and the slot the generator puts
//! adverbs and filler phrases ("leave early from the lovely old town of tokyo"), so the verb
//! is often several words back and a tagger needs memory. Each sentence draws its verb (or
//! the order of its two verbs) uniformly, so every city, month, day and time word is about
//! equally often an arrival and a departure slot: a tagger that sees only the current word
//! is wrong on about half of the slot words ([`memoryless_ceiling`] measures exactly how
//! well it can do).
//!
//! # Example
//!
//! ```
//! use wgrnn::data::slots::{Vocab, generate, memoryless_ceiling, to_batch};
//!
//! let vocab = Vocab::new();
//! let sentences = generate(100, 7);
//! let (batch, targets) = to_batch::<f32>(&sentences, &vocab);
//! assert_eq!(batch.seq.batch(), 100);
//! assert!(memoryless_ceiling(&sentences) < 0.95);
//! # let _ = targets;
//! ```

use std::collections::HashMap;

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use crate::backend::{Real, SeqShape};
use crate::error::InputError;
use crate::model::{Batch, Inputs, Targets};

/// The label of one word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tag {
    /// Not part of a slot.
    O,
    /// The destination city (after "arrive").
    Dest,
    /// The city of departure (after "leave").
    Depart,
    /// A word of the arrival time: month, day ordinal or time word (after "arrive").
    ArriveTime,
    /// A word of the departure time (after "leave").
    DepartTime,
}

impl Tag {
    /// Every tag, in id order.
    pub const ALL: [Tag; 5] = [
        Tag::O,
        Tag::Dest,
        Tag::Depart,
        Tag::ArriveTime,
        Tag::DepartTime,
    ];

    /// Number of tags: the number of classes of a tagging head.
    pub const COUNT: usize = Tag::ALL.len();

    /// The class id of this tag (its index in [`Tag::ALL`]).
    pub fn id(self) -> u32 {
        self as u32
    }

    /// The tag with this class id, if any.
    pub fn from_id(id: u32) -> Option<Tag> {
        Tag::ALL.get(id as usize).copied()
    }

    /// The tag's printed name (`O`, `DEST`, `DEPART`, `ARRIVE_TIME`, `DEPART_TIME`).
    pub fn name(self) -> &'static str {
        match self {
            Tag::O => "O",
            Tag::Dest => "DEST",
            Tag::Depart => "DEPART",
            Tag::ArriveTime => "ARRIVE_TIME",
            Tag::DepartTime => "DEPART_TIME",
        }
    }

    /// The tag with this printed name, if any.
    pub fn from_name(name: &str) -> Option<Tag> {
        Tag::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One tagged sentence: lower-case words and one tag per word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotSentence {
    /// The words.
    pub words: Vec<String>,
    /// The tag of each word (same length as `words`).
    pub tags: Vec<Tag>,
}

impl SlotSentence {
    /// Number of words.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Whether the sentence has no words.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The sentence with each slot word followed by `/TAG`, e.g.
    /// `arrive taipei/DEST on november/ARRIVE_TIME 2nd/ARRIVE_TIME`.
    pub fn tagged(&self) -> String {
        render(&self.words, &self.tags)
    }
}

/// Words joined by spaces, each non-`O` word followed by `/TAG`.
pub fn render(words: &[String], tags: &[Tag]) -> String {
    words
        .iter()
        .zip(tags)
        .map(|(w, t)| match t {
            Tag::O => w.clone(),
            t => format!("{w}/{t}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The verb that decides a leg's slots.
const ARRIVE: &str = "arrive";
const LEAVE: &str = "leave";

/// Cities (slot words: `DEST` / `DEPART`).
const CITIES: &[&str] = &[
    "taipei",
    "tokyo",
    "seoul",
    "osaka",
    "london",
    "paris",
    "boston",
    "denver",
    "sydney",
    "taichung",
    "kaohsiung",
    "berlin",
];

/// Months (slot words).
const MONTHS: &[&str] = &[
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Day ordinals `1st ..= 31st` (slot words).
const DAYS: &[&str] = &[
    "1st", "2nd", "3rd", "4th", "5th", "6th", "7th", "8th", "9th", "10th", "11th", "12th", "13th",
    "14th", "15th", "16th", "17th", "18th", "19th", "20th", "21st", "22nd", "23rd", "24th", "25th",
    "26th", "27th", "28th", "29th", "30th", "31st",
];

/// Number of days of each month (February: 29).
const MONTH_DAYS: [usize; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// Weekdays (slot words).
const WEEKDAYS: &[&str] = &[
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Time phrases; `*` marks the slot words (the rest are `O`).
const TIME_PHRASES: &[&str] = &[
    "*tomorrow",
    "*tonight",
    "*today",
    "*tomorrow *morning",
    "*tomorrow *evening",
    "this *morning",
    "this *afternoon",
    "this *evening",
    "in the *morning",
    "in the *afternoon",
    "in the *evening",
    "at *noon",
    "at *midnight",
];

/// Sentence openings (all `O`), used in half of the sentences.
const PREFIXES: &[&str] = &[
    "i would like to",
    "i want to",
    "please",
    "i need to",
    "i will",
    "can i",
    "we must",
    "my family wants to",
];

/// Words right after the verb (all `O`), in a fifth of the legs; they push the slot further
/// from its verb.
const ADVERBS: &[&str] = &[
    "early",
    "late",
    "finally",
    "safely",
    "with my friends",
    "as soon as possible",
];

/// Short gaps between the verb (and adverb) and the city (all `O`), in a third of the legs.
const SHORT_GAPS: &[&str] = &["in", "at"];

/// Long gaps between the verb (and adverb) and the city (all `O`), in a quarter of the legs.
const LONG_GAPS: &[&str] = &[
    "the city of",
    "in the city of",
    "at the airport of",
    "in beautiful",
    "at the main station of",
    "in the lovely old town of",
];

/// What joins two legs (all `O`); the second leg starts with the other verb.
const JOINS: &[&str] = &["and", "and then", "then", "so i can"];

/// Sentence endings (all `O`), in a quarter of the sentences.
const SUFFIXES: &[&str] = &[
    "please",
    "thanks",
    "if possible",
    "with my family",
    "by train",
];

/// Words of a `*`-marked phrase (markers removed).
fn phrase_words(phrase: &str) -> impl Iterator<Item = &str> {
    phrase.split_whitespace().map(|w| w.trim_start_matches('*'))
}

/// Id of the padding word.
pub const PAD_ID: u32 = 0;
/// Id of every word not in the vocabulary.
pub const UNK_ID: u32 = 1;

/// The word list and the tag names: word <-> id, tag <-> name.
///
/// Id 0 is `<pad>` (padding, never computed), id 1 is `<unk>` (any word outside the
/// generator's vocabulary); the generator's words follow in a fixed order, so ids do not
/// depend on the data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocab {
    words: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Default for Vocab {
    fn default() -> Self {
        Vocab::new()
    }
}

impl Vocab {
    /// The vocabulary of every word the generator can produce.
    pub fn new() -> Self {
        let mut v = Vocab {
            words: Vec::new(),
            ids: HashMap::new(),
        };
        v.add("<pad>");
        v.add("<unk>");
        v.add(ARRIVE);
        v.add(LEAVE);
        let lists: [&[&str]; 11] = [
            CITIES,
            MONTHS,
            DAYS,
            WEEKDAYS,
            TIME_PHRASES,
            PREFIXES,
            ADVERBS,
            SHORT_GAPS,
            LONG_GAPS,
            JOINS,
            SUFFIXES,
        ];
        for list in lists {
            for phrase in list {
                for w in phrase_words(phrase) {
                    v.add(w);
                }
            }
        }
        for w in ["on", "the", "of", "next"] {
            v.add(w);
        }
        v
    }

    fn add(&mut self, word: &str) {
        if !self.ids.contains_key(word) {
            self.ids.insert(word.to_string(), self.words.len() as u32);
            self.words.push(word.to_string());
        }
    }

    /// Number of ids (including `<pad>` and `<unk>`): the `vocab` of an embedding.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Whether the vocabulary is empty (never: it always holds `<pad>` and `<unk>`).
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The id of a word, if it is in the vocabulary.
    pub fn get(&self, word: &str) -> Option<u32> {
        self.ids.get(word).copied()
    }

    /// The id of a word, [`UNK_ID`] for words outside the vocabulary.
    pub fn id(&self, word: &str) -> u32 {
        self.get(word).unwrap_or(UNK_ID)
    }

    /// The word with this id, if any.
    pub fn word(&self, id: u32) -> Option<&str> {
        self.words.get(id as usize).map(String::as_str)
    }

    /// Every word, in id order.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// The tag names, in class-id order.
    pub fn tag_names(&self) -> Vec<&'static str> {
        Tag::ALL.iter().map(|t| t.name()).collect()
    }

    /// The class id of a tag name, if it is one.
    pub fn tag_id(&self, name: &str) -> Option<u32> {
        Tag::from_name(name).map(Tag::id)
    }

    /// The name of a class id, if it is one.
    pub fn tag_name(&self, id: u32) -> Option<&'static str> {
        Tag::from_id(id).map(Tag::name)
    }
}

/// A sentence being built.
struct Builder<'r> {
    rng: &'r mut ChaCha8Rng,
    words: Vec<String>,
    tags: Vec<Tag>,
}

impl Builder<'_> {
    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.rng.random_range(0..list.len())]
    }

    /// With probability `p`, appends a phrase from `list` (all `O`).
    fn maybe(&mut self, p: f64, list: &[&str]) {
        if self.rng.random_bool(p) {
            let phrase = self.pick(list);
            self.phrase(phrase, Tag::O);
        }
    }

    /// Appends a phrase; `*`-marked words get `slot`, the rest `O`.
    fn phrase(&mut self, phrase: &str, slot: Tag) {
        for w in phrase.split_whitespace() {
            match w.strip_prefix('*') {
                Some(s) => self.push(s, slot),
                None => self.push(w, Tag::O),
            }
        }
    }

    fn push(&mut self, word: &str, tag: Tag) {
        self.words.push(word.to_string());
        self.tags.push(tag);
    }

    /// A date or time phrase whose slot words get `tag`.
    fn when(&mut self, tag: Tag) {
        let m = self.rng.random_range(0..MONTHS.len());
        let month = MONTHS[m];
        let day = DAYS[self.rng.random_range(0..MONTH_DAYS[m])];
        match self.rng.random_range(0..6) {
            0 => self.phrase(&format!("on *{month} *{day}"), tag),
            1 => self.phrase(&format!("*{month} *{day}"), tag),
            2 => self.phrase(&format!("on the *{day} of *{month}"), tag),
            3 => {
                let wd = self.pick(WEEKDAYS);
                let next = if self.rng.random_bool(0.5) {
                    "next"
                } else {
                    "on"
                };
                self.phrase(&format!("{next} *{wd}"), tag);
            }
            4 => {
                let p = self.pick(TIME_PHRASES);
                self.phrase(p, tag);
            }
            _ => {
                self.phrase(&format!("on *{month} *{day}"), tag);
                let p = self.pick(TIME_PHRASES);
                self.phrase(p, tag);
            }
        }
    }

    /// One leg: the verb, maybe an adverb, then the city and maybe a date (either order).
    fn leg(&mut self, arrive: bool) {
        let (verb, city_tag, time_tag) = if arrive {
            (ARRIVE, Tag::Dest, Tag::ArriveTime)
        } else {
            (LEAVE, Tag::Depart, Tag::DepartTime)
        };
        self.push(verb, Tag::O);
        self.maybe(0.2, ADVERBS);
        let date_first = self.rng.random_bool(0.2);
        if date_first {
            self.when(time_tag);
        }
        match self.rng.random_range(0..12) {
            0..4 => self.maybe(1.0, SHORT_GAPS),
            4..7 => self.maybe(1.0, LONG_GAPS),
            _ => {}
        }
        let city = self.pick(CITIES);
        self.push(city, city_tag);
        if !date_first && self.rng.random_bool(0.9) {
            self.when(time_tag);
        }
    }
}

/// One random sentence.
fn sentence(rng: &mut ChaCha8Rng) -> SlotSentence {
    let mut b = Builder {
        rng,
        words: Vec::new(),
        tags: Vec::new(),
    };
    b.maybe(0.5, PREFIXES);
    let arrive = b.rng.random_bool(0.5);
    b.leg(arrive);
    if b.rng.random_bool(0.4) {
        b.maybe(1.0, JOINS);
        b.leg(!arrive);
    }
    b.maybe(0.25, SUFFIXES);
    SlotSentence {
        words: b.words,
        tags: b.tags,
    }
}

/// `n` random tagged sentences; the same `(n, seed)` always gives the same sentences, and
/// the first `m` sentences of `generate(n, seed)` are `generate(m, seed)`.
///
/// Each sentence has one leg ("arrive ..." or "leave ...", equally likely) or, two times
/// in five, two legs with both verbs in random order ("leave tokyo on may 3rd and then
/// arrive in taipei"). Every slot word follows the verb that decides its tag.
pub fn generate(n: usize, seed: u64) -> Vec<SlotSentence> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| sentence(&mut rng)).collect()
}

/// A time-major batch of sentences and its tagging targets.
///
/// Inputs are word ids `[T, B]` (`T` = the longest sentence, `B` = `sentences.len()`),
/// padded with [`PAD_ID`] and `seq.lengths` set to each sentence's length, so padding is
/// never computed; words outside `vocab` become [`UNK_ID`]. Targets are tag ids `[T, B]`
/// (padding steps hold `O`, which no loss counts). An empty slice or an empty sentence gives
/// a batch the model rejects with an [`InputError`].
pub fn to_batch<T: Real>(sentences: &[SlotSentence], vocab: &Vocab) -> (Batch<T>, Targets<T>) {
    let nb = sentences.len();
    let nt = sentences.iter().map(SlotSentence::len).max().unwrap_or(0);
    let mut ids = vec![PAD_ID; nt * nb];
    let mut tags = vec![Tag::O.id(); nt * nb];
    for (b, s) in sentences.iter().enumerate() {
        for (t, (w, tag)) in s.words.iter().zip(&s.tags).enumerate() {
            ids[t * nb + b] = vocab.id(w);
            tags[t * nb + b] = tag.id();
        }
    }
    let seq = SeqShape {
        time: nt,
        lengths: sentences.iter().map(SlotSentence::len).collect(),
    };
    (
        Batch {
            seq,
            inputs: Inputs::Ids(ids),
        },
        Targets::Classes(tags),
    )
}

/// Checks that `logits` is `[T, B, Tag::COUNT]` for these sentences; returns `(T, B)`.
fn check_logits(len: usize, sentences: &[SlotSentence]) -> Result<(usize, usize), InputError> {
    let nb = sentences.len();
    let nt = sentences.iter().map(SlotSentence::len).max().unwrap_or(0);
    let expected = nt * nb * Tag::COUNT;
    if len != expected {
        return Err(InputError::Shape {
            what: "tagging logits".into(),
            expected,
            shape: format!("[{nt}, {nb}, {}]", Tag::COUNT),
            got: len,
        });
    }
    Ok((nt, nb))
}

/// The highest-scoring tag of one row of logits.
fn argmax<T: Real>(row: &[T]) -> Tag {
    let mut best = 0;
    for (c, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = c;
        }
    }
    Tag::ALL[best]
}

/// The predicted tag of every word: the arg-max of the logits `[T, B, Tag::COUNT]` of a
/// batch built by [`to_batch`] from `sentences`.
pub fn predict_tags<T: Real>(
    logits: &[T],
    sentences: &[SlotSentence],
) -> Result<Vec<Vec<Tag>>, InputError> {
    let (_, nb) = check_logits(logits.len(), sentences)?;
    let c = Tag::COUNT;
    Ok(sentences
        .iter()
        .enumerate()
        .map(|(b, s)| {
            (0..s.len())
                .map(|t| argmax(&logits[(t * nb + b) * c..(t * nb + b + 1) * c]))
                .collect()
        })
        .collect())
}

/// Number of words whose arg-max tag is right, and the number of words, for logits
/// `[T, B, Tag::COUNT]` of a batch built by [`to_batch`] from `sentences`.
pub fn correct_tags<T: Real>(
    logits: &[T],
    sentences: &[SlotSentence],
) -> Result<(usize, usize), InputError> {
    let predicted = predict_tags(logits, sentences)?;
    let mut right = 0;
    let mut total = 0;
    for (p, s) in predicted.iter().zip(sentences) {
        right += p.iter().zip(&s.tags).filter(|(a, b)| a == b).count();
        total += s.len();
    }
    Ok((right, total))
}

/// Token accuracy: the fraction of words whose arg-max tag is right, for logits
/// `[T, B, Tag::COUNT]` of a batch built by [`to_batch`] from `sentences` (1 when there are
/// no words).
pub fn token_accuracy<T: Real>(
    logits: &[T],
    sentences: &[SlotSentence],
) -> Result<f64, InputError> {
    let (right, total) = correct_tags(logits, sentences)?;
    Ok(if total == 0 {
        1.0
    } else {
        right as f64 / total as f64
    })
}

/// The best token accuracy any tagger that sees only the current word can reach on these
/// sentences: for each word type, the count of its most frequent tag, summed, over the
/// number of words (1 when there are no words). No memoryless model can beat it on these
/// sentences, since it is the accuracy of the best word -> tag map chosen with the answers.
pub fn memoryless_ceiling(sentences: &[SlotSentence]) -> f64 {
    let mut counts: HashMap<&str, [usize; Tag::COUNT]> = HashMap::new();
    let mut total = 0;
    for s in sentences {
        for (w, t) in s.words.iter().zip(&s.tags) {
            counts.entry(w.as_str()).or_default()[t.id() as usize] += 1;
            total += 1;
        }
    }
    if total == 0 {
        return 1.0;
    }
    let best: usize = counts
        .values()
        .map(|c| c.iter().copied().max().unwrap_or(0))
        .sum();
    best as f64 / total as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sentences() {
        let a = generate(200, 42);
        assert_eq!(a, generate(200, 42));
        assert_eq!(&a[..50], &generate(50, 42)[..]);
        assert_ne!(a, generate(200, 43));
    }

    #[test]
    fn every_word_and_tag_has_an_id() {
        let vocab = Vocab::new();
        for s in generate(2000, 1) {
            assert_eq!(s.words.len(), s.tags.len());
            assert!(!s.is_empty());
            for w in &s.words {
                let id = vocab.get(w).unwrap_or_else(|| panic!("`{w}` has no id"));
                assert!(id != PAD_ID && id != UNK_ID);
                assert_eq!(vocab.word(id), Some(w.as_str()));
                assert_eq!(w.to_lowercase(), *w);
            }
            for t in &s.tags {
                assert_eq!(vocab.tag_id(t.name()), Some(t.id()));
                assert_eq!(vocab.tag_name(t.id()), Some(t.name()));
            }
        }
        for (i, w) in vocab.words().iter().enumerate() {
            assert_eq!(vocab.get(w), Some(i as u32), "{w}");
        }
        assert_eq!(vocab.id("atlantis"), UNK_ID);
        assert_eq!(vocab.tag_names().len(), Tag::COUNT);
    }

    #[test]
    fn slots_follow_their_verb() {
        for s in generate(2000, 3) {
            let mut verb = None;
            for (w, t) in s.words.iter().zip(&s.tags) {
                match w.as_str() {
                    ARRIVE | LEAVE => verb = Some(w.as_str()),
                    _ => {}
                }
                let want = match (t, verb) {
                    (Tag::O, _) => continue,
                    (Tag::Dest | Tag::ArriveTime, Some(v)) => v == ARRIVE,
                    (Tag::Depart | Tag::DepartTime, Some(v)) => v == LEAVE,
                    (_, None) => false,
                };
                assert!(want, "{}", s.tagged());
            }
        }
    }

    #[test]
    fn cities_are_balanced_and_the_ceiling_is_low() {
        let s = generate(4000, 5);
        let (mut dest, mut depart) = (0usize, 0usize);
        for s in &s {
            dest += s.tags.iter().filter(|t| **t == Tag::Dest).count();
            depart += s.tags.iter().filter(|t| **t == Tag::Depart).count();
        }
        let ratio = dest as f64 / (dest + depart) as f64;
        assert!((0.45..0.55).contains(&ratio), "DEST share {ratio}");
        let c = memoryless_ceiling(&s);
        assert!((0.7..0.9).contains(&c), "ceiling {c}");
    }

    #[test]
    fn batch_is_time_major_and_padded() {
        let vocab = Vocab::new();
        let s = generate(5, 9);
        let (batch, targets) = to_batch::<f32>(&s, &vocab);
        let nb = s.len();
        assert_eq!(
            batch.seq.lengths,
            s.iter().map(|s| s.len()).collect::<Vec<_>>()
        );
        let (Inputs::Ids(ids), Targets::Classes(tags)) = (&batch.inputs, &targets) else {
            panic!("ids and classes");
        };
        for t in 0..batch.seq.time {
            for (b, sent) in s.iter().enumerate() {
                if t < sent.len() {
                    assert_eq!(ids[t * nb + b], vocab.id(&sent.words[t]));
                    assert_eq!(tags[t * nb + b], sent.tags[t].id());
                } else {
                    assert_eq!(ids[t * nb + b], PAD_ID);
                }
            }
        }
    }

    #[test]
    fn accuracy_and_ceiling_on_a_known_case() {
        let sent = |words: &str, tags: &[Tag]| SlotSentence {
            words: words.split(' ').map(String::from).collect(),
            tags: tags.to_vec(),
        };
        let s = vec![
            sent("arrive taipei", &[Tag::O, Tag::Dest]),
            sent("leave taipei", &[Tag::O, Tag::Depart]),
            sent("arrive tokyo", &[Tag::O, Tag::Dest]),
        ];
        // taipei is wrong once whatever a memoryless tagger says: 5 of 6.
        assert!((memoryless_ceiling(&s) - 5.0 / 6.0).abs() < 1e-12);
        // Logits [T=2, B=3, C]: predict O, then DEST everywhere.
        let mut logits = vec![0f32; 2 * 3 * Tag::COUNT];
        for b in 0..3 {
            logits[b * Tag::COUNT + Tag::O.id() as usize] = 1.0;
            logits[(3 + b) * Tag::COUNT + Tag::Dest.id() as usize] = 1.0;
        }
        assert!((token_accuracy(&logits, &s).expect("shape") - 5.0 / 6.0).abs() < 1e-12);
        assert!(token_accuracy(&logits[1..], &s).is_err());
    }
}
