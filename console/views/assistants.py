"""Assistants: create, edit and delete them, choose their model, try them in a playground, and keep
golden questions they must answer right."""

from __future__ import annotations

import streamlit as st

from console import golden, ui
from console.api import Api, ApiError, Assistant, ModelList

st.title("Assistants")
api: Api = ui.client()
CONFIRM_DELETE = "confirm_delete_assistant"
PULL_JOB = "model_pull_job"
# The assistant's answer modes (backend ReplyPolicy.answer_mode), as the form offers them.
ANSWER_MODES = {
    "auto": "Automatic: quote the documents with the small demo model or when a written reply fails a check",
    "generate": "Written by the model (checked; the documents are quoted when a check fails)",
    "quote": "Always quote the documents' sentences that answer",
}
STEPS = {"total": "Total", "retrieval": "Retrieval", "generation": "Generation"}


def same_model(a: str, b: str) -> bool:
    # Ollama lists "llama3.2:latest" for a model pulled as "llama3.2". The rule's home is
    # `rag.llm.ollama.ollama_model_name`; the console does not import `rag`, hence this copy.
    return (a if ":" in a else f"{a}:latest") == (b if ":" in b else f"{b}:latest")


def model_choices(models: ModelList | None, current: str | None) -> list[str]:
    """Ollama's models, spelled as the assistant already has them, plus names not pulled yet."""
    names = list(models.names) if models else []
    for wanted in (current, models.configured_model if models else None):
        if not wanted:
            continue
        same = [i for i, name in enumerate(names) if same_model(name, wanted)]
        if same:
            names[same[0]] = wanted
        else:
            names.append(wanted)
    return names


def model_label(models: ModelList | None, name: str) -> str:
    if models and models.reachable and not any(same_model(name, pulled) for pulled in models.names):
        return f"{name} (not pulled yet)"
    return name


ENGINE_CHOICES = {
    "default": "Server default (LLM_PROVIDER)",
    "auto": "Automatic: Ollama when it has the model, else the embedded model",
    "ollama": "Ollama",
    "openai": "OpenAI-compatible server (vLLM, llama.cpp, LM Studio, LocalAI, hosted)",
    "embedded": "Embedded model (runs inside the backend)",
}


def engine_note(engines: dict, engine: str) -> str | None:
    """Which engine answers now for this choice, and a word on the bundled demo model."""
    if not engines:
        return None
    provider = engines.get("provider", "auto")
    chosen = provider if engine == "default" else engine
    embedded = engines.get("embedded") or {}
    demo = f" — {ui.DEMO_MODEL_NOTE}" if embedded.get("bundled_demo_model") else ""
    if chosen == "auto":
        answering = engines.get("answering") if provider == "auto" else None
        if answering == "ollama":
            return "Answers come from **Ollama** (reachable, with its models)."
        return f"Ollama is not answering, so answers come from the **embedded model** `{embedded.get('model', '?')}`{demo}."
    if chosen == "embedded":
        return f"Answers come from the **embedded model** `{embedded.get('model', '?')}`{demo}."
    if chosen == "openai" and not (engines.get("openai") or {}).get("configured"):
        return "No OpenAI-compatible server is configured (OPENAI_BASE_URL): answers will be degraded."
    return f"Answers come from the **{ui.ENGINE_NAMES.get(chosen, chosen)}**."


def assistant_form(key: str, models: ModelList | None, current: Assistant | None, engines: dict | None = None) -> dict | None:
    """The fields of an assistant; returns them when the form is submitted."""
    with st.form(key):
        name = st.text_input("Name", value=current.name if current else "", placeholder="Shop helper")
        instructions = st.text_area(
            "Instructions",
            value=current.instructions if current else "You are a helpful assistant. Answer from the sources, briefly.",
            help="How the assistant should behave. It answers from its knowledge documents.",
        )
        engine_keys = list(ENGINE_CHOICES)
        engine = st.selectbox(
            "Engine",
            engine_keys,
            index=engine_keys.index(current.engine) if current and current.engine in engine_keys else 0,
            format_func=ENGINE_CHOICES.get,
            help="Which language model writes the answers.",
        )
        note = engine_note(engines or {}, engine)
        if note:
            st.caption(note)
        choices = model_choices(models, current.model if current else None)
        if choices:
            default = current.model if current else (models.configured_model if models else choices[0])
            model = st.selectbox(
                "Model",
                choices,
                index=choices.index(default) if default in choices else 0,
                format_func=lambda n: model_label(models, n),
            )
        else:
            model = st.text_input("Model", value=current.model if current else "", placeholder="llama3.2")
        temperature = st.slider(
            "Temperature", 0.0, 2.0, float(current.temperature) if current else 0.2, 0.05, help="Lower = more factual"
        )
        catalog = ui.languages(api)
        codes = [item.code for item in catalog.items]
        chosen_languages = st.multiselect(
            "Languages it answers in",
            codes,
            default=[code for code in (current.languages if current else []) if code in codes],
            format_func=lambda code: ui.language_label(catalog, code),
            help="The first is its main language: a customer writing in another language is answered in it. "
            "None chosen: automatic, its documents' languages and then English.",
        )
        if current and not current.languages:
            now = ", ".join(ui.language_label(catalog, code) for code in current.served_languages)
            st.caption(f"Automatic now: {now}.")
        policies = dict(current.policies) if current else {}
        # The main language's fallback, wherever it is kept (the texts editor keeps it per language).
        main_texts = dict((policies.get("texts") or {}).get(current.served_languages[0]) or {}) if current else {}
        fallback = st.text_area(
            "Fallback message (main language)",
            value=main_texts.get("fallback") or (current.fallback_message if current else ""),
            placeholder=TEXT_NAMES["fallback"][1],
            help="Sent when the documents hold no good answer. Empty: the shipped text; other languages under "
            "Languages and texts.",
        )
        guard = st.checkbox(
            "Never send invented facts",
            value=bool(policies.get("grounding_guard", True)),
            help="A reply that states a price, time, date, number, phone, e-mail or web address that no source contains"
            " is not sent; the customer gets the sentences of the documents that answer instead.",
        )
        modes = list(ANSWER_MODES)
        answer_mode = st.selectbox(
            "How answers are written",
            modes,
            index=modes.index(policies.get("answer_mode", "auto")) if policies.get("answer_mode", "auto") in modes else 0,
            format_func=ANSWER_MODES.get,
            help="Quoting sends the sentences of your documents that answer, word for word, with where they come from.",
        )
        locked = ui.admin_only("change assistants")
        submitted = st.form_submit_button("Save" if current else "Create assistant", type="primary", disabled=bool(locked))
        if locked:
            st.caption(locked)
    if not submitted:
        return None
    if not name.strip():
        st.warning("Give the assistant a name.")
        return None
    if current and main_texts.get("fallback"):  # the field above is now the main language's fallback
        main_texts.pop("fallback")
        policies["texts"] = {**policies["texts"], current.served_languages[0]: main_texts}
    fields = {
        "name": name.strip(),
        "instructions": instructions,
        "engine": engine,
        "temperature": temperature,
        "fallback_message": fallback.strip(),
        "languages": chosen_languages,
        "policies": {**policies, "grounding_guard": guard, "answer_mode": answer_mode},
    }
    if model and model.strip():
        fields["model"] = model.strip()
    return fields


# The fixed texts an assistant sends on its own: (label, what it is for).
TEXT_NAMES = {
    "fallback": ("Fallback", "Sent when the documents hold no good answer."),
    "handoff": ("Handoff", "Sent when the customer asks for a person (the bot then stays quiet)."),
    "opt_out": ("Opt-out", "Confirms an opt-out: name this language's opt-in word."),
    "opt_in": ("Opt-in", "Welcomes back a customer who opted in again."),
    "media": ("Picture or file", "Sent for a picture, file or sticker without words."),
    "voice_unclear": ("Unclear voice note", "Sent when a voice note could not be heard."),
    "quote_intro": ("Above quoted passages", "The lead-in above the documents' sentences sent as the answer."),
}
WORD_NAMES = {
    "handoff": ("Words asking for a person", "Anywhere in a message. Choose phrases an ordinary question never contains."),
    "opt_out": ("Opt-out words", "Only as the whole message, e.g. STOP."),
    "opt_in": ("Opt-in words", "Only as the whole message, from a customer who opted out."),
}
# The older API's one text per key, now the main language's (backend ReplyPolicy).
LEGACY_TEXTS = {
    "media": "media_reply",
    "voice_unclear": "voice_unclear_reply",
    "handoff": "handoff_reply",
    "opt_out": "opt_out_reply",
    "opt_in": "opt_in_reply",
}


def word_list(text: str) -> list[str]:
    """Words written one a line or comma-separated."""
    return [word.strip() for line in text.splitlines() for word in line.split(",") if word.strip()]


def texts_tab(assistant: Assistant) -> None:
    """The assistant's fixed texts and command words in one language: the shipped ones as placeholders."""
    catalog = ui.languages(api)
    codes = list(dict.fromkeys([*assistant.served_languages, *(item.code for item in catalog.items)]))
    code = st.selectbox(
        "Language",
        codes,
        format_func=lambda c: ui.language_label(catalog, c) + (" — main language" if c == assistant.served_languages[0] else ""),
        key=f"texts-language-{assistant.id}",
    )
    shipped = catalog.of(code)
    main = code == assistant.served_languages[0]
    policies = dict(assistant.policies)
    own_texts = dict((policies.get("texts") or {}).get(code) or {})
    own_words = dict((policies.get("words") or {}).get(code) or {})
    if main:  # what older versions stored, shown where it now applies
        for key, legacy in LEGACY_TEXTS.items():
            own_texts.setdefault(key, policies.get(legacy) or "")
        own_texts.setdefault("fallback", assistant.fallback_message)
    if shipped and not shipped.texts:
        st.caption("No shipped texts in this language: empty fields send the main language's.")
    with st.form(f"texts-{assistant.id}-{code}"):
        texts = {}
        for key, (label, why) in TEXT_NAMES.items():
            texts[key] = st.text_area(
                label,
                value=own_texts.get(key) or "",
                placeholder=(shipped.texts.get(key) if shipped else None) or "",
                help=f"{why} Empty: the shipped text (shown greyed).",
                key=f"text-{assistant.id}-{code}-{key}",
                height=68,
            )
        words = {}
        for kind, (label, why) in WORD_NAMES.items():
            words[kind] = st.text_input(
                label,
                value=", ".join(own_words.get(kind) or []),
                placeholder=", ".join(shipped.words.get(kind, [])) if shipped else "",
                help=f"{why} Comma-separated. Empty: the shipped words (shown greyed); words of every language count.",
                key=f"words-{assistant.id}-{code}-{kind}",
            )
        locked = ui.admin_only("change assistants")
        saved = st.form_submit_button("Save texts", type="primary", disabled=bool(locked))
        if locked:
            st.caption(locked)
    if not saved:
        return
    all_texts = {lang: dict(by_key) for lang, by_key in (policies.get("texts") or {}).items()}
    all_texts[code] = {key: text.strip() for key, text in texts.items() if text.strip()}
    all_words = {lang: dict(by_kind) for lang, by_kind in (policies.get("words") or {}).items()}
    all_words[code] = {kind: word_list(text) for kind, text in words.items() if word_list(text)}
    changes: dict = {"policies": {**policies, "texts": all_texts, "words": all_words}}
    if main:  # now kept per language: the older single texts would only shadow them
        changes["policies"].update({legacy: None for legacy in LEGACY_TEXTS.values()})
        changes["fallback_message"] = ""
    with ui.friendly():
        api.update_assistant(assistant.id, changes)
        ui.flash(f"Saved the {ui.language_label(catalog, code)} texts of {assistant.name}.")
        st.rerun()


def load_models() -> ModelList | None:
    try:
        models = api.models()
    except ApiError as error:
        st.caption(ui.tidy(f"Could not list Ollama's models: {error.message}"))
        return None
    if not models.reachable:
        st.info(
            f"Ollama is not reachable at `{models.host}`. Assistants on the automatic engine answer with the embedded"
            " model meanwhile; you can still save an Ollama model name.",
            icon=":material/cloud_off:",
        )
        if detail := models.message or models.reason:
            with st.expander("Technical detail"):
                st.code(detail, language=None, wrap_lines=True)
    elif models.missing_models:
        then = "Pull them below." if ui.is_admin() else "Ask an admin to pull them."
        st.warning(f"Assistants use models Ollama does not have: {', '.join(models.missing_models)}. {then}")
    return models


def pull_section(models: ModelList | None) -> None:
    if locked := ui.admin_only("pull models"):
        st.caption(locked)
        return
    with st.expander("Pull a model into Ollama", icon=":material/download:", expanded=bool(models and models.missing_models)):
        suggestion = models.missing_models[0] if models and models.missing_models else ""
        # A pull needs Ollama to answer: offering it otherwise only ends in an error later.
        unreachable = None if models and models.reachable else "Ollama is not reachable, so no model can be pulled now."
        if unreachable:
            st.caption(unreachable)
        with st.form("pull"):
            name = st.text_input("Model name", value=suggestion, placeholder="llama3.2", disabled=bool(unreachable))
            if st.form_submit_button("Pull model", disabled=bool(unreachable), help=unreachable):
                if not name.strip():
                    st.warning("Write the name of a model, for example `llama3.2`.")
                else:
                    with ui.friendly():
                        st.session_state[PULL_JOB] = api.pull_model(name.strip()).job_id
        if st.session_state.get(PULL_JOB):
            pull_progress()


@st.fragment(run_every=1.0)
def pull_progress() -> None:
    job_id = st.session_state.get(PULL_JOB)
    if not job_id:
        return
    with ui.friendly():
        pull = api.pull_status(job_id)
        if pull.status in ("failed", "done"):
            st.session_state.pop(PULL_JOB, None)
            if pull.status == "done":
                ui.flash(f"{pull.model} is ready to use.")
            else:
                ui.flash(ui.person_error(pull.error, f"Pulling {pull.model} failed:", "Ollama"), "error", pull.error)
            st.rerun()  # the whole page: the model lists and warnings change
        else:
            st.progress(pull.percent / 100, text=f"Pulling {pull.model}… {pull.percent}%")


def playground(assistant: Assistant) -> None:
    st.caption("Ask a question as a customer would. Nothing is sent to WhatsApp.")
    with st.form("playground"):
        question = st.text_input("Question", placeholder="What are your opening hours?")
        asked = st.form_submit_button("Ask", type="primary")
    if not asked:
        return
    if not question.strip():
        st.warning("Write a question first.")
        return
    with st.spinner("Thinking…"), ui.friendly():
        answer = api.generate(assistant.id, question.strip())
        # The answer may quote the documents word for word: text, never Markdown that loads images.
        with st.chat_message("user"):
            st.text(question)
        with st.chat_message("assistant"):
            st.text(answer.answer)
        ui.answer_flags(answer.degraded, answer.degraded_reason, answer.used_fallback, answer.trace)
        if caption := ui.engine_caption(answer.trace):
            st.caption(caption)
        timings = ui.timings_that_happened({**answer.trace, "timings_ms": answer.timings_ms or answer.trace.get("timings_ms")})
        steps = [(label, timings[name]) for name, label in STEPS.items() if name in timings]
        for column, (label, value) in zip(st.columns(len(steps)) if steps else [], steps, strict=True):
            column.metric(label, ui.ms(value))
        ui.show_sources_and_trace(answer.sources, answer.trace)


def danger_zone(assistant: Assistant) -> None:
    if not st.session_state.get(CONFIRM_DELETE) == assistant.id:
        locked = ui.admin_only("delete assistants")
        if st.button("Delete this assistant", icon=":material/delete:", disabled=bool(locked)):
            st.session_state[CONFIRM_DELETE] = assistant.id
            st.rerun()
        if locked:
            st.caption(locked)
        return
    st.warning(
        f"Delete **{assistant.name}** with all its documents, WhatsApp connections and conversations? This cannot be undone."
    )
    yes, no = st.columns(2)
    if yes.button("Yes, delete it", type="primary"):
        st.session_state.pop(CONFIRM_DELETE, None)
        with ui.friendly():
            api.delete_assistant(assistant.id)
            ui.flash(f"Deleted {assistant.name}.")
            st.rerun()
    if no.button("Cancel"):
        st.session_state.pop(CONFIRM_DELETE, None)
        st.rerun()


models = load_models()
assistants = api.assistants()
try:
    engines = api.status().get("engines") or {}
except ApiError:
    engines = {}

if ui.is_admin():
    with st.expander("New assistant", icon=":material/add:", expanded=not assistants):
        fields = assistant_form("create", models, None, engines)
        if fields:
            with ui.friendly():
                created = api.create_assistant(fields)
                st.session_state[ui.CURRENT_ASSISTANT] = st.session_state[ui.ASSISTANT_PICKER] = created.id
                ui.flash(f"Created {created.name}. Next: add documents on the Knowledge page, then connect WhatsApp.")
                st.rerun()
elif not assistants:
    st.info("No assistant yet. Only an admin can create assistants.", icon=":material/smart_toy:")

pull_section(models)

if assistants:
    assistant = ui.choose_assistant(api)
    if assistant:
        settings_tab, texts_tab_, playground_tab, golden_tab, delete_tab = st.tabs(
            ["Settings", "Languages and texts", "Playground", "Golden questions", "Delete"]
        )
        with settings_tab:
            changes = assistant_form(f"edit-{assistant.id}", models, assistant, engines)
            if changes:
                with ui.friendly():
                    api.update_assistant(assistant.id, changes)
                    ui.flash(f"Saved {changes['name']}.")
                    st.rerun()
        with texts_tab_:
            texts_tab(assistant)
        with playground_tab:
            playground(assistant)
        with golden_tab, ui.friendly(golden.REFUSALS):
            golden.golden_tab(api, assistant)
        with delete_tab:
            danger_zone(assistant)
