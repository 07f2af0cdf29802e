"""Log in with an operator's email and password."""

from __future__ import annotations

import streamlit as st

from console import ui
from console.api import ApiError

st.title("WhatsApp assistants")
st.caption("Log in to manage your assistants, their knowledge and their WhatsApp numbers.")

with st.form("login"):
    email = st.text_input("Email", autocomplete="username")
    password = st.text_input("Password", type="password", autocomplete="current-password")
    submitted = st.form_submit_button("Log in", type="primary")

if submitted:
    if not email.strip() or not password:
        st.warning("Enter your email and password.")
    else:
        try:
            signed_in = ui.client().login(email.strip(), password, **ui.forwarding())
        except ApiError as error:
            if error.code == "bad_credentials":
                st.error("Wrong email or password.", icon=":material/lock:")
            else:
                ui.show_error(error)
        else:
            ui.log_in(signed_in)
            st.rerun()
