"""Golden questions in the console: an assistant's tab (questions, runs, history, regressions), the
overview's warning, and "save as a golden question" on a thread's bot reply."""

from __future__ import annotations

import streamlit as st

from console import ui
from console.api import Api, Assistant, GoldenQuestion, GoldenResult, GoldenRun, Message, Regression

REASONS = {
    "manual": "run by hand",
    "documents": "the documents changed",
    "instructions": "the instructions changed",
    "engine": "the engine changed",
    "model": "the model changed",
}
REFUSALS = {
    "golden_without_checks": "This answer states no price, time, number or address to check. Write what a right answer must "
    "contain (one per line).",
    "golden_exists": "This question is already a golden question of the assistant: change it on the assistant's page.",
    "golden_limit": "This assistant has as many golden questions as a run can ask. Delete some first.",
    "golden_empty": "Add a golden question first.",
}
FACTS_HELP = (
    "One per line. Prices, times, dates, phone numbers, e-mails and web addresses compare by value (1.80 = 1,80; "
    "7:30 = 7.30 am); other words must appear as whole words, ignoring case."
)


def why(run: GoldenRun) -> str:
    return ", ".join(REASONS.get(reason, reason) for reason in run.reasons) or "—"


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


VERDICTS = {
    "not_run": ("Not run yet", ":material/schedule:"),
    "regression": ("Regression: passed before, fails now", ":material/warning:"),
    "passed": ("Passed", ":material/check_circle:"),
    "failed": ("Fails", ":material/cancel:"),
}


def verdict_of(result: GoldenResult | None) -> tuple[str, str]:
    """A result's verdict in words, with its icon."""
    if result is None:
        return VERDICTS["not_run"]
    if result.regression:
        return VERDICTS["regression"]
    return VERDICTS["passed" if result.passed else "failed"]


def regression_warning(assistant_name: str, run: GoldenRun, questions: list[str], *, where: str = "") -> None:
    count = len(questions) or run.regressions
    listed = "\n".join(f"- {ui.plain(q)}" for q in questions)
    st.error(
        f"**{count} golden question{'s' if count != 1 else ''} of {ui.plain(assistant_name)} regressed** after "
        f"{why(run)} ({ui.ago(run.finished_at)}): they passed before and fail now{where}.\n{listed}",
        icon=":material/warning:",
    )


def overview_warnings(api: Api) -> None:
    """The overview's alarm: every assistant whose latest golden run has regressions."""
    regressions: list[Regression] = api.golden_regressions()
    for item in regressions:
        regression_warning(item.assistant_name, item.run, item.questions, where=" (Assistants → Golden questions)")


def question_editor(api: Api, assistant: Assistant, question: GoldenQuestion) -> None:
    words, icon = verdict_of(question.last_result)
    with st.expander(f"{words} · {ui.plain(question.question)}", icon=icon):
        result = question.last_result
        if result is not None:
            if result.missing:
                st.caption("Missing from the last answer: " + ", ".join(f"`{f}`" for f in result.missing))
            if result.forbidden:
                st.caption("Stated although it must not be: " + ", ".join(f"`{f}`" for f in result.forbidden))
            st.caption("Last answer")
            st.text(result.answer)
        with st.form(f"golden-{question.id}"):
            text = st.text_input("Question", value=question.question)
            must = st.text_area("A right answer contains", value="\n".join(question.must_contain), help=FACTS_HELP)
            must_not = st.text_area("and does not contain", value="\n".join(question.must_not_contain), help=FACTS_HELP)
            save, delete = st.columns(2)
            saved = save.form_submit_button("Save", type="primary")
            deleted = delete.form_submit_button("Delete", icon=":material/delete:")
        if saved:
            with ui.friendly(REFUSALS):
                changes = {"question": text.strip(), "must_contain": lines(must), "must_not_contain": lines(must_not)}
                api.update_golden(assistant.id, question.id, changes)
                ui.flash("Saved the golden question.")
                st.rerun()
        if deleted:
            with ui.friendly():
                api.delete_golden(assistant.id, question.id)
                ui.flash("Deleted the golden question; its past results stay in their runs.")
                st.rerun()


def add_form(api: Api, assistant: Assistant, first: bool) -> None:
    with st.expander("Add a golden question", icon=":material/add:", expanded=first):
        with st.form("golden-add", clear_on_submit=True):
            question = st.text_input("Question", placeholder="How much is delivery?")
            must = st.text_area("A right answer contains", placeholder="3.50", help=FACTS_HELP)
            must_not = st.text_area("and does not contain", placeholder="free", help=FACTS_HELP)
            added = st.form_submit_button("Add", type="primary")
    if not added:
        return
    if not question.strip():
        st.warning("Write the question first.")
        return
    with ui.friendly(REFUSALS):
        fields = {"question": question.strip(), "must_contain": lines(must), "must_not_contain": lines(must_not)}
        api.add_golden(assistant.id, fields)
        ui.flash("Added. Run the golden questions to see how the assistant answers it.")
        st.rerun()


@st.fragment(run_every=2.0)
def run_progress(api: Api, assistant_id: int, run_id: int) -> None:
    with ui.friendly():
        run = api.golden_run(assistant_id, run_id)
        if run.status in ("done", "failed"):
            st.rerun()  # the whole tab: the questions' verdicts and the history change
        elif run.status == "queued":
            st.progress(0.0, text=f"Waiting to start ({why(run)})…")
        else:
            done = run.answered / run.total if run.total else 0.0
            st.progress(done, text=f"Asking the golden questions… {run.answered} of {run.total}")


def history(api: Api, assistant: Assistant, runs: list[GoldenRun]) -> None:
    st.markdown("**Runs**, newest first")
    st.dataframe(
        [
            {
                "when": ui.clock(run.finished_at or run.created_at),
                "why": why(run),
                "status": run.status,
                "passed": f"{run.passed} of {run.total}" if run.status == "done" else "—",
                "regressions": run.regressions if run.status == "done" else None,
                "took": ui.ms(run.duration_ms) if run.duration_ms is not None else "—",
            }
            for run in runs
        ],
        hide_index=True,
    )
    done = [run for run in reversed(runs) if run.status == "done" and run.total]
    if len(done) >= 2:
        st.caption("Share of golden questions passed, per run")
        st.line_chart({"passed %": [round(100 * run.passed / run.total) for run in done]}, height=180)
    finished = [run for run in runs if run.status in ("done", "failed")]
    if not finished:
        return
    chosen = st.selectbox(
        "Answers of the run",
        [run.id for run in finished],
        format_func=lambda i: next(f"{ui.clock(r.finished_at)} · {why(r)}" for r in finished if r.id == i),
        key=f"golden-run-{assistant.id}",
    )
    run = api.golden_run(assistant.id, chosen)
    if run.status == "failed":
        ui.show_problem(ui.person_error(run.error or "", "This run could not finish:"), run.error)
    for result in run.results:
        words, icon = verdict_of(result)
        with st.expander(ui.plain(result.question), icon=icon):
            st.caption(words)
            if result.missing:
                st.caption("Missing: " + ", ".join(f"`{f}`" for f in result.missing))
            if result.forbidden:
                st.caption("Stated although it must not be: " + ", ".join(f"`{f}`" for f in result.forbidden))
            st.text(result.answer)
            facts = [f"{ui.ENGINE_NAMES.get(result.engine or '', result.engine)} · {result.model}" if result.engine else None]
            if total := result.timings_ms.get("total"):
                facts.append(f"answered in {ui.ms(total)}")
            if result.degraded_reason:
                facts.append(f"degraded: {result.degraded_reason.replace('_', ' ')}")
            st.caption(" · ".join(f for f in facts if f))
            ui.show_sources_and_trace(result.sources, None)


def golden_tab(api: Api, assistant: Assistant) -> None:
    """An assistant's golden questions: its regressions, the questions, a run, the history."""
    st.caption(
        "Questions the assistant must keep answering right. They are asked as a customer would (nothing is sent to "
        "WhatsApp) when you run them, and by themselves after the documents, instructions, engine or model change."
    )
    questions = api.golden_questions(assistant.id)
    runs = api.golden_runs(assistant.id)
    latest = next((run for run in runs if run.status == "done"), None)
    if latest is not None and latest.regressions:
        regressed = [q.question for q in questions if q.last_result and q.last_result.regression]
        regression_warning(assistant.name, latest, regressed)
    active = next((run for run in runs if run.status in ("queued", "running")), None)
    if active is not None:
        run_progress(api, assistant.id, active.id)
    elif st.button("Run now", type="primary", icon=":material/play_arrow:", disabled=not questions):
        with ui.friendly(REFUSALS):
            api.run_golden(assistant.id)
            st.rerun()
    for question in questions:
        question_editor(api, assistant, question)
    add_form(api, assistant, first=not questions)
    if runs:
        history(api, assistant, runs)


def save_from_reply(api: Api, assistant_id: int | None, message: Message) -> None:
    """On a bot reply in a thread: keep its question as a golden one, "this answer was right/wrong"."""
    if assistant_id is None or message.author != "bot":
        return
    with st.expander("Save as a golden question", icon=":material/verified:"):
        with st.form(f"golden-from-{message.id}"):
            right = st.radio("This answer was", ["right", "wrong"], horizontal=True, key=f"golden-verdict-{message.id}")
            must = st.text_area("A right answer contains (empty: what this answer states, if it was right)", help=FACTS_HELP)
            must_not = st.text_area("and does not contain (empty: what this answer states, if it was wrong)", help=FACTS_HELP)
            saved = st.form_submit_button("Save", type="primary")
    if saved:
        with ui.friendly(REFUSALS):
            fields = {"reply_id": message.id, "verdict": right, "must_contain": lines(must), "must_not_contain": lines(must_not)}
            question = api.add_golden(assistant_id, fields)
            checks = ", ".join(question.must_contain) or "—"
            avoided = ", ".join(question.must_not_contain) or "—"
            ui.flash(f"Saved as a golden question: contains {checks}; does not contain {avoided}.")
            st.rerun()
