"""The text corruptions do what they say, at the rate they say: a no-op would pass a determinism test."""
import numpy as np
import pytest

from tunewright.analysis.robustness import TEXT_CORRUPTIONS, char_noise, corrupt_texts, word_dropout


def _edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def test_char_noise_edits_about_p_of_the_letters_and_never_the_spaces():
    rng = np.random.default_rng(0)
    text = "a" * 20000
    out = char_noise(text, 0.15, rng)
    # substitutions and insertions (p/3 each) bring in a letter other than 'a' 25 times in 26
    other = sum(ch != "a" for ch in out) / len(text)
    assert other == pytest.approx(2 * 0.15 / 3 * 25 / 26, abs=0.01)
    # deletions and insertions are equally likely: the length stays about the same
    assert abs(len(out) - len(text)) < 0.02 * len(text)
    assert char_noise(text, 0.0, rng) == text
    words = " ".join(["the quick brown fox"] * 200)
    assert char_noise(words, 0.5, np.random.default_rng(1)).count(" ") == words.count(" ")


def test_char_noise_distance_grows_with_severity_at_the_stated_rate():
    texts = ["the quick brown fox jumps over the lazy dog"] * 100
    letters = sum(len(t.replace(" ", "")) for t in texts)
    for severity, p in enumerate(TEXT_CORRUPTIONS["char_noise"], 1):
        noisy = corrupt_texts(texts, "char_noise", severity, seed=3)
        rate = sum(_edit_distance(a, b) for a, b in zip(texts, noisy)) / letters
        # each edit costs one (a substitution to the same letter, 1 in 26, costs none)
        assert 0.6 * p < rate < 1.4 * p, (severity, p, rate)


def test_word_dropout_removes_about_p_of_the_words_and_keeps_their_order():
    text = " ".join(f"w{i}" for i in range(5000))
    kept = word_dropout(text, 0.25, np.random.default_rng(0)).split()
    assert len(kept) / 5000 == pytest.approx(0.75, abs=0.02)
    assert kept == sorted(kept, key=lambda w: int(w[1:]))
    assert word_dropout("one two", 1.0, np.random.default_rng(0)) == "one"       # never empty
