"""Knowledge gaps: what customers asked that the documents could not answer, and filling them in."""

from __future__ import annotations

import streamlit as st

from console import ui
from console.api import Api, Assistant, Gap

st.title("Knowledge gaps")
st.caption(
    "Questions answered with the fallback message or from weak passages, grouped by similarity, most frequent first."
    " Fill each gap with a short FAQ answer or a document."
)
api: Api = ui.client()


def faq_form(assistant: Assistant, gap: Gap, index: int) -> None:
    with st.form(f"faq-{index}", clear_on_submit=True):
        question = st.text_input("Question", value=gap.question, key=f"faq-q-{index}")
        answer = st.text_area("Answer", placeholder="The answer customers should get", key=f"faq-a-{index}")
        if st.form_submit_button("Save FAQ answer", type="primary", icon=":material/save:"):
            if not question.strip() or not answer.strip():
                st.warning("Write both the question and its answer.")
                return
            with ui.friendly():
                doc = api.add_faq(assistant.id, question.strip(), answer.strip())
                ui.flash(f"Saved as {ui.plain(doc.filename)}: indexed now, so the assistant can use it right away.")
                st.rerun()


def upload_form(assistant: Assistant, index: int) -> None:
    files = st.file_uploader(
        "Or upload a document that answers it",
        type=["txt", "md", "markdown", "pdf", "docx", "html", "htm"],
        accept_multiple_files=True,
        key=f"gap-upload-{index}",
    )
    if files and st.button("Upload", key=f"gap-upload-button-{index}", icon=":material/upload:"):
        with ui.friendly():
            api.upload_documents(assistant.id, [(f.name, f.getvalue(), f.type or "") for f in files])
            ui.flash("Uploaded: indexing now. Follow it on the Knowledge page.")
            st.rerun()


assistant = ui.choose_assistant(api)
if assistant:
    gaps = api.gaps(assistant.id)
    if not gaps:
        st.success(
            "No gaps: every recent question found a good answer in the documents. New ones show up here as customers ask.",
            icon=":material/check_circle:",
        )
    for index, gap in enumerate(gaps):
        with st.container(border=True):
            st.markdown(f"#### “{ui.plain(gap.question)}”")
            facts = [f"asked {gap.count}×", f"last {ui.ago(gap.last_asked_at)}"]
            if gap.fallback_count:
                facts.append(f"{gap.fallback_count}× answered with the fallback")
            if gap.best_score is not None:
                facts.append(f"best match {gap.best_score:.2f}")
            st.caption(" · ".join(facts))
            others = [e for e in gap.examples if e != gap.question]
            if others:
                st.markdown("Also asked as: " + " · ".join(f"“{ui.plain(e)}”" for e in others[:5]))
            faq, upload = st.tabs(["Write an FAQ answer", "Upload a document"])
            with faq:
                faq_form(assistant, gap, index)
            with upload:
                upload_form(assistant, index)
