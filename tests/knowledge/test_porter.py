"""fts5_token() against the real thing: SQLite FTS5 with tokenize='porter unicode61 remove_diacritics 2'."""

from __future__ import annotations

import random
import re
import sqlite3
import sys
import time
from collections.abc import Iterable

import pytest

from assistant_chat.knowledge.porter import FTS5_PORTER_MAX_TOKEN, fts5_token, fts5_token_bytes

TOKENIZE = "porter unicode61 remove_diacritics 2"
WORD = re.compile(r"\w+")


def fts5_tokens(words: Iterable[str]) -> list[list[bytes]]:
    """Index each word in its own row and return, per word, the tokens FTS5 stored (raw bytes, in order)."""
    words = list(words)
    db = sqlite3.connect(":memory:")
    try:
        db.execute(f"CREATE VIRTUAL TABLE t USING fts5(body, tokenize='{TOKENIZE}')")
        db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
        db.executemany("INSERT INTO t(rowid, body) VALUES (?, ?)", ((i + 1, w) for i, w in enumerate(words)))
        db.text_factory = bytes  # a stem can end in half a UTF-8 character; keep the bytes exactly as stored
        tokens: list[list[bytes]] = [[] for _ in words]
        for doc, term in db.execute("SELECT doc, term FROM v ORDER BY doc, offset"):
            tokens[doc - 1].append(term)
        return tokens
    finally:
        db.close()


def fts5_available() -> bool:
    try:
        sqlite3.connect(":memory:").execute(f"CREATE VIRTUAL TABLE t USING fts5(x, tokenize='{TOKENIZE}')")
    except sqlite3.OperationalError:
        return False
    return True


pytestmark = pytest.mark.skipif(not fts5_available(), reason="this sqlite3 has no FTS5")


# ----------------------------------------------------------------------------------------------------------------
# The word list.
# ----------------------------------------------------------------------------------------------------------------

# Real English words, chosen for the suffixes each Porter step handles (many are Porter's own examples).
REAL_WORDS = """
caresses ponies ties caress cats cat feed agreed plastered bled motoring sing conflated troubled sized hopping
tanned falling hissing fizzed failing filing happy sky relational conditional rational valenci hesitanci
digitizer conformabli radicalli differentli vileli analogousli vietnamization predication operator feudalism
decisiveness hopefulness callousness formaliti sensitiviti sensibiliti triplicate formative formalize
electriciti electrical hopeful goodness revival allowance inference airliner gyroscopic adjustable defensible
irritant replacement adjustment dependent adoption homologou communism activate angulariti homologous effective
bowdlerize probate rate cease controll roll generalizations oscillators relational relationally conditionally
rationalization rationalizations organization organizations civilization nationalization nationalism
realism socialism capitalism criticism mechanism optimism skepticism journalism alcoholism tourism
abstraction action addition education information question situation position foundation creation
relation nation station ration notion motion emotion promotion devotion locomotion erosion explosion
decision division vision confusion conclusion illusion inclusion intrusion adhesion cohesion tension pension
mansion expansion version conversion diversion excursion propulsion compulsion revulsion
operational educational institutional constitutional international professional promotional exceptional
emotional devotional notational rotational computational conventional intentional additional traditional
valency agency urgency tendency decency frequency emergency consistency efficiency deficiency fluency
tenancy vacancy infancy pregnancy redundancy hesitancy constancy militancy relevancy buoyancy
organizer realizer sanitizer tranquilizer stabilizer energizer fertilizer equalizer synthesizer
possibly capably notably probably terribly horribly visibly credibly audibly edibly feasibly
radically logically critically practically musically basically generally naturally actually usually
differently evidently patently recently decently frequently currently apparently consistently silently
cruelly barely purely rarely solely entirely wisely closely namely merely severely
dangerously famously previously obviously seriously curiously anxiously nervously jealously enormously
modernization authorization characterization colonization customization harmonization immunization
decoration narration duration celebration generation operation separation preparation
creator narrator operator aviator navigator translator generator radiator calculator moderator
formalism liberalism federalism nationalism individualism naturalism idealism
effectiveness massiveness decisiveness expensiveness attractiveness aggressiveness
thankfulness carefulness helpfulness usefulness mindfulness playfulness
seriousness nervousness consciousness graciousness jealousness anxiousness
formality reality equality locality vitality mortality neutrality totality brutality morality
activity passivity sensitivity creativity productivity relativity negativity captivity festivity
ability stability capability probability liability durability visibility flexibility
biology geology psychology technology ecology theology zoology mythology analogy apology anthology
duplicate complicate communicate indicate dedicate fabricate lubricate replicate
talkative creative negative relative narrative imaginative conservative
normalize finalize centralize legalize vocalize formalize penalize specialize
electricity toxicity domesticity authenticity eccentricity simplicity specificity
musical magical comical medical typical physical optical tropical logical radical
careful useful cheerful doubtful faithful graceful harmful peaceful powerful skillful
kindness darkness sadness illness fitness weakness madness softness happiness emptiness
management settlement movement agreement statement achievement improvement requirement retirement
development government environment payment shipment treatment argument document instrument
different excellent dependent patient student present current recent absent silent
vacation election direction protection instruction construction connection
serious famous nervous jealous curious various previous obvious dangerous generous enormous
active passive massive expensive effective attractive expressive extensive offensive
realize organize recognize apologize criticize summarize emphasize minimize maximize
classes glasses passes bosses dresses addresses processes successes witnesses businesses
cities flies tries cries babies ladies studies bodies parties countries
class glass pass boss dress address process success witness business miss kiss
runs walks talks jumps dogs houses horses trees bees ideas
proceed exceed succeed indeed freed bleed breed speed guaranteed refereed disagreed
walked talked jumped played stayed rained tried cried studied hurried
walking talking jumping playing staying raining trying crying studying hurrying
running swimming sitting getting cutting hitting putting stopping hopping planning
dying lying tying eying seeing being fleeing agreeing
hoped hoping filed filing dated dating rated rating
happy lucky crazy busy easy early only body copy city boy toy joy key day way say
rely reply supply apply deny defy deny
syzygy rhythm rhythms myth myths gym gyms crypt lynx sync
alternative alternatively alternation alternate alternately alternating alternator
generalize generalized generalizes generalizing generalization generalizations
conditioning conditioned conditioner conditions conditional conditionally unconditional
agreeable agreeably agreement agreements disagreement
""".split()

# Stems crossed with every suffix from the task, to exercise each rule with short and long stems.
STEMS = """
a b be re ab ob un in ex pre con com dis per pro tra sta bla cla pla gra tri
rel condit rat val hesit digit conform radic differ vil analog vietnam predic oper feud
decis hope call form sensit sens tripl electr good reviv allow infer airlin gyroscop adjust
defens irrit replac depend adopt homolog commun activ angular effect bowdler prob cease roll
nation educ organ modern author colon harmon immun decor narr celebr gener separ prepar
liber feder individu natur ide real social capit critic mechan optim journal tour
tend decen frequen emergen consist effici flu tenan vacan infan redund const milit relev
synthes fertil equal stabil energ tranquil sanit
cap not prob terr horr vis cred aud ed feas
log crit pract mus bas
ev pat rec curr appar sil
cru bar pur rar sol entir wis clos nam mer sever
danger fam previ obvi seri curi anxi nerv jeal enorm
custom character
massiv expens attract aggress
thank care help use mind play
graci consci
loc vit mort neutr tot brut mor
creat product relat negat capt fest
abil stabil capabil durabil flexibil
bio geo psycho techno eco theo zoo mytho ana apo antho
dupl compl communic ind ded fabr lubr repl
talk imagin conserv
norm fin centr leg voc pen spec
tox domest authent eccentr simpl specif
mag com med typ phys opt trop
cheer doubt faith grace harm peace power skill
kind dark sad ill fit weak mad soft happi empti
manag settl mov agre stat achiev improv requir retir
develop govern environ pay ship treat argu docu instru
vac elect direct protect instruct construct connect
gener enorm
express extens offens
recogn apolog critic summar emphas minim maxim
cla gla pa bo dre addre proce succe witne busine
citi fli tri cri babi ladi studi bodi parti countri
ru wal tal jum do hou hor tre be ide
proc exc succ ind fr bl br sp guarant refer disagr
happ luck craz bus eas earl on bod cop cit bo to jo ke da wa sa
sky y yy ay ey oy uy ya ye yo syzyg rhythm myth gym crypt lynx
""".split()

SUFFIXES = """
ational tional enci anci izer bli alli entli eli ousli ization ation ator alism iveness fulness ousness
aliti iviti biliti logi icate ative alize iciti ical ful ness ement ment ent ion ou ism ate iti ous ive ize
sses ies ss s eed ed ing y
al ance ence er ic able ible ant ly e es ers ings edly ingly ations ators isms ments ions ates ives izes izing
ized izers ies ied ying
""".split()

ONSETS = "b bl br c ch cl cr d dr f fl fr g gl gr h j k l m n p ph pl pr qu r s sc sh sk sl sm sn sp st str sw t th tr tw v w wh wr y z".split()
NUCLEI = "a e i o u y ai ea ee ie oa oo ou ay ey oy ui".split()
CODAS = ["", ""] + "b ck d ff g l ll m n nd ng nt p r rd s ss st t tt w x y z zz".split()

# Words with letters outside ASCII, all of them \w in Python and token characters to unicode61 (no "_", no
# letters added after Unicode 6.1, whose categories unicode61 does not know).
UNICODE_WORDS = """
café CAFÉ Café naïve NAÏVE naïveté résumé Résumés fiancée fiancées déjà vu crème brûlée façade Façades jalapeño
jalapeños piñata Piñatas señor SEÑORES über Übermensch Ärger Öl Ölförderung Mädchen Müller Straße STRASSE straße
Grüße größer Fußball weiß æther Æsop encyclopædia Ærø Øresund øl smørrebrød Søren Ålesund Århus blåbær
œuvre Œdipus cœur ſtraße ﬁne ﬁnancial ﬂower ﬀ Ａｂｃ ｗｏｒｄｓ ²nd x² H₂O CO₂ Ⅻ ⅻ Ⅷth
İstanbul ISTANBUL ıssız Iğdır ŞİŞLİ şişli Ğ ğ çağdaş Łódź łódź Gdańsk Kraków ŻÓŁW żółw Dvořák Škoda Čapek
Ḱ ḱ Ấ ấ Ệ ệ Ở ở Ữ ữ Tiếng Việt Người Nguyễn phở Hà Nội Đà Nẵng đường ĐƯỜNG Ȁ ȁ Ǖ ǖ Ǟ ǟ Ǻ ǻ Ș ș Ț ț
ΑΘΗΝΑ Αθήνα ΟΔΥΣΣΕΥΣ οδυσσευς Σίσυφος ΣΊΣΥΦΟΣ λόγος ΛΌΓΟΣ ψυχή ΨΥΧΉ ἀρετή Ἀρετή ὕβρις
МОСКВА Москва москва Ёлка ёлка ПРИВЕТ привет Київ ЇЖАК Ґанок ЂОРЂЕ Љубав Њива
ԱՐԱՐԱՏ Արարատ ႠႡႢ ⴀⴁ 𐐀𐐁𐐂 𐐨𐐩 東京 日本語 中文 한국어 ひらがな カタカナ
עברית שלום العربية مرحبا
ÀÁÂÃÄÅ àáâãäå ÈÉÊË èéêë ÌÍÎÏ ìíîï ÒÓÔÕÖ òóôõö ÙÚÛÜ ùúûü Ýÿ ÇçÑñ Ðð Þþ µ ª º
relationé conditionális rationalé nationalités opérations générations éducation créations relatións
ëd ïng ÿy ÿs ßs ßes ßed ßing ßßed øøing ððing ææed œœing łłed đđing
""".split()


def generated_words(rng: random.Random, count: int) -> list[str]:
    words = []
    for _ in range(count):
        word = "".join(rng.choice(ONSETS) + rng.choice(NUCLEI) for _ in range(rng.randint(1, 4))) + rng.choice(CODAS)
        if rng.random() < 0.6:
            word += rng.choice(SUFFIXES)
        words.append(word)
    return words


def mixed_case(rng: random.Random, word: str) -> str:
    style = rng.randrange(3)
    if style == 0:
        return word.upper()
    if style == 1:
        return word.title()
    return "".join(ch.upper() if rng.random() < 0.5 else ch for ch in word)


def accented(rng: random.Random, word: str) -> str:
    marks = {
        "a": "àáâäåã",
        "e": "èéêë",
        "i": "ìíîï",
        "o": "òóôöõø",
        "u": "ùúûü",
        "y": "ýÿ",
        "c": "ç",
        "n": "ñ",
        "s": "ßś",
    }
    return "".join(rng.choice(marks[ch]) if ch in marks and rng.random() < 0.3 else ch for ch in word)


def long_words() -> list[str]:
    words = []
    for stem in ("relational", "generalization", "hopefulness", "abcdefghij", "xyz"):
        for total in list(range(58, 70)) + [80, 100, 128, 200, 500]:
            words.append((stem * (total // len(stem) + 1))[:total])
            words.append((stem * (total // len(stem) + 1))[: total - 3] + "ing")
            words.append((stem * (total // len(stem) + 1))[: total - 5] + "ation")
    # Multi-byte characters near the 64-byte limit, which FTS5 measures in (folded) UTF-8 bytes.
    for n in range(28, 35):
        words += [
            "ø" * n + "ing",
            "a" + "ø" * n + "ed",
            "é" * (2 * n) + "ations",
            "É" * (2 * n) + "s",
            "東" * (n // 2) + "ness",
        ]
    words += ["a" * 63 + "s", "a" * 64 + "s", "a" * 65 + "s", "b" * 61 + "ing", "b" * 62 + "ing"]
    return words


def digit_words(rng: random.Random) -> list[str]:
    words = "123 1st 2nd 3rd 4th 100s 1990s mp3 mp3s x86 x86ing h2o co2 utf8 b2b 3d 3ds abc123 123abc a1b2c3".split()
    words += [
        f"{stem}{rng.randint(0, 999)}{suffix}" for stem in STEMS[:60] for suffix in ("", "s", "ing", "ed", "ational")
    ]
    words += [f"{rng.randint(0, 99999)}{suffix}" for suffix in SUFFIXES]
    words += ["٣٤٥", "१२३", "১২৩", "๑๒๓", "４２", "Ⅻ12"]
    return words


def byte_edge_words() -> list[str]:
    # The stemmer works on UTF-8 bytes, and a multi-byte character counts as consonants: these differ from a
    # character-level stemmer. "₂" is E2 82 82, so step 1b's undoubling can cut it in half.
    return """
        a₂ed a₂₂ed ba₂ing ba₂₂ing ho₂ed ʒʒed baðed baðing baðe baðeness ðae æʒʒing beðing hoþing boøing saßed
        ɣaɣing aɣɣing ŋoŋed ʃaʃing aḿḿing
    """.split()


def corpus() -> list[str]:
    rng = random.Random(20240611)
    words: list[str] = []
    words += REAL_WORDS
    words += [stem + suffix for stem in STEMS for suffix in SUFFIXES]
    words += generated_words(rng, 4000)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words += list(letters) + [a + b for a in letters for b in letters]
    words += [a + b + c for a in letters for b in "aeiouy" for c in letters]
    words += [mixed_case(rng, w) for w in rng.sample(words, 1500)]
    words += [accented(rng, w) for w in rng.sample(words, 1500)]
    words += UNICODE_WORDS + long_words() + digit_words(rng) + byte_edge_words()
    unique = list(dict.fromkeys(words))
    for word in unique:  # every entry is a word search.py's \w+ can produce, and has no "_" (a unicode61 separator)
        assert WORD.fullmatch(word) and "_" not in word, word
    return unique


# ----------------------------------------------------------------------------------------------------------------
# Tests.
# ----------------------------------------------------------------------------------------------------------------


def test_every_word_matches_the_fts5_index() -> None:
    words = corpus()
    assert len(words) >= 5000
    stored = fts5_tokens(words)
    mismatches: list[tuple[str, list[bytes], object]] = []
    for word, tokens in zip(words, stored, strict=True):
        if tokens != [fts5_token_bytes(word)]:
            mismatches.append((word, tokens, fts5_token_bytes(word)))
            continue
        (token,) = tokens
        try:
            expected = token.decode("utf-8")
        except UnicodeDecodeError:
            expected = token.decode("utf-8", "replace")  # half a character: fts5_token documents U+FFFD here
        if fts5_token(word) != expected:
            mismatches.append((word, tokens, fts5_token(word)))
    assert not mismatches, f"{len(mismatches)} of {len(words)} differ, e.g. {mismatches[:20]}"


def test_corpus_covers_the_interesting_cases() -> None:
    words = corpus()
    tokens = {w: fts5_token_bytes(w) for w in words}
    assert len(words) > 15000
    assert sum(t != w.lower().encode() for w, t in tokens.items()) > 5000  # plenty of words get stemmed
    assert any(len(w.encode()) > FTS5_PORTER_MAX_TOKEN for w in words)
    assert any(not w.isascii() for w in words) and any(w != w.lower() for w in words)
    # A few stored tokens end in half a UTF-8 character; fts5_token turns that into U+FFFD.
    broken = [w for w, t in tokens.items() if t.decode("utf-8", "replace") != t.decode("utf-8", "ignore")]
    assert broken and all(w in byte_edge_words() for w in broken)
    assert fts5_token("a₂ed") == "a\ufffd" and fts5_token_bytes("a₂ed") == b"a\xe2\x82"


@pytest.mark.parametrize(
    ("word", "token"),
    [
        ("caresses", "caress"), ("ponies", "poni"), ("relational", "relat"), ("Generalizations", "gener"),
        ("hopping", "hop"), ("filing", "file"), ("happy", "happi"), ("sky", "sky"), ("feed", "feed"),
        ("agreed", "agre"), ("CAFÉS", "cafe"), ("Straße", "straß"), ("æther", "æther"), ("Øresund", "øresund"),
        ("İstanbul", "istanbul"), ("ﬁne", "ﬁne"), ("123s", "123"), ("is", "is"), ("as", "as"), ("ies", "ie"),
        ("a" * 65 + "s", "a" * 65 + "s"), ("a" * 63 + "s", "a" * 63),
    ],
)  # fmt: skip
def test_known_tokens(word: str, token: str) -> None:
    assert fts5_token(word) == token
    assert fts5_tokens([word]) == [[token.encode()]]


def test_every_word_character_folds_like_unicode61() -> None:
    """Each code point Python's \\w matches, alone in a row: fts5_token must give FTS5's token for it.

    Excluded, and checked to be excluded for that reason only: the few code points FTS5 does not index at all,
    so that no indexed token contains them and there is nothing to compare. They are "_" (a separator to
    unicode61) and characters that unicode61's older Unicode tables class as marks but Python's newer
    unicodedata as letters: with SQLite 3.40 / Python 3.11, New Tai Lue U+19B0-U+19C0, U+19C8-U+19C9 and Vedic
    U+1CF2-U+1CF3 (22 in all). Unassigned code points count as token characters to unicode61, so letters added
    to Unicode since its tables were made are indexed and are compared here.
    """
    chars = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF and WORD.fullmatch(chr(c))]
    stored = fts5_tokens(chars)
    separators = [ch for ch, tokens in zip(chars, stored, strict=True) if not tokens]
    mismatches = [
        (ch, tokens, fts5_token_bytes(ch))
        for ch, tokens in zip(chars, stored, strict=True)
        if tokens and tokens != [fts5_token_bytes(ch)]
    ]
    assert not mismatches, f"{len(mismatches)} code points differ, e.g. {mismatches[:20]}"
    assert "_" in separators
    assert len(chars) > 100_000 and len(separators) < 100, separators  # a handful, not whole scripts
    assert all(ch == "_" or not ch.isascii() for ch in separators)


def test_fast_enough() -> None:
    words = [f"{w}{i}" for i, w in enumerate(corpus()[:2000])]
    fts5_token.cache_clear()
    start = time.perf_counter()
    for word in words:
        fts5_token(word)
    assert (time.perf_counter() - start) / len(words) < 1e-3  # well under a millisecond per uncached word
