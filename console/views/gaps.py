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
    # Fields keyed by the gap, not its place: once saved, the next gap moves up and must not inherit this text;
    # kept after a failed save so nothing typed is lost.
    field = gap.message_ids[0] if gap.message_ids else index
    with st.form(f"faq-{index}"):
        question = st.text_input("Question", value=gap.question, key=f"faq-q-{field}")
        answer = st.text_area("Answer", placeholder="The answer customers should get", key=f"faq-a-{field}")
        if st.form_submit_button("Save FAQ answer", type="primary", icon=":material/save:"):
            if not question.strip() or not answer.strip():
                st.warning("Write both the question and its answer.")
                return
            with ui.friendly():
                doc = api.answer_gap(assistant.id, gap, question.strip(), answer.strip())
                ui.flash(
                    f"Saved as {ui.plain(doc.filename)} and indexed: the assistant uses it from now on, and this gap is"
                    " marked answered."
                )
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
                strength = ui.match_strength(gap.best_score)
                facts.append(f"best passage a {strength} match (similarity {gap.best_score:.2f} of 1)")
            st.caption(" · ".join(facts))
            others = [e for e in gap.examples if e != gap.question]
            if others:
                st.markdown("Also asked as: " + " · ".join(f"“{ui.plain(e)}”" for e in others[:5]))
            faq, upload = st.tabs(["Write an FAQ answer", "Upload a document"])
            with faq:
                faq_form(assistant, gap, index)
            with upload:
                upload_form(assistant, index)
