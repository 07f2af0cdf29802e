"""Whether a customer's message gets an answer, and why not: the one rule, pure (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from backend.gateways.base import InboundMessage
from backend.services.policies import ReplyPolicy

VOICE_KINDS = frozenset({"audio", "voice"})
# Outcomes that change the contact (opt-out, opt-in, pause): applied on the locked contact row.
CHANGES_CONTACT = frozenset({"opt_out", "opt_in", "handoff_request"})


@dataclass(frozen=True)
class ContactState:
    """What of a contact the decision depends on."""

    opted_out: bool = False
    paused: bool = False

    @classmethod
    def of(cls, opted_out_at: datetime | None, paused_until: datetime | None, now: datetime) -> ContactState:
        # The same rule in SQL: `usual` in backend.store.messages.INGEST_CUSTOMER.
        return cls(opted_out=opted_out_at is not None, paused=paused_until is not None and paused_until > now)

    @property
    def usual(self) -> bool:
        return not (self.opted_out or self.paused)


USUAL = ContactState()


@dataclass(frozen=True)
class Decision:
    status: str  # `pending` waits for a reply, `ignored` never gets one
    reason: str | None = (
        None  # of a pending message: the canned reply it gets (opt_out, opt_in, handoff_request, media_without_text)
    )

    @property
    def answered(self) -> bool:
        return self.status == "pending"

    @property
    def changes_contact(self) -> bool:
        return self.reason in CHANGES_CONTACT


def aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def is_backlog(connected_at: datetime | None, message: InboundMessage) -> bool:
    """A message written before this connection existed: a bridge re-delivering history."""
    connected_at, sent_at = aware(connected_at), aware(message.timestamp)
    if connected_at is None or sent_at is None:
        return False
    # WhatsApp timestamps have whole seconds.
    return sent_at < connected_at.replace(microsecond=0)


def decide(policy: ReplyPolicy, connected_at: datetime | None, contact: ContactState, message: InboundMessage) -> Decision:
    """The decision for a customer's message to a contact in this state, on a channel connected at `connected_at`."""
    text = message.text or ""
    if message.is_group and policy.ignore_groups:
        return Decision("ignored", "group")
    if message.is_broadcast and policy.ignore_broadcasts:
        return Decision("ignored", "broadcast")
    if is_backlog(connected_at, message):
        return Decision("ignored", "before_connection")
    # Command words of every language count, whatever the contact's: "PARAR" opts out before any language is known
    # (the confirmation goes out in the words' language, backend.services.replies._canned).
    if policy.says("opt_out", text):
        return Decision("ignored", "opted_out") if contact.opted_out else Decision("pending", "opt_out")
    if contact.opted_out:
        opt_in = policy.says("opt_in", text)
        return Decision("pending", "opt_in") if opt_in else Decision("ignored", "opted_out")
    if contact.paused:
        return Decision("ignored", "paused")
    if policy.says("handoff", text):
        return Decision("pending", "handoff_request")
    if not text.strip():
        if message.media is not None and message.media.kind in VOICE_KINDS:
            return Decision("pending", "voice_note")  # answered once heard (backend.services.voice)
        return Decision("pending", "media_without_text") if message.has_media else Decision("ignored", "empty")
    return Decision("pending")
