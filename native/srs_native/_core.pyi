# The compiled module's interface (src/lib.rs), for type checkers.
from collections.abc import Sequence

class Seen:
    word_type_scores: list[float]
    char_type_scores: list[float]
    priority_scores: list[float]
    known_words: int
    content_words: int
    type_scores: list[float]
    evidence: float | None
    type_probs: list[float] | None
    priority_probs: list[float] | None
    top_type: int | None
    top_priority: int | None
    type_terms: list[str] | None
    priority_terms: list[str] | None
    def favouring(self, model: int, label: int) -> list[int]: ...
    def surface(self, stem: str) -> str | None: ...

class Analyzer:
    def __init__(
        self,
        *,
        stop_words: Sequence[str],
        contractions: Sequence[tuple[str, Sequence[str]]],
        sentinels: Sequence[tuple[str, str]],
        acronyms: Sequence[str],
        prefixes: Sequence[str],
        shapes: Sequence[str],
        lengths: Sequence[str],
        style_names: Sequence[str],
        words: bool,
        bigrams: bool,
        style: bool,
        char_n: int,
        vocabulary: Sequence[str],
        known: Sequence[bool],
        leads: Sequence[tuple[tuple[int, float], tuple[int, float]]],
        readable_rows: Sequence[Sequence[int]],
        readable_prior: Sequence[int],
        readable_inverse: float,
        n_types: int,
        chars: Sequence[str] | None,
        char_rows: Sequence[Sequence[int]],
        char_inverse: float,
    ) -> None: ...
    def calibrate(
        self,
        *,
        type_temperature: float,
        priority_temperature: float,
        evidence_scale: float,
        confidence: tuple[Sequence[float], float] | None,
        uniform: Sequence[float],
        priority_priors: Sequence[float],
        is_other: Sequence[bool],
        parts: Sequence[Sequence[str]],
        style_texts: Sequence[str],
        reasoning_terms: int,
    ) -> None: ...
    def see(self, folded: str, text: str) -> Seen: ...

class NeedleGroups:
    def __init__(self, groups: Sequence[Sequence[str]]) -> None: ...
    def present(self, text: str) -> list[bool]: ...

def exact_sum(values: Sequence[float]) -> float | None: ...
