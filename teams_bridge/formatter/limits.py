"""Size limits that keep hostile input cheap to convert."""

MAX_INPUT_CHARS = 65_536
"""Raw HTML read per message. Teams refuses content over about 28 KB and a whole Matrix event
is at most 64 KiB, so only hostile input is ever cut here."""

MAX_TEXT_CHARS = 30_000
"""Text kept per message; beyond it the text is cut and ends with an ellipsis."""

MAX_DEPTH = 40
"""Element nesting kept. Deeper start tags are ignored (their text is kept), which also
bounds every recursive walk of the tree."""

MAX_ELEMENTS = 5_000
"""Elements kept per message; later tags are ignored, their text is kept."""

MAX_EVENT_TEXT_BYTES = 60_000
"""Budget for body plus formatted_body in a Matrix event (the whole event must fit 64 KiB)."""

ELLIPSIS = "\u2026"
