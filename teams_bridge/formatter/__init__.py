"""Teams HTML <-> Matrix HTML, sanitised to what each side may display.

Pure functions: no I/O. Lookups (MRI <-> Matrix user) are injected by the caller.
"""

from .from_teams import teams_to_matrix
from .models import (
    InlineImage,
    MatrixMessage,
    MentionResolver,
    RoomMention,
    RoomMentionTest,
    TeamsContent,
    UserResolver,
)
from .to_teams import build_reply_quote, matrix_to_teams

__all__ = [
    "InlineImage",
    "MatrixMessage",
    "MentionResolver",
    "RoomMention",
    "RoomMentionTest",
    "TeamsContent",
    "UserResolver",
    "build_reply_quote",
    "matrix_to_teams",
    "teams_to_matrix",
]
