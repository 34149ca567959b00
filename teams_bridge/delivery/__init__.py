"""Matrix -> Teams delivery: which events are taken (`intake`), how a failure is sorted
(`errors`), what a handler reports (`results`), and the per-portal worker that delivers the
stored events in order and records how each ended (`worker`).

The portal supplies the handlers, one per kind of event; everything else about getting an
event to Teams, and about telling the room how that went, is here.
"""
