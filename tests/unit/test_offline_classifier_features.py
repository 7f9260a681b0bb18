"""Ticket text → features: normalisation that lets the classifier generalise."""

from __future__ import annotations

import re

import pytest

from agent_runtime.offline import features

pytestmark = pytest.mark.unit


def test_accents_and_case_are_folded() -> None:
    assert features.tokens("Réfund FAÇTURE") == ["refund", "facture"]


def test_amounts_links_addresses_and_ids_become_shapes() -> None:
    tokens = features.tokens(
        "Charged $49.99 and 1,140 USD, see https://x.io/a or mail bob@example.com re INV-2024-0113"
    )
    assert tokens.count(features.MONEY) == 2
    assert features.URL in tokens
    assert features.EMAIL in tokens
    assert features.YEAR in tokens and features.NUMBER in tokens
    assert "49" not in tokens


def test_http_statuses_and_short_codes_survive_but_long_codes_do_not() -> None:
    assert features.tokens("402 2fa E1043 0x80070005") == ["402", "2fa", features.CODE, features.CODE]


def test_contractions_and_chat_spelling_are_expanded() -> None:
    assert " ".join(features.tokens("I can't login, pls help u guys")) == "i can not login please help you guys"


def test_light_stemming_merges_inflections() -> None:
    assert {features.stem(w) for w in ("charges", "charged", "charging")} == {"charg"}
    assert features.stem("access") == "access"


def test_feature_families_are_namespaced() -> None:
    found = features.extract("REFUND now", "Why was I CHARGED twice??")
    assert "w:refund" in found
    assert "b:charg twice" in found
    assert "c:<ref" in found
    assert {"s:shouting", "s:repeated_punctuation", "s:question"} <= found


def test_families_can_be_switched_off() -> None:
    settings = features.FeatureSettings(bigrams=False, char_ngrams=False, style=False)
    assert features.extract("Refund", "charged twice", settings) == {"w:refund", "w:charg", "w:twice"}


def test_a_pattern_is_only_skipped_where_it_cannot_match() -> None:
    # tokens() runs the URL, e-mail and money patterns only on text holding what each match
    # needs; on random text from the characters those patterns care about, every match has it.
    import random

    rng = random.Random(5)
    alphabet = "a1٣$€£¥₹r@/.:-_, wxhtpscomneuodlbk\n"
    for _ in range(20_000):
        text = features.fold("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))))
        if features._URL_RE.search(text):
            assert "/" in text or "www." in text, text
        if features._EMAIL_RE.search(text):
            assert "@" in text, text
        if features._MONEY_RE.search(text):
            assert re.search(r"\d", text) and features._mentions_currency(text), text


def test_shouting_needs_two_words_in_capitals_that_are_not_acronyms() -> None:
    assert "s:shouting" in features.extract("URGENT", "PLEASE fix")
    assert "s:shouting" not in features.extract("GDPR and HIPAA", "SAML login")
    assert "s:shouting" not in features.extract("Urgent", "please fix")


def test_the_ascii_token_pattern_finds_what_the_unicode_one_finds_on_ascii_text() -> None:
    import random

    rng = random.Random(11)
    alphabet = "aZz09_'-. \n!?$B"
    for _ in range(5_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert features._ASCII_TOKEN_RE.findall(text) == features._TOKEN_RE.findall(text), text
    # Text that folding turns into ASCII with capitals (no lower-case form) is still ASCII text.
    assert features.tokens("ℌello ℍ") == ["Hello", "H"]


def test_ascii_tokens_by_translation_are_the_ascii_token_pattern() -> None:
    import random
    import string

    rng = random.Random(17)
    # Every ASCII character (controls and whitespace such as \x1f, which str.split() splits
    # on too), letters, apostrophes and spaces more often than the rest.
    alphabet = [chr(c) for c in range(128)] + list(string.ascii_lowercase) + ["'"] * 8 + [" "] * 10
    for _ in range(50_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert features._ascii_tokens(text) == features._ASCII_TOKEN_RE.findall(text), text


def test_the_currency_check_is_the_currency_pattern() -> None:
    import random
    import re

    pattern = re.compile(r"[$€£¥₹]|usd|eur|gbp|chf|aud|cad|dollar|euro|pound|buck")
    rng = random.Random(13)
    alphabet = "$€£¥₹usdergbpchfacdolinbk 1"
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        assert features._mentions_currency(text) == bool(pattern.search(text)), text
