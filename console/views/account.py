"""Account: change your own password; admins also manage who may log in, and with which role."""

from __future__ import annotations

import streamlit as st

from console import ui
from console.api import Api, Operator
from console.config import PASSWORD_MIN_LENGTH

st.title("Account")
api: Api = ui.client()
CONFIRM_DELETE = "confirm_delete_operator"
ROLE_NAMES = {"operator": "Operator", "admin": "Admin"}
ROLE_HELP = (
    "Operators answer conversations, take them over, upload documents and test answers."
    " Admins also create and delete assistants, connect WhatsApp numbers, pull models and manage operators."
)
# The backend's refusals, in the words of this page (own role and own account are not offered, but a page may be stale).
PASSWORD_REFUSALS = {
    "wrong_password": "Your current password is not right.",
    "same_password": "The new password is the same as the current one: choose another.",
    "too_many_requests": "Too many wrong passwords: wait a few minutes, then try again.",
}
OPERATOR_REFUSALS = {
    "last_admin": "This is the only admin: make another operator an admin first.",
    "cannot_change_own_role": "You cannot change your own role: ask another admin.",
    "cannot_delete_self": "You cannot delete your own account: ask another admin.",
    "operator_exists": "An operator with this email already exists.",
}


def password_problem(new: str, repeat: str | None = None, *, name: str = "new password") -> str | None:
    if len(new) < PASSWORD_MIN_LENGTH:
        return f"The {name} needs at least {PASSWORD_MIN_LENGTH} characters."
    if repeat is not None and new != repeat:
        return "The two new passwords are not the same."
    return None


def own_password() -> None:
    st.subheader("Your password")
    with st.form("own-password", clear_on_submit=True):
        current = st.text_input("Current password", type="password", autocomplete="current-password")
        new = st.text_input(
            "New password", type="password", autocomplete="new-password", help=f"At least {PASSWORD_MIN_LENGTH} characters."
        )
        repeat = st.text_input("New password again", type="password", autocomplete="new-password")
        submitted = st.form_submit_button("Change password", type="primary")
    if not submitted:
        return
    if not current:
        st.warning("Enter your current password.")
    elif problem := password_problem(new, repeat):
        st.warning(problem)
    else:
        with ui.friendly(PASSWORD_REFUSALS):
            # The backend ends every other session; the new token keeps this one signed in.
            ui.log_in(api.change_password(current, new, **ui.forwarding()))
            ui.flash("Password changed. You stay signed in here; your other sessions have ended.")
            st.rerun()


def operator_row(account: Operator, *, own: bool) -> None:
    with st.container(border=True):
        you = " (you)" if own else ""
        role_name = ROLE_NAMES.get(account.role, account.role)
        st.markdown(f"**{ui.plain(account.email)}**{you} · {role_name} · added {ui.ago(account.created_at)}")
        if own:
            st.caption("Change your password above. Another admin can change your role or delete your account.")
            return
        role_column, password_column, delete_column = st.columns([2, 3, 2], vertical_alignment="bottom")
        with role_column, st.form(f"role-{account.id}", border=False):
            roles = list(ROLE_NAMES)
            role = st.selectbox(
                "Role", roles, index=roles.index(account.role) if account.role in roles else 0, format_func=ROLE_NAMES.get,
                key=f"role-of-{account.id}",
            )  # fmt: skip
            changed = st.form_submit_button("Change role")
            if changed and role == account.role:
                st.info(f"They are already {ROLE_NAMES[role].lower()}.")
            elif changed:
                with ui.friendly(OPERATOR_REFUSALS):
                    api.update_operator(account.id, role=role)
                    ui.flash(f"{ui.plain(account.email)} is now {ROLE_NAMES[role].lower()}; their open sessions have ended.")
                    st.rerun()
        with password_column, st.form(f"reset-{account.id}", border=False, clear_on_submit=True):
            password = st.text_input(
                "New password", type="password", autocomplete="new-password", key=f"password-of-{account.id}",
                help=f"At least {PASSWORD_MIN_LENGTH} characters.",
            )  # fmt: skip
            if st.form_submit_button("Reset password"):
                if problem := password_problem(password):
                    st.warning(problem)
                else:
                    with ui.friendly(OPERATOR_REFUSALS):
                        api.update_operator(account.id, password=password)
                        ui.flash(f"New password set for {ui.plain(account.email)}; their open sessions have ended.")
                        st.rerun()
        with delete_column:
            delete_operator(account)


def delete_operator(account: Operator) -> None:
    if st.session_state.get(CONFIRM_DELETE) != account.id:
        if st.button("Delete", key=f"delete-operator-{account.id}", icon=":material/delete:"):
            st.session_state[CONFIRM_DELETE] = account.id
            st.rerun()
        return
    st.caption("Delete this account? They can no longer log in.")
    yes, no = st.columns(2)
    if yes.button("Yes, delete", key=f"yes-delete-operator-{account.id}", type="primary"):
        st.session_state.pop(CONFIRM_DELETE, None)
        with ui.friendly(OPERATOR_REFUSALS):
            api.delete_operator(account.id)
            ui.flash(f"Deleted {ui.plain(account.email)}.")
            st.rerun()
    if no.button("Cancel", key=f"cancel-delete-operator-{account.id}"):
        st.session_state.pop(CONFIRM_DELETE, None)
        st.rerun()


def add_operator() -> None:
    with st.form("add-operator", clear_on_submit=True):
        st.markdown("**Add an operator**")
        email = st.text_input("Email", placeholder="sam@example.com")
        password = st.text_input(
            "Initial password", type="password", autocomplete="new-password",
            help=f"At least {PASSWORD_MIN_LENGTH} characters. Give it to them in person; they can change it here.",
        )  # fmt: skip
        role = st.selectbox("Role", list(ROLE_NAMES), format_func=ROLE_NAMES.get, help=ROLE_HELP)
        added = st.form_submit_button("Add operator", type="primary", icon=":material/person_add:")
    if not added:
        return
    if "@" not in email.strip():
        st.warning("Enter the operator's email address.")
    elif problem := password_problem(password, name="initial password"):
        st.warning(problem)
    else:
        with ui.friendly(OPERATOR_REFUSALS):
            created = api.create_operator(email.strip(), password, role)
            ui.flash(f"Added {ui.plain(created.email)} as {ROLE_NAMES.get(created.role, created.role).lower()}.")
            st.rerun()


def operators() -> None:
    st.subheader("Operators")
    st.caption(f"Who may log in to this console. {ROLE_HELP}")
    me = st.session_state.get(ui.OPERATOR)
    for account in api.operators():
        operator_row(account, own=account.email == me)
    add_operator()


my_role = ui.role()  # asks the backend once a session, and keeps the email with it
st.caption(f"Signed in as **{ui.plain(st.session_state.get(ui.OPERATOR))}** ({ROLE_NAMES.get(my_role, my_role).lower()}).")
own_password()
if ui.is_admin():
    operators()
else:
    st.caption("An admin manages the operators who may log in.")
