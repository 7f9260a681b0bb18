"""Training tickets the project writes itself: scenarios × ways of writing × urgency.

The hand-written set (``data/train.jsonl``) is one register: short support-inbox e-mails.
Tickets from elsewhere are written differently — one-line chats, long formal e-mails,
IT-desk forms, bug reports with stack traces, non-native English, typos — and a model that
has only seen one register is sure of itself for the wrong reasons. This module composes
tickets from three independent parts so that no part predicts the label on its own:

- a **scenario** (``scenarios.txt``): what the customer needs, with several ways of saying
  it, per type and with the priorities it may take;
- an **urgency** sentence for the chosen priority, shared by every type;
- a **style**: the wrapper (greeting, signature, form fields, template headings) and the
  surface (case, typos, non-native phrasing), also shared by every type.

Because wrappers and urgency phrases occur with every type, the model learns that they
say nothing about the type; because each scenario is told many ways, it learns the words
that do. Generation is deterministic (a seeded ``random.Random``): same seed, same set.
The tickets are synthetic; names and companies are invented.

    python -m srs_training.generate --count 6000 --seed 1 > generated.jsonl
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources

from srs_contracts.agent_config import Priority, TicketType
from srs_training.dataset import LabelledTicket

_PRIORITY_CODES = {"l": Priority.LOW, "m": Priority.MEDIUM, "h": Priority.HIGH, "c": Priority.CRITICAL}


@dataclass(frozen=True, slots=True)
class Scenario:
    """One thing a customer may need, told several ways."""

    type: TicketType
    priorities: tuple[Priority, ...]
    #: Whether a developer-style ticket of this scenario may carry a log or stack trace.
    technical_detail: bool
    subjects: tuple[str, ...]
    bodies: tuple[str, ...]


def parse_scenarios(text: str) -> list[Scenario]:
    """Scenario blocks of ``scenarios.txt`` (syntax in its header); ``ValueError`` names a bad line."""
    out: list[Scenario] = []
    head: tuple[TicketType, tuple[Priority, ...], bool] | None = None
    subjects: list[str] = []
    bodies: list[str] = []

    def close(line_no: int) -> None:
        if head is None:
            return
        if not subjects or not bodies:
            raise ValueError(f"scenarios.txt:{line_no}: a scenario needs '>' subjects and '-' bodies")
        out.append(Scenario(head[0], head[1], head[2], tuple(subjects), tuple(bodies)))

    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            close(n)
            parts = line[1:].split()
            try:
                priorities = tuple(_PRIORITY_CODES[c] for c in parts[1])
                head = (TicketType(parts[0]), priorities, "tech" in parts[2:])
            except (IndexError, KeyError, ValueError) as exc:
                raise ValueError(f"scenarios.txt:{n}: bad scenario header {line!r}") from exc
            subjects, bodies = [], []
        elif line.startswith(">"):
            subjects.extend(s.strip() for s in line[1:].split(" | ") if s.strip())
        elif line.startswith("-"):
            bodies.append(line[1:].strip())
        else:
            raise ValueError(f"scenarios.txt:{n}: expected '@', '>' or '-', got {line!r}")
    close(0)
    return out


@functools.cache
def scenarios() -> tuple[Scenario, ...]:
    """The shipped scenarios."""
    text = resources.files(__package__).joinpath("scenarios.txt").read_text(encoding="utf-8")
    return tuple(parse_scenarios(text))


# --- fillers ------------------------------------------------------------------------------

SLOTS: dict[str, tuple[str, ...]] = {
    "amount": (
        "$49",
        "€120.00",
        "£15.99",
        "89 USD",
        "$1,240",
        "12.50 EUR",
        "₹899",
        "$9.99",
        "€2.400",
        "$310.50",
        "CHF 75",
        "A$199",
        "£1,080",
        "$27",
        "€59",
    ),
    "plan": (
        "Pro plan",
        "business plan",
        "annual subscription",
        "premium membership",
        "Team plan",
        "enterprise licence",
        "monthly plan",
        "starter plan",
        "family plan",
        "yearly subscription",
    ),
    "product": (
        "the dashboard",
        "the web app",
        "the portal",
        "the CRM",
        "the analytics module",
        "the scheduling tool",
        "the booking system",
        "your platform",
        "the admin console",
        "the editor",
        "the inventory module",
        "the help desk",
    ),
    "app": (
        "iOS app",
        "Android app",
        "mobile app",
        "desktop app",
        "browser extension",
        "Mac app",
        "Windows client",
        "iPad app",
    ),
    "integration": (
        "Salesforce",
        "Slack",
        "Zapier",
        "HubSpot",
        "QuickBooks",
        "Shopify",
        "Jira",
        "Google Calendar",
        "Microsoft Teams",
        "Xero",
        "Stripe",
        "SAP",
        "Okta",
        "Outlook",
        "Dropbox",
        "Mailchimp",
    ),
    "error": (
        '"500 Internal Server Error"',
        "Error 0x80070005",
        "ERR_CONNECTION_TIMED_OUT",
        '"Something went wrong"',
        '"502 Bad Gateway"',
        "a NullPointerException",
        '"Unexpected token < in JSON"',
        "ECONNRESET",
        '"request timed out after 30s"',
        '"403 Forbidden"',
        '"SSL handshake failed"',
        '"error code E1043"',
        '"Oops! An unexpected error occurred"',
        '"database connection refused"',
    ),
    "n": ("2", "3", "5", "12", "25", "40", "150", "300", "1,200", "8", "60"),
    "when": (
        "since this morning",
        "since yesterday",
        "since the last update",
        "for two days now",
        "after the weekend",
        "since Monday",
        "since 9am",
        "since the maintenance window",
        "today",
        "since last night",
        "for the past hour",
        "since we upgraded",
    ),
    "order": (
        "order #48213",
        "order 1123-9981",
        "my order",
        "order ORD-55812",
        "order no. 77120",
        "my last order",
        "order A-3391",
    ),
    "invoice": (
        "invoice INV-2291",
        "invoice #10482",
        "the March invoice",
        "last month's invoice",
        "invoice 2024-0113",
        "our latest invoice",
        "the Q3 invoice",
    ),
    "card": (
        "my Visa",
        "my credit card",
        "my debit card",
        "my Mastercard",
        "the company card",
        "my Amex",
        "our corporate card",
        "my card",
    ),
    "version": ("4.2.1", "2.0", "11.3", "3.18.0", "5.1", "1.9.4"),
    "system": (
        "VPN",
        "Outlook",
        "SharePoint",
        "Teams",
        "ERP",
        "SAP",
        "Citrix",
        "intranet",
        "shared drive",
        "Jira",
        "Confluence",
        "HR portal",
        "remote desktop",
        "Wi-Fi",
    ),
    "device": ("laptop", "work phone", "iPad", "desktop PC", "Surface", "MacBook", "thin client", "ThinkPad"),
    "dept": (
        "Finance",
        "HR",
        "Sales",
        "Marketing",
        "Operations",
        "Legal",
        "Engineering",
        "Customer Success",
        "Procurement",
        "Logistics",
    ),
    "feature": (
        "dark mode",
        "CSV export",
        "bulk editing",
        "recurring tasks",
        "a Gantt view",
        "custom fields",
        "two-way sync with Outlook",
        "an API for reports",
        "keyboard shortcuts",
        "an offline mode",
        "multi-currency invoices",
        "granular permissions",
        "audit logs",
        "scheduled reports",
        "a Linux client",
        "a public roadmap",
        "time tracking",
        "e-signatures",
        "a kanban board",
        "custom branding on emails",
        "two calendars side by side",
        "an undo button",
        "saved filters",
        "bulk delete",
        "a read-only share link",
    ),
}

_NAMES = (
    "Maria Lopez",
    "Tom Becker",
    "Aisha Khan",
    "Kenji Sato",
    "Olga Petrova",
    "David Mensah",
    "Lucia Rossi",
    "Priya Nair",
    "Jonas Berg",
    "Fatima Haddad",
    "Sam Carter",
    "Chen Wei",
    "Ana Souza",
    "Liam O'Brien",
    "Nadia Rahman",
    "Pierre Martin",
    "Grace Okafor",
    "Mateo Garcia",
    "Emma Schulz",
    "Ravi Patel",
)
_COMPANIES = (
    "Northwind Traders",
    "Bluepeak Logistics",
    "Harbor & Co",
    "Kestrel Health",
    "Lumen Studio",
    "Orchard Retail",
    "Pinecrest Legal",
    "Quanta Labs",
    "Riverbend Foods",
    "Solace Dental",
    "Tidewater Freight",
    "Vantage Realty",
    "Willow Clinics",
    "Zephyr Media",
    "Acme Manufacturing",
)
_TITLES = (
    "Office Manager",
    "IT Administrator",
    "Head of Finance",
    "Operations Lead",
    "CTO",
    "Founder",
    "Accounts Payable",
    "Project Manager",
    "Senior Developer",
    "Customer",
)

_SLOT_RE = re.compile(r"<([a-z]+)>")
_CHOICE_RE = re.compile(r"\{([^{}]*)\}")


def expand(template: str, rng: random.Random) -> str:
    """Fill ``{a|b}`` choices and ``<slot>`` fillers."""
    text = _CHOICE_RE.sub(lambda m: rng.choice(m.group(1).split("|")), template)
    return _SLOT_RE.sub(lambda m: rng.choice(SLOTS[m.group(1)]) if m.group(1) in SLOTS else m.group(0), text)


# --- urgency: one pool per priority, the same for every type ------------------------------

URGENCY: dict[Priority, tuple[str, ...]] = {
    Priority.LOW: (
        "No rush.",
        "Just a question.",
        "Whenever you have time.",
        "Thanks in advance!",
        "Not urgent at all.",
        "Just curious.",
        "When you get a chance, thanks.",
        "",
        "Would appreciate an answer at some point.",
        "Low priority on our side.",
    ),
    Priority.MEDIUM: (
        "Could you please look into it?",
        "We have a workaround for now but it is annoying.",
        "Please check and let me know.",
        "It's not blocking us, but it needs fixing.",
        "I'd appreciate a reply this week.",
        "This has happened a few times now.",
        "",
        "Can someone have a look?",
    ),
    Priority.HIGH: (
        "I need this sorted today.",
        "This is blocking my work.",
        "Please treat this as urgent.",
        "I have a deadline tomorrow morning.",
        "Our team can't work until this is fixed.",
        "URGENT, please help asap!",
        "I need an answer before end of day.",
        "This is costing us money every hour.",
    ),
    Priority.CRITICAL: (
        "This affects every one of our users.",
        "Our whole company is affected right now.",
        "This is a production emergency, we are losing business every minute!!",
        "All of our customers are impacted.",
        "Please escalate immediately, this is critical.",
        "Hundreds of people are affected.",
        "This is a serious incident for us.",
    ),
}

# --- stack traces and logs for developer tickets ------------------------------------------

_TRACES = (
    'Traceback (most recent call last):\n  File "app/sync.py", line 88, in run\n    resp = client.fetch(page)\n'
    '  File "client/http.py", line 212, in fetch\n    raise HTTPError(status)\nclient.errors.HTTPError: 502',
    'java.lang.NullPointerException: Cannot invoke "String.length()" because "name" is null\n'
    "    at com.acme.export.CsvWriter.write(CsvWriter.java:57)\n    at com.acme.export.Job.run(Job.java:31)",
    "TypeError: Cannot read properties of undefined (reading 'id')\n    at renderRow (main.3f9a.js:1:48213)\n"
    "    at Array.map (<anonymous>)",
    "2024-05-14T09:12:03Z ERROR worker-3 request failed status=500 path=/v2/orders latency=30012ms\n"
    "2024-05-14T09:12:04Z ERROR worker-1 request failed status=500 path=/v2/orders latency=30008ms",
    'npm ERR! code ERESOLVE\nnpm ERR! ERESOLVE unable to resolve dependency tree\nnpm ERR! peer react@"^17"',
    "panic: runtime error: invalid memory address or nil pointer dereference\n"
    "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4b2f1a]\ngoroutine 1 [running]:",
    "curl -i https://api.example.com/v1/reports\nHTTP/1.1 503 Service Unavailable\nretry-after: 30",
    "E/AndroidRuntime: FATAL EXCEPTION: main\n    java.lang.IllegalStateException: Fragment not attached",
    'psql: error: connection to server at "db.internal" (10.0.0.12), port 5432 failed: timeout expired',
)


# --- styles ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Draft:
    """A ticket being written: its parts before a style puts them together."""

    scenario: Scenario
    priority: Priority
    subject: str
    sentences: tuple[str, ...]
    urgency: str


Style = Callable[[Draft, random.Random], tuple[str, str]]


def _join(sentences: Sequence[str]) -> str:
    return " ".join(s for s in sentences if s)


def _chat(d: Draft, rng: random.Random) -> tuple[str, str]:
    body = _join([d.sentences[0], d.urgency if rng.random() < 0.5 else ""])
    body = body.lower().rstrip(".") if rng.random() < 0.7 else body
    subject = rng.choice(("", "chat", "help", "question", "hi", d.subject.lower()))
    return subject, body


def _email(d: Draft, rng: random.Random) -> tuple[str, str]:
    name = rng.choice(_NAMES)
    greeting = rng.choice(("Hello,", "Hi team,", "Hi there,", "Dear Support,", "Good morning,", "Hey,", "Hi,"))
    closing = rng.choice(("Thanks,", "Kind regards,", "Best,", "Cheers,", "Thank you,", "Regards,"))
    signature = name if rng.random() < 0.5 else f"{name}\n{rng.choice(_TITLES)}, {rng.choice(_COMPANIES)}"
    body = f"{greeting}\n\n{_join([*d.sentences, d.urgency])}\n\n{closing}\n{signature}"
    return d.subject, body


_FORMAL_OPENERS = (
    "I hope this message finds you well.",
    "I am writing to bring the following matter to your attention.",
    "I am reaching out regarding an issue with our account.",
    "I am contacting you on behalf of our company.",
    "I would like to raise the following with your team.",
    "I am writing to request your assistance.",
)
_FORMAL_CLOSERS = (
    "Could you please look into this and advise on the next steps?",
    "I would greatly appreciate your assistance in resolving this matter.",
    "Please let me know if you need any further information from our side.",
    "Thank you for your prompt attention to this matter.",
    "I look forward to your response at your earliest convenience.",
)


def _formal(d: Draft, rng: random.Random) -> tuple[str, str]:
    name = rng.choice(_NAMES)
    parts = [
        rng.choice(
            ("Dear Customer Support Team,", "Dear Sir or Madam,", "Dear Support Team,", "To whom it may concern,")
        ),
        "",
        _join([rng.choice(_FORMAL_OPENERS), *d.sentences]),
        "",
        _join([d.urgency, rng.choice(_FORMAL_CLOSERS), rng.choice(_FORMAL_CLOSERS)]),
        "",
        f"{rng.choice(('Best regards,', 'Sincerely,', 'Yours faithfully,', 'Kind regards,'))}\n{name}\n"
        f"{rng.choice(_TITLES)}\n{rng.choice(_COMPANIES)}",
    ]
    subject = (
        d.subject if rng.random() < 0.6 else f"{rng.choice(('Inquiry', 'Request', 'Issue', 'Concern'))}: {d.subject}"
    )
    return subject, "\n".join(parts)


def _it_form(d: Draft, rng: random.Random) -> tuple[str, str]:
    fields = [
        f"Requester: {rng.choice(_NAMES)}",
        f"Department: {rng.choice(SLOTS['dept'])}",
        f"Location: {rng.choice(('HQ, floor 3', 'Remote', 'Warehouse', 'Branch office', 'Building B'))}",
        f"Category: {rng.choice(('Service request', 'Incident', 'Question', 'Request', 'General'))}",
        f"Impact: {rng.choice(('Single user', 'Department', 'Several users', 'Unknown'))}",
        f"Description: {_join([*d.sentences, d.urgency])}",
    ]
    return f"[Ticket] {d.subject}", "\n".join(fields)


def _bug_report(d: Draft, rng: random.Random) -> tuple[str, str]:
    if d.scenario.type is TicketType.FEATURE_REQUEST:
        body = (
            f"**Is your feature request related to a problem? Please describe.**\n{d.sentences[0]}\n\n"
            f"**Describe the solution you'd like**\n{_join(d.sentences[1:]) or d.subject}\n\n"
            "**Describe alternatives you've considered**\n"
            f"{rng.choice(('Doing it by hand.', 'A spreadsheet.', 'None.', 'A script that polls the API.'))}"
        )
        return d.subject, body
    parts = [f"**Describe the {rng.choice(('bug', 'issue', 'problem'))}**\n{_join(d.sentences)}"]
    if d.scenario.technical_detail and rng.random() < 0.8:
        parts.append(f"**Logs**\n```\n{rng.choice(_TRACES)}\n```")
    parts.append(
        "**Environment**\n"
        f"- OS: {rng.choice(('macOS 14', 'Windows 11', 'Ubuntu 22.04', 'iOS 17', 'Android 14'))}\n"
        f"- Version: {rng.choice(SLOTS['version'])}"
    )
    if d.urgency:
        parts.append(d.urgency)
    return d.subject, "\n\n".join(parts)


def _summary(d: Draft, rng: random.Random) -> tuple[str, str]:
    lead = rng.choice(
        (
            "Customer says:",
            "Caller reports:",
            "Chat transcript summary:",
            "Forwarded from sales:",
            "Note from the account manager:",
            "Web form message:",
        )
    )
    return d.subject, f"{lead} {_join([*d.sentences, d.urgency])}"


_NON_NATIVE = (
    (r"\bI can't\b", "I am not able to"),
    (r"\bI'm\b", "I am"),
    (r"\bdoesn't\b", "is not"),
    (r"\bthe\b ", ""),
    (r"\bhas been\b", "is"),
    (r"\bPlease\b", "Kindly"),
    (r"\bplease\b", "kindly"),
    (r"\bsince\b", "from"),
    (r"\bI want\b", "I am wanting"),
    (r"\bmy\b", "my"),
)
_NON_NATIVE_TAILS = (
    "Please do the needful.",
    "Kindly revert back soon.",
    "Waiting for your reply.",
    "Please help me in this regard.",
    "Thanking you.",
    "Sorry for my english.",
)


def _non_native(d: Draft, rng: random.Random) -> tuple[str, str]:
    text = _join([*d.sentences, d.urgency])
    for pattern, replacement in _NON_NATIVE:
        if rng.random() < 0.6:
            text = re.sub(pattern, replacement, text)
    greeting = rng.choice(("Hello sir,", "Dear team,", "Respected sir/madam,", "Hi,"))
    text = f"{greeting} {text} {rng.choice(_NON_NATIVE_TAILS)}"
    return d.subject, text


def _tweet(d: Draft, rng: random.Random) -> tuple[str, str]:
    body = f"@yourapp {d.sentences[0].lower()} {rng.choice(('😡', '🙏', '??', '!!', '', '🤔', 'smh'))}"
    return rng.choice(("tweet", "DM", "instagram DM", d.subject)), body.strip()


STYLES: dict[str, Style] = {
    "chat": _chat,
    "email": _email,
    "formal": _formal,
    "it_form": _it_form,
    "bug_report": _bug_report,
    "summary": _summary,
    "non_native": _non_native,
    "tweet": _tweet,
}
_STYLE_WEIGHTS = {
    "chat": 3,
    "email": 4,
    "formal": 3,
    "it_form": 1,
    "bug_report": 1,
    "summary": 1,
    "non_native": 2,
    "tweet": 1,
}


def typos(text: str, rng: random.Random, rate: float) -> str:
    """Swap, drop or double a letter in about ``rate`` of the longer words."""

    def mangle(m: re.Match[str]) -> str:
        w = m.group(0)
        if rng.random() >= rate:
            return w
        i = rng.randrange(1, len(w) - 1)
        op = rng.randrange(3)
        if op == 0:
            return w[:i] + w[i + 1] + w[i] + w[i + 2 :]
        if op == 1:
            return w[:i] + w[i + 1 :]
        return w[:i] + w[i] + w[i:]

    return re.sub(r"[A-Za-z]{5,}", mangle, text)


def generate(count: int, seed: int = 1) -> list[LabelledTicket]:
    """``count`` tickets, types balanced, deterministic for a seed."""
    rng = random.Random(seed)
    by_type: dict[TicketType, list[Scenario]] = {}
    for s in scenarios():
        by_type.setdefault(s.type, []).append(s)
    styles = [name for name, weight in _STYLE_WEIGHTS.items() for _ in range(weight)]
    out: list[LabelledTicket] = []
    types = list(TicketType)
    for i in range(count):
        scenario = rng.choice(by_type[types[i % len(types)]])
        priority = rng.choice(scenario.priorities)
        style_name = rng.choice(styles)
        if style_name == "bug_report" and scenario.type not in (TicketType.TECHNICAL, TicketType.FEATURE_REQUEST):
            style_name = "email"
        first, *rest = rng.sample(scenario.bodies, len(scenario.bodies))
        sentences = [expand(first, rng)]
        if rest and rng.random() < 0.4:
            sentences.append(expand(rest[0], rng))
        draft = Draft(
            scenario=scenario,
            priority=priority,
            subject=expand(rng.choice(scenario.subjects), rng),
            sentences=tuple(sentences),
            urgency=rng.choice(URGENCY[priority]),
        )
        subject, body = STYLES[style_name](draft, rng)
        if rng.random() < 0.25:
            rate = rng.choice((0.05, 0.1, 0.2))
            subject, body = typos(subject, rng, rate), typos(body, rng, rate)
        out.append(LabelledTicket(f"gen-{i:05d}", subject, body, scenario.type, priority))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m srs_training.generate", description=__doc__)
    parser.add_argument("--count", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    for t in generate(args.count, args.seed):
        record = {"id": t.id, "subject": t.subject, "body": t.body, "type": t.type.value, "priority": str(t.priority)}
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
