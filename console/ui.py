"""What every page shares: the session's client, friendly errors, badges, the chosen assistant."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import streamlit as st

from console.addresses import browser_address
from console.api import Api, ApiError, Assistant, BackendUnreachable, Message, SessionExpired, Thread
from console.config import console_settings

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


# Every ASCII punctuation character, each of which CommonMark lets a backslash make literal.
_MARKDOWN_PUNCTUATION = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")


def plain(text: str | None) -> str:
    """Untrusted text (what a customer wrote or is called, a document's name) for places that
    render Markdown (labels, headings, messages): shown as written, never as an image the browser
    fetches, a link, HTML or a Streamlit directive. Where nothing of ours surrounds it, use st.text."""
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", " ".join((text or "").splitlines()))


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


def log_in(token_value: str) -> None:
    """Keep the token, and who it belongs to as the backend says (email and role)."""
    st.session_state[TOKEN] = token_value
    for key in (OPERATOR, ROLE):
        st.session_state.pop(key, None)
    role()


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
    for key in (TOKEN, OPERATOR, ROLE, CURRENT_ASSISTANT, ASSISTANT_PICKER):
        st.session_state.pop(key, None)
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


def flash(message: str, kind: str = "success") -> None:
    """A message shown once, on the next run (survives `st.rerun`)."""
    st.session_state.setdefault(FLASH, []).append((kind, message))


def show_flash() -> None:
    for kind, message in st.session_state.pop(FLASH, []):
        {"success": st.success, "warning": st.warning, "error": st.error}.get(kind, st.info)(message)


def show_error(error: ApiError) -> None:
    if isinstance(error, BackendUnreachable):
        st.error(f"**The backend is not reachable.** {error.message}", icon=":material/cloud_off:")
        return
    problems = error.field_problems()
    text = error.message + ("\n\n" + "\n".join(f"- {p}" for p in problems) if problems else "")
    st.error(text, icon=":material/error:")


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


def clock(value: Any) -> str:
    moment = parse_time(value)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def number_of(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


DEGRADED_REASONS = {
    "ollama_unreachable": "Ollama could not be reached",
    "openai_unreachable": "the OpenAI-compatible server could not be reached",
    "openai_auth": "the OpenAI-compatible server refused the API key",
    "openai_error": "the OpenAI-compatible server answered with an error",
    "embedded_unavailable": "the embedded model could not be loaded",
    "prompt_too_long": "the question and sources did not fit the model's window",
    "model_not_found": "the model is not available on its engine",
    "timeout": "the model took too long to answer",
    "empty_answer": "the model gave an empty answer",
    "no_engine": "no model engine is configured for this assistant",
    "embeddings_unavailable": "the embedding model was unavailable, so only exact words were searched",
}
ENGINE_NAMES = {"ollama": "Ollama", "openai": "OpenAI-compatible server", "embedded": "embedded model"}
DEMO_MODEL_NOTE = "a small demo model: weak answers; connect Ollama or an OpenAI-compatible server for customers"


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


def answer_flags(degraded: bool, reason: str | None, used_fallback: bool, trace: dict[str, Any] | None = None) -> None:
    trace = trace or {}
    if degraded:
        why = DEGRADED_REASONS.get(reason or "", reason or "the model was unavailable")
        st.warning(f"**Degraded answer**: {why}, so the best passage from the documents was sent instead.", icon="⚠️")
    if trace.get("ungrounded"):
        # The model wrote these: a backtick inside would end the code span and let Markdown through.
        facts = ", ".join(f"`{str(fact).replace('`', chr(39))}`" for fact in trace.get("ungrounded_facts") or [])
        st.warning(
            f"**Invented facts stopped**: the model wrote {facts or 'facts'} that no source contains, so the best"
            " passage from the documents was sent instead. What the model wrote is in the trace (`generated_text`).",
            icon=":material/gpp_maybe:",
        )
    if used_fallback:
        if trace.get("fallback_reason") == "model_not_in_sources":
            st.info("The model found no answer in the sources, so the fallback message was used. See **Knowledge gaps**.")
        else:
            st.info("No passage in the documents was good enough, so the fallback message was used. See **Knowledge gaps**.")


def engine_caption(trace: dict[str, Any] | None) -> str | None:
    """ "Answered by the embedded model SmolLM2-… in 0.4 s", from a reply's trace."""
    trace = trace or {}
    engine = trace.get("engine")
    if not engine:
        return None
    generation = (trace.get("timings_ms") or {}).get("generation")
    took = f" in {ms(generation)}" if generation is not None else ""
    return f"Answered by {ENGINE_NAMES.get(engine, engine)} `{trace.get('model') or '?'}`{took}"


def show_sources_and_trace(sources: list[dict[str, Any]] | None, trace: dict[str, Any] | None, *, collapsed: bool = True) -> None:
    """The documents an answer used, and how it was made (passages, scores, prompt size, timings)."""
    trace = trace or {}
    if sources:
        st.markdown("**Sources**")
        st.dataframe(
            [
                {
                    "document": s.get("filename"),
                    "part": s.get("position"),
                    "score": s.get("score"),
                }
                for s in sources
            ],
            hide_index=True,
        )
    if not trace:
        return
    # Expanders cannot nest: inside one already, the trace is shown as is.
    with st.expander("Trace: passages, scores, prompt and timings") if collapsed else st.container():
        passages = trace.get("passages") or []
        if passages:
            st.dataframe(
                [
                    {
                        "document": p.get("filename"),
                        "heading": p.get("heading"),
                        "score": p.get("score"),
                        "similarity": p.get("dense_score"),
                        "keyword score": p.get("lexical_score"),
                        "text": (p.get("text") or "")[:300],
                    }
                    for p in passages
                    if isinstance(p, dict)
                ],
                hide_index=True,
            )
        cols = st.columns(4)
        cols[0].metric("Prompt tokens", trace.get("prompt_tokens") if trace.get("prompt_tokens") is not None else "—")
        cols[1].metric("Context window", trace.get("num_ctx") if trace.get("num_ctx") is not None else "—")
        cols[2].metric("Truncated", "yes" if trace.get("truncated") else "no")
        cols[3].metric("Model", str(trace.get("model") or "—"))
        if trace.get("truncated"):
            st.warning("Ollama cut the prompt: some sources or history were not seen by the model.")
        timings = trace.get("timings_ms") or {}
        if timings:
            st.caption(" · ".join(f"{name}: {ms(value)}" for name, value in timings.items()))
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


def chat_bubble(message: Message, *, details: bool = False) -> None:
    """One message of a thread, as a chat bubble with who wrote it, when, and its delivery status."""
    role, avatar, who = AUTHORS.get(message.author, ("assistant", None, message.author))
    with st.chat_message(role, avatar=avatar):
        # Customers' words and the model's are text: Markdown would let `![](http://…)` load in the operator's browser.
        st.text(message.text or "(no text)")
        facts = [who, clock(message.created_at), DELIVERY.get(message.status or "", message.status or "")]
        if message.latency_ms is not None and message.direction == "out":
            facts.append(f"replied in {ms(message.latency_ms)}")
        if message.reason and message.direction == "in" and message.status == "ignored":
            facts.append(f"why: {message.reason}")
        st.caption(" · ".join(f for f in facts if f))
        if message.degraded:
            st.badge("Degraded answer", color="orange", icon=":material/warning:")
        if (message.trace or {}).get("ungrounded"):
            st.badge("Invented facts stopped", color="orange", icon=":material/gpp_maybe:")
        if message.error:
            st.error(plain(message.error))
        if details and (message.sources or message.trace):
            with st.expander("Sources and trace"):
                if message.trace:
                    answer_flags(False, None, bool(message.trace.get("used_fallback")), message.trace)
                    if caption := engine_caption(message.trace):
                        st.caption(caption)
                show_sources_and_trace(message.sources, message.trace, collapsed=False)
