"""Overview: is everything up, how busy are we, and which assistant needs attention."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from console import golden, ui
from console.api import Api, FeatureMissing, Stats

st.title("Overview")
api: Api = ui.client()


def show_health(status: dict[str, Any]) -> None:
    ollama = status.get("ollama") or {}
    database = status.get("database") or {}
    cols = st.columns(3)
    with cols[0]:
        st.markdown("**Database**")
        ui.badge("up" if database.get("ok") else "down", {"up": ("green", "Up"), "down": ("red", "Down")})
        if database.get("error"):
            ui.problem_caption(database["error"], "", "the database")
    with cols[1]:
        st.markdown("**Answers**")
        show_engines(status.get("engines") or {}, ollama)
    with cols[2]:
        st.markdown("**WhatsApp gateways**")
        for gateway in status.get("gateways") or []:
            if isinstance(gateway, dict) and gateway.get("configured"):
                color = "green" if gateway.get("ok") else "red"
                st.markdown(f":{color}-badge[{ui.plain(gateway.get('provider') or '?')}]")
                if gateway.get("error"):
                    ui.problem_caption(gateway["error"], "", "the WhatsApp gateway")


def show_engines(engines: dict[str, Any], ollama: dict[str, Any]) -> None:
    answering = engines.get("answering")
    embedded = engines.get("embedded") or {}
    if answering == "ollama":
        if ollama.get("models_missing"):
            st.badge("Ollama: a model is missing", color="orange")
            st.caption(f"Pull {', '.join(ollama['models_missing'])} on the Assistants page.")
        else:
            st.badge("Ollama", color="green")
    elif answering == "embedded":
        demo = embedded.get("bundled_demo_model")
        st.badge("Embedded model", color="orange" if demo else "green")
        note = f" ({ui.DEMO_MODEL_NOTE})" if demo else ""
        reason = "" if engines.get("provider") == "embedded" else f" Ollama is not answering at `{ollama.get('host', '?')}`."
        st.caption(f"`{embedded.get('model', '?')}` answers{note}.{reason}")
    elif answering == "openai":
        st.badge("OpenAI-compatible server", color="green")
    else:
        st.badge("No model answers", color="red")
        st.caption("Customers get the best passage from your documents instead of a written answer until an engine is back.")


def show_numbers(stats: Stats) -> None:
    median = stats.median_latency_ms
    cols = st.columns(4)
    cols[0].metric(f"Messages, last {stats.days} days", stats.inbound + stats.outbound)
    cols[1].metric("Median reply time", f"{median / 1000:.1f} s" if median is not None else "—")
    cols[2].metric("Failed replies", stats.failed, help="Replies that could not be sent after every retry")
    longest = f"; the longest for {ui.duration(stats.longest_wait_seconds)}" if stats.longest_wait_seconds is not None else ""
    cols[3].metric(
        "Unanswered",
        stats.waiting_for_person,
        help="Customers waiting for a person: they asked for one, got the fallback answer, or a reply could not be sent"
        + longest,
    )
    if stats.waiting_for_person:
        st.page_link("views/inbox.py", label="See who needs a person", icon=":material/support_agent:")
    elif stats.failed:
        st.page_link("views/conversations.py", label="See the conversations that need you", icon=":material/priority_high:")
    if stats.degraded:
        replies = "1 reply was" if stats.degraded == 1 else f"{stats.degraded} replies were"
        st.caption(f"{replies} sent without a model (no engine answered): check them in Conversations.")
    if not stats.per_day or not (stats.inbound + stats.outbound):
        st.caption("No messages yet. Connect WhatsApp and write to the number (or use the sandbox chat) to see traffic here.")
        return
    show_outcomes(stats)


OUTCOMES = {  # column of /api/stats' per_day -> what the chart calls it
    "answered_by_bot": "answered by the bot",
    "handed_to_person": "asked for a person",
    "fallback": "fallback answer",
    "ungrounded_replaced": "invented fact stopped",
    "failed_sends": "failed to send",
}


def show_outcomes(stats: Stats) -> None:
    """The last days at a glance: traffic, what became of the questions, feedback and reply time."""
    frame = pd.DataFrame(stats.per_day).set_index("day")
    left, right = st.columns(2)
    left.markdown("**Messages per day**")
    left.bar_chart(frame[["inbound", "outbound"]].rename(columns={"inbound": "received", "outbound": "sent"}))
    right.markdown("**Outcomes per day**")
    right.bar_chart(frame[[c for c in OUTCOMES if c in frame]].rename(columns=OUTCOMES))
    left, right = st.columns(2)
    left.markdown("**Customers' reactions**")
    left.bar_chart(frame[["thumbs_up", "thumbs_down"]].rename(columns={"thumbs_up": "👍 / ❤️", "thumbs_down": "👎"}),
                   color=["#2e7d32", "#c62828"])  # fmt: skip
    right.markdown("**Reply time (seconds)**")
    latency = frame[["median_latency_ms", "p90_latency_ms"]].astype(float) / 1000
    right.line_chart(latency.rename(columns={"median_latency_ms": "median", "p90_latency_ms": "90% within"}))
    st.download_button(
        "Download these numbers (CSV)",
        frame.reset_index().to_csv(index=False).encode(),
        file_name=f"outcomes-last-{stats.days}-days.csv",
        mime="text/csv",
        icon=":material/download:",
    )


def link(column, page: str, label: str, icon: str, assistant_id: int) -> None:  # a Streamlit column
    column.page_link(f"views/{page}.py", label=label, icon=icon, query_params={"assistant": assistant_id})


with ui.friendly():
    try:
        show_health(api.status())
    except FeatureMissing:
        st.caption("Dependency status is not available on this backend.")

with ui.friendly():
    golden.overview_warnings(api)

st.subheader("Assistants")
with ui.friendly():
    assistants = api.assistants()
    if not assistants:
        st.info("You have no assistant yet. Create one, give it documents, then connect a WhatsApp number.")
        st.page_link("views/assistants.py", label="Create your first assistant", icon=":material/add:")
    else:
        try:
            channels = api.channels()
        except FeatureMissing:
            channels = []
        for assistant in assistants:
            mine = [c for c in channels if c.assistant_id == assistant.id]
            with st.container(border=True):
                left, right = st.columns([2, 3])
                left.markdown(f"**{ui.plain(assistant.name)}**  \n`{assistant.model}`")
                badges = " ".join(ui.channel_badge_markdown(c.status, c.phone_number) for c in mine)
                right.markdown(badges or ":gray-badge[No WhatsApp number]")
                links = right.columns(3)
                link(links[0], "whatsapp", "WhatsApp", ":material/qr_code_2:", assistant.id)
                link(links[1], "knowledge", "Knowledge", ":material/library_books:", assistant.id)
                link(links[2], "conversations", "Conversations", ":material/forum:", assistant.id)

st.subheader("Activity")
with ui.friendly():
    try:
        show_numbers(api.stats())
    except FeatureMissing:
        st.caption("Message statistics are not available on this backend yet.")
