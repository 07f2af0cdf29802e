"""The console's script, run for every browser session by `console/app.py` (the server): login, navigation, pages."""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run console/app.py` puts only console/ on the path; the pages import `console.*`.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from console import browser_session, ui  # noqa: E402
from console.config import console_settings  # noqa: E402

# One file a page. Not named `pages/`: Streamlit would also serve such files directly as
# old-style pages (bypassing this script and its login) until st.navigation first runs.
VIEWS = Path(__file__).resolve().parent / "views"

# An emoji favicon is drawn in the browser; a `:material/…:` one is fetched from Google's font servers.
st.set_page_config(page_title="WhatsApp assistants", page_icon="💬", layout="wide")

ui.resume_browser_session()
if not ui.token():
    page = st.navigation([st.Page(VIEWS / "login.py", title="Log in", icon=":material/login:")], position="hidden")
else:
    # One call a run: the count here, the list on the inbox page (see ui.waiting).
    waiting = ui.refresh_waiting()
    inbox_title = f"Needs a person ({waiting.total})" if waiting and waiting.total else "Needs a person"
    page = st.navigation(
        {
            "": [st.Page(VIEWS / "overview.py", title="Overview", icon=":material/dashboard:", default=True)],
            "Build": [
                st.Page(VIEWS / "assistants.py", title="Assistants", icon=":material/smart_toy:"),
                st.Page(VIEWS / "knowledge.py", title="Knowledge", icon=":material/library_books:"),
                st.Page(VIEWS / "gaps.py", title="Knowledge gaps", icon=":material/help_center:"),
            ],
            "Talk": [
                st.Page(VIEWS / "whatsapp.py", title="WhatsApp", icon=":material/qr_code_2:"),
                st.Page(VIEWS / "conversations.py", title="Conversations", icon=":material/forum:"),
                st.Page(VIEWS / "inbox.py", title=inbox_title, icon=":material/support_agent:"),
            ],
            "Settings": [st.Page(VIEWS / "account.py", title="Account", icon=":material/manage_accounts:")],
        }
    )
    with st.sidebar:
        st.caption(f"Signed in as **{ui.plain(st.session_state.get(ui.OPERATOR) or 'operator')}**")
        st.caption(f"Backend: `{console_settings().backend_url}`")
        if st.button("Log out", icon=":material/logout:"):
            ui.sign_out()
            st.rerun()

ui.show_flash()
browser_session.apply_pending()
with ui.friendly():
    page.run()
