"""Checks that converted HTML only uses what each side allows, by parsing it back."""

from __future__ import annotations

from html.parser import HTMLParser

MATRIX_TAGS = frozenset(
    (
        "font del h1 h2 h3 h4 h5 h6 blockquote p a ul ol sup sub li b i u strong em strike "
        "code hr br div table thead tbody tr th td caption pre span img details summary"
    ).split()
)
MATRIX_ATTRS: dict[str, frozenset[str]] = {
    "a": frozenset({"href"}),
    "ol": frozenset({"start"}),
    "code": frozenset({"class"}),
    "span": frozenset({"data-mx-color", "data-mx-bg-color", "data-mx-spoiler"}),
    "font": frozenset({"data-mx-color", "data-mx-bg-color", "color"}),
    "img": frozenset({"src", "alt", "title", "width", "height"}),
}
TEAMS_TAGS = frozenset(
    (
        "b strong i em u s sup sub p div blockquote ul ol li h1 h2 h3 h4 h5 h6 hr br "
        "table thead tbody tr th td a span pre code"
    ).split()
)
TEAMS_ATTRS: dict[str, frozenset[str]] = {
    "a": frozenset({"href"}),
    "span": frozenset({"itemscope", "itemtype", "itemid"}),
    "p": frozenset({"itemtype", "id"}),
    "pre": frozenset({"class", "itemid"}),
}
SAFE_HREF_PREFIXES = ("http://", "https://", "mailto:")


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.other: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_comment(self, data: str) -> None:
        self.other.append("comment")

    def handle_decl(self, decl: str) -> None:
        self.other.append("decl")

    def handle_pi(self, data: str) -> None:
        self.other.append("pi")

    def unknown_decl(self, data: str) -> None:
        self.other.append("unknown_decl")


def violations(html: str, tags: frozenset[str], attrs: dict[str, frozenset[str]]) -> list[str]:
    """Everything in ``html`` outside the allow-lists; empty when the output is clean."""
    collector = _Collector()
    collector.feed(html)
    collector.close()
    found = list(collector.other)
    for tag, attributes in collector.elements:
        if tag not in tags:
            found.append(f"tag {tag}")
        for name, value in attributes.items():
            if name not in attrs.get(tag, frozenset()):
                found.append(f"attribute {tag}[{name}]")
            if name == "href" and not (value or "").lower().startswith(SAFE_HREF_PREFIXES):
                found.append(f"href {value!r}")
            if name == "src" and not (value or "").startswith("mxc://"):
                found.append(f"src {value!r}")
    return found


def matrix_violations(html: str | None) -> list[str]:
    return violations(html or "", MATRIX_TAGS, MATRIX_ATTRS)


def teams_violations(html: str) -> list[str]:
    found = violations(html, TEAMS_TAGS, TEAMS_ATTRS)
    collector = _Collector()
    collector.feed(html)
    for tag, attributes in collector.elements:
        itemtype = attributes.get("itemtype")
        if tag == "span" and attributes and itemtype != "http://schema.skype.com/Mention":
            found.append(f"span itemtype {itemtype!r}")
        if tag == "p" and attributes and itemtype != "http://schema.skype.com/CodeBlockEditor":
            found.append(f"p itemtype {itemtype!r}")
    return found
