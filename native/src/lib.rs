//! The offline triage classifier's per-ticket step, compiled: the token stream of an ASCII
//! ticket, its features, the naive Bayes sums of both models and (once calibrated) the type
//! and priority distributions with the label each picks, exactly as
//! `agent_runtime.offline.features` and `agent_runtime.offline.classifier` compute them in
//! Python (which stays the reference: `tests/unit/test_offline_native.py` holds both to the
//! same predictions, bit for bit).
//!
//! Nothing here is a second source of truth: every word list, feature name and number comes
//! from the Python side when the classifier is built (`Analyzer::new`). The sums are exact
//! fixed-point integer sums, rounded once to the nearest float — what Python's `PackedRows`
//! and `math.fsum` give — so no order of a set can change a result.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::borrow::Cow;
use std::collections::{HashMap as StdHashMap, HashSet as StdHashSet};

type HashMap<K, V> = StdHashMap<K, V, ahash::RandomState>;
type HashSet<K> = StdHashSet<K, ahash::RandomState>;

/// Words whose character n-gram rows are cached (vocabulary repeats; tickets do not).
const CACHE_LIMIT: usize = 1 << 16;

/// A table of rows of exact fixed-point numbers (`value * 2**point`), `width` lanes each.
struct Table {
    lanes: Vec<i128>,
    width: usize,
    /// `2**-point`: a lane's exact total times this is the nearest float to the sum.
    inverse: f64,
}

impl Table {
    fn new(rows: Vec<Vec<i128>>, width: usize, inverse: f64) -> PyResult<Self> {
        let mut lanes = Vec::with_capacity(rows.len() * width);
        for row in rows {
            if row.len() != width {
                return Err(PyValueError::new_err("every row needs one number per lane"));
            }
            lanes.extend(row);
        }
        Ok(Table {
            lanes,
            width,
            inverse,
        })
    }

    fn add(&self, total: &mut [i128], row: u32) {
        let start = row as usize * self.width;
        for (t, v) in total.iter_mut().zip(&self.lanes[start..start + self.width]) {
            *t += *v;
        }
    }

    fn floats(&self, total: &[i128]) -> Vec<f64> {
        // `as f64` rounds an integer to the nearest float (ties to even), as Python's float()
        // does; the power of two is exact.
        total.iter().map(|&t| (t as f64) * self.inverse).collect()
    }
}

/// What one readable feature (a word, a bigram, a style) means to the models.
struct Entry {
    name: String,
    known: bool,
    /// Per model (type, priority): the label it favours in a reasoning (-1: none), and its margin.
    leads: [(i32, f64); 2],
}

/// The classifier's tables: read only, built once.
struct Tables {
    stop_words: HashSet<String>,
    contractions: HashMap<String, Vec<String>>,
    sentinels: HashMap<String, String>,
    acronyms: HashSet<String>,
    /// `[word, bigram, char, style]` prefixes; the shapes `[year, number, code]`.
    prefixes: [String; 4],
    shapes: [String; 3],
    /// `s:length_0` .. `s:length_4`; then shouting, repeated punctuation, question.
    lengths: Vec<String>,
    style_names: [String; 3],
    words: bool,
    bigrams: bool,
    style: bool,
    char_n: usize,
    /// Readable features → entry; their rows: the type labels, the priority labels, then 1
    /// for a known word.
    vocabulary: HashMap<String, u32>,
    entries: Vec<Entry>,
    readable: Table,
    readable_prior: Vec<i128>,
    n_types: usize,
    /// The type model's character n-grams → rows (None: the classifier uses none).
    chars: Option<(HashMap<String, u32>, Table)>,
}

/// A stem the analyzer met, and what the models make of it.
struct Stem {
    text: Box<str>,
    stop: bool,
    /// A content word: no stop word, more than one character (its `w:` feature).
    content: bool,
    /// The vocabulary's entry of its `w:` feature.
    word: Option<u32>,
    /// The type model's rows of its character n-grams.
    chars: Box<[u32]>,
}

/// What the analyzer learnt of the words it met (vocabulary repeats; tickets do not).
/// Bounded: past `CACHE_LIMIT` tokens, stems or bigrams it starts over.
#[derive(Default)]
struct Words {
    /// A token of the text → what it stands for: (word, stem) pairs (a contraction is two).
    tokens: HashMap<Box<str>, Box<[(Box<str>, u32)]>>,
    stems: Vec<Stem>,
    stem_ids: HashMap<Box<str>, u32>,
    /// (stem, stem) → the vocabulary's entry of their `b:` feature.
    bigrams: HashMap<u64, Option<u32>>,
}

/// What changes from ticket to ticket.
struct State {
    words: Words,
    /// Per stem, entry and character row: the ticket that last counted it (each counts once).
    stem_seen: Vec<u32>,
    entry_seen: Vec<u32>,
    char_seen: Vec<u32>,
    ticket: u32,
}

/// The per-ticket step of one classifier; see the module docs.
#[pyclass(module = "srs_native")]
pub struct Analyzer {
    t: Tables,
    s: State,
    /// What turns scores into distributions (None: Python does, from the scores).
    c: Option<Calibration>,
}

/// What `TicketClassifier._distributions` and `predict` need to turn a ticket's scores into
/// its type and priority distributions, and pick each one's label.
struct Calibration {
    type_temperature: f64,
    priority_temperature: f64,
    evidence_scale: f64,
    /// The confidence model's weights (one per signal) and bias; None: the temperature alone.
    confidence: Option<(Vec<f64>, f64)>,
    uniform: Vec<f64>,
    priority_priors: Vec<f64>,
    /// Per type: the catch-all, which wins a tie.
    is_other: Vec<bool>,
    /// How each vocabulary entry reads in a reasoning (its stems, or a fixed text); the fixed
    /// texts shown without quotes; how many terms a reasoning shows per model.
    parts: Vec<Vec<String>>,
    style_texts: HashSet<String>,
    reasoning_terms: usize,
}

impl Calibration {
    /// `classifier._readable`: the terms of the features favouring ``label`` (strongest first),
    /// each as the customer wrote it, none inside another, at most ``reasoning_terms``.
    fn readable(
        &self,
        favours: &[(i32, u32)],
        label: i32,
        surface: &HashMap<&str, &str>,
    ) -> Vec<String> {
        let mut terms: Vec<String> = Vec::new();
        for &(l, e) in favours {
            if l != label {
                continue;
            }
            let words: Vec<&str> = self.parts[e as usize]
                .iter()
                .map(|part| surface.get(part.as_str()).copied().unwrap_or(part.as_str()))
                .collect();
            let text = words.join(" ");
            if terms
                .iter()
                .any(|t| t.contains(text.as_str()) || text.contains(t.as_str()))
            {
                continue;
            }
            terms.push(text);
            if terms.len() == self.reasoning_terms {
                break;
            }
        }
        terms
            .into_iter()
            .map(|t| {
                if self.style_texts.contains(&t) {
                    t
                } else {
                    format!("'{t}'")
                }
            })
            .collect()
    }
}

/// The two distributions of one ticket, and the label each one picks.
struct Distributions {
    types: Vec<f64>,
    priorities: Vec<f64>,
    top_type: usize,
    top_priority: usize,
}

/// Python's `max(values)` of floats without NaN: the first of the largest.
fn first_max(values: &[f64]) -> f64 {
    let mut best = values[0];
    for &v in &values[1..] {
        if v > best {
            best = v;
        }
    }
    best
}

/// Python's `max(range(len(values)), key=values.__getitem__)`: the index of the first largest.
fn first_argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate().skip(1) {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// `naive_bayes.softmax`, operation for operation (Python 3.11's `sum` of floats adds them
/// in order, from 0.0; the caller checks the running Python does so).
fn softmax(scores: &[f64], temperature: f64) -> Vec<f64> {
    let top = first_max(scores);
    let exps: Vec<f64> = scores
        .iter()
        .map(|&s| ((s - top) / temperature).exp())
        .collect();
    let total = exps.iter().fold(0.0, |sum, &e| sum + e);
    exps.iter().map(|&e| e / total).collect()
}

/// Python's `math.fsum` of finite floats: the correctly rounded sum (Shewchuk's partials and
/// CPython's rounding of the last half-way case); None when a value or a partial sum is not
/// finite (where Python returns inf or nan, or raises).
fn fsum(values: &[f64]) -> Option<f64> {
    let mut partials: Vec<f64> = Vec::with_capacity(values.len());
    for &value in values {
        if !value.is_finite() {
            return None;
        }
        let mut x = value;
        let mut i = 0;
        for j in 0..partials.len() {
            let mut y = partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            if !hi.is_finite() {
                return None; // an intermediate overflow: Python raises OverflowError
            }
            let lo = y - (hi - x);
            if lo != 0.0 {
                partials[i] = lo;
                i += 1;
            }
            x = hi;
        }
        partials.truncate(i);
        partials.push(x);
    }
    let mut n = partials.len();
    if n == 0 {
        return Some(0.0);
    }
    n -= 1;
    let mut hi = partials[n];
    let mut lo = 0.0;
    while n > 0 {
        let x = hi;
        n -= 1;
        let y = partials[n];
        hi = x + y;
        let yr = hi - x;
        lo = y - yr;
        if lo != 0.0 {
            break;
        }
    }
    if n > 0 && ((lo < 0.0 && partials[n - 1] < 0.0) || (lo > 0.0 && partials[n - 1] > 0.0)) {
        let y = lo * 2.0;
        let x = hi + y;
        let yr = x - hi;
        if y == yr {
            hi = x;
        }
    }
    if hi.is_finite() {
        Some(hi)
    } else {
        None
    }
}

impl Calibration {
    /// `TicketClassifier._distributions` and the labels `predict` picks; None where Python
    /// must decide (a number that is not finite).
    fn distributions(
        &self,
        type_scores: &[f64],
        word_type_scores: &[f64],
        priority_scores: &[f64],
        known_words: usize,
        content_words: usize,
        evidence: f64,
    ) -> Option<Distributions> {
        // ``calibrate`` checked the lengths: one uniform share and catch-all flag per type.
        let n = type_scores.len();
        if n == 0 || priority_scores.is_empty() {
            return None;
        }
        let mut probs = softmax(type_scores, self.type_temperature);
        if let Some((weights, bias)) = &self.confidence {
            if n > 1 {
                let top = first_argmax(&probs);
                let sure = probability(
                    weights,
                    *bias,
                    &signals(&probs, word_type_scores, known_words, content_words),
                )?;
                probs = with_top(&probs, top, sure);
            }
        }
        let types = shrink(&probs, evidence, &self.uniform);
        let priorities = shrink(
            &softmax(priority_scores, self.priority_temperature),
            evidence,
            &self.priority_priors,
        );
        if !types.iter().chain(&priorities).all(|p| p.is_finite()) {
            return None;
        }
        // `max(range(n), key=lambda i: (type_probs[i], is_other[i]))`: ties go to the catch-all.
        let mut top_type = 0;
        for i in 1..n {
            let (p, best) = (types[i], types[top_type]);
            if p > best || (p == best && self.is_other[i] && !self.is_other[top_type]) {
                top_type = i;
            }
        }
        let top_priority = first_argmax(&priorities);
        Some(Distributions {
            types,
            priorities,
            top_type,
            top_priority,
        })
    }
}

/// `classifier.confidence_signals`: log-odds of the top type, its margin over the runner-up,
/// whether words alone agree, how many known words, and their share.
fn signals(
    probs: &[f64],
    word_type_scores: &[f64],
    known_words: usize,
    content_words: usize,
) -> [f64; 5] {
    // `sorted(range(n), key=probs.__getitem__, reverse=True)` keeps equal ones in order.
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| {
        probs[b]
            .partial_cmp(&probs[a])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let top = probs[order[0]];
    let second = if order.len() > 1 {
        probs[order[1]]
    } else {
        0.0
    };
    // `min(max(top, 1e-6), 1 - 1e-6)`: Python's max and min keep the first of equals.
    let floor = if 1e-6 > top { 1e-6 } else { top };
    let clipped = if 1.0 - 1e-6 < floor {
        1.0 - 1e-6
    } else {
        floor
    };
    let words_top = first_argmax(word_type_scores);
    [
        (clipped / (1.0 - clipped)).ln(),
        top - second,
        if words_top == order[0] { 1.0 } else { 0.0 },
        (known_words as f64).ln_1p(),
        if content_words > 0 {
            known_words as f64 / content_words as f64
        } else {
            0.0
        },
    ]
}

/// `ConfidenceModel.probability`.
fn probability(weights: &[f64], bias: f64, signals: &[f64; 5]) -> Option<f64> {
    if weights.len() != signals.len() {
        return None;
    }
    let products: Vec<f64> = weights.iter().zip(signals).map(|(w, s)| w * s).collect();
    let z = bias + fsum(&products)?;
    Some(if z > -700.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        0.0
    })
}

/// `classifier._with_top`.
fn with_top(probs: &[f64], top: usize, sure: f64) -> Vec<f64> {
    let n = probs.len();
    let floor = 1.0 / n as f64;
    let sure = if floor > sure { floor } else { sure };
    let rest = 1.0 - probs[top];
    let uniform = 1.0 / (n - 1) as f64;
    let others: Vec<f64> = probs
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != top)
        .map(|(_, &p)| p)
        .collect();
    let share = if rest > 0.0 {
        first_max(&others) / rest
    } else {
        uniform
    };
    let limit = if sure < 1.0 {
        sure / (1.0 - sure)
    } else {
        f64::INFINITY
    };
    let mix = if share <= limit {
        1.0
    } else {
        let m = (limit - uniform) / (share - uniform);
        if m > 0.0 {
            m
        } else {
            0.0
        }
    };
    probs
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            if i == top {
                sure
            } else {
                (1.0 - sure)
                    * (mix * (if rest > 0.0 { p / rest } else { uniform }) + (1.0 - mix) * uniform)
            }
        })
        .collect()
}

/// `classifier.shrink`.
fn shrink(probabilities: &[f64], evidence: f64, fallback: &[f64]) -> Vec<f64> {
    probabilities
        .iter()
        .zip(fallback)
        .map(|(&p, &q)| evidence * p + (1.0 - evidence) * q)
        .collect()
}

/// A ticket as the models saw it: its scores, and what its reasoning needs.
#[pyclass(module = "srs_native", frozen)]
pub struct Seen {
    #[pyo3(get)]
    word_type_scores: Vec<f64>,
    #[pyo3(get)]
    char_type_scores: Vec<f64>,
    #[pyo3(get)]
    priority_scores: Vec<f64>,
    #[pyo3(get)]
    known_words: usize,
    #[pyo3(get)]
    content_words: usize,
    /// Words and character n-grams together, and how much the models know of the text.
    #[pyo3(get)]
    type_scores: Vec<f64>,
    /// With a calibration: ``1 - exp(-known_words / evidence_scale)`` (else None) …
    #[pyo3(get)]
    evidence: Option<f64>,
    /// … both distributions and the label each picks (else None).
    #[pyo3(get)]
    type_probs: Option<Vec<f64>>,
    #[pyo3(get)]
    priority_probs: Option<Vec<f64>>,
    #[pyo3(get)]
    top_type: Option<usize>,
    #[pyo3(get)]
    top_priority: Option<usize>,
    /// With a calibration and evidence of at least 0.5: the reasoning's terms for the picked
    /// type and priority (``classifier._readable``); else None.
    #[pyo3(get)]
    type_terms: Option<Vec<String>>,
    #[pyo3(get)]
    priority_terms: Option<Vec<String>>,
    /// Per model: (label, entry) of each found entry that favours a label, strongest first,
    /// ties by name.
    favours: [Vec<(i32, u32)>; 2],
    /// Each distinct stem with the word it first stood for: one buffer, and per stem the
    /// ends of the stem and of the word in it.
    words: String,
    ends: Vec<(u32, u32)>,
}

#[pymethods]
impl Seen {
    /// The entries of the features favouring label ``label`` of model ``model`` (0: type,
    /// 1: priority) over its strongest other label, strongest first, ties by name.
    fn favouring(&self, model: usize, label: i32) -> PyResult<Vec<u32>> {
        let Some(found) = self.favours.get(model) else {
            return Err(PyValueError::new_err("model is 0 (type) or 1 (priority)"));
        };
        Ok(found.iter().filter(|f| f.0 == label).map(|f| f.1).collect())
    }

    /// The token a stem first stood for in the ticket (None: no token of the ticket has it).
    fn surface(&self, stem: &str) -> Option<&str> {
        let mut start = 0usize;
        for &(stem_end, token_end) in &self.ends {
            let (s, t) = (stem_end as usize, token_end as usize);
            if &self.words[start..s] == stem {
                return Some(&self.words[s..t]);
            }
            start = t;
        }
        None
    }
}

fn ascii_tokens(text: &str) -> Vec<&str> {
    // `[A-Za-z0-9]+(?:'[A-Za-z0-9]+)?` found left to right (what `re.findall` returns).
    let b = text.as_bytes();
    let n = b.len();
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        if !b[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let start = i;
        while i < n && b[i].is_ascii_alphanumeric() {
            i += 1;
        }
        if i + 1 < n && b[i] == b'\'' && b[i + 1].is_ascii_alphanumeric() {
            i += 1;
            while i < n && b[i].is_ascii_alphanumeric() {
                i += 1;
            }
        }
        out.push(&text[start..i]);
    }
    out
}

/// `\b[A-Z]{4,}\b` on ASCII text: the words (maximal runs of `[A-Za-z0-9_]`) that are four
/// or more capitals and nothing else.
fn shouted_words(text: &str) -> Vec<&str> {
    let b = text.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !word(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        let mut capitals = true;
        while i < b.len() && word(b[i]) {
            capitals &= b[i].is_ascii_uppercase();
            i += 1;
        }
        if capitals && i - start >= 4 {
            out.push(&text[start..i]);
        }
    }
    out
}

fn has_four_capitals(text: &str) -> bool {
    let mut run = 0;
    for c in text.bytes() {
        run = if c.is_ascii_uppercase() { run + 1 } else { 0 };
        if run == 4 {
            return true;
        }
    }
    false
}

/// `features.stem`: plurals, -ing, -ed, -ly.
fn stem(word: &str) -> Cow<'_, str> {
    if word.len() <= 4 || word.starts_with('_') {
        return Cow::Borrowed(word);
    }
    for (suffix, replacement) in [
        ("ies", "y"),
        ("sses", "ss"),
        ("ing", ""),
        ("ed", ""),
        ("ly", ""),
        ("es", ""),
    ] {
        if word.ends_with(suffix) && word.len() - suffix.len() >= 3 {
            let kept = &word[..word.len() - suffix.len()];
            return if replacement.is_empty() {
                Cow::Borrowed(kept)
            } else {
                Cow::Owned(format!("{kept}{replacement}"))
            };
        }
    }
    if word.ends_with('s')
        && !(word.ends_with("ss") || word.ends_with("us") || word.ends_with("is"))
    {
        return Cow::Borrowed(&word[..word.len() - 1]);
    }
    Cow::Borrowed(word)
}

fn http_status(token: &str) -> bool {
    let b = token.as_bytes();
    b.len() == 3 && (b'1'..=b'5').contains(&b[0]) && b[1].is_ascii_digit() && b[2].is_ascii_digit()
}

impl Tables {
    /// `features._shape` of an ASCII token.
    fn shape<'a>(&'a self, token: &'a str) -> &'a str {
        let b = token.as_bytes();
        let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
        if digits == 0 || (!b.is_empty() && b.iter().all(u8::is_ascii_alphabetic)) {
            return token;
        }
        if digits == b.len() {
            if http_status(token) {
                return token;
            }
            if b.len() == 4 && (token.starts_with("19") || token.starts_with("20")) {
                return &self.shapes[0];
            }
            return &self.shapes[1];
        }
        if b.len() <= 3 {
            return token;
        }
        &self.shapes[2]
    }

    /// `features._normalised`: the words one token stands for.
    fn normalised<'a>(&'a self, raw: &'a str) -> Vec<&'a str> {
        if let Some(s) = self.sentinels.get(raw) {
            vec![s.as_str()]
        } else if let Some(words) = self.contractions.get(raw) {
            words.iter().map(String::as_str).collect()
        } else {
            vec![self.shape(raw.split('\'').next().unwrap_or(raw))]
        }
    }

    /// The id of a stem, learnt now if it is new.
    fn stem_id(&self, stems: &mut Vec<Stem>, ids: &mut HashMap<Box<str>, u32>, text: &str) -> u32 {
        if let Some(&id) = ids.get(text) {
            return id;
        }
        let stop = self.stop_words.contains(text);
        let content = self.words && !stop && text.len() > 1;
        let word = if content {
            self.vocabulary
                .get(format!("{}{}", self.prefixes[0], text).as_str())
                .copied()
        } else {
            None
        };
        let chars = match &self.chars {
            Some((grams, _)) => self.char_rows(grams, text),
            None => Box::new([]),
        };
        let id = stems.len() as u32;
        stems.push(Stem {
            text: text.into(),
            stop,
            content,
            word,
            chars,
        });
        ids.insert(text.into(), id);
        id
    }

    /// The type model's rows of a stem's character n-grams (`features.char_ngrams`).
    fn char_rows(&self, grams: &HashMap<String, u32>, stem: &str) -> Box<[u32]> {
        let mut rows = Vec::new();
        if self.stop_words.contains(stem) || stem.starts_with('_') {
            return rows.into();
        }
        let padded = format!("<{stem}>");
        let n = self.char_n;
        let mut key = String::with_capacity(self.prefixes[2].len() + n);
        // ASCII: every byte is a character.
        for i in 0..(padded.len() + 1).saturating_sub(n) {
            key.clear();
            key.push_str(&self.prefixes[2]);
            key.push_str(&padded[i..i + n]);
            if let Some(&row) = grams.get(key.as_str()) {
                rows.push(row);
            }
        }
        rows.into()
    }

    /// Whether the shouting style holds (`features._style`).
    fn shouting(&self, text: &str) -> bool {
        has_four_capitals(text)
            && shouted_words(text)
                .into_iter()
                .filter(|w| !self.acronyms.contains(*w))
                .count()
                >= 2
    }
}

/// Counts a readable feature once per ticket.
struct Readable<'a> {
    t: &'a Tables,
    seen: &'a mut [u32],
    ticket: u32,
    found: Vec<u32>,
    total: Vec<i128>,
}

impl Readable<'_> {
    fn mark(&mut self, name: &str) {
        if let Some(&e) = self.t.vocabulary.get(name) {
            self.mark_entry(e);
        }
    }

    fn mark_entry(&mut self, e: u32) {
        let seen = &mut self.seen[e as usize];
        if *seen != self.ticket {
            *seen = self.ticket;
            self.found.push(e);
            self.t.readable.add(&mut self.total, e);
        }
    }
}

#[pymethods]
impl Analyzer {
    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (*, stop_words, contractions, sentinels, acronyms, prefixes, shapes, lengths, style_names,
                        words, bigrams, style, char_n, vocabulary, known, leads, readable_rows, readable_prior,
                        readable_inverse, n_types, chars, char_rows, char_inverse))]
    fn new(
        stop_words: Vec<String>,
        contractions: Vec<(String, Vec<String>)>,
        sentinels: Vec<(String, String)>,
        acronyms: Vec<String>,
        prefixes: [String; 4],
        shapes: [String; 3],
        lengths: Vec<String>,
        style_names: [String; 3],
        words: bool,
        bigrams: bool,
        style: bool,
        char_n: usize,
        vocabulary: Vec<String>,
        known: Vec<bool>,
        leads: Vec<[(i32, f64); 2]>,
        readable_rows: Vec<Vec<i128>>,
        readable_prior: Vec<i128>,
        readable_inverse: f64,
        n_types: usize,
        chars: Option<Vec<String>>,
        char_rows: Vec<Vec<i128>>,
        char_inverse: f64,
    ) -> PyResult<Self> {
        let n = vocabulary.len();
        if known.len() != n
            || leads.len() != n
            || readable_rows.len() != n
            || lengths.len() != 5
            || char_n == 0
        {
            return Err(PyValueError::new_err("inconsistent vocabulary"));
        }
        let width = readable_prior.len();
        if width < n_types + 1 {
            return Err(PyValueError::new_err(
                "the readable rows are the types, the priorities, then known",
            ));
        }
        let readable = Table::new(readable_rows, width, readable_inverse)?;
        let chars = match chars {
            None => None,
            Some(names) => {
                if names.len() != char_rows.len() {
                    return Err(PyValueError::new_err("one row per character n-gram"));
                }
                let index: HashMap<String, u32> = names
                    .into_iter()
                    .enumerate()
                    .map(|(i, f)| (f, i as u32))
                    .collect();
                Some((index, Table::new(char_rows, n_types, char_inverse)?))
            }
        };
        let char_count = chars.as_ref().map_or(0, |(index, _)| index.len());
        let entries = vocabulary
            .iter()
            .zip(known)
            .zip(leads)
            .map(|((name, known), leads)| Entry {
                name: name.clone(),
                known,
                leads,
            })
            .collect();
        let t = Tables {
            stop_words: stop_words.into_iter().collect(),
            contractions: contractions.into_iter().collect(),
            sentinels: sentinels.into_iter().collect(),
            acronyms: acronyms.into_iter().collect(),
            prefixes,
            shapes,
            lengths,
            style_names,
            words,
            bigrams,
            style,
            char_n,
            vocabulary: vocabulary
                .into_iter()
                .enumerate()
                .map(|(i, f)| (f, i as u32))
                .collect(),
            entries,
            readable,
            readable_prior,
            n_types,
            chars,
        };
        let s = State {
            words: Words::default(),
            stem_seen: Vec::new(),
            entry_seen: vec![0; n],
            char_seen: vec![0; char_count],
            ticket: 0,
        };
        Ok(Analyzer { t, s, c: None })
    }

    /// Compute the distributions too (``TicketClassifier._distributions``), with these numbers.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (*, type_temperature, priority_temperature, evidence_scale, confidence, uniform,
                        priority_priors, is_other, parts, style_texts, reasoning_terms))]
    fn calibrate(
        &mut self,
        type_temperature: f64,
        priority_temperature: f64,
        evidence_scale: f64,
        confidence: Option<(Vec<f64>, f64)>,
        uniform: Vec<f64>,
        priority_priors: Vec<f64>,
        is_other: Vec<bool>,
        parts: Vec<Vec<String>>,
        style_texts: Vec<String>,
        reasoning_terms: usize,
    ) -> PyResult<()> {
        if parts.len() != self.t.entries.len() {
            return Err(PyValueError::new_err(
                "how each vocabulary entry reads, one per entry",
            ));
        }
        if uniform.len() != self.t.n_types || is_other.len() != self.t.n_types {
            return Err(PyValueError::new_err(
                "one uniform share and one catch-all flag per type",
            ));
        }
        if priority_priors.len() + self.t.n_types + 1 != self.t.readable_prior.len() {
            return Err(PyValueError::new_err("one prior per priority"));
        }
        self.c = Some(Calibration {
            type_temperature,
            priority_temperature,
            evidence_scale,
            confidence,
            uniform,
            priority_priors,
            is_other,
            parts,
            style_texts: style_texts.into_iter().collect(),
            reasoning_terms,
        });
        Ok(())
    }

    /// One ticket: ``folded`` is its text lower-cased with links, addresses and amounts
    /// replaced (``features.prepared``), ``text`` the text as written; both ASCII.
    fn see(&mut self, folded: &str, text: &str) -> PyResult<Seen> {
        if !folded.is_ascii() || !text.is_ascii() {
            return Err(PyValueError::new_err(
                "the compiled step reads ASCII text only",
            ));
        }
        let (t, st) = (&self.t, &mut self.s);
        st.ticket = st.ticket.wrapping_add(1);
        if st.ticket == 0 {
            st.stem_seen.fill(0);
            st.entry_seen.fill(0);
            st.char_seen.fill(0);
            st.ticket = 1;
        }
        let ticket = st.ticket;
        let w = &mut st.words;
        if w.tokens.len() >= CACHE_LIMIT
            || w.stems.len() >= CACHE_LIMIT
            || w.bigrams.len() >= CACHE_LIMIT
        {
            *w = Words::default();
            st.stem_seen.clear();
        }
        let Words {
            tokens,
            stems,
            stem_ids,
            bigrams,
        } = w;

        // The ticket's stems in order, and each distinct one once with the word it first
        // stood for (what a reasoning shows).
        let mut stream: Vec<u32> = Vec::new();
        let mut distinct: Vec<(u32, &str)> = Vec::new();
        for raw in ascii_tokens(folded) {
            if !tokens.contains_key(raw) {
                let parts: Box<[(Box<str>, u32)]> = t
                    .normalised(raw)
                    .into_iter()
                    .map(|word| {
                        (
                            Box::<str>::from(word),
                            t.stem_id(stems, stem_ids, &stem(word)),
                        )
                    })
                    .collect();
                tokens.insert(raw.into(), parts);
            }
        }
        st.stem_seen.resize(stems.len(), 0);
        for raw in ascii_tokens(folded) {
            for (word, id) in tokens[raw].iter() {
                stream.push(*id);
                let seen = &mut st.stem_seen[*id as usize];
                if *seen != ticket {
                    *seen = ticket;
                    distinct.push((*id, word));
                }
            }
        }

        let mut readable = Readable {
            t,
            seen: &mut st.entry_seen,
            ticket,
            found: Vec::new(),
            total: t.readable_prior.clone(),
        };
        let mut content_words = 0;
        for &(id, _) in &distinct {
            let s = &stems[id as usize];
            if s.content {
                content_words += 1;
                if let Some(e) = s.word {
                    readable.mark_entry(e);
                }
            }
        }
        if t.bigrams {
            for pair in stream.windows(2) {
                let (a, b) = (&stems[pair[0] as usize], &stems[pair[1] as usize]);
                if a.stop && b.stop {
                    continue;
                }
                let key = (u64::from(pair[0]) << 32) | u64::from(pair[1]);
                let entry = *bigrams.entry(key).or_insert_with(|| {
                    let name = format!("{}{} {}", t.prefixes[1], a.text, b.text);
                    t.vocabulary.get(name.as_str()).copied()
                });
                if let Some(e) = entry {
                    readable.mark_entry(e);
                }
            }
        }
        if t.style {
            readable.mark(&t.lengths[(stream.len() / 25).min(4)]);
            if t.shouting(text) {
                readable.mark(&t.style_names[0]);
            }
            if text.contains("!!") || text.contains("??") {
                readable.mark(&t.style_names[1]);
            }
            if text.contains('?') {
                readable.mark(&t.style_names[2]);
            }
        }
        let Readable { found, total, .. } = readable;
        let scores = t.readable.floats(&total);
        let known_words = found
            .iter()
            .filter(|&&e| t.entries[e as usize].known)
            .count();
        let mut favours: [Vec<(i32, u32)>; 2] = [Vec::new(), Vec::new()];
        for (model, favour) in favours.iter_mut().enumerate() {
            let mut leading: Vec<(f64, u32, i32)> = found
                .iter()
                .filter_map(|&e| {
                    let (label, margin) = t.entries[e as usize].leads[model];
                    (label >= 0).then_some((margin, e, label))
                })
                .collect();
            // Strongest first, ties by name (the Python reasoning's order).
            leading.sort_by(|a, b| {
                b.0.partial_cmp(&a.0)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then_with(|| {
                        t.entries[a.1 as usize]
                            .name
                            .cmp(&t.entries[b.1 as usize].name)
                    })
            });
            *favour = leading
                .into_iter()
                .map(|(_, e, label)| (label, e))
                .collect();
        }

        let char_type_scores = match &t.chars {
            None => vec![0.0; t.n_types],
            Some((_, table)) => {
                let mut total = vec![0i128; t.n_types];
                for &(id, _) in &distinct {
                    for &r in stems[id as usize].chars.iter() {
                        let seen = &mut st.char_seen[r as usize];
                        if *seen != ticket {
                            *seen = ticket;
                            table.add(&mut total, r);
                        }
                    }
                }
                table.floats(&total)
            }
        };

        let mut words = String::new();
        let mut ends = Vec::with_capacity(distinct.len());
        for &(id, word) in &distinct {
            words.push_str(&stems[id as usize].text);
            let stem_end = words.len() as u32;
            words.push_str(word);
            ends.push((stem_end, words.len() as u32));
        }
        let n = t.n_types;
        let word_type_scores = scores[..n].to_vec();
        let priority_scores = scores[n..scores.len() - 1].to_vec();
        let type_scores: Vec<f64> = word_type_scores
            .iter()
            .zip(&char_type_scores)
            .map(|(w, c)| w + c)
            .collect();
        let (mut type_probs, mut priority_probs, mut top_type, mut top_priority) =
            (None, None, None, None);
        let (mut type_terms, mut priority_terms) = (None, None);
        let mut evidence = None;
        if let Some(c) = &self.c {
            // `1.0 - math.exp(-known / evidence_scale)`
            let known_share = 1.0 - (-(known_words as f64) / c.evidence_scale).exp();
            evidence = Some(known_share);
            if let Some(d) = c.distributions(
                &type_scores,
                &word_type_scores,
                &priority_scores,
                known_words,
                content_words,
                known_share,
            ) {
                if known_share >= 0.5 {
                    // Each distinct stem → the word it first stood for (`_NativeSeen.surface`).
                    let surface: HashMap<&str, &str> = distinct
                        .iter()
                        .map(|&(id, word)| (&*stems[id as usize].text, word))
                        .collect();
                    type_terms = Some(c.readable(&favours[0], d.top_type as i32, &surface));
                    priority_terms = Some(c.readable(&favours[1], d.top_priority as i32, &surface));
                }
                type_probs = Some(d.types);
                priority_probs = Some(d.priorities);
                top_type = Some(d.top_type);
                top_priority = Some(d.top_priority);
            }
        }
        Ok(Seen {
            word_type_scores,
            char_type_scores,
            priority_scores,
            known_words,
            content_words,
            type_scores,
            evidence,
            type_probs,
            priority_probs,
            top_type,
            top_priority,
            type_terms,
            priority_terms,
            favours,
            words,
            ends,
        })
    }
}

/// Groups of needles, and which groups have one in a text: one pass over the text however
/// many needles (``agent_runtime.textscan.NeedleGroups``; Python's ``in`` searched the text
/// once per needle).
#[pyclass(module = "srs_native", frozen)]
pub struct NeedleGroups {
    automaton: aho_corasick::AhoCorasick,
    /// Per needle: its group.
    group_of: Vec<usize>,
    groups: usize,
}

#[pymethods]
impl NeedleGroups {
    #[new]
    fn new(groups: Vec<Vec<String>>) -> PyResult<Self> {
        let mut needles = Vec::new();
        let mut group_of = Vec::new();
        for (group, members) in groups.iter().enumerate() {
            for needle in members {
                needles.push(needle.as_str());
                group_of.push(group);
            }
        }
        let automaton = aho_corasick::AhoCorasick::new(&needles)
            .map_err(|e| PyValueError::new_err(format!("needles: {e}")))?;
        Ok(NeedleGroups {
            automaton,
            group_of,
            groups: groups.len(),
        })
    }

    /// Per group: whether one of its needles is a substring of ``text`` (overlaps included).
    fn present(&self, text: &str) -> Vec<bool> {
        let mut found = vec![false; self.groups];
        let mut left = self.groups;
        for m in self.automaton.find_overlapping_iter(text) {
            let group = self.group_of[m.pattern().as_usize()];
            if !found[group] {
                found[group] = true;
                left -= 1;
                if left == 0 {
                    break;
                }
            }
        }
        found
    }
}

/// ``math.fsum`` as computed here (to hold it to Python's); None for a value that is not finite.
#[pyfunction]
fn exact_sum(values: Vec<f64>) -> Option<f64> {
    fsum(&values)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Analyzer>()?;
    m.add_class::<Seen>()?;
    m.add_class::<NeedleGroups>()?;
    m.add_function(wrap_pyfunction!(exact_sum, m)?)?;
    Ok(())
}
