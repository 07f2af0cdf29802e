"""What every page shares: the session's client, friendly errors, badges, the chosen assistant."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import streamlit as st

from console import browser_session
from console.addresses import browser_address
from console.api import (
    Api,
    ApiError,
    Assistant,
    BackendUnreachable,
    Inbox,
    LanguageCatalog,
    Message,
    MessageMedia,
    SessionExpired,
    SignIn,
    Thread,
)
from console.config import console_settings
from console.failure_words import DEGRADED_REASONS, QUOTE_REASONS, degraded_words, person_error  # noqa: F401 - the pages use ui.*
from console.markdown_text import plain, tidy

TOKEN = "token"
OPERATOR = "operator_email"
ROLE = "operator_role"
FLASH = "flash"
CURRENT_ASSISTANT = "current_assistant_id"
ASSISTANT_PICKER = "assistant_picker"
CLIENT = "api_client"

CHANNEL_BADGES = {
    "ready": ("green", "Connected"),
    "pending_qr": ("orange", "Waiting for QR scan"),
    "disconnected": ("red", "Disconnected"),
}
DOCUMENT_BADGES = {
    "ready": ("green", "Ready"),
    "indexing": ("blue", "Indexing"),
    "pending": ("gray", "Waiting"),
    "failed": ("red", "Failed"),
}


def problem_caption(error: str, what: str, system: str) -> None:
    """A small status problem (the overview's health): the person's words as a caption, the text folded away."""
    words = person_error(error, what, system).strip()
    st.caption(tidy(words[:1].upper() + words[1:]))
    if error.strip() not in words and plain(error.strip()) not in words:
        with st.expander("Technical detail"):
            st.code(error.strip(), language=None, wrap_lines=True)


def show_problem(message: str, detail: str | None = None, *, icon: str = ":material/error:") -> None:
    """A problem in a person's words, with the technical detail (if it says more) folded away."""
    st.error(tidy(message), icon=icon)
    if detail and detail.strip() and detail.strip() not in message and plain(detail.strip()) not in message:
        with st.expander("Technical detail"):
            st.code(detail.strip(), language=None, wrap_lines=True)


# What makes a spreadsheet read a cell as a formula (`=HYPERLINK(...)` sends data away when clicked).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> str:
    """A CSV cell a spreadsheet shows as text: a leading `'` on anything it would run as a formula."""
    text = str(value)
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text


def thread_csv(thread: Thread) -> bytes:
    """A conversation as CSV, for spreadsheets: customers' words never become formulas."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["time", "direction", "author", "status", "degraded", "text", "sources", "error"])
    for m in thread.items:
        sources = "; ".join(str(s.get("filename")) for s in m.sources or [])
        row = [m.created_at.isoformat() if m.created_at else "", m.direction, m.author, m.status or "", m.degraded, m.text,
               sources, m.error or ""]  # fmt: skip
        writer.writerow([spreadsheet_safe(cell) for cell in row])
    return out.getvalue().encode("utf-8")


def token() -> str | None:
    return st.session_state.get(TOKEN)


def client() -> Api:
    """The session's client (kept across runs for its connection pool), with the operator's token."""
    base_url, current = console_settings().backend_url, token()
    api = st.session_state.get(CLIENT)
    if not isinstance(api, Api) or (api.base_url, api.token) != (base_url.rstrip("/"), current):
        if isinstance(api, Api):
            api.close()
        api = st.session_state[CLIENT] = Api(base_url, current)
    return api


def log_in(signed_in: SignIn) -> None:
    """Keep the token, and who it belongs to as the backend says (email and role); this browser keeps it too."""
    _adopt(signed_in.token)
    browser_session.remember(signed_in.token, signed_in.expires_in)


def _adopt(token_value: str) -> None:
    st.session_state[TOKEN] = token_value
    for key in (OPERATOR, ROLE):
        st.session_state.pop(key, None)
    role()


# A kept token the backend refuses: the operator logged out (here or elsewhere), changed the password, or it expired.
SESSION_ENDED = "You were signed out: your session ended (a logout in this or another browser, or it expired). Log in again."


def resume_browser_session() -> None:
    """A new session of a browser that was signed in (a reload, a new tab): signed in again with the token it keeps."""
    if token() or not (kept := browser_session.kept_token()):
        return
    try:
        _adopt(kept)
    except SessionExpired:
        log_out(SESSION_ENDED)  # and the cookie goes
    except ApiError:
        pass  # the backend cannot say now: keep the token, and each page explains what is unreachable


def role() -> str:
    """The signed-in operator's role ("admin" or "operator"), asked of the backend once a session."""
    if ROLE not in st.session_state:
        me = client().me()
        st.session_state[OPERATOR], st.session_state[ROLE] = me.get("email"), me.get("role") or "operator"
    return st.session_state[ROLE]


def is_admin() -> bool:
    return role() == "admin"


def admin_only(action: str) -> str | None:
    """None for an admin; for anyone else, why an admin action is not offered (the backend refuses it too)."""
    return None if is_admin() else f"Only an admin can {action}."


def forwarding() -> dict[str, str | None]:
    """The operator's browser address and the secret that lets the backend believe it, for calls that check a password."""
    settings = console_settings()
    address = browser_address(
        st.context.headers.get_all("X-Forwarded-For"), st.context.ip_address, settings.console_proxies_count
    )
    return {"client_address": address, "forwarded_secret": settings.forwarded_secret.get_secret_value() or None}


def log_out(message: str | None = None) -> None:
    """Forget the operator here, and in this browser's cookie if it still holds this token."""
    ended = token()
    for key in (TOKEN, OPERATOR, ROLE, CURRENT_ASSISTANT, ASSISTANT_PICKER):
        st.session_state.pop(key, None)
    if ended:
        browser_session.forget(ended)
    if message:
        flash(message, "warning")


def sign_out() -> None:
    """Log out on the backend (every browser of this operator), then here, even when the backend cannot be told."""
    try:
        client().sign_out()
    except SessionExpired:
        pass  # already ended
    except ApiError as error:
        log_out(f"Logged out of this browser only: {error.message} Your other sessions end when their tokens expire.")
        return
    log_out()
    flash("You are logged out.", "success")


def flash(message: str, kind: str = "success", detail: str | None = None) -> None:
    """A message shown once, on the next run (survives `st.rerun`); `detail`: technical words, folded away."""
    st.session_state.setdefault(FLASH, []).append((kind, message, detail))


def show_flash() -> None:
    for kind, message, *detail in st.session_state.pop(FLASH, []):
        {"success": st.success, "warning": st.warning, "error": st.error}.get(kind, st.info)(tidy(message))
        if detail and detail[0]:
            with st.expander("Technical detail"):
                st.code(detail[0], language=None, wrap_lines=True)


# Refusals whose backend message names formats or systems (`application/x-msdownload`): what they mean, and what to do.
REFUSALS = {
    "unsupported_document": "{file} is not a kind of file the assistant can read. Upload plain text, Markdown, HTML, PDF"
    " or Word (.docx) files.",
    "corrupt_document": "{file} could not be read: it may be damaged, or not the kind of file its name says.",
    "empty_document": "{file} has no text the assistant could learn from.",
    "document_too_large": "{file} is too large to upload here.",
    "too_large": "{file} is larger than this server accepts (MAX_UPLOAD_MB).",
    "document_too_complex": "{file} is too complex to read within this server's limits. Try a simpler export of it.",
    "embeddings_unavailable": "The search model is not available right now, so this could not be done. Try again in a moment.",
}


def refusal_words(error: ApiError, filename: str | None = None) -> str:
    """Why the backend refused a file, in a person's words (its own message when it has no words of ours)."""
    if isinstance(error.details, dict) and error.details.get("filename"):
        filename = str(error.details["filename"])
    file = f"**{plain(filename)}**" if filename else "This file"
    if words := REFUSALS.get(error.code):
        return words.format(file=file)
    return f"{file}: {error.message}" if filename else error.message


def show_error(error: ApiError) -> None:
    if isinstance(error, BackendUnreachable):
        st.error(tidy(f"**The backend is not reachable.** {error.message}"), icon=":material/cloud_off:")
        return
    if error.code in REFUSALS:
        show_problem(refusal_words(error), error.message)
        return
    problems = error.field_problems()
    text = error.message + ("\n\n" + "\n".join(f"- {p}" for p in problems) if problems else "")
    st.error(tidy(text), icon=":material/error:")


@contextmanager
def friendly(refusals: Mapping[str, str] | None = None) -> Iterator[None]:
    """Show an API failure as a message in the page (`refusals`: the page's own words for some error
    codes); an expired session goes back to login."""
    try:
        yield
    except SessionExpired as error:
        log_out(error.message)
        st.rerun()
    except ApiError as error:
        if refusals and error.code in refusals:
            st.error(refusals[error.code], icon=":material/block:")
        else:
            show_error(error)


def badge(kind: str, table: dict[str, tuple[str, str]]) -> None:
    color, label = table.get(kind, ("gray", kind or "unknown"))
    st.badge(label, color=color)  # type: ignore[arg-type]


def channel_badge_markdown(status: str, phone_number: str | None = None) -> str:
    color, label = CHANNEL_BADGES.get(status, ("gray", status or "unknown"))
    if status == "ready" and phone_number:
        label = f"Connected as {phone_number}"
    return f":{color}-badge[{label}]"


def choose_assistant(api: Api, *, label: str = "Assistant") -> Assistant | None:
    """A selector shared by the pages; the choice follows the operator from page to page."""
    assistants = api.assistants()
    if not assistants:
        st.info("No assistant yet. Create one on the **Assistants** page first.", icon=":material/smart_toy:")
        st.page_link("views/assistants.py", label="Create an assistant", icon=":material/add:")
        return None
    ids = [a.id for a in assistants]
    by_id = {a.id: a for a in assistants}
    # A link from another page names the assistant once (?assistant=ID); then the picker rules.
    wanted = st.query_params.get("assistant")
    if wanted is not None:
        del st.query_params["assistant"]
        if wanted.isdigit() and int(wanted) in ids:
            st.session_state[CURRENT_ASSISTANT] = st.session_state[ASSISTANT_PICKER] = int(wanted)
    if st.session_state.get(ASSISTANT_PICKER) not in ids:
        current = st.session_state.get(CURRENT_ASSISTANT)
        st.session_state[ASSISTANT_PICKER] = current if current in ids else ids[0]
    chosen = st.selectbox(label, ids, key=ASSISTANT_PICKER, format_func=lambda i: by_id[i].name)
    st.session_state[CURRENT_ASSISTANT] = chosen
    return by_id[chosen]


def parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def ago(value: Any) -> str:
    moment = parse_time(value)
    if moment is None:
        return "—"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = (datetime.now(UTC) - moment).total_seconds()
    if seconds < 60:
        return "just now"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"


def operator_zone() -> ZoneInfo:
    """The operator's browser's time zone (Streamlit tells it), else UTC: never the server's, which nobody sees."""
    try:
        name = st.context.timezone
    except Exception:  # outside a script run (tests of helpers): no browser
        name = None
    try:
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def clock(value: Any) -> str:
    """ "2025-01-31 14:05:09 CET": the moment in the operator's zone, with the zone named."""
    moment = parse_time(value)
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(operator_zone()).strftime("%Y-%m-%d %H:%M:%S %Z")


def duration(seconds: float | None) -> str:
    """ "2 h 5 min": how long something has lasted, to the minute."""
    if seconds is None:
        return "—"
    minutes = int(seconds // 60)
    if minutes < 1:
        return "under a minute"
    days, hours, minutes = minutes // 1440, minutes // 60 % 24, minutes % 60
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


WAITING = "waiting_for_person"
# Why a customer waits for a person, in the operator's words.
WAIT_REASONS = {
    "handoff": "Asked to talk to a person",
    "fallback": "The assistant could not answer from your documents and promised a person would follow up",
    "failed_send": "A message to this customer could not be sent",
}


def refresh_waiting() -> Inbox | None:
    """Who waits for a person, asked once a run (app.py: the count in the navigation; the inbox page
    lists the same answer). None when the backend cannot say now: the page's own calls explain why."""
    st.session_state.pop(WAITING, None)
    try:
        st.session_state[WAITING] = client().inbox()
    except ApiError:
        return None
    return st.session_state[WAITING]


def waiting() -> Inbox:
    """This run's inbox: the one app.py fetched for the navigation, or a fresh one."""
    found = st.session_state.get(WAITING)
    return found if isinstance(found, Inbox) else client().inbox()


def number_of(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# The audio formats the console plays as such; anything else is played as ogg (the bytes decide what plays).
PLAYABLE_AUDIO = {
    mime: mime
    for mime in ("audio/ogg", "audio/opus", "audio/mpeg", "audio/mp4", "audio/aac", "audio/webm", "audio/wav", "audio/flac")
}
ENGINE_NAMES = {"ollama": "Ollama", "openai": "OpenAI-compatible server", "embedded": "embedded model"}
DEMO_MODEL_NOTE = "a small demo model: weak answers; connect Ollama or an OpenAI-compatible server for customers"


# Cosine similarity of the question and a passage (the embedding model's 0 to 1); below the assistant's
# minimum score (0.2 by default) it answers with the fallback message.
STRONG_MATCH, FAIR_MATCH = 0.5, 0.3


MATCHES = {
    "strong": "close in meaning to the question",
    "fair": "on a related subject; the answer may be only partly in it",
    "weak": "little in common with the question, too far from it to answer well",
}


def match_strength(similarity: float) -> str:
    return "strong" if similarity >= STRONG_MATCH else "fair" if similarity >= FAIR_MATCH else "weak"


def match_words(similarity: float | None, keywords: float | None = None) -> str:
    """ "Strong match: close in meaning to the question, and shares words with it", for a newcomer."""
    if similarity is None:
        return "**Keyword match**: found by the words it shares with the question, not by meaning."
    strength = match_strength(similarity)
    shared = ", and shares words with it" if keywords else "; no words in common, found by meaning only"
    return f"**{strength.capitalize()} match**: {MATCHES[strength]}{shared}."


def size(value: int | None) -> str:
    if value is None:
        return "—"
    if value < 1024:
        return f"{value} bytes"
    return f"{value / 1024:.0f} KB" if value < 1024 * 1024 else f"{value / 1024 / 1024:.1f} MB"


def ms(value: Any) -> str:
    number = number_of(value)
    if number is None:
        return "—"
    return f"{number / 1000:.2f} s" if number >= 1000 else f"{number:.0f} ms"


Note = tuple[str, str, str]  # label, the one-line reason, icon


def reply_notes(degraded: bool, reason: str | None, used_fallback: bool, trace: dict[str, Any] | None = None) -> list[Note]:
    """Why a reply is not the model's own answer: a note for each thing that happened."""
    trace = trace or {}
    notes = []
    if degraded:
        why = degraded_words(reason)
        notes.append(("Degraded answer", f"{why}, so the documents' sentences that answer were quoted instead.", "⚠️"))
    if trace.get("ungrounded"):
        # The model wrote these: a backtick inside would end the code span and let Markdown through.
        facts = ", ".join(f"`{str(fact).replace('`', chr(39))}`" for fact in trace.get("ungrounded_facts") or [])
        notes.append(
            (
                "Invented facts stopped",
                f"the model wrote {facts or 'facts'} that no source sentence about the question contains, so the"
                " documents' sentences that answer were quoted instead.",
                ":material/gpp_maybe:",
            )
        )
    if trace.get("quote_reason") in QUOTE_REASONS:
        why = QUOTE_REASONS[trace["quote_reason"]]
        notes.append(("Quoted instead", f"{why}, so the documents' sentences that answer were sent.", ":material/format_quote:"))
    if used_fallback:
        if trace.get("fallback_reason") == "model_not_in_sources":
            why = "the model found no answer in the sources, so the fallback message was sent."
        else:
            why = "no passage in the documents was good enough, so the fallback message was sent."
        notes.append(("Fallback message", f"{why} See **Knowledge gaps**.", ":material/help:"))
    return notes


def answer_flags(degraded: bool, reason: str | None, used_fallback: bool, trace: dict[str, Any] | None = None) -> None:
    for label, why, icon in reply_notes(degraded, reason, used_fallback, trace):
        if label == "Invented facts stopped":
            why += " What the model wrote is in the trace (`generated_text`)."
        (st.info if label == "Fallback message" else st.warning)(f"**{label}**: {why}", icon=icon)


def timings_that_happened(trace: dict[str, Any] | None) -> dict[str, float]:
    """The trace's timings of steps that ran: no "generation" when no model answered."""
    trace = trace or {}
    timings = dict(trace.get("timings_ms") or {})
    if not trace.get("engine"):
        timings.pop("generation", None)  # only time spent trying engines that failed, or none at all
    return timings


def engine_caption(trace: dict[str, Any] | None) -> str | None:
    """ "Answered by the embedded model SmolLM2-… in 0.4 s", from a reply's trace."""
    trace = trace or {}
    engine = trace.get("engine")
    if not engine:
        return None
    generation = timings_that_happened(trace).get("generation")
    took = f" in {ms(generation)}" if generation is not None else ""
    return f"Answered by {ENGINE_NAMES.get(engine, engine)} `{trace.get('model') or '?'}`{took}"


TIMING_NAMES = {"retrieval": "finding passages", "generation": "writing the answer", "total": "total"}
SCORE_COLUMN = {"format": "%.2f", "width": "small"}


def show_sources_and_trace(sources: list[dict[str, Any]] | None, trace: dict[str, Any] | None, *, collapsed: bool = True) -> None:
    """The documents an answer used, and how it was made (passages, scores, prompt size, timings)."""
    trace = trace or {}
    if sources:
        st.markdown("**Sources the answer used**")
        st.dataframe(
            [{"document": s.get("filename"), "part": s.get("position"), "score": s.get("score")} for s in sources],
            hide_index=True,
            column_config={"score": st.column_config.NumberColumn("score", **SCORE_COLUMN)},
        )
    if not trace:
        return
    # Expanders cannot nest: inside one already, the trace is shown as is.
    with st.expander("Trace: passages, scores, prompt and timings") if collapsed else st.container():
        passages = [p for p in trace.get("passages") or [] if isinstance(p, dict)]
        if passages:
            st.markdown("**Passages found for the question**, best first")
            st.dataframe(
                [
                    {
                        "document": p.get("filename"),
                        "heading": p.get("heading"),
                        "score": p.get("score"),
                        "similarity": p.get("dense_score"),
                        "keywords": p.get("lexical_score"),
                        "text": (p.get("text") or "")[:300],
                    }
                    for p in passages
                ],
                hide_index=True,
                column_config={
                    "score": st.column_config.NumberColumn("score", **SCORE_COLUMN),
                    "similarity": st.column_config.NumberColumn("similarity", **SCORE_COLUMN),
                    "keywords": st.column_config.NumberColumn("keywords", **SCORE_COLUMN),
                    "text": st.column_config.TextColumn("text", width="large"),
                },
            )
        if trace.get("engine"):  # prompt figures exist only when a model was asked
            st.markdown("**Prompt**")
            cols = st.columns(3)
            cols[0].metric("Prompt tokens", trace.get("prompt_tokens") if trace.get("prompt_tokens") is not None else "—")
            cols[1].metric("Context window", trace.get("num_ctx") if trace.get("num_ctx") is not None else "—")
            cols[2].metric("Truncated", "yes" if trace.get("truncated") else "no")
            st.caption(f"Model: `{trace.get('model') or '?'}`")
            if trace.get("truncated"):
                st.warning("Ollama cut the prompt: some sources or history were not seen by the model.")
        else:
            st.caption("No model wrote this reply, so there is no prompt or generation time.")
        if timings := timings_that_happened(trace):
            st.caption("Timings: " + " · ".join(f"{TIMING_NAMES.get(name, name)} {ms(value)}" for name, value in timings.items()))
        st.caption("Raw trace")
        st.json(trace, expanded=False)


AUTHORS = {
    "customer": ("user", ":material/person:", "Customer"),
    "bot": ("assistant", ":material/smart_toy:", "Assistant"),
    "operator": ("assistant", ":material/support_agent:", "Operator"),
    "owner": ("assistant", ":material/smartphone:", "Owner (from the phone)"),
}
DELIVERY = {
    "received": "received",
    "queued": "queued",
    "sending": "sending…",
    "sent": "sent ✓",
    "delivered": "delivered ✓✓",
    "read": "read ✓✓",
    "failed": "failed ✗",
    "ignored": "not answered",
}


# Why an inbound message got no reply from the assistant, in words; "paused" changes once a person has answered.
IGNORED_REASONS = {
    "paused": "not answered by the assistant: a person is handling this chat",
    "opted_out": "not answered: the customer opted out",
    "rate_limited": "not answered: too many messages in a short time",
    "group": "not answered: group chats are left alone",
    "broadcast": "not answered: broadcast messages are left alone",
    "before_connection": "not answered: sent before the number was connected",
    "empty": "not answered: nothing to read in it",
}


def delivery(message: Message, answered_by_person: bool = False) -> str:
    if message.direction == "in" and message.status == "ignored" and message.reason:
        if message.reason == "paused" and answered_by_person:
            return "answered by a person"
        return IGNORED_REASONS.get(message.reason, f"not answered ({message.reason})")
    return DELIVERY.get(message.status or "", message.status or "")


MEDIA_KINDS = {
    "voice": ("Voice note", ":material/mic:"),
    "audio": ("Audio", ":material/audio_file:"),
    "image": ("Image", ":material/image:"),
    "video": ("Video", ":material/movie:"),
    "document": ("Document", ":material/description:"),
    "sticker": ("Sticker", ":material/mood:"),
    "location": ("Location", ":material/location_on:"),
    "contacts": ("Contact card", ":material/contact_page:"),
}


def show_media(media: MessageMedia) -> None:
    """A message's file: played or shown when it was fetched, with how a voice note was heard."""
    label, icon = MEDIA_KINDS.get(media.kind, (media.kind.title(), ":material/attach_file:"))
    st.badge(label, icon=icon, color="gray")
    facts = []
    if media.audio_seconds:
        facts.append(f"{media.audio_seconds:.0f} s")
    if media.transcript_model:
        heard_in = f" in {media.transcribe_seconds:.1f} s" if media.transcribe_seconds else ""
        facts.append(f"transcribed by {media.transcript_model}{heard_in}; the text below is what it heard")
    if facts:
        st.caption(" · ".join(facts))
    if media.error:
        st.caption(f"The file could not be fetched or heard ({media.error.replace('_', ' ')}).")
        return
    playable = media.kind in ("voice", "audio", "image", "sticker", "video")
    if playable and media.url:
        try:
            data = client().file(media.url)
        except ApiError:
            return  # not fetched (yet): the caption says what it is
        if media.kind in ("voice", "audio"):
            # Never the stored mimetype: Streamlit serves the bytes with it, and a sender may declare text/html.
            st.audio(data, format=PLAYABLE_AUDIO.get((media.mimetype or "").split(";")[0].strip().lower(), "audio/ogg"))
        elif media.kind == "video":
            st.video(data)
        else:
            st.image(data, width=240)


def chat_bubble(
    message: Message,
    *,
    details: bool = False,
    answered_by_person: bool = False,
    on_bot_reply: Callable[[Message], None] | None = None,
) -> None:
    """One message of a thread, as a chat bubble with who wrote it, when, its delivery status, and why a
    reply is not the model's own answer. `answered_by_person`: a person wrote to the customer after it;
    `on_bot_reply` adds the page's own controls under each bot reply."""
    role, avatar, who = AUTHORS.get(message.author, ("assistant", None, message.author))
    trace = message.trace or {}
    with st.chat_message(role, avatar=avatar):
        if message.media is not None:
            show_media(message.media)
        # Customers' words and the model's are text: Markdown would let `![](http://…)` load in the operator's browser.
        st.text(message.text or ("" if message.media is not None else "(no text)"))
        facts = [who, clock(message.created_at), delivery(message, answered_by_person)]
        if message.reactions:
            facts.append("the customer reacted " + " ".join(r.get("emoji", "") for r in message.reactions))
        if message.latency_ms is not None and message.direction == "out":
            facts.append(f"replied in {ms(message.latency_ms)}")
        st.caption(" · ".join(f for f in facts if f))
        if message.author == "bot":
            notes = reply_notes(message.degraded, trace.get("degraded_reason"), bool(trace.get("used_fallback")), trace)
            for label, why, icon in notes:
                st.badge(label, color="orange" if label != "Fallback message" else "blue", icon=icon)
                st.caption(why[:1].upper() + why[1:])
        if message.error:
            what = "Not sent:" if message.direction == "out" else "Not answered:"
            show_problem(person_error(message.error, what), message.error)
        if details and (message.sources or message.trace):
            with st.expander("Sources and trace"):
                if caption := engine_caption(message.trace):
                    st.caption(caption)
                show_sources_and_trace(message.sources, message.trace, collapsed=False)
        if on_bot_reply is not None and message.author == "bot":
            on_bot_reply(message)


def thread_bubbles(
    messages: list[Message], *, details: bool = False, on_bot_reply: Callable[[Message], None] | None = None
) -> None:
    """A thread's messages, oldest first, each knowing whether a person wrote to the customer after it."""
    person_wrote_after = False
    flags = []
    for message in reversed(messages):
        flags.append(person_wrote_after)
        person_wrote_after = person_wrote_after or (message.direction == "out" and message.author in ("operator", "owner"))
    for message, answered in zip(messages, reversed(flags), strict=True):
        chat_bubble(message, details=details, answered_by_person=answered, on_bot_reply=on_bot_reply)


LANGUAGES = "language_catalog"


def languages(api: Api) -> LanguageCatalog:
    """The languages an assistant can serve (kept for the session: they change only with the backend)."""
    catalog = st.session_state.get(LANGUAGES)
    if not isinstance(catalog, LanguageCatalog):
        catalog = st.session_state[LANGUAGES] = api.languages()
    return catalog


def language_label(catalog: LanguageCatalog, code: str | None) -> str:
    """`pt · Português`, the code alone for a language the backend does not list, or `unknown`."""
    if not code:
        return "unknown"
    found = catalog.of(code)
    return f"{code} · {found.native}" if found else code
