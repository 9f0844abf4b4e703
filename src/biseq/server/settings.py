"""The server's limits and batching settings: one frozen object, unknown keys refused."""

from __future__ import annotations

import dataclasses

from biseq.config import ConfigError, _Section


@dataclasses.dataclass(frozen=True, kw_only=True)
class ServeConfig(_Section):
    """How ``biseq serve`` batches and what it accepts.

    Attributes:
        max_batch_words: words decoded together at most (micro-batching joins requests up to it).
        max_wait_ms: how long the first request of a batch waits for others to join it.
        batching: ``False`` decodes every request alone, in arrival order (for comparison).
        max_queue_words: words waiting at most; a request beyond it is refused (503).
        max_request_words: words in one request at most (413 beyond).
        max_body_bytes: request body size at most (413 beyond).
        max_nbest: candidates per word at most (422 beyond).
        cache_words: results kept for words asked again (least recently used dropped; 0: no cache).
    """

    section = "serve"
    max_batch_words: int = 1024
    max_wait_ms: float = 5.0
    batching: bool = True
    max_queue_words: int = 8192
    max_request_words: int = 256
    max_body_bytes: int = 65536
    max_nbest: int = 10
    cache_words: int = 100_000

    def validate(self) -> None:
        for name in ("max_batch_words", "max_queue_words", "max_request_words", "max_body_bytes", "max_nbest"):
            if getattr(self, name) < 1:
                raise ConfigError(f"serve.{name} must be at least 1. Received: {getattr(self, name)}")
        if self.cache_words < 0:
            raise ConfigError(f"serve.cache_words must be at least 0. Received: {self.cache_words}")
        if self.max_wait_ms < 0:
            raise ConfigError(f"serve.max_wait_ms must be at least 0. Received: {self.max_wait_ms}")
        if self.max_queue_words < self.max_request_words:
            raise ConfigError(f"serve.max_queue_words ({self.max_queue_words}) must hold one request of "
                              f"serve.max_request_words ({self.max_request_words})")
