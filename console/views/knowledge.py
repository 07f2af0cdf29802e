"""Knowledge: the documents an assistant answers from, their indexing, and a search tester."""

from __future__ import annotations

import streamlit as st

from console import ui
from console.api import Api, ApiError, Assistant, BackendUnreachable, Document, Reembedding, SessionExpired
from console.config import INDEXING_POLL_SECONDS

st.title("Knowledge")
api: Api = ui.client()
UPLOADER_ROUND = "uploader_round"
UPLOAD_LIMIT = "max_upload_mb"
FILE_TYPES = ["txt", "md", "markdown", "pdf", "docx", "html", "htm"]
BUSY = ("pending", "indexing")


def upload_limit_mb() -> int | None:
    """The backend's MAX_UPLOAD_MB, so the uploader refuses (and announces) the same limit; asked once a session."""
    if UPLOAD_LIMIT not in st.session_state:
        try:
            st.session_state[UPLOAD_LIMIT] = api.status().get("max_upload_mb")
        except ApiError:
            return None
    return st.session_state[UPLOAD_LIMIT]


def upload_section(assistant: Assistant) -> None:
    # A new key after each upload empties the uploader, so the same files are not sent twice.
    round_ = st.session_state.setdefault(UPLOADER_ROUND, 0)
    files = st.file_uploader(
        "Add documents (text, Markdown, PDF, Word, HTML)",
        type=FILE_TYPES,
        accept_multiple_files=True,
        key=f"uploader-{round_}",
        max_upload_size=upload_limit_mb(),
    )
    if files and st.button(f"Upload {len(files)} document{'s' if len(files) > 1 else ''}", type="primary"):
        with st.spinner("Uploading…"), ui.friendly():
            # One request a file: the backend refuses a whole batch for one bad file; here the good ones are kept.
            for file in files:
                upload_one(assistant, file.name, file.getvalue(), file.type or "")
            st.session_state[UPLOADER_ROUND] = round_ + 1
            st.rerun()


def upload_one(assistant: Assistant, name: str, content: bytes, content_type: str) -> None:
    """Upload one file and say what became of it; a refusal is named with its reason, never dropped."""
    try:
        results = api.upload_documents(assistant.id, [(name, content, content_type)])
    except SessionExpired:
        raise
    except BackendUnreachable as error:
        ui.flash(f"{ui.plain(name)}: not uploaded, the backend is not reachable.", "error", error.message)
        return
    except ApiError as error:
        ui.flash(f"Not uploaded: {ui.refusal_words(error, name)}", "error", error.message)
        return
    for doc in results:
        if doc.duplicate:
            ui.flash(f"{ui.plain(doc.filename)}: already uploaded, nothing new to index.", "warning")
        else:
            ui.flash(f"{ui.plain(doc.filename)}: uploaded, indexing now.")


def document_row(assistant: Assistant, doc: Document) -> None:
    with st.container(border=True):
        name, state, actions = st.columns([4, 3, 2])
        passages = f"{doc.chunk_count} passage{'' if doc.chunk_count == 1 else 's'}"
        name.markdown(f"**{ui.plain(doc.filename)}**  \n{passages} · {ui.size(doc.size_bytes)} · added {ui.ago(doc.created_at)}")
        with state:
            ui.badge(doc.status, ui.DOCUMENT_BADGES)
            if doc.status == "indexing":
                st.progress(min(max(doc.percent, 0), 100) / 100, text=f"{doc.percent}%")
            elif doc.status == "failed":
                ui.show_problem(ui.person_error(doc.error, "Indexing failed:", "the search model"), doc.error)
            elif doc.reindex_needed:
                st.caption("Being re-embedded with the new search model; answers use its old vectors meanwhile.")
        with actions:
            if st.button("Re-index", key=f"reindex-{doc.id}", icon=":material/refresh:", disabled=doc.status in BUSY):
                with ui.friendly():
                    api.reindex_document(assistant.id, doc.id)
                    st.rerun()
            confirm_key = f"confirm-delete-doc-{doc.id}"
            if not st.session_state.get(confirm_key):
                locked = ui.admin_only("delete documents")
                if st.button("Delete", key=f"delete-{doc.id}", icon=":material/delete:", disabled=bool(locked), help=locked):
                    st.session_state[confirm_key] = True
                    st.rerun()
            else:
                st.caption("Delete it and its passages?")
                if st.button("Yes, delete", key=f"yes-delete-{doc.id}", type="primary"):
                    st.session_state.pop(confirm_key, None)
                    with ui.friendly():
                        api.delete_document(assistant.id, doc.id)
                        ui.flash(f"Deleted {ui.plain(doc.filename)}.")
                        st.rerun()
                if st.button("Cancel", key=f"cancel-delete-{doc.id}"):
                    st.session_state.pop(confirm_key, None)
                    st.rerun()


def reembedding_status(assistant: Assistant, reembedding: Reembedding) -> None:
    """After a change of search model (EMBEDDING_MODEL): how far the re-embedding is, and a restart when it failed."""
    with st.container(border=True):
        st.markdown(f"**Re-embedding with {ui.plain(reembedding.model)}**")
        st.progress(min(max(reembedding.percent, 0), 100) / 100)
        st.caption(
            f"{reembedding.done} of {reembedding.total} passages ({reembedding.percent}%). "
            f"Answers use {ui.plain(reembedding.searching_with)} until every passage has its new vector."
        )
        if reembedding.status in ("failed", "not_started"):
            if reembedding.error:
                ui.show_problem(ui.person_error(reembedding.error, "Re-embedding failed:", "the search model"), reembedding.error)
            locked = ui.admin_only("start a re-embedding")
            if st.button("Re-embed now", icon=":material/refresh:", disabled=bool(locked), help=locked, key="reembed"):
                with ui.friendly():
                    api.reembed(assistant.id)
                    st.rerun()


def documents_section(assistant: Assistant) -> None:
    listing = api.documents(assistant.id)
    busy = any(doc.status in BUSY for doc in listing.items) or (
        listing.reembedding is not None and listing.reembedding.status in ("queued", "running")
    )
    if listing.items and (locked := ui.admin_only("delete documents")):
        st.caption(locked)

    # Refreshes itself while something is being indexed; a full rerun stops the polling once done.
    @st.fragment(run_every=INDEXING_POLL_SECONDS if busy else None)
    def documents() -> None:
        with ui.friendly():
            current = api.documents(assistant.id)
            if not current.items:
                st.info("No documents yet. Upload the files your customers' answers are in: FAQs, price lists, manuals.")
                return
            if current.reembedding is not None:
                reembedding_status(assistant, current.reembedding)
            elif current.notice:
                st.warning(current.notice)
            counts = {s: sum(d.status == s for d in current.items) for s in ("ready", "indexing", "pending", "failed")}
            st.caption(" · ".join(f"{n} {status}" for status, n in counts.items() if n))
            for doc in current.items:
                document_row(assistant, doc)
            if busy and not any(doc.status in BUSY for doc in current.items):
                st.rerun()

    documents()


def search_section(assistant: Assistant) -> None:
    st.subheader("Search tester")
    st.caption("See which passages the assistant would use for a question, and how well they match.")
    with st.form("search"):
        query = st.text_input("Question or words", placeholder="opening hours")
        top_k = st.slider("Passages", 1, 20, 5)
        searched = st.form_submit_button("Search")
    if not searched:
        return
    if not query.strip():
        st.warning("Write something to search for.")
        return
    with ui.friendly():
        result = api.search(assistant.id, query.strip(), top_k)
        if result.notice:
            st.warning(result.notice)
        if not result.items:
            st.info("Nothing found. Upload a document that covers this, or try other words.")
            return
        st.caption(f"{len(result.items)} passages, best first, in {ui.ms(result.timings_ms.get('total'))}")
        for passage in result.items:
            with st.container(border=True):
                st.markdown(
                    f"**#{passage.rank or '?'} · {ui.plain(passage.filename or 'document')}**"
                    + (f" › {ui.plain(passage.heading)}" if passage.heading else "")
                    + f"  \n{ui.match_words(passage.dense_score, passage.lexical_score)}"
                )
                st.text(passage.text[:1500])
                # The figures behind the words, for whoever tunes the minimum score.
                similarity = f"similarity {passage.dense_score:.2f} of 1" if passage.dense_score is not None else "no similarity"
                st.caption(f"{similarity} · {'shares words' if passage.lexical_score else 'no shared words'}")


assistant = ui.choose_assistant(api)
if assistant:
    upload_section(assistant)
    st.subheader("Documents")
    documents_section(assistant)
    search_section(assistant)
