"""The platform-free chat layer that the Slack and Discord adapters share.

flow.py       ChatCore: refuse -> relay (stream) -> record, feedback, escalations, drain
limits.py     bounded per-user rate limiter and seen-keys (dedupe) maps
outcomes.py   which answers get feedback / escalation buttons (one rule for both chats)
questions.py  the "is this a question?" test for auto-reply channels
reindex.py    follow a reindex job's progress through an `edit` callback
texts.py      the sentences users read
"""
