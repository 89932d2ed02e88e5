"""All settings of every image2model process, read from `IMAGE2MODEL_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    """One place for every knob. Each field is `IMAGE2MODEL_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="IMAGE2MODEL_", env_file=None, extra="ignore")

    # Where everything lives (embedded mode): queue DB, job store DB, uploads and results.
    data_dir: Path = Field(
        Path("./image2model-data"), description="Directory holding huey.db, state.db and blobs/."
    )

    # Scale-out backend.
    redis_url: str = Field(
        "",
        description="Redis URL (e.g. redis://host:6379/0) for the job store; empty keeps SQLite under data_dir.",
    )
    blob_url: str = Field(
        "",
        description="Where uploads and results are stored: empty for data_dir/blobs, a directory (a mount every "
        "host shares), or `s3://bucket/prefix` for S3-compatible object storage (downloads redirect to "
        "presigned URLs; credentials from the usual `AWS_*` variables).",
    )
    s3_endpoint_url: str = Field(
        "", description="Endpoint of S3-compatible storage (MinIO, R2, ...); empty is AWS S3."
    )
    s3_region: str = Field("", description="Region of the S3 bucket; empty takes the AWS configuration's.")

    # HTTP service.
    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(8000, description="Port the API listens on.")
    ui_port: int = Field(7860, description="Port of the Gradio web UI started by `image2model serve`.")
    api_keys: CommaList = Field(
        default_factory=list, description="Comma-separated API keys; empty turns auth off."
    )
    signing_secret: str = Field(
        "", description="Secret for signed links; generated under data_dir when empty."
    )
    link_ttl_seconds: int = Field(
        24 * 3600, description="Lifetime of signed links in upload responses and listings."
    )
    public_url: str = Field(
        "", description="Absolute base URL put in links (e.g. https://models.example.com)."
    )
    cors_origins: CommaList = Field(
        default_factory=list, description="Origins allowed by CORS (comma-separated)."
    )

    rate_limit_per_minute: int = Field(
        0, description="Uploads per minute per API key (or client address); 0 is no limit."
    )

    # Upload limits.
    max_files: int = Field(25, description="Most images in one upload.")
    max_file_size: int = Field(10 * 1024 * 1024, description="Largest image in bytes.")
    max_image_pixels: int = Field(
        40_000_000, description="Pixel ceiling (width x height) against decompression bombs."
    )

    # Generators.
    default_generator: str = Field("local", description="Generator used when an upload names none.")
    extra_generators: CommaList = Field(
        default_factory=list, description="Extra generator classes as `module:Class` (comma-separated)."
    )

    # FAL.AI generator (listed only when a key is set).
    fal_key: str = Field(
        "",
        description="FAL.AI API key (FAL_KEY is read too); enables the `fal` generators.",
        validation_alias=AliasChoices("IMAGE2MODEL_FAL_KEY", "FAL_KEY"),
    )
    fal_base_url: str = Field(
        "", description="Send every FAL request under this base URL (tests and benchmarks only)."
    )
    fal_max_in_flight: int = Field(
        256,
        description="Most FAL requests in flight at once across all workers, a ceiling (FAL queues requests on its "
        "side). Below it the workers adapt: a 429 from FAL lowers the number in flight and its Retry-After is "
        "honoured; accepted submissions raise it again.",
    )
    fal_stream: bool = Field(
        True,
        description="Follow each FAL request's status stream (pushed, not polled); status checks take over when "
        "a stream fails or is not offered.",
    )
    fal_stream_stall_seconds: float = Field(
        45.0,
        description="A status stream silent this long (FAL sends a keep-alive comment every 15 s) is dropped for "
        "status checks, and opened again later (s).",
    )
    fal_stream_check_interval: float = Field(
        5.0,
        description="While a request's status stream is open, how often the worker still looks at the request "
        "itself: lease, cancellation, deadline and FAL's latest log line (s).",
    )
    fal_poll_interval: float = Field(
        1.0,
        description="Shortest wait between two status checks of a FAL request (s); a check that finds nothing "
        "new writes nothing to the job store.",
    )
    fal_poll_interval_max: float = Field(
        2.0,
        description="Longest wait between two status checks (s): checks slow down towards it while the request "
        "waits far back in FAL's queue or has generated for a while. Bounds the delay before we notice a result.",
    )
    fal_deadline_seconds: float = Field(
        900.0, description="A FAL request still unfinished after this is cancelled."
    )

    # Queue and workers.
    workers: int = Field(
        0, description="Worker processes started by `serve`/`worker`; 0 means one per CPU core."
    )
    io_threads: int = Field(
        4,
        description="Threads of the I/O worker that drives remote generators (FAL): as many submissions, and as "
        "many status checks and result downloads, run at once.",
    )
    worker_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="CPU priority (Unix niceness) of the `cpu` queue's workers, and of their session when they lead "
        "one (Linux autogroup): on a shared host, model builds yield the CPU to the API's requests and event streams "
        "(0: the same priority as the API). Containers and systemd units share the CPU by cgroup: give the workers' "
        "a lower CPU weight there.",
    )
    worker_poll_min: float = Field(0.01, description="Shortest queue poll interval of idle workers (s).")
    worker_poll_max: float = Field(0.05, description="Longest queue poll interval of idle workers (s).")
    lease_seconds: float = Field(
        30.0, description="How long a worker owns an item without renewing its lease."
    )
    max_attempts: int = Field(3, description="Runs of one item (worker crashes included) before it fails.")
    item_timeout_seconds: float = Field(900.0, description="Hard time limit of one item.")
    reaper_interval_seconds: int = Field(5, description="How often expired leases are re-enqueued (s).")
    requeue_after_seconds: float = Field(
        60.0, description="A queued item not picked up for this long is enqueued again (lost enqueue)."
    )
    retention_seconds: int = Field(
        7 * 24 * 3600, description="Jobs, events and files older than this are purged."
    )
    retention_interval_seconds: int = Field(900, description="How often the retention task runs (s).")

    # Exports.
    export_wait_seconds: float = Field(
        60.0,
        description="How long `POST /jobs/{id}/exports` waits for the worker before answering 202 (s).",
    )

    # Event stream.
    hub_poll_interval: float = Field(
        0.01,
        description="How often each API process tails the event log while a stream is open (s; on Redis it waits).",
    )
    queue_position_interval: float = Field(
        1.0,
        description="How often streams of waiting jobs are told their place in the queue, when it changed (s).",
    )
    sse_ping_seconds: int = Field(15, description="Keep-alive comment interval on event streams (s).")
    sse_retry_ms: int = Field(2000, description="`retry:` hint sent to EventSource clients (ms).")
    sse_max_pending_events: int = Field(
        1000,
        description="Events waiting for one slow stream before it is closed (its client resumes with "
        "Last-Event-ID, missing nothing); other streams of the job are never held up by it.",
    )
    progress_min_interval: float = Field(
        0.25, description="Least time between two progress events of one file (s)."
    )

    # Webhooks (`webhook_url` on uploads), delivered by `image2model worker --queue webhooks`.
    webhook_secret: str = Field(
        "",
        description="Key of the Standard Webhooks signatures, `whsec_<base64>`; generated when empty and kept "
        "next to the signing secret (data_dir/webhook.key, or the Redis key `i2m:webhook-secret`).",
    )
    webhook_allow_hosts: CommaList = Field(
        default_factory=list,
        description="Webhook hosts allowed although they are (or resolve to) loopback, private or link-local "
        "addresses (comma-separated host names or IPs); every other such target is refused.",
    )
    webhook_timeout_seconds: float = Field(
        10.0, description="An attempt that has no answer after this long fails and is retried (s)."
    )
    webhook_retry_first_seconds: float = Field(
        5.0, description="Wait before the first retry of a failed delivery; it doubles per attempt (s)."
    )
    webhook_retry_max_seconds: float = Field(3600.0, description="Longest wait between two attempts (s).")
    webhook_retry_window_seconds: float = Field(
        24 * 3600.0, description="A delivery not accepted this long after its event is given up (s)."
    )
    webhook_max_in_flight: int = Field(
        256,
        description="Most deliveries one webhook worker sends at once (a quarter of them to any one host).",
    )
    webhook_poll_interval: float = Field(
        0.02, description="How often the webhook worker tails the event log on SQLite (s)."
    )

    # Job API v1.1: idempotent requests and the HTTP server's guards against slow or too many clients.
    idempotency_ttl_seconds: int = Field(
        24 * 3600,
        description="How long an `Idempotency-Key` is remembered (per API key) with its first answer (s).",
    )
    http_header_timeout: float = Field(
        10.0,
        description="Longest time a client may take to send a request's headers (s); slower ones get 408 and are "
        "disconnected.",
    )
    http_body_timeout: float = Field(
        30.0,
        description="Longest wait for the next part of a request body (s); a body that stalls longer gets 408.",
    )
    http_body_min_rate: int = Field(
        1024,
        description="Least average rate of a request body (bytes/s), checked once it has taken longer than "
        "`http_body_timeout`; a client that trickles slower gets 408.",
    )
    http_max_connections: int = Field(
        4096,
        description="Most open connections per API process (event streams included); beyond it requests get 503 "
        "TOO_MANY_CONNECTIONS.",
    )

    # Clients (CLI, web UI, bot, notebook).
    server_url: str = Field("http://127.0.0.1:8000", description="API base URL used by every client.")
    api_key: str = Field("", description="API key clients send to the server.")
    web_url: str = Field(
        "http://127.0.0.1:7860",
        description="Web UI base URL: the job links clients print open `<web_url>/?job=<id>` there.",
    )

    # Discord bot (`image2model bot`).
    discord_token: str = Field(
        "", description="Discord bot token (`IMAGE2MODEL_DISCORD_TOKEN`); never logged or shown."
    )
    discord_guild_id: int = Field(
        0, description="Sync the bot's commands to this one guild (development); 0 syncs them globally."
    )
    bot_cooldown_seconds: float = Field(
        30.0, description="Least time between two /model jobs of one Discord user (s); 0 is none."
    )
    bot_max_jobs_per_user: int = Field(1, description="Most unfinished /model jobs of one Discord user.")
    bot_progress_interval: float = Field(
        2.0, description="Least time between two progress edits of one bot reply (s)."
    )
    bot_job_timeout_seconds: float = Field(
        3600.0, description="The bot stops following a job (and says so) after this long (s)."
    )
    bot_data_dir: Path = Field(
        Path("./image2model-bot"),
        description="Where the bot keeps each job's photos and options, so buttons work after a restart.",
    )

    log_level: str = Field("INFO", description="Log level of every process.")
    log_file: str = Field(
        "",
        description="Write every log line to this file (appended; processes may share it); stderr then shows only "
        "warnings, errors and one line per finished job. `image2model serve` uses data_dir/logs/image2model.log "
        "when this is empty.",
    )

    @field_validator("api_keys", "extra_generators", "cors_origins", "webhook_allow_hosts", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def auth_enabled(self) -> bool:
        """True when at least one API key is configured."""
        return bool(self.api_keys)

    @property
    def huey_path(self) -> Path:
        return self.data_dir / "huey.db"

    @property
    def state_path(self) -> Path:
        return self.data_dir / "state.db"

    @property
    def blobs_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def staging_dir(self) -> Path:
        return self.data_dir / "staging"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()


def markdown_table() -> str:
    """The settings as the README's Markdown table (the README test keeps the two identical)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
        if isinstance(default, list):
            default = ",".join(default)
        shown = f"`{default}`" if str(default) else "(empty)"
        rows.append(f"| `IMAGE2MODEL_{name.upper()}` | {shown} | {field.description} |")
    return "\n".join(rows)
