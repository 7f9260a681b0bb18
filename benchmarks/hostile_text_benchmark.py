"""How long guardrails, ticket specifics and the classifier's tokeniser take on hostile text.

For each adversarial text of ``tests/unit/test_roles_hostile_text.py`` (repeated units
such as ``a.``, ``eyJ-``, ``pwd:``, ``1,``) it times one full guardrail check (with the same
text as the customer's own words), one specifics extraction and one tokenisation of the
offline classifier, at two sizes, and prints
seconds and the growth factor. Linear scanning shows as growth ≈ the size ratio (4×);
the old e-mail pattern grew ~16× per 4× on ``a.`` (~80 s at 300 KB).

    PYTHONPATH=. .venv/bin/python benchmarks/hostile_text_benchmark.py   # 100 KB and 400 KB
    PYTHONPATH=. .venv/bin/python benchmarks/hostile_text_benchmark.py --sizes 250000 1000000
"""

from __future__ import annotations

import argparse
import time

from tests.unit.test_roles_hostile_text import HOSTILE_UNITS, hostile, scan


def scan_seconds(text: str) -> float:
    started = time.perf_counter()
    scan(text)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs=2, default=[100_000, 400_000], help="two text sizes in characters")
    args = parser.parse_args()
    small, large = args.sizes
    print(f"{'input':>14} {small:>10,} {large:>10,}  growth (size x{large / small:g})")
    worst = (0.0, "")
    for unit in HOSTILE_UNITS:
        a, b = scan_seconds(hostile(unit, small)), scan_seconds(hostile(unit, large))
        worst = max(worst, (b, unit))
        print(f"{unit!r:>14} {a:9.3f}s {b:9.3f}s  x{b / a:.1f}")
    print(f"worst at {large:,} characters: {worst[0]:.2f}s ({worst[1]!r})")


if __name__ == "__main__":
    main()
