"""The embedded default provider: no network, deterministic, fast.

Triage uses the project's text classifier (:mod:`agent_runtime.offline.classifier`,
trained on the labelled ticket set the project ships). Specialists fill a jinja2
template per specialty (``templates/<specialty>.txt.j2``) with the ticket's specifics:
the customer's name, the amounts, invoice/order references, products and error codes
the ticket mentions.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any, Final, Protocol

import jinja2

from agent_runtime.providers.base import CallMetrics, DraftRequest, ProviderConfigError
from agent_runtime.providers.specifics import extract
from agent_runtime.tickets import Ticket, TriageDecision, parse_confidence, parse_ticket_type
from srs_contracts.agent_config import Priority, TicketType

log = logging.getLogger(__name__)

PROVIDER_NAME: Final = "offline"
_MODELFILE_MODULE: Final = "agent_runtime.offline.modelfile"
_ACCOUNT_TAGS: Final = frozenset({"two_factor", "password", "locked", "email_change", "delete_account", "users"})


class Prediction(Protocol):
    """What the offline classifier answers for one ticket."""

    @property
    def type(self) -> TicketType: ...
    @property
    def priority(self) -> Priority: ...
    @property
    def confidence(self) -> float: ...
    @property
    def reasoning(self) -> str: ...


class Classifier(Protocol):
    """The offline text classifier (:func:`agent_runtime.offline.modelfile.load_default`)."""

    def predict(self, subject: str, body: str) -> Prediction: ...


@cache
def load_default_classifier() -> Classifier:
    """The classifier the project ships, loaded once per process."""
    module = importlib.import_module(_MODELFILE_MODULE)
    classifier: Classifier = module.load_default()
    return classifier


def load_trained_classifier(directory: str) -> Classifier:
    """A classifier trained by ``srs train`` (``ValueError`` with the reason when it cannot be loaded)."""
    module = importlib.import_module(_MODELFILE_MODULE)
    classifier: Classifier = module.load(directory)
    return classifier


def _and_list(values: Iterable[str]) -> str:
    items = [str(v) for v in values]
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


@cache
def template_environment() -> jinja2.Environment:
    """The jinja2 environment of the response templates (plain text, strict about undefined names)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("agent_runtime.providers", "templates"),
        autoescape=False,  # noqa: S701 - plain-text e-mails, not HTML: escaping would corrupt them
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        undefined=jinja2.StrictUndefined,
        # Package data, never edited while the agent runs: no stat() of the file on every draft.
        auto_reload=False,
    )
    env.filters["and_list"] = _and_list
    return env


@cache
def _template(specialty: str) -> jinja2.Template:
    """A specialty's response template, looked up once (``get_template`` takes the
    environment's cache lock on every call)."""
    return template_environment().get_template(f"{specialty}.txt.j2")


_PARAGRAPH_BREAK: Final = re.compile(r"\n\s*\n")
_LIST_ITEM: Final = re.compile(r"^\d+\. ")


def _reflow(text: str) -> str:
    # Template lines of one paragraph become one line; numbered steps and the sign-off
    # ("Best regards,\nThe Support Team") keep their lines.
    paragraphs = []
    for paragraph in _PARAGRAPH_BREAK.split(text.strip()):
        lines = [line.strip() for line in paragraph.splitlines() if line.strip()]
        if any(_LIST_ITEM.match(line) for line in lines) or (lines and lines[0].endswith(",")):
            paragraphs.append("\n".join(lines))
        elif lines:
            paragraphs.append(" ".join(lines))
    return "\n\n".join(paragraphs) + "\n"


def render_draft(
    ticket: Ticket, triage: TriageDecision, specialty: TicketType, customer: Mapping[str, Any] | None = None
) -> str:
    """The offline reply of the ``specialty`` specialist to ``ticket``."""
    template = _template(specialty.value)
    specifics = extract(ticket, customer)
    text = template.render(
        s=specifics,
        priority=triage.priority.value,
        ticket_id=ticket.ticket_id,
        specialty=specialty.value,
        account_topic=bool(specifics.tags & _ACCOUNT_TAGS),
    )
    return _reflow(text)


class OfflineProvider:
    """Classifier for triage, templates for drafts; no I/O, so no retries and no timeouts."""

    def __init__(
        self,
        *,
        agent: str,
        model: str = "offline-v1",
        classifier: Classifier | None = None,
        model_dir: str | None = None,
    ) -> None:
        self._classifier = classifier
        self._model = model
        self._model_dir = model_dir
        self._metrics = CallMetrics(agent, PROVIDER_NAME)

    @property
    def name(self) -> str:
        return PROVIDER_NAME

    @property
    def model(self) -> str:
        return self._model

    def _loaded_classifier(self) -> Classifier:
        if self._classifier is None:
            self._classifier = (
                load_default_classifier() if self._model_dir is None else load_trained_classifier(self._model_dir)
            )
        return self._classifier

    def warm_up(self) -> None:
        """Load the classifier now rather than on the first ticket (a bad model directory fails here:
        :class:`ProviderConfigError` with the reason)."""
        try:
            classifier = self._loaded_classifier()
        except ValueError as exc:
            raise ProviderConfigError(f"offline model {self._model_dir}: {exc}") from exc
        # Which path ASCII tickets take: the compiled step (native/) or Python only (slower).
        log.info("offline classifier loaded", extra={"compiled": bool(getattr(classifier, "compiled", False))})

    async def classify(self, ticket: Ticket) -> TriageDecision:
        classifier = self._loaded_classifier()
        async with self._metrics.observe("classify"):
            prediction = classifier.predict(ticket.subject, ticket.body)
        # The shipped classifier answers with the enums themselves: no parsing needed for those.
        ticket_type = (
            prediction.type
            if isinstance(prediction.type, TicketType)
            else parse_ticket_type(str(getattr(prediction.type, "value", prediction.type)))
        )
        confidence = parse_confidence(prediction.confidence)
        if ticket_type is None or confidence is None:
            self._metrics.error("invalid_output")
        priority = prediction.priority if isinstance(prediction.priority, Priority) else Priority(prediction.priority)
        return TriageDecision(
            type=ticket_type,
            priority=priority,
            confidence=confidence if confidence is not None and ticket_type is not None else 0.0,
            reasoning=prediction.reasoning,
        )

    async def draft(self, request: DraftRequest) -> str:
        async with self._metrics.observe("draft"):
            return render_draft(request.ticket, request.triage, request.specialty, request.customer)

    async def aclose(self) -> None:
        return None
