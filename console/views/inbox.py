"""Needs a person: customers the assistant could not help, waiting for someone of the team, the longest waiting first."""

from __future__ import annotations

import streamlit as st

from console import ui
from console.api import WaitingContact

OPEN_CONTACT = "open_contact_id"  # the thread the Conversations page opens


def waiting_card(item: WaitingContact) -> None:
    contact = item.contact
    with st.container(border=True):
        left, right = st.columns([4, 1])
        left.markdown(f"**{ui.plain(contact.label)}** · waiting **{ui.duration(item.waited_seconds)}**")
        left.markdown(ui.plain(ui.WAIT_REASONS.get(item.reason, item.reason)))
        others = [ui.WAIT_REASONS.get(r, r) for r in item.reasons if r != item.reason]
        details = [f"Since {ui.clock(item.waiting_since)}"]
        if others:
            details.append("also: " + "; ".join(others).lower())
        if contact.last_message:
            text = contact.last_message.text
            details.append(f"last message: “{text[:80]}{'…' if len(text) > 80 else ''}”")
        left.caption(ui.plain(" · ".join(details)))
        if right.button("Open the conversation", key=f"open-{contact.id}", icon=":material/forum:", width="stretch"):
            st.session_state[OPEN_CONTACT] = contact.id
            st.switch_page("views/conversations.py")


# The navigation's count, from the same call (none when the backend could not say: the call below explains).
counted = st.session_state.get(ui.WAITING)
st.title(f"Needs a person ({counted.total})" if counted and counted.total else "Needs a person")

with ui.friendly():
    inbox = ui.waiting()
    if not inbox.items:
        st.info(
            "Nobody is waiting for a person. Customers who ask for one, get the assistant's fallback answer, "
            "or miss a reply that could not be sent appear here, the longest waiting first.",
            icon=":material/check_circle:",
        )
    else:
        people = "customer waits" if inbox.total == 1 else "customers wait"
        st.caption(
            f"{inbox.total} {people} for a person, the longest waiting first. A reply from Conversations or from the "
            "phone, or giving the conversation back to the assistant, takes a customer off this list."
        )
        for item in inbox.items:
            waiting_card(item)
        if inbox.total > len(inbox.items):
            st.caption(f"And {inbox.total - len(inbox.items)} more: answer these first.")
