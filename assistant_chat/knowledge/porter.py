"""Mirror of SQLite FTS5's ``porter unicode61 remove_diacritics 2`` tokenizer for one word, so that
document-frequency lookups in an ``fts5vocab`` table use exactly the token FTS5 stores in its index.
Standard library only: this module imports nothing from Django.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from functools import lru_cache

__all__ = ["FTS5_PORTER_MAX_TOKEN", "fts5_token", "fts5_token_bytes"]

# ---------------------------------------------------------------------------------------------------------------
# unicode61 folding (ext/fts5/fts5_unicode2.c, sqlite3Fts5UnicodeFold with eRemoveDiacritic=2).
#
# unicode61 folds case with its own (older) Unicode tables rather than Python's str.lower(), and its diacritic
# removal is a fixed table, not a normalisation: "ß", "æ", "ø", "ı", "œ", "ł" stay as they are, ligatures
# ("ﬁ"), full-width letters and superscripts are not decomposed, and only BMP code points (plus Deseret) fold.
# The tables below are SQLite's, so the result is the same code point by code point.
# ---------------------------------------------------------------------------------------------------------------

# (first code point, flags, range length): the case-folding rules. Low bit of flags set means the rule applies
# to every second code point only; flags >> 1 indexes _FOLD_OFFSETS.
# fmt: off
_FOLD_RULES: tuple[tuple[int, int, int], ...] = (
    (65, 14, 26), (181, 64, 1), (192, 14, 23), (216, 14, 7), (256, 1, 48), (306, 1, 6),
    (313, 1, 16), (330, 1, 46), (376, 116, 1), (377, 1, 6), (383, 104, 1), (385, 50, 1),
    (386, 1, 4), (390, 44, 1), (391, 0, 1), (393, 42, 2), (395, 0, 1), (398, 32, 1),
    (399, 38, 1), (400, 40, 1), (401, 0, 1), (403, 42, 1), (404, 46, 1), (406, 52, 1),
    (407, 48, 1), (408, 0, 1), (412, 52, 1), (413, 54, 1), (415, 56, 1), (416, 1, 6),
    (422, 60, 1), (423, 0, 1), (425, 60, 1), (428, 0, 1), (430, 60, 1), (431, 0, 1),
    (433, 58, 2), (435, 1, 4), (439, 62, 1), (440, 0, 1), (444, 0, 1), (452, 2, 1),
    (453, 0, 1), (455, 2, 1), (456, 0, 1), (458, 2, 1), (459, 1, 18), (478, 1, 18),
    (497, 2, 1), (498, 1, 4), (502, 122, 1), (503, 134, 1), (504, 1, 40), (544, 110, 1),
    (546, 1, 18), (570, 70, 1), (571, 0, 1), (573, 108, 1), (574, 68, 1), (577, 0, 1),
    (579, 106, 1), (580, 28, 1), (581, 30, 1), (582, 1, 10), (837, 36, 1), (880, 1, 4),
    (886, 0, 1), (902, 18, 1), (904, 16, 3), (908, 26, 1), (910, 24, 2), (913, 14, 17),
    (931, 14, 9), (962, 0, 1), (975, 4, 1), (976, 140, 1), (977, 142, 1), (981, 146, 1),
    (982, 144, 1), (984, 1, 24), (1008, 136, 1), (1009, 138, 1), (1012, 130, 1), (1013, 128, 1),
    (1015, 0, 1), (1017, 152, 1), (1018, 0, 1), (1021, 110, 3), (1024, 34, 16), (1040, 14, 32),
    (1120, 1, 34), (1162, 1, 54), (1216, 6, 1), (1217, 1, 14), (1232, 1, 88), (1329, 22, 38),
    (4256, 66, 38), (4295, 66, 1), (4301, 66, 1), (7680, 1, 150), (7835, 132, 1), (7838, 96, 1),
    (7840, 1, 96), (7944, 150, 8), (7960, 150, 6), (7976, 150, 8), (7992, 150, 8), (8008, 150, 6),
    (8025, 151, 8), (8040, 150, 8), (8072, 150, 8), (8088, 150, 8), (8104, 150, 8), (8120, 150, 2),
    (8122, 126, 2), (8124, 148, 1), (8126, 100, 1), (8136, 124, 4), (8140, 148, 1), (8152, 150, 2),
    (8154, 120, 2), (8168, 150, 2), (8170, 118, 2), (8172, 152, 1), (8184, 112, 2), (8186, 114, 2),
    (8188, 148, 1), (8486, 98, 1), (8490, 92, 1), (8491, 94, 1), (8498, 12, 1), (8544, 8, 16),
    (8579, 0, 1), (9398, 10, 26), (11264, 22, 47), (11360, 0, 1), (11362, 88, 1), (11363, 102, 1),
    (11364, 90, 1), (11367, 1, 6), (11373, 84, 1), (11374, 86, 1), (11375, 80, 1), (11376, 82, 1),
    (11378, 0, 1), (11381, 0, 1), (11390, 78, 2), (11392, 1, 100), (11499, 1, 4), (11506, 0, 1),
    (42560, 1, 46), (42624, 1, 24), (42786, 1, 14), (42802, 1, 62), (42873, 1, 4), (42877, 76, 1),
    (42878, 1, 10), (42891, 0, 1), (42893, 74, 1), (42896, 1, 4), (42912, 1, 10), (42922, 72, 1),
    (65313, 14, 26),
)
_FOLD_OFFSETS: tuple[int, ...] = (
    1, 2, 8, 15, 16, 26, 28, 32, 37, 38, 40, 48, 63, 64, 69, 71,
    79, 80, 116, 202, 203, 205, 206, 207, 209, 210, 211, 213, 214, 217, 218, 219,
    775, 7264, 10792, 10795, 23228, 23256, 30204, 54721, 54753, 54754, 54756, 54787, 54793, 54809, 57153, 57274,
    57921, 58019, 58363, 61722, 65268, 65341, 65373, 65406, 65408, 65410, 65415, 65424, 65436, 65439, 65450, 65462,
    65472, 65476, 65478, 65480, 65482, 65488, 65506, 65511, 65514, 65521, 65527, 65528, 65529,
)
# Diacritic removal: each key is (first code point << 3) | (range length - 1); _DIACRITIC_BASE gives the
# letter the range maps to (0 deletes the character). A base with the high bit set applies only in
# remove_diacritics=2 mode (characters carrying more than one diacritic), which is the mode used here.
_DIACRITIC_KEYS: tuple[int, ...] = (
    0, 1797, 1848, 1859, 1891, 1928, 1940, 1995, 2024, 2040, 2060, 2110, 2168, 2206, 2264, 2286,
    2344, 2383, 2472, 2488, 2516, 2596, 2668, 2732, 2782, 2842, 2894, 2954, 2984, 3000, 3028, 3336,
    3456, 3696, 3712, 3728, 3744, 3766, 3832, 3896, 3912, 3928, 3944, 3968, 4008, 4040, 4056, 4106,
    4138, 4170, 4202, 4234, 4266, 4296, 4312, 4344, 4408, 4424, 4442, 4472, 4488, 4504, 6148, 6198,
    6264, 6280, 6360, 6429, 6505, 6529, 61448, 61468, 61512, 61534, 61592, 61610, 61642, 61672, 61688, 61704,
    61726, 61784, 61800, 61816, 61836, 61880, 61896, 61914, 61948, 61998, 62062, 62122, 62154, 62184, 62200, 62218,
    62252, 62302, 62364, 62410, 62442, 62478, 62536, 62554, 62584, 62604, 62640, 62648, 62656, 62664, 62730, 62766,
    62830, 62890, 62924, 62974, 63032, 63050, 63082, 63118, 63182, 63242, 63274, 63310, 63368, 63390,
)
_H = 0x80
_DIACRITIC_BASE: bytes = bytes(
    [
        0, 97, 99, 101, 105, 110, 111, 117, 121, 121, 97, 99,  # \0 a c e i n o u y y a c
        100, 101, 101, 103, 104, 105, 106, 107, 108, 110, 111, 114,  # d e e g h i j k l n o r
        115, 116, 117, 117, 119, 121, 122, 111, 117, 97, 105, 111,  # s t u u w y z o u a i o
        117, 117 | _H, 97 | _H, 103, 107, 111, 111 | _H, 106, 103, 110, 97 | _H, 97,  # u u* a* g k o o* j g n a* a
        101, 105, 111, 114, 117, 115, 116, 104, 97, 101, 111 | _H, 111,  # e i o r u s t h a e o* o
        111 | _H, 121, 0, 0, 0, 0, 0, 0, 0, 0, 97, 98,  # o* y \0 x8 a b
        99 | _H, 100, 100, 101 | _H, 101, 101 | _H, 102, 103, 104, 104, 105, 105 | _H,  # c* d d e* e e* f g h h i i*
        107, 108, 108 | _H, 108, 109, 110, 111 | _H, 112, 114, 114 | _H, 114, 115,  # k l l* l m n o* p r r* r s
        115 | _H, 116, 117, 117 | _H, 118, 119, 119, 120, 121, 122, 104, 116,  # s* t u u* v w w x y z h t
        119, 121, 97, 97 | _H, 97 | _H, 97 | _H, 101, 101 | _H, 101 | _H, 105, 111, 111 | _H,  # w y a a* a* a* e e* e* i o o*
        111 | _H, 111 | _H, 117, 117 | _H, 117 | _H, 121,  # o* o* u u* u* y
    ]
)
# fmt: on
assert len(_DIACRITIC_BASE) == len(_DIACRITIC_KEYS)


def _remove_diacritic(c: int) -> int:
    i = bisect_right(_DIACRITIC_KEYS, (c << 3) | 7) - 1
    key = _DIACRITIC_KEYS[i]
    if c > (key >> 3) + (key & 7):
        return c
    return _DIACRITIC_BASE[i] & 0x7F


_FOLD_STARTS = tuple(rule[0] for rule in _FOLD_RULES)


def _fold_code_point(c: int) -> int:
    """sqlite3Fts5UnicodeFold(c, 2): the folded code point, 0 when the character is dropped."""
    if c < 128:
        return c + 32 if 65 <= c <= 90 else c
    if c < 65536:
        start, flags, length = _FOLD_RULES[bisect_right(_FOLD_STARTS, c) - 1]
        if c < start + length and not (flags & (start ^ c) & 1):
            c = (c + _FOLD_OFFSETS[flags >> 1]) & 0xFFFF
        return _remove_diacritic(c)
    if 66560 <= c < 66600:  # Deseret, the only non-BMP script unicode61 folds
        return c + 40
    return c


def _build_fold_table() -> dict[int, int | None]:
    # Every code point that does not fold to itself lies in a case-folding range or a diacritic range.
    candidates: set[int] = set(range(66560, 66600))
    for start, _flags, length in _FOLD_RULES:
        candidates.update(range(start, start + length))
    for key in _DIACRITIC_KEYS[1:]:
        candidates.update(range(key >> 3, (key >> 3) + (key & 7) + 1))
    table: dict[int, int | None] = {}
    for c in sorted(candidates):
        folded = _fold_code_point(c)
        if folded != c:
            table[c] = folded or None  # None makes str.translate drop the character
    return table


_FOLD_TABLE = _build_fold_table()


def _fold(word: str) -> str:
    if word.isascii():
        return word.lower()  # unicode61 folds A-Z only in ASCII, as str.lower() does
    return word.translate(_FOLD_TABLE)


# ---------------------------------------------------------------------------------------------------------------
# FTS5's porter stemmer (ext/fts5/fts5_tokenize.c, fts5PorterCb and the fts5Porter* helpers).
#
# FTS5 stems every token whose folded UTF-8 form is 3..FTS5_PORTER_MAX_TOKEN bytes long -- digits and non-ASCII
# included (unlike FTS3's porter, which copies such tokens unchanged). It works on bytes: a non-ASCII byte is a
# consonant. The stemmer below runs on a str whose characters are those bytes (latin-1), so ASCII words need no
# conversion at all.
# ---------------------------------------------------------------------------------------------------------------

FTS5_PORTER_MAX_TOKEN = 64  # bytes; longer tokens (and tokens under 3 bytes) are stored unstemmed

_VOWELS = frozenset("aeiou")
_VOWELS_Y = frozenset("aeiouy")


def _is_vowel(ch: str, y_is_vowel: bool) -> bool:
    return ch in (_VOWELS_Y if y_is_vowel else _VOWELS)


def _gobble_vc(z: str, start: int, end: int, prev_cons: bool) -> int:
    """fts5PorterGobbleVC on z[start:end]: the offset just past the first vowel-then-consonant run, else 0."""
    cons = prev_cons
    i = start
    while i < end:
        cons = z[i] not in (_VOWELS_Y if cons else _VOWELS)
        if not cons:
            break
        i += 1
    i += 1
    while i < end:
        cons = z[i] not in (_VOWELS_Y if cons else _VOWELS)
        if cons:
            return i + 1
        i += 1
    return 0


def _m_gt0(z: str, n: int) -> bool:
    return _gobble_vc(z, 0, n, False) != 0


def _m_gt1(z: str, n: int) -> bool:
    k = _gobble_vc(z, 0, n, False)
    return k != 0 and _gobble_vc(z, k, n, True) != 0


def _m_eq1(z: str, n: int) -> bool:
    k = _gobble_vc(z, 0, n, False)
    return k != 0 and _gobble_vc(z, k, n, True) == 0


def _o_star(z: str, n: int) -> bool:
    """*o: the stem ends consonant-vowel-consonant, the last consonant not w, x or y."""
    if n == 0 or z[n - 1] in "wxy":
        return False
    mask = 0
    cons = False
    for i in range(n):
        cons = z[i] not in (_VOWELS_Y if cons else _VOWELS)
        mask = (mask << 1) | cons
    return (mask & 7) == 5


def _m_gt1_s_or_t(z: str, n: int) -> bool:
    return n > 0 and z[n - 1] in "st" and _m_gt1(z, n)


def _has_vowel(z: str, n: int) -> bool:
    """*v*: note that FTS5 counts "y" as a vowel anywhere but the first position."""
    return any(_is_vowel(z[i], i > 0) for i in range(n))


# Rules per step, grouped by the suffix's second-to-last character like FTS5's generated switch statements.
# Within a group the first suffix that matches (with at least one character before it) is the only one
# tried: if its condition fails the step does nothing.
_Rule = tuple[str, Callable[[str, int], bool], str]


def _group(*rules: _Rule) -> dict[str, tuple[_Rule, ...]]:
    groups: dict[str, list[_Rule]] = {}
    for rule in rules:
        groups.setdefault(rule[0][-2], []).append(rule)
    return {key: tuple(value) for key, value in groups.items()}


_STEP2 = _group(
    ("ational", _m_gt0, "ate"), ("tional", _m_gt0, "tion"),
    ("enci", _m_gt0, "ence"), ("anci", _m_gt0, "ance"),
    ("izer", _m_gt0, "ize"),
    ("logi", _m_gt0, "log"),
    ("bli", _m_gt0, "ble"), ("alli", _m_gt0, "al"), ("entli", _m_gt0, "ent"), ("eli", _m_gt0, "e"),
    ("ousli", _m_gt0, "ous"),
    ("ization", _m_gt0, "ize"), ("ation", _m_gt0, "ate"), ("ator", _m_gt0, "ate"),
    ("alism", _m_gt0, "al"), ("iveness", _m_gt0, "ive"), ("fulness", _m_gt0, "ful"), ("ousness", _m_gt0, "ous"),
    ("aliti", _m_gt0, "al"), ("iviti", _m_gt0, "ive"), ("biliti", _m_gt0, "ble"),
)  # fmt: skip
_STEP3 = _group(
    ("ical", _m_gt0, "ic"),
    ("ness", _m_gt0, ""),
    ("icate", _m_gt0, "ic"), ("iciti", _m_gt0, "ic"),
    ("ful", _m_gt0, ""),
    ("ative", _m_gt0, ""),
    ("alize", _m_gt0, "al"),
)  # fmt: skip
_STEP4 = _group(
    ("al", _m_gt1, ""),
    ("ance", _m_gt1, ""), ("ence", _m_gt1, ""),
    ("er", _m_gt1, ""),
    ("ic", _m_gt1, ""),
    ("able", _m_gt1, ""), ("ible", _m_gt1, ""),
    ("ant", _m_gt1, ""), ("ement", _m_gt1, ""), ("ment", _m_gt1, ""), ("ent", _m_gt1, ""),
    ("ion", _m_gt1_s_or_t, ""), ("ou", _m_gt1, ""),
    ("ism", _m_gt1, ""),
    ("ate", _m_gt1, ""), ("iti", _m_gt1, ""),
    ("ous", _m_gt1, ""),
    ("ive", _m_gt1, ""),
    ("ize", _m_gt1, ""),
)  # fmt: skip


def _apply_step(z: str, groups: dict[str, tuple[_Rule, ...]]) -> str:
    n = len(z)
    if n < 2:
        return z
    for suffix, condition, replacement in groups.get(z[-2], ()):
        if n > len(suffix) and z.endswith(suffix):
            stem = n - len(suffix)
            if condition(z, stem):
                return z[:stem] + replacement
            return z
    return z


def _stem(z: str) -> str:
    """fts5PorterCb's stemming of a token of 3..64 bytes (one str character per byte)."""
    # Step 1a.
    if z[-1] == "s":
        n = len(z)
        if z[-2] == "e":
            if (n > 4 and z[-4] == "s" and z[-3] == "s") or (n > 3 and z[-3] == "i"):
                z = z[:-2]
            else:
                z = z[:-1]
        elif z[-2] != "s":
            z = z[:-1]

    # Step 1b.
    n = len(z)
    removed = False
    if n >= 2:
        penultimate = z[-2]
        if penultimate == "e":
            if n > 3 and z.endswith("eed"):
                if _m_gt0(z, n - 3):
                    z = z[:-1]
            elif n > 2 and z.endswith("ed"):
                if _has_vowel(z, n - 2):
                    z = z[:-2]
                    removed = True
        elif penultimate == "n" and n > 3 and z.endswith("ing"):
            if _has_vowel(z, n - 3):
                z = z[:-3]
                removed = True
    if removed:
        n = len(z)
        if n > 2 and z[-2:] in ("at", "bl", "iz"):
            z += "e"
        else:
            c = z[-1]
            if c not in _VOWELS and c not in "lsz" and n >= 2 and c == z[-2]:
                z = z[:-1]
            elif _m_eq1(z, n) and _o_star(z, n):
                z += "e"

    # Step 1c.
    if z[-1] == "y" and _has_vowel(z, len(z) - 1):
        z = z[:-1] + "i"

    # Steps 2 to 4.
    z = _apply_step(z, _STEP2)
    z = _apply_step(z, _STEP3)
    z = _apply_step(z, _STEP4)

    # Step 5a.
    n = len(z)
    if z[-1] == "e" and (_m_gt1(z, n - 1) or (_m_eq1(z, n - 1) and not _o_star(z, n - 1))):
        z = z[:-1]
        n -= 1

    # Step 5b.
    if n > 1 and z[-1] == "l" and z[-2] == "l" and _m_gt1(z, n - 1):
        z = z[:-1]
    return z


def fts5_token_bytes(word: str) -> bytes:
    """The UTF-8 bytes FTS5 stores for `word`; unlike fts5_token() this is exact even in the rare case where
    the stemmer cuts a multi-byte character in half (see fts5_token)."""
    raw = _fold(word).encode("utf-8", "surrogatepass")
    if 3 <= len(raw) <= FTS5_PORTER_MAX_TOKEN:
        raw = _stem(raw.decode("latin-1")).encode("latin-1")
    return raw


@lru_cache(maxsize=65536)
def fts5_token(word: str) -> str:
    """The token SQLite FTS5 (``tokenize='porter unicode61 remove_diacritics 2'``) indexes for one word.

    `word` is one match of ``re.findall(r"\\w+", text)``, as written (no need to lower-case it first: unicode61
    folds case itself with its own tables, which str.lower() does not match for every character). Two caveats
    about what counts as one word: "_" is a separator to unicode61 (so split on it, e.g. with ``[^\\W_]+``), as
    are 21 characters its older Unicode tables class as marks (New Tai Lue U+19B0-U+19C0 and U+19C8-U+19C9,
    Vedic U+1CF2-U+1CF3). Within a word, the result is exact. The one case
    that cannot round-trip through str is a stem that ends in half a multi-byte character (it happens only
    when step 1b undoubles a final "consonant" that is really two equal UTF-8 continuation bytes, e.g.
    "a₂ed"); the broken bytes come back as U+FFFD, which matches no vocab row. fts5_token_bytes() has the
    exact bytes.
    """
    return fts5_token_bytes(word).decode("utf-8", "replace")
