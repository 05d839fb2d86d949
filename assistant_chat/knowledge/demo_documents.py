"""The demo knowledge base: short documents in every supported upload format.

Pipeline position: feeds ingestion (upload bytes -> parse -> chunk -> index)
with realistic bytes for the demo assistant and for tests. Imports nothing
from Django; the PDF writer is self-contained (no third-party library).
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

# DEMO_FILES is also importable: it is built lazily by __getattr__ below.
__all__ = ["DemoFile", "demo_files", "write_docx", "write_pdf"]


# --------------------------------------------------------------------------
# Minimal PDF writer
# --------------------------------------------------------------------------

# US Letter in points, with one-inch margins.
_PAGE_WIDTH = 612
_PAGE_HEIGHT = 792
_MARGIN = 72
_FONT_SIZE = 11
_LEADING = 14  # baseline-to-baseline distance in points

# Helvetica advance widths (1/1000 em) for printable ASCII, from Adobe's
# Helvetica.afm; other WinAnsi glyphs use the average width below. Only used
# for word wrapping, so small errors merely shift a line break.
# fmt: off
_HELVETICA_WIDTHS: dict[str, int] = dict(
    zip(
        " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~",
        [
            278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,
            556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,
            1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
            667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,
            333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,
            556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
        ],
        strict=True,
    )
)
# fmt: on
_DEFAULT_WIDTH = 556


def _to_winansi(text: str) -> str:
    """Map text onto what /WinAnsiEncoding can show (cp1252), '?' otherwise."""
    text = text.replace("\t", " ")  # word wrapping collapses blanks anyway
    # Drop other control characters: they have no glyph.
    text = "".join(ch for ch in text if ch == "\n" or ord(ch) >= 32)
    return text.encode("cp1252", errors="replace").decode("cp1252")


def _text_width(text: str) -> float:
    return sum(_HELVETICA_WIDTHS.get(ch, _DEFAULT_WIDTH) for ch in text) * _FONT_SIZE / 1000


def _wrap_line(line: str, max_width: float) -> list[str]:
    """Greedy word wrap; words wider than a line are cut by characters."""
    words = line.split()
    if not words:
        return [""]
    lines: list[str] = []
    current = ""
    for word in words:
        candidate = f"{current} {word}" if current else word
        if _text_width(candidate) <= max_width:
            current = candidate
            continue
        if current:
            lines.append(current)
            current = ""
        while _text_width(word) > max_width:
            # Hard-split an over-wide word (URLs, hashes) at the last char that fits.
            cut = 1
            while cut < len(word) and _text_width(word[: cut + 1]) <= max_width:
                cut += 1
            lines.append(word[:cut])
            word = word[cut:]
        current = word
    if current:
        lines.append(current)
    return lines


def _pdf_string(text: str) -> bytes:
    """A PDF literal string: escape \\ ( ) and write non-ASCII as octal."""
    out = bytearray(b"(")
    for byte in text.encode("cp1252", errors="replace"):
        if byte in (0x5C, 0x28, 0x29):  # \ ( )
            out += b"\\" + bytes([byte])
        elif 32 <= byte < 127:
            out.append(byte)
        else:
            # Octal keeps the file 7-bit clean and the byte offsets obvious.
            out += b"\\%03o" % byte
    out += b")"
    return bytes(out)


def _page_lines(text: str) -> list[str]:
    max_width = _PAGE_WIDTH - 2 * _MARGIN
    max_lines = (_PAGE_HEIGHT - 2 * _MARGIN) // _LEADING + 1
    lines: list[str] = []
    for raw in _to_winansi(text).split("\n"):
        lines.extend(_wrap_line(raw, max_width))
    # Text that does not fit vertically is dropped: the demo texts are short,
    # and a silent overflow onto an extra page would break page citations.
    return lines[:max_lines]


def _content_stream(text: str) -> bytes:
    parts = [
        b"BT",
        b"/F1 %d Tf" % _FONT_SIZE,
        b"%d TL" % _LEADING,
        b"%d %d Td" % (_MARGIN, _PAGE_HEIGHT - _MARGIN),
    ]
    for index, line in enumerate(_page_lines(text)):
        if index:
            parts.append(b"T*")  # next line, moved down by TL
        if line:
            parts.append(_pdf_string(line) + b" Tj")
    parts.append(b"ET")
    return b"\n".join(parts) + b"\n"


def write_pdf(pages: list[str]) -> bytes:
    """Render each string on its own US Letter page in 11pt Helvetica.

    Lines are word-wrapped to the page width (runs of blanks collapse to one
    space); lines that would run past the bottom margin are dropped (about
    47 lines fit). Characters outside
    Windows-1252 (a Latin-1 superset) become "?". An empty list yields a
    single blank page so the result is still a valid PDF.
    """
    if not pages:
        pages = [""]
    # Object numbers: 1 catalog, 2 page tree, 3 font, then (page, content) pairs.
    objects: list[bytes] = []
    page_ids = [4 + 2 * i for i in range(len(pages))]
    kids = b" ".join(b"%d 0 R" % pid for pid in page_ids)
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(pages)))
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    for pid, text in zip(page_ids, pages, strict=True):
        stream = _content_stream(text)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (_PAGE_WIDTH, _PAGE_HEIGHT, pid + 1)
        )
        objects.append(b"<< /Length %d >>\nstream\n%sendstream" % (len(stream), stream))

    # The binary comment line tells transfer tools the file is not text.
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: list[int] = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref_offset = len(out)
    out += b"xref\n0 %d\n" % (len(objects) + 1)
    out += b"0000000000 65535 f \n"  # each entry is exactly 20 bytes
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref_offset)
    return bytes(out)


# --------------------------------------------------------------------------
# DOCX writer
# --------------------------------------------------------------------------


_XML_INVALID_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def write_docx(pages: list[str]) -> bytes:
    """A .docx with paragraphs split on blank lines and a page break between pages."""
    import docx  # lazy: keeps importing this module cheap
    from docx.enum.text import WD_BREAK

    document = docx.Document()
    for index, page in enumerate(pages):
        # XML cannot hold NULs or most control characters; lxml would raise.
        page = _XML_INVALID_RE.sub("", page.replace("\r\n", "\n"))
        paragraphs = [p.strip() for p in page.split("\n\n") if p.strip()]
        if index:
            # Put the explicit break (w:br w:type="page") at the top of the
            # page's first paragraph rather than in a paragraph of its own.
            first = document.add_paragraph()
            first.add_run().add_break(WD_BREAK.PAGE)
            if paragraphs:
                first.add_run(paragraphs.pop(0))
        for text in paragraphs:
            # python-docx turns "\n" inside run text into w:br line breaks.
            document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


# --------------------------------------------------------------------------
# Demo content
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoFile:
    """One demo upload: file name, index metadata and the file's bytes."""

    name: str
    metadata: dict[str, Any] = field(hash=False)
    data: bytes


WATER_CYCLE_TXT = """\
The Water Cycle

The water cycle, also called the hydrologic cycle, describes how water moves continuously between the oceans, the atmosphere and the land. Energy from the Sun drives it: sunlight heats the sea surface, lakes and soil, and water evaporates as invisible vapour. Roughly 86 percent of global evaporation comes from the oceans.

Plants add more vapour through transpiration, releasing water through tiny pores called stomata in their leaves. Scientists often combine the two fluxes as evapotranspiration. Snow and ice can also turn directly into vapour without melting, a process called sublimation, which is important on windy, sunny glaciers.

As moist air rises it expands and cools. When it cools to its dew point, the vapour condenses onto microscopic particles of dust, sea salt or smoke, known as condensation nuclei, and forms clouds. Condensation releases latent heat, which powers thunderstorms and hurricanes. A water molecule stays in the atmosphere for only about nine days on average.

Precipitation returns the water to the surface as rain, snow, sleet or hail. Some of it flows over the ground as surface runoff into streams and rivers; some soaks into the soil by infiltration and percolates down to recharge aquifers, underground layers of porous rock that store groundwater for decades or even thousands of years.

Almost all of Earth's water, about 97 percent, is salty seawater. Of the small share that is fresh, roughly two thirds is frozen in glaciers and ice caps, and most of the rest is groundwater, so rivers and lakes hold only a tiny fraction of the planet's water.
"""

HONEYBEES_MD = """\
# Honeybees

The western honeybee (*Apis mellifera*) is a social insect that lives in colonies of tens of thousands of individuals. It has been kept by beekeepers for thousands of years for honey and beeswax, and today it is one of the most important pollinators of crops such as almonds, apples and blueberries.

## The colony

A colony has three kinds of adult bees:

- **The queen**, the only fertile female, who can lay well over a thousand eggs a day in early summer.
- **Workers**, sterile females that clean cells, nurse larvae, build comb, guard the entrance and forage for nectar and pollen. In summer a worker lives only about five to six weeks.
- **Drones**, males whose only role is to mate with a queen from another colony; they have no stinger.

Larvae fed generously with royal jelly develop into new queens. When a colony grows crowded, the old queen leaves with thousands of workers in a swarm to found a new nest.

## Comb and honey

Workers secrete wax from glands on the underside of the abdomen and shape it into hexagonal cells, a shape that stores the most honey for the least wax. Foragers bring back nectar, add enzymes such as invertase, and fan it with their wings until most of the water evaporates, turning it into honey. Bees also collect plant resins to make propolis, which seals cracks in the hive.

## The waggle dance

A forager that finds good flowers performs a waggle dance on the comb. The angle of the waggle run relative to vertical shows the direction of the food relative to the Sun, and the length of the run encodes the distance. Karl von Frisch decoded this language and shared the 1973 Nobel Prize in Physiology or Medicine for it.

## Threats

Colonies face the parasitic *Varroa destructor* mite, which spreads viruses, as well as pesticides, poor nutrition and loss of flowering habitat.
"""

PRINTING_PRESS_PAGES = [
    """\
The History of the Printing Press - Part 1: Gutenberg and Movable Type

Around 1440, the goldsmith Johannes Gutenberg of Mainz began developing a printing system based on movable metal type. His key inventions were a hand mould that could cast large numbers of identical letters quickly, a type metal alloy of lead, tin and antimony that melted easily and hardened fast, and an oil-based ink that stuck to metal type.

Gutenberg adapted the screw press already used for pressing wine grapes and olives so that a sheet of paper or vellum could be pressed evenly against the inked type.

His most famous work, the 42-line Bible, was completed around 1455. About 180 copies were printed, and fewer than fifty survive today.

Movable type itself was older: in China, Bi Sheng made ceramic type around 1040, and in Korea the Buddhist text Jikji was printed with metal type in 1377. Gutenberg's system was the first to make the process fast and cheap enough for mass production with an alphabet of few letters.
""",
    """\
The History of the Printing Press - Part 2: Spread Across Europe and Venice

After the sack of Mainz in 1462 scattered its printers, the craft spread quickly along trade routes. Presses opened in Italy, France, the Low Countries and Spain, and by 1500 printing shops were working in well over two hundred European towns. Books printed before 1501 are called incunabula, and historians estimate that millions of copies had been produced by then.

Venice became the capital of printing by the end of the fifteenth century thanks to its wealth, its paper supply and its trading network. The French printer Nicolas Jenson cut an elegant roman typeface there in 1470.

The scholar-printer Aldus Manutius founded the Aldine Press in Venice and published editions of Greek classics. His punch cutter Francesco Griffo designed the first italic type, used in 1501 for small, affordable octavo books that readers could carry in a pocket.

In England, William Caxton set up the first press at Westminster in 1476.
""",
    """\
The History of the Printing Press - Part 3: The Reformation and Literacy

In 1517 Martin Luther wrote his Ninety-five Theses against the sale of indulgences. Printers in Germany reproduced them within weeks, and Luther went on to become the best-selling author of his age. Cheap pamphlets and woodcut broadsheets carried Protestant and Catholic arguments to a mass audience, making the Reformation the first great media campaign.

Luther's German translation of the New Testament, published in September 1522, helped standardise written German. Across Europe, printing in vernacular languages fixed spelling and grammar and encouraged ordinary people to read for themselves.

Literacy rose as books became cheaper, and the identical copies produced by presses allowed scholars to compare data and correct errors. Nicolaus Copernicus's De revolutionibus appeared in print in 1543. The historian Elizabeth Eisenstein argued in 1979 that the press was an agent of change behind the Renaissance, the Reformation and the Scientific Revolution.
""",
]

TRAVEL_POLICY_PAGES = [
    """\
Northwind Analytics Employee Handbook: Business Travel Policy

Page 1 - Approval and booking

All business trips require written approval from your line manager before any booking is made. Trips abroad also need approval from the department director at least 21 days before departure.

Book flights, trains and hotels through the company travel portal at least 14 days in advance whenever possible. Economy class is the standard for flights shorter than six hours; premium economy may be booked for longer flights, and business class requires director approval.

Rail is preferred over air for journeys under four hours. Hotels must stay within the nightly rate cap for the destination city shown in the portal. Your itinerary is shared automatically with the security team so that travellers can be contacted in an emergency.
""",
    """\
Page 2 - Expenses and reimbursement

Meals on travel days are covered by a daily per diem allowance of 60 EUR within the country and 80 EUR abroad; no receipts are needed for the per diem. Alcohol, minibar items, in-flight entertainment and personal upgrades are never reimbursed.

Keep itemised receipts for every other expense above 25 EUR, including taxis, parking and conference fees. Use of a private car is reimbursed at 0.30 EUR per kilometre.

Submit the expense report with scanned receipts in the finance system within 30 days of returning. Reports submitted later than 90 days will not be reimbursed. Questions about this policy go to the finance travel desk.
""",
]

LIGHTHOUSES: dict[str, Any] = {
    "title": "Famous lighthouses",
    "description": "Facts about notable lighthouses and lighthouse technology.",
    "lighthouses": [
        {
            "name": "Pharos of Alexandria",
            "location": "Alexandria, Egypt",
            "built": "c. 280 BC",
            "facts": "Built under the Ptolemaic kings on the island of Pharos and counted among the "
            "Seven Wonders of the Ancient World. Probably over 100 metres tall, it was ruined by "
            "earthquakes, and its stones were reused in the Citadel of Qaitbay in the 1470s.",
        },
        {
            "name": "Tower of Hercules",
            "location": "A Coruna, Spain",
            "built": "1st-2nd century AD",
            "facts": "A Roman lighthouse that is the oldest lighthouse still in use. It became a "
            "UNESCO World Heritage Site in 2009.",
        },
        {
            "name": "Cordouan Lighthouse",
            "location": "Gironde estuary, France",
            "built": "1611",
            "facts": "Called the Versailles of the sea for its ornate chapel and royal apartment. "
            "It received one of the first Fresnel lenses in 1823 and became a UNESCO World "
            "Heritage Site in 2021.",
        },
        {
            "name": "Smeaton's Tower (Eddystone Lighthouse)",
            "location": "Eddystone Rocks, English Channel",
            "built": "1759",
            "facts": "John Smeaton built it from interlocking granite blocks shaped like a tree "
            "trunk and pioneered hydraulic lime that sets under water. It was later rebuilt on "
            "Plymouth Hoe when the rock beneath it eroded.",
        },
        {
            "name": "Bell Rock Lighthouse",
            "location": "off Arbroath, Scotland",
            "built": "1810",
            "facts": "Designed by Robert Stevenson, it is the oldest surviving sea-washed "
            "lighthouse: the reef it stands on is covered by the tide twice a day.",
        },
        {
            "name": "Cape Hatteras Lighthouse",
            "location": "North Carolina, United States",
            "built": "1870",
            "facts": "The tallest brick lighthouse in the United States, famous for its black and "
            "white spiral stripes. In 1999 it was moved about 880 metres inland to save it from "
            "shoreline erosion.",
        },
    ],
    "technology": {
        "fresnel_lens": "Invented by the French physicist Augustin-Jean Fresnel in 1822. Rings of "
        "prisms bend light into a narrow horizontal beam, so a lamp can be seen more than 20 "
        "nautical miles away while using far less glass than a solid lens.",
        "light_characteristic": "Each lighthouse flashes in its own pattern of flashes, "
        "occultations and colours so mariners can identify it at night on a nautical chart.",
        "automation": "Most lighthouse keepers were replaced by automated lamps in the late "
        "twentieth century; the last keepers left British lighthouses in 1998.",
    },
}

MARS_MD = """\
# Mars

Mars is the fourth planet from the Sun and the second smallest in the Solar System. Its reddish colour comes from iron oxide, essentially rust, in the dust and rocks that cover its surface.

## Orbit and atmosphere

A Martian year lasts about 687 Earth days, and a Martian solar day, called a sol, is about 24 hours and 40 minutes long. Because its axis is tilted by about 25 degrees, Mars has seasons like Earth. The atmosphere is about 95 percent carbon dioxide and very thin: surface pressure is less than one percent of Earth's. Surface gravity is about 38 percent of Earth's. Planet-wide dust storms can hide the surface for weeks.

## Landmarks

- **Olympus Mons** is a shield volcano about 22 kilometres high, the tallest known volcano in the Solar System.
- **Valles Marineris** is a canyon system about 4,000 kilometres long and up to 7 kilometres deep.
- The **polar ice caps** contain water ice, topped in winter by a layer of frozen carbon dioxide.

## Moons

Mars has two small, irregular moons, Phobos and Deimos, discovered by the American astronomer Asaph Hall in 1877. Phobos orbits so close that it is slowly spiralling inward.

## Exploration

Mariner 4 returned the first close-up photographs of Mars in 1965. NASA's rovers include Sojourner (1997), Spirit and Opportunity (2004), Curiosity, which landed in Gale Crater in 2012, and Perseverance, which landed in Jezero Crater in 2021 carrying the Ingenuity helicopter, the first aircraft to make a powered flight on another planet.
"""


def demo_files() -> list[DemoFile]:
    """Build the demo files (fresh objects each call; takes a few milliseconds)."""
    return [
        DemoFile(
            name="water_cycle.txt",
            metadata={"resource": "encyclopedia", "topic": "earth-science", "year": 2021},
            data=WATER_CYCLE_TXT.encode("utf-8"),
        ),
        DemoFile(
            name="honeybees.md",
            metadata={"resource": "encyclopedia", "topic": "biology", "year": 2023},
            data=HONEYBEES_MD.encode("utf-8"),
        ),
        DemoFile(
            name="printing_press.pdf",
            metadata={"resource": "encyclopedia", "topic": "history", "year": 2019},
            data=write_pdf(PRINTING_PRESS_PAGES),
        ),
        DemoFile(
            name="travel_policy.docx",
            metadata={"resource": "handbook", "topic": "policy", "year": 2024},
            data=write_docx(TRAVEL_POLICY_PAGES),
        ),
        DemoFile(
            name="lighthouses.json",
            metadata={"resource": "dataset", "topic": "maritime", "year": 2022},
            data=json.dumps(LIGHTHOUSES, indent=2, ensure_ascii=False).encode("utf-8"),
        ),
        DemoFile(
            name="mars.md",
            metadata={"resource": "encyclopedia", "topic": "astronomy", "year": 2020},
            data=MARS_MD.encode("utf-8"),
        ),
    ]


_demo_cache: list[DemoFile] | None = None


def __getattr__(name: str) -> Any:
    # PEP 562: DEMO_FILES is built on first access so importing stays cheap.
    global _demo_cache
    if name == "DEMO_FILES":
        if _demo_cache is None:
            _demo_cache = demo_files()
        return _demo_cache
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
