"""WhatsApp: pair an assistant's number by QR code, watch its status, and (sandbox) chat as a customer."""

from __future__ import annotations

import time

import streamlit as st

from console import ui
from console.api import Api, Assistant, Channel
from console.channel_words import DETAILS
from console.config import PAIRING_POLL_SECONDS, PAIRING_WATCH_SECONDS, REPLY_WATCH_SECONDS
from console.qr import qr_png

st.title("WhatsApp")
api: Api = ui.client()
WATCH = "pairing_watch_started"  # {channel_id: time.time()} while a QR is on screen
LAST_STATUS = "channel_last_status"  # {channel_id: status}, to notice a change while polling
SENT_AT = "sandbox_sent_at"  # {channel_id: time.time()} of the last customer message sent
SANDBOX_NUMBER = "sandbox_customer_number"  # {channel_id: number}: widget state is dropped when the page is left
PROVIDERS = {
    "": "Default (from the backend's settings)",
    "sandbox": "Sandbox (no phone)",
    "waha": "WAHA",
    "evolution": "Evolution API",
    "cloud": "WhatsApp Cloud API (Meta)",
}
ATTACHABLE = ["ogg", "opus", "mp3", "m4a", "wav", "webm", "jpg", "jpeg", "png", "webp", "pdf"]  # what a customer might send
CLOUD_FIELDS = {  # what Meta's app settings give, and how the form asks for it
    "phone_number_id": ("Phone number id", "WhatsApp → API setup in Meta's developer console", False),
    "access_token": ("Access token", "A system user's permanent token with whatsapp_business_messaging", True),
    "app_secret": ("App secret", "App settings → Basic: Meta signs every webhook with it", True),
    "verify_token": ("Verify token", "Any phrase of 8 characters or more; you paste it next to the webhook URL", True),
}


def watching(channel_id: int) -> bool:
    started = st.session_state.setdefault(WATCH, {}).get(channel_id)
    return started is not None and time.time() - started < PAIRING_WATCH_SECONDS


def start_watch(channel_id: int) -> None:
    st.session_state.setdefault(WATCH, {})[channel_id] = time.time()


def show_status(channel: Channel) -> None:
    st.markdown(ui.channel_badge_markdown(channel.status, channel.phone_number))
    detail = DETAILS.get(channel.detail or "", channel.detail)
    if channel.status == "ready":
        since = f" since {ui.clock(channel.connected_at)}" if channel.connected_at else ""
        st.success(f"Connected as **{channel.phone_number or 'your number'}**{since}. Customers who write to it get answers.")
    elif channel.status == "disconnected" and detail:
        st.caption(detail)
    if channel.last_error:
        ui.show_problem(ui.person_error(channel.last_error, "Last problem:", "the WhatsApp gateway"), channel.last_error)


def show_qr(channel: Channel) -> None:
    if not channel.qr:
        st.info("Waiting for the QR code from the WhatsApp gateway…", icon=":material/hourglass_top:")
        return
    left, right = st.columns([1, 2])
    left.image(qr_png(channel.qr), caption="Scan with WhatsApp", width=260)
    right.markdown(
        "On the phone whose number the assistant should use:\n"
        "1. Open **WhatsApp** → **Settings** (or ⋮ on Android) → **Linked devices**.\n"
        "2. Tap **Link a device** and point the camera at this code.\n\n"
        "This page switches to *connected* by itself once it is scanned."
    )


def pairing(channel: Channel) -> None:
    """The status and QR; refreshed every few seconds while a QR is waiting, for a few minutes only."""
    polling = channel.status == "pending_qr" and watching(channel.id)

    @st.fragment(run_every=PAIRING_POLL_SECONDS if polling else None)
    def live() -> None:
        with ui.friendly():
            current = api.channel(channel.id) if polling else channel
            before = st.session_state.setdefault(LAST_STATUS, {}).get(channel.id, channel.status)
            st.session_state[LAST_STATUS][channel.id] = current.status
            show_status(current)
            if current.status == "pending_qr":
                if watching(channel.id):
                    show_qr(current)
                else:
                    st.warning("Pairing paused: the QR code was not scanned in time. Start pairing again to get a fresh code.")
            if polling and (current.status != before or not watching(channel.id)):
                st.rerun()  # the whole page, so the buttons match the new state and polling stops

    live()


def cloud_form(assistant: Assistant, locked: str | None) -> None:
    """The Cloud API needs no QR: the four values of Meta's app settings."""
    with st.form("cloud-connect"):
        values = {
            name: st.text_input(label, help=help_text, type="password" if secret else "default", disabled=bool(locked))
            for name, (label, help_text, secret) in CLOUD_FIELDS.items()
        }
        if st.form_submit_button("Connect WhatsApp", type="primary", icon=":material/add_link:", disabled=bool(locked)):
            missing = [CLOUD_FIELDS[name][0] for name, value in values.items() if not value.strip()]
            if missing:
                st.error(f"Fill in: {', '.join(missing)}.")
                return
            with ui.friendly():
                api.connect(assistant.id, "cloud", {name: value.strip() for name, value in values.items()})
                st.rerun()


def cloud_webhook(channel: Channel) -> None:
    """Where Meta must send this number's messages: pasted once into the app's webhook settings."""
    if not channel.webhook_url:
        return
    st.markdown("**Webhook for Meta** — in your app: WhatsApp → Configuration → Webhook → Edit. Paste this callback URL "
                "and your verify token, then subscribe to **messages**.")  # fmt: skip
    st.code(channel.webhook_url, language=None)
    if channel.phone_number_id:
        st.caption(f"Phone number id {channel.phone_number_id}")


def pairing_by_code(channel: Channel) -> None:
    """Linking without a camera: WhatsApp shows an 8-character code to type on the phone instead."""
    codes = st.session_state.setdefault("pairing_codes", {})
    locked = ui.admin_only("link WhatsApp numbers")
    with st.expander("Link with a phone number instead", icon=":material/dialpad:"):
        number = st.text_input(
            "The phone's number, with its country code", key=f"pair-number-{channel.id}", placeholder="+4915123456789"
        )
        if st.button("Get a code", key=f"pair-{channel.id}", disabled=bool(locked) or not number.strip(), help=locked):
            with ui.friendly():
                codes[channel.id] = api.pairing_code(channel.id, number.strip())
        if code := codes.get(channel.id):
            st.markdown("On the phone: WhatsApp → **Linked devices** → **Link a device** → **Link with phone number instead**, "
                        "then type:")  # fmt: skip
            st.code(code, language=None)


def actions(channel: Channel) -> None:
    confirm = f"confirm-remove-channel-{channel.id}"
    locked = ui.admin_only("connect, reconnect, log out or remove WhatsApp numbers")
    admin_only = {"disabled": bool(locked), "help": locked}
    if st.session_state.get(confirm):
        st.warning("Remove this WhatsApp connection? The assistant stops answering on this number.")
        row = st.container(horizontal=True)
        if row.button("Yes, remove it", key=f"yes-remove-{channel.id}", type="primary"):
            st.session_state.pop(confirm, None)
            with ui.friendly():
                api.delete_channel(channel.id)
                ui.flash("Connection removed.")
                st.rerun()
        if row.button("Cancel", key=f"no-remove-{channel.id}"):
            st.session_state.pop(confirm, None)
            st.rerun()
        return
    row = st.container(horizontal=True)
    if channel.status == "pending_qr" and not watching(channel.id):
        if row.button(
            "Start pairing again", key=f"restart-{channel.id}", type="primary", icon=":material/qr_code_2:", **admin_only
        ):
            with ui.friendly():
                api.reconnect(channel.id)
                start_watch(channel.id)
                st.rerun()
    if channel.status == "disconnected":
        if row.button("Reconnect", key=f"reconnect-{channel.id}", type="primary", icon=":material/sync:", **admin_only):
            with ui.friendly():
                api.reconnect(channel.id)
                start_watch(channel.id)
                st.rerun()
    if channel.status == "ready":
        if row.button("Log out of WhatsApp", key=f"logout-{channel.id}", icon=":material/logout:", **admin_only):
            with ui.friendly():
                api.logout(channel.id)
                ui.flash("Logged out of WhatsApp. Reconnect to pair a phone again.")
                st.rerun()
    if row.button("Remove connection", key=f"remove-{channel.id}", icon=":material/link_off:", **admin_only):
        st.session_state[confirm] = True
        st.rerun()
    if locked:
        st.caption(locked)


def sandbox_scan(channel: Channel) -> None:
    st.markdown("**Sandbox**: no phone needed. Pretend to scan the code:")
    locked = ui.admin_only("pair a number")
    number = st.text_input(
        "Phone number to connect as", value="+15550001111", key=f"scan-number-{channel.id}", disabled=bool(locked)
    )
    if st.button(
        "Simulate scan", key=f"scan-{channel.id}", icon=":material/qr_code_scanner:", disabled=bool(locked), help=locked
    ):
        with ui.friendly():
            api.sandbox_scan(channel.id, number.strip() or None)
            st.rerun()


def feedback_buttons(channel: Channel, sender: str, messages: list) -> None:
    """React to the bot's last reply as the customer would (👍 / 👎): kept as feedback, never answered."""
    last = next((m for m in reversed(messages) if m.author == "bot" and m.provider_message_id), None)
    if last is None:
        return
    row = st.container(horizontal=True)
    for emoji, label in (("👍", "Good answer"), ("👎", "Bad answer")):
        if row.button(
            emoji, key=f"react-{channel.id}-{last.id}-{label}", help=f"{label}: react to the last reply as the customer"
        ):
            with ui.friendly():
                api.sandbox_reaction(channel.id, sender, last.provider_message_id, emoji)
                st.rerun()


def sandbox_chat(assistant: Assistant, channel: Channel) -> None:
    st.subheader("Try it as a customer")
    st.caption("Write to the sandbox number as a customer would; the assistant's replies appear below.")
    with st.form(f"chat-{channel.id}", clear_on_submit=True):
        numbers = st.session_state.setdefault(SANDBOX_NUMBER, {})
        sender = st.text_input("Customer number", value=numbers.get(channel.id, "+15557654321"), key=f"chat-from-{channel.id}")
        text = st.text_input("Message", placeholder="Hello! When are you open?", key=f"chat-text-{channel.id}")
        with st.expander("Send a voice note or a file instead", icon=":material/mic:"):
            voice = st.audio_input("Record a voice note", key=f"chat-voice-{channel.id}")
            upload = st.file_uploader(
                "Or attach a file (a voice note, a picture…)", key=f"chat-file-{channel.id}", type=ATTACHABLE
            )
        sent = st.form_submit_button("Send as customer", icon=":material/send:")
    if sent:
        attached = voice or upload
        if not (text.strip() or attached) or not sender.strip():
            st.warning("Write a message (or attach a voice note) and the customer's number.")
        else:
            st.session_state[SANDBOX_NUMBER][channel.id] = sender.strip()
            with ui.friendly():
                media = (attached.getvalue(), attached.type or "application/octet-stream", attached.name) if attached else None
                api.sandbox_message(channel.id, sender.strip(), text.strip(), media=media)
                st.session_state.setdefault(SENT_AT, {})[channel.id] = time.time()
    sent_at = st.session_state.get(SENT_AT, {}).get(channel.id)
    waiting = sent_at is not None and time.time() - sent_at < REPLY_WATCH_SECONDS

    @st.fragment(run_every=PAIRING_POLL_SECONDS if waiting else None)
    def chat() -> None:
        with ui.friendly():
            contacts = api.contacts(channel_id=channel.id, q=sender.strip().lstrip("+") or None, limit=1)
            if not contacts:
                st.caption("No messages from this number yet.")
                return
            thread = api.thread(contacts[0].id, limit=50)
            ui.thread_bubbles(thread.items)
            feedback_buttons(channel, sender.strip(), thread.items)
            if waiting and thread.items and thread.items[-1].direction == "out":
                st.session_state.get(SENT_AT, {}).pop(channel.id, None)
                st.rerun()  # the whole page: the navigation's "Needs a person" count may have changed

    chat()


assistant = ui.choose_assistant(api)
if assistant:
    channels = api.channels(assistant.id)
    if not channels:
        st.info(
            f"**{assistant.name}** has no WhatsApp number yet. Connect one: a QR code appears, you scan it with the"
            " phone, and the assistant answers the messages that number receives.",
            icon=":material/qr_code_2:",
        )
        locked = ui.admin_only("connect WhatsApp numbers")
        provider = st.selectbox("Gateway", list(PROVIDERS), format_func=PROVIDERS.get, disabled=bool(locked))
        if provider == "cloud":
            cloud_form(assistant, locked)
        elif st.button("Connect WhatsApp", type="primary", icon=":material/add_link:", disabled=bool(locked), help=locked):
            with ui.friendly():
                created = api.connect(assistant.id, provider or None)
                start_watch(created.id)
                st.rerun()
        if locked:
            st.caption(locked)
    for channel in channels:
        with st.container(border=True):
            st.caption(f"Connection #{channel.id} · {PROVIDERS.get(channel.provider, channel.provider)}")
            if channel.status == "pending_qr" and channel.id not in st.session_state.get(WATCH, {}):
                start_watch(channel.id)  # opened the page on a pending pairing: watch it for a while
            if channel.provider == "cloud":
                show_status(channel)
                cloud_webhook(channel)
            else:
                pairing(channel)
            if channel.provider in ("waha", "evolution") and channel.status == "pending_qr":
                pairing_by_code(channel)
            if channel.provider == "sandbox" and channel.status == "pending_qr":
                sandbox_scan(channel)
            actions(channel)
        if channel.provider == "sandbox" and channel.status == "ready":
            sandbox_chat(assistant, channel)
