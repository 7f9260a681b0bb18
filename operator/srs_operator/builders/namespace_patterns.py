"""Namespace patterns as kopf reads them: pure, no I/O.

``--namespace`` takes kopf-style patterns (``srs-*``, ``!kube-*``, ``team-*, !*-pr-*``);
:func:`matches` evaluates them the way kopf does (the TicketTopic prefix rules use it).
"""

from __future__ import annotations

import fnmatch


def matches(namespace: str, pattern: str) -> bool:
    """kopf's pattern semantics: comma-separated globs, ``!`` excludes, a leading exclusion
    implies a preceding ``*``; a later inclusive glob re-admits what an exclusion removed."""
    globs = [g.strip() for g in pattern.split(",") if g.strip()]
    if not globs or globs[0].startswith("!"):
        globs.insert(0, "*")
    matched = first = fnmatch.fnmatchcase(namespace, globs[0])
    for glob in globs[1:]:
        if glob.startswith("!"):
            matched = matched and not fnmatch.fnmatchcase(namespace, glob[1:])
        elif first:
            matched = matched or fnmatch.fnmatchcase(namespace, glob)
    return matched
