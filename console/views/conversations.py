"""Conversations: every customer thread, what the assistant answered and why, and taking over by hand."""

from __future__ import annotations

import streamlit as st

from console import golden, ui
from console.api import Api, Contact

st.title("Conversations")
api: Api = ui.client()
OPEN_CONTACT = "open_contact_id"
FILTERS = {"": "All", "unanswered": "Unanswered", "failed": "Failed", "paused": "Paused"}


def owner_line(contact: Contact) -> None:
    if contact.opted_out:
        st.badge("Opted out: never messaged again", color="red", icon=":material/block:")
    elif contact.owner == "human":
        who = {"operator": "an operator", "owner": "the phone's owner", "customer": "the customer's request"}.get(
            contact.paused_by or "", contact.paused_by or "a person"
        )
        until = f" until {ui.clock(contact.paused_until)}" if contact.paused_until else ""
        st.badge(f"A person answers (paused by {who}{until})", color="violet", icon=":material/support_agent:")
    else:
        st.badge("The assistant answers", color="green", icon=":material/smart_toy:")


def language_control(contact: Contact) -> None:
    """The customer's language, and the operator's choice of it (kept against detection) or back to detection."""
    catalog = ui.languages(api)
    detected = contact.language_source != "operator"
    now = ui.language_label(catalog, contact.language)
    st.caption(f"Language: {now} ({'detected from their messages' if detected else 'set by an operator'})")
    options = ["", *(item.code for item in catalog.items)]
    chosen = st.selectbox(
        "Customer's language",
        options,
        index=0 if detected or contact.language not in options else options.index(contact.language),
        format_func=lambda code: ui.language_label(catalog, code) if code else "Detect from their messages",
        key=f"language-{contact.id}",
        help="Replies and fixed texts go out in this language when the assistant serves it. Detection changes it only"
        " on a clear message; a language set here stays until you choose detection again.",
    )
    if chosen != ("" if detected else contact.language):
        api.set_contact_language(contact.id, chosen or None)
        ui.flash(f"Language set to {ui.language_label(catalog, chosen)}." if chosen else "Language: detected again.")
        st.rerun()


def contact_list(contacts: list[Contact]) -> None:
    for contact in contacts:
        last = contact.last_message
        preview = (last.text[:60] + ("…" if len(last.text) > 60 else "")) if last else "no messages"
        marker = " · :material/support_agent: person" if contact.owner == "human" else ""
        marker += f" · {contact.language}" if contact.language else ""
        label = f"**{ui.plain(contact.label)}**{marker}  \n{ui.plain(preview)}  \n{ui.ago(contact.last_message_at)}"
        chosen = st.session_state.get(OPEN_CONTACT) == contact.id
        if st.button(label, key=f"contact-{contact.id}", width="stretch", type="primary" if chosen else "secondary"):
            st.session_state[OPEN_CONTACT] = contact.id
            st.rerun()


def thread_view(contact_id: int) -> None:
    thread = api.thread(contact_id)
    contact = thread.contact
    st.subheader(ui.plain(contact.label))
    owner_line(contact)
    language_control(contact)
    cols = st.columns(3)
    if contact.owner == "human":
        if cols[0].button("Resume the bot", icon=":material/smart_toy:", key="resume"):
            api.resume(contact.id)
            ui.flash("The assistant answers this contact again.")
            st.rerun()
    elif cols[0].button("Pause the bot", icon=":material/pause:", key="pause"):
        api.pause(contact.id)
        ui.flash("Paused: the assistant stays quiet for this contact; reply below.")
        st.rerun()
    cols[1].download_button(
        "Export CSV",
        ui.thread_csv(thread),
        file_name=f"conversation-{contact.number.lstrip('+')}.csv",
        mime="text/csv",
        icon=":material/download:",
    )
    if not thread.items:
        st.caption("No messages in this conversation yet.")
    ui.thread_bubbles(
        thread.items, details=True, on_bot_reply=lambda reply: golden.save_from_reply(api, contact.assistant_id, reply)
    )
    with st.form("reply", clear_on_submit=True):
        text = st.text_area("Reply as a person", placeholder="Write to the customer…", height=80)
        st.caption("Sending a reply pauses the assistant for this contact.")
        if st.form_submit_button("Send reply", type="primary", icon=":material/send:"):
            if not text.strip():
                st.warning("Write a message first.")
            else:
                message = api.reply(contact.id, text.strip())
                ui.flash("Reply sent." if message.status in ("sent", "delivered", "read") else "Reply queued for sending.")
                st.rerun()


assistants = api.assistants()
if not assistants:
    st.info("No assistant yet. Create one and connect WhatsApp; conversations appear here.")
    st.page_link("views/assistants.py", label="Create an assistant", icon=":material/add:")
    st.stop()

names = {a.id: a.name for a in assistants}
wanted = st.query_params.get("assistant")
if wanted is not None:
    del st.query_params["assistant"]
    if wanted.isdigit() and int(wanted) in names:
        st.session_state["conversations_assistant"] = int(wanted)
filters = st.columns([2, 3, 3])
assistant_id = filters[0].selectbox(
    "Assistant", [0, *names], format_func=lambda i: names.get(i, "All assistants"), key="conversations_assistant"
)
query = filters[1].text_input("Search", placeholder="name or number", key="conversations_q")
status = filters[2].segmented_control("Show", list(FILTERS), format_func=FILTERS.get, default="", key="conversations_status")

contacts = api.contacts(assistant_id or None, query.strip() or None, status or None)
left, right = st.columns([1, 2])
with left:
    if not contacts:
        if query or status:
            st.info("No conversation matches these filters.")
        else:
            st.info("No conversations yet. Customers' messages appear here once a WhatsApp number is connected.")
            st.page_link("views/whatsapp.py", label="Connect WhatsApp", icon=":material/qr_code_2:")
    contact_list(contacts)
with right:
    open_id = st.session_state.get(OPEN_CONTACT)
    if open_id is None and contacts:
        open_id = contacts[0].id
    if open_id is None:
        st.caption("Choose a conversation on the left.")
    else:
        with ui.friendly():
            thread_view(open_id)
