"""The sentences chat users read, in one place (Slack and Discord both use them).

Platform markup stays out of these strings; the adapters add emoji or formatting around them.
"""

from __future__ import annotations

#: Shown at once while the answer is searched for and written.
SEARCHING = "Searching the Milvus docs…"
#: New questions while `docsbot serve` shuts down.
SHUTTING_DOWN = "I'm restarting for maintenance; please ask again in a minute."
#: Something failed on our side (the log has the details).
ERROR_SENTENCE = "Sorry, something went wrong on my side while doing that; the details are in the bot's log."
#: A /reindex from someone who may not.
NOT_ADMIN = (
    "Sorry, only the bot's admins can reindex the docs. If the answers look out of date, "
    "please tell one of them."
)
#: `/reindex force` (accept deletions) from someone who may reindex but is not a listed admin.
FORCE_NOT_ADMIN = (
    "Sorry, only the bot's listed admins can apply deletions (`force`); a plain reindex "
    "never deletes more than the safety gate allows."
)
FEEDBACK_THANKS = {
    1: "Thanks! Glad it helped.",
    -1: "Thanks for telling me. Answers marked not helpful are reviewed to improve the bot and the docs.",
}
FEEDBACK_UNKNOWN = "Thanks, but I no longer have that answer on record, so the vote wasn't stored."
#: The 👎 dialog: its title, question and the reasons offered (value -> label).
WHY_TITLE = "What was wrong?"
WHY_QUESTION = "Why wasn't this answer helpful?"
WHY_REASONS = {
    "wrong": "It's wrong",
    "outdated": "It's outdated",
    "not_what_i_asked": "Not what I asked",
    "other": "Something else",
}
WHY_DETAILS = "Anything else? (optional)"
WHY_THANKS = "Thanks, noted. It helps us fix the answer and the docs."
#: The "still need help?" button and what happens after it.
ESCALATE_LABEL = "Still need help?"
ESCALATED = "{people} this question still needs a person's help. I'll stay out of this thread from here."
ESCALATED_ALREADY = "A person has already been asked to help in this thread."
ESCALATION_OFF = "Sorry, no team is set up to take questions from here; please ask in the channel."
#: Discord's button for the same, and what it says once pressed.
NEEDS_HUMAN_LABEL = "Needs a human"
HELPERS_NOTIFIED_LABEL = "Helpers notified"
#: A question in a DM while DISCORD_ALLOW_DMS / SLACK_ALLOW_DMS is off.
DMS_OFF = "I only answer in servers here; ask me in a channel with /ask or a mention."
#: A Discord /reindex from a server outside DISCORD_GUILD_IDS (the index is shared by all).
OTHER_SERVER = "Sorry, the docs index is managed from the bot's home server, not from this one."


def rate_limited(per_minute: int, seconds: float) -> str:
    """The answer to a user over USER_RATE_LIMIT."""
    return (
        f"You're asking faster than I can keep up ({per_minute} questions a minute). "
        f"Please try again in {max(1, round(seconds))} seconds."
    )
