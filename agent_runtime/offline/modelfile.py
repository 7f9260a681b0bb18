"""A trained offline classifier on disk: one gzip-compressed JSON file in a directory.

``srs train --output DIR`` writes ``DIR/model.json.gz``; ``srs triage --model DIR`` and a
SupportAgent's ``spec.model.offline.modelRef`` (a ConfigMap mounted as a directory) read
it. The file holds the naive Bayes *counts* of both models (features seen in fewer than
two training tickets are dropped), the settings and the calibration — everything needed
to rebuild exactly the classifier that was trained, and small enough for a ConfigMap
(its limit is 1 MiB; a model trained on a few thousand tickets is a few hundred KiB).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
from collections.abc import Mapping
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any, Final

from agent_runtime.offline import features
from agent_runtime.offline.classifier import ClassifierSettings, ConfidenceModel, TicketClassifier
from agent_runtime.offline.naive_bayes import Counts, NaiveBayes, NaiveBayesSettings

MODEL_FILE: Final = "model.json.gz"
FORMAT: Final = "srs-offline-classifier/v1"
#: A ConfigMap (data plus binaryData) may hold at most 1 MiB.
CONFIG_MAP_LIMIT: Final = 1024 * 1024


class ModelFileError(ValueError):
    """The directory does not hold a usable model; the message says why."""


def _nb_settings_json(s: NaiveBayesSettings) -> dict[str, Any]:
    return {
        "alpha": s.alpha,
        "namespace_weights": dict(s.namespace_weights),
        "label_bias": dict(s.label_bias),
        "min_document_frequency": s.min_document_frequency,
    }


def _nb_settings(data: Mapping[str, Any]) -> NaiveBayesSettings:
    return NaiveBayesSettings(
        alpha=float(data["alpha"]),
        namespace_weights={str(k): float(v) for k, v in data["namespace_weights"].items()},
        label_bias={str(k): float(v) for k, v in data["label_bias"].items()},
        min_document_frequency=int(data.get("min_document_frequency", 1)),
    )


def to_json(classifier: TicketClassifier, metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The classifier as a JSON document (see the module docstring)."""
    s = classifier.settings
    confidence = classifier.confidence_model
    return {
        "format": FORMAT,
        "metadata": dict(metadata or {}),
        "settings": {
            "type_model": _nb_settings_json(s.type_model),
            "priority_model": _nb_settings_json(s.priority_model),
            "type_temperature": s.type_temperature,
            "priority_temperature": s.priority_temperature,
            "evidence_scale": s.evidence_scale,
            "confidence": None
            if confidence is None
            else {"weights": list(confidence.weights), "bias": confidence.bias},
        },
        "type_counts": classifier.type_counts.to_json(),
        "priority_counts": classifier.priority_counts.to_json(),
    }


def from_json(doc: Mapping[str, Any]) -> TicketClassifier:
    """Rebuild a classifier from :func:`to_json`'s document; :class:`ModelFileError` if it is not one."""
    if doc.get("format") != FORMAT:
        raise ModelFileError(f"not an offline classifier model (format {doc.get('format')!r}, expected {FORMAT})")
    try:
        raw = doc["settings"]
        conf = raw.get("confidence")
        settings = ClassifierSettings(
            feature_settings=features.FeatureSettings(),
            type_model=_nb_settings(raw["type_model"]),
            priority_model=_nb_settings(raw["priority_model"]),
            type_temperature=float(raw["type_temperature"]),
            priority_temperature=float(raw["priority_temperature"]),
            evidence_scale=float(raw["evidence_scale"]),
            confidence=None
            if conf is None
            else ConfidenceModel(tuple(float(w) for w in conf["weights"]), float(conf["bias"])),
        )
        type_model = NaiveBayes(Counts.from_json(doc["type_counts"]), settings.type_model)
        priority_model = NaiveBayes(Counts.from_json(doc["priority_counts"]), settings.priority_model)
        return TicketClassifier(type_model, priority_model, settings, settings.confidence)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ModelFileError(f"the model file is damaged: {exc}") from exc


def encode(classifier: TicketClassifier, metadata: Mapping[str, Any] | None = None) -> bytes:
    """The bytes of ``model.json.gz`` (reproducible: no timestamp in the gzip header)."""
    text = json.dumps(to_json(classifier, metadata), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)


def fits_config_map(data: bytes) -> bool:
    """Whether a model file fits a ConfigMap (``binaryData`` is base64: 4/3 of the bytes)."""
    return (len(data) + 2) // 3 * 4 <= CONFIG_MAP_LIMIT - 4096  # room for the object's metadata


def prune(classifier: TicketClassifier, min_document_frequency: int) -> TicketClassifier:
    """The classifier without features seen in fewer than ``min_document_frequency`` training
    tickets (the calibration is kept: rare features carry little of any decision)."""

    def keep(counts: Counts) -> Counts:
        features = {
            f: row for f, row in counts.features.items() if counts.document_frequency[f] >= min_document_frequency
        }
        df = {f: counts.document_frequency[f] for f in features}
        return Counts(counts.labels, counts.priors, features, df)

    s = classifier.settings
    settings = replace(
        s,
        type_model=replace(s.type_model, min_document_frequency=min_document_frequency),
        priority_model=replace(s.priority_model, min_document_frequency=min_document_frequency),
    )
    return TicketClassifier(
        NaiveBayes(keep(classifier.type_counts), settings.type_model),
        NaiveBayes(keep(classifier.priority_counts), settings.priority_model),
        settings,
        classifier.confidence_model,
    )


def shrink_to_fit(classifier: TicketClassifier) -> tuple[TicketClassifier, int | None]:
    """The classifier, pruned of its rarest features until its file fits a ConfigMap; and the
    document frequency it was pruned to (None when it fitted as it was, or never will)."""
    if fits_config_map(encode(classifier)):
        return classifier, None
    for min_df in range(max(classifier.settings.type_model.min_document_frequency, 1) + 1, 21):
        pruned = prune(classifier, min_df)
        if fits_config_map(encode(pruned)):
            return pruned, min_df
    return classifier, None


def save(classifier: TicketClassifier, directory: str | Path, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``DIR/model.json.gz`` (byte-for-byte reproducible)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / MODEL_FILE
    path.write_bytes(encode(classifier, metadata))
    return path


def load(directory: str | Path) -> TicketClassifier:
    """The classifier saved in ``directory``; :class:`ModelFileError` with the reason if there is none."""
    directory = Path(directory)
    path = directory / MODEL_FILE if directory.is_dir() else directory
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        doc = json.loads(gzip.decompress(data).decode("utf-8"))
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path} is not a gzip-compressed JSON model: {exc}") from exc
    if not isinstance(doc, dict):
        raise ModelFileError(f"{path} is not a model document")
    return from_json(doc)


def metadata(directory: str | Path) -> dict[str, Any]:
    """The metadata stored with a model (what it was trained on, cross-validated accuracy)."""
    path = Path(directory) / MODEL_FILE
    doc = json.loads(gzip.decompress(path.read_bytes()).decode("utf-8"))
    meta = doc.get("metadata") if isinstance(doc, dict) else None
    return dict(meta) if isinstance(meta, dict) else {}


def fingerprint(*parts: bytes) -> str:
    """A digest of what a model was built from (data, generator, code version)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:32]


@functools.cache
def load_default() -> TicketClassifier:
    """The model the project ships (``model/model.json.gz``, built by ``make model``), loaded once."""
    return load(Path(str(resources.files(__package__).joinpath("model"))))
