"""Every text the product sends on its own, per language, and the words that command it: shipped wording, and the
operator's per-assistant overrides.

Looked up by (assistant, key, language): the operator's text for that language, else the shipped one, else the
assistant's first language's, else English — so no customer who wrote in another language gets an English sentence
while a translation exists. Written as a shop writes to a customer on WhatsApp: short, warm, polite.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

TextKey = Literal["fallback", "handoff", "opt_out", "opt_in", "media", "voice_unclear", "quote_intro"]
WordKind = Literal["handoff", "opt_out", "opt_in"]

# key → language code → text
SHIPPED: dict[str, dict[str, str]] = {
    # Nothing in the documents answers the question.
    "fallback": {
        "en": "Sorry, I don't know that yet. A person from our team will follow up.",
        "pt": "Desculpe, ainda não sei responder isso. Alguém da nossa equipe vai te responder em breve.",
        "es": "Perdón, todavía no sé responder eso. Alguien de nuestro equipo te va a escribir pronto.",
        "de": "Das kann ich leider noch nicht beantworten. Jemand aus unserem Team meldet sich bald bei Ihnen.",
        "fr": "Désolé, je ne sais pas encore répondre à ça. Quelqu'un de notre équipe va vous recontacter.",
        "id": "Maaf Kak, saya belum bisa jawab itu. Nanti tim kami yang akan membalas, ya.",
        "hi": "माफ़ कीजिए, इसका जवाब अभी मेरे पास नहीं है। हमारी टीम से कोई जल्द ही आपसे संपर्क करेगा।",
    },
    # The customer asked for a person: the bot is paused for them.
    "handoff": {
        "en": "Thanks — a person from our team will reply here shortly.",
        "pt": "Certo! Uma pessoa da nossa equipe vai te responder aqui em breve.",
        "es": "¡Gracias! Una persona de nuestro equipo te va a responder aquí en breve.",
        "de": "Danke! Jemand aus unserem Team antwortet Ihnen hier in Kürze.",
        "fr": "Merci ! Une personne de notre équipe va vous répondre ici très vite.",
        "id": "Baik Kak, terima kasih! Tim kami akan segera membalas di sini.",
        "hi": "धन्यवाद! हमारी टीम से कोई जल्द ही यहीं आपको जवाब देगा।",
    },
    # Names the first opt-in word of its own language (SHIPPED_WORDS["opt_in"]).
    "opt_out": {
        "en": "You won't get more messages from us. Write START to opt back in.",
        "pt": "Pronto, você não vai mais receber mensagens nossas. Se quiser voltar, é só escrever VOLTAR.",
        "es": "Listo, ya no te vamos a enviar más mensajes. Si quieres volver a recibirlos, escribe ALTA.",
        "de": "Alles klar, Sie bekommen keine Nachrichten mehr von uns. Wenn Sie wieder welche möchten, schreiben Sie START.",
        "fr": "C'est noté, vous ne recevrez plus de messages de notre part. Pour les recevoir à nouveau, écrivez START.",
        "id": "Baik Kak, Kakak tidak akan menerima pesan dari kami lagi. Kalau mau menerima lagi, ketik MULAI ya.",
        "hi": "ठीक है, अब आपको हमारी ओर से कोई मैसेज नहीं आएगा। दोबारा मैसेज पाने के लिए शुरू या START लिखें।",
    },
    "opt_in": {
        "en": "Welcome back! Ask me anything.",
        "pt": "Que bom ter você de volta! Pode perguntar o que quiser.",
        "es": "¡Qué bueno tenerte de vuelta! Pregúntame lo que quieras.",
        "de": "Willkommen zurück! Fragen Sie mich gern, was Sie wissen möchten.",
        "fr": "Ravi de vous revoir ! Posez-moi toutes vos questions.",
        "id": "Selamat datang kembali, Kak! Silakan tanya apa saja.",
        "hi": "आपका फिर से स्वागत है! जो चाहें पूछिए।",
    },
    # A picture, file or sticker with no words.
    "media": {
        "en": "Thanks! I can't look at pictures or files yet — could you write your question?",
        "pt": "Obrigado! Ainda não consigo ver fotos nem arquivos — pode escrever sua pergunta?",
        "es": "¡Gracias! Todavía no puedo ver fotos ni archivos. ¿Me escribes tu pregunta?",
        "de": "Danke! Bilder und Dateien kann ich leider noch nicht ansehen – können Sie Ihre Frage kurz schreiben?",
        "fr": "Merci ! Je ne peux pas encore voir les photos ni les fichiers. Pouvez-vous écrire votre question ?",
        "id": "Terima kasih, Kak! Saya belum bisa melihat foto atau file. Boleh ditulis pertanyaannya?",
        "hi": "धन्यवाद! फ़ोटो या फ़ाइलें अभी यहाँ नहीं देखी जा सकतीं। क्या आप अपना सवाल लिखकर भेज देंगे?",
    },
    # A voice note nobody could hear.
    "voice_unclear": {
        "en": "Sorry, I couldn't hear that voice note — could you type your question?",
        "pt": "Desculpe, não consegui entender o áudio. Pode escrever sua pergunta?",
        "es": "Perdón, no pude entender el audio. ¿Me escribes tu pregunta?",
        "de": "Entschuldigung, die Sprachnachricht konnte ich nicht verstehen. Können Sie Ihre Frage bitte schreiben?",
        "fr": "Désolé, je n'ai pas réussi à comprendre le message vocal. Pouvez-vous écrire votre question ?",
        "id": "Maaf Kak, voice note-nya kurang jelas. Boleh diketik pertanyaannya?",
        "hi": "माफ़ कीजिए, वॉइस मैसेज ठीक से सुनाई नहीं दिया। क्या आप अपना सवाल टाइप कर सकते हैं?",
    },
    # Above the quoted sentences of the documents (the safe answer).
    "quote_intro": {
        "en": "Here is what our documents say about that:",
        "pt": "Veja o que nossos documentos dizem sobre isso:",
        "es": "Esto es lo que dicen nuestros documentos sobre eso:",
        "de": "Das steht in unseren Unterlagen dazu:",
        "fr": "Voici ce que disent nos documents à ce sujet :",
        "id": "Berikut info dari dokumen kami tentang hal itu:",
        "hi": "इस बारे में हमारे दस्तावेज़ों में यह लिखा है:",
    },
}
KEYS: tuple[TextKey, ...] = tuple(SHIPPED)  # type: ignore[assignment]
SHIPPED_LANGUAGES = tuple(SHIPPED["fallback"])

# kind → language code → words. Handoff words count anywhere in a message, so they are phrases no ordinary
# question contains ("per person", "human hair", "a gente" written "agente" are not requests for a person);
# opt-out and opt-in words count only as the whole message. STOP and START work in every language.
SHIPPED_WORDS: dict[str, dict[str, list[str]]] = {
    "handoff": {
        "en": [
            "a human", "a real person", "real person", "need a person", "want a person", "talk to a person",
            "speak to a person", "speak with a person", "talk to someone", "speak to someone", "an agent", "live agent",
            "human agent", "operator",
        ],
        "pt": [
            "atendente", "falar com uma pessoa", "falar com alguém", "falar com um humano", "atendimento humano",
            "pessoa de verdade", "pessoa real",
        ],
        "es": [
            "hablar con una persona", "hablar con alguien", "hablar con un humano", "hablar con un agente",
            "hablar con un asesor", "asesor", "persona real",
        ],
        "de": [
            "mit einem menschen", "mit einer person", "mit einem mitarbeiter", "mit jemandem sprechen", "echter mensch",
            "echten menschen",
        ],
        "fr": [
            "parler à quelqu'un", "parler à une personne", "parler à un humain", "parler à un conseiller", "un conseiller",
            "une vraie personne",
        ],
        "id": [
            "bicara dengan admin", "ngobrol sama admin", "ngobrol dengan admin", "bicara dengan orang",
            "bicara dengan manusia", "sama orang asli", "hubungi cs", "chat dengan cs",
        ],
        "hi": [
            "इंसान से बात", "किसी व्यक्ति से बात", "किसी से बात", "एजेंट से बात", "insaan se baat", "kisi se baat",
            "agent se baat",
        ],
    },
    "opt_out": {
        "en": ["stop", "unsubscribe", "stop messages"],
        "pt": ["parar", "pare", "sair", "descadastrar", "cancelar inscrição", "stop"],
        "es": ["baja", "dar de baja", "detener", "parar", "no más mensajes", "stop"],
        "de": ["stopp", "abmelden", "abbestellen", "stop"],
        "fr": ["arrêt", "arrête", "arrêter", "désabonner", "me désabonner", "stop"],
        "id": ["berhenti", "unreg", "stop"],
        "hi": ["रोकें", "बंद करें", "बंद करो", "band karo", "band karein", "stop"],
    },
    "opt_in": {
        "en": ["start"],
        "pt": ["voltar", "start"],
        "es": ["alta", "start"],
        "de": ["start", "anmelden"],
        "fr": ["start", "reprendre"],
        "id": ["mulai", "start"],
        "hi": ["शुरू", "shuru", "start"],
    },
}  # fmt: skip
WORD_KINDS: tuple[WordKind, ...] = tuple(SHIPPED_WORDS)  # type: ignore[assignment]


def text_for(overrides: Mapping[str, Mapping[str, str]], key: str, language: str, fallback_language: str = "en") -> str:
    """The text `key` in `language`: `overrides` (language → key → text, the assistant's own) first, then the shipped one,
    then the same in `fallback_language`, then English."""
    for code in (language, fallback_language, "en"):
        own = overrides.get(code, {}).get(key)
        if own:
            return own
        shipped = SHIPPED[key].get(code)
        if shipped:
            return shipped
    return SHIPPED[key]["en"]


def overrides_of(texts: Mapping[str, Mapping[str, str]], legacy: Mapping[str, str | None], main_language: str) -> dict:
    """The operator's texts (language → key → text), with the older API's single texts (key → text, e.g. a customised
    `handoff_reply` or `fallback_message`) as the main language's where that language has none of its own."""
    merged = {code: dict(by_key) for code, by_key in texts.items()}
    main = merged.setdefault(main_language, {})
    for key, text in legacy.items():
        if text and not main.get(key):
            main[key] = text
    return merged
