"""The HTTP API: ``POST /v1/predict``, ``POST /v1/attention``, ``GET /health``, ``GET /v1/model``, ``GET /``.

Every error is JSON ``{"message": ..., "status": ...}``: 422 for malformed JSON or a wrong field,
413 for a body or word list over the limits, 503 while loading or when the queue is full, 500 for
anything unexpected (logged; the server keeps serving).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import logging
from collections import OrderedDict
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException

from biseq.g2p import G2P, G2PError, WordResult
from biseq.g2p import text as text_module
from biseq.server.batcher import MicroBatcher, QueueFullError
from biseq.server.settings import ServeConfig

log = logging.getLogger("biseq.server")


class PredictRequest(BaseModel):
    """``words`` (single words) or ``text`` (split into words as ``biseq.load()(text)`` does)."""

    model_config = ConfigDict(extra="forbid")
    words: list[str] | None = Field(default=None, examples=[["hello", "world"]])
    text: str | None = Field(default=None, examples=["Hello, world!"])
    nbest: int = Field(default=1, ge=1, description="candidates per word")
    stress: bool = Field(default=True, description="keep the CMU stress digits")

    @model_validator(mode="after")
    def _one_input(self) -> PredictRequest:
        if (self.words is None) == (self.text is None):
            raise ValueError("give exactly one of 'words' (a list of words) or 'text' (a string)")
        return self


class PronunciationOut(BaseModel):
    phones: str
    prob: float
    source: str


class WordOut(BaseModel):
    word: str
    pronunciations: list[PronunciationOut]
    note: str = ""


class PredictResponse(BaseModel):
    results: list[WordOut]


class AttentionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    word: str = Field(min_length=1, max_length=64)
    phones: str = Field(min_length=1, max_length=512)


class _BodyTooLarge(Exception):
    pass


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"message": message, "status": status, **extra}, status_code=status)


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413 (by its length header, or as it streams)."""

    def __init__(self, app, *, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            response = _error(413, f"the request body is {int(declared)} bytes; at most {self.max_bytes}")
            return await response(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge
            return message

        return await self.app(scope, limited, send)


def _result_out(result: WordResult) -> dict:
    return {"word": result.word, "note": result.note,
            "pronunciations": [{"phones": p.phones, "prob": p.prob, "source": p.source}
                               for p in result.pronunciations]}


class CachedDecode:
    """``g2p.predict`` behind a least-recently-used cache of results by (word, nbest, stress).

    A server sees the same unknown words again and again (names, new words); each is decoded once.
    Runs on the batcher's one decoding thread only, so it needs no lock.
    """

    def __init__(self, g2p: G2P, *, size: int) -> None:
        self.g2p, self.size = g2p, size
        self._cache: OrderedDict[tuple[str, int, bool], WordResult] = OrderedDict()

    def __call__(self, words: list[str], nbest: int, stress: bool) -> list[WordResult]:
        found = {w: self._cache.get((w, nbest, stress)) for w in words}
        missing = [w for w, r in found.items() if r is None]
        if missing:
            for word, result in zip(missing, self.g2p.predict(missing, nbest=nbest, stress=stress), strict=True):
                found[word] = result
                if self.size:
                    self._cache[(word, nbest, stress)] = result
        for word in words:
            if (word, nbest, stress) in self._cache:
                self._cache.move_to_end((word, nbest, stress))
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return [found[w] for w in words]


def create_app(g2p: G2P, *, settings: ServeConfig | None = None, warm_up: bool = True,
               load_before_serving: bool = False) -> FastAPI:
    """The application serving ``g2p``.

    Args:
        g2p: the loaded system (``biseq.load(path)``).
        settings: limits and batching (default :class:`ServeConfig`).
        warm_up: decode a first word and load the compiled network (``/v1/model``, ``/v1/attention``,
            batches over ``g2p.numpy_words`` unknown words) before ``/health`` answers 200.
        load_before_serving: finish loading before the server accepts connections (one of several
            worker processes on a shared port: the others answer meanwhile) instead of answering 503
            while loading.
    """
    settings = settings or ServeConfig()
    batcher = MicroBatcher(CachedDecode(g2p, size=settings.cache_words),
                           max_batch_words=settings.max_batch_words, max_wait_ms=settings.max_wait_ms,
                           max_queue_words=settings.max_queue_words, batching=settings.batching)
    state = {"ready": False, "failed": ""}

    def load() -> None:
        g2p.dictionary  # noqa: B018 - read it now, not on the first request
        if warm_up:
            g2p.predict(["biseq"], model_only=True)  # small calls: the NumPy path
            g2p.decoder  # noqa: B018 - the compiled one: routing, attention maps, large batches

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()

        async def warm() -> None:
            try:
                await batcher.run_blocking(load)
                state["ready"] = True
                log.info("biseq serve: %s ready", g2p.name)
            except Exception as error:  # noqa: BLE001 - reported by /health, the server stays up
                state["failed"] = f"{type(error).__name__}: {error}"
                log.exception("biseq serve: loading %s failed", g2p.name)

        warming = None
        if load_before_serving:
            await warm()
        else:
            warming = asyncio.create_task(warm())
        try:
            yield
        finally:
            await batcher.stop()  # requests already queued are answered first
            if warming is not None:
                warming.cancel()

    app = FastAPI(title="biseq", summary="Grapheme-to-phoneme conversion over HTTP, micro-batched.",
                  version="1", lifespan=lifespan)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        problems = error.errors()
        first = problems[0] if problems else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        message = f"{where}: {first.get('msg', 'invalid')}"
        if first.get("type") == "json_invalid":
            message = f"the body is not valid JSON ({first.get('ctx', {}).get('error', 'parse error')})"
        return _error(422, message, detail=[{"loc": list(p.get("loc", ())), "msg": p.get("msg", "")}
                                            for p in problems])

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException):
        if error.status_code == 400:  # FastAPI's answer to a body it cannot even decode (not UTF-8)
            return _error(422, f"the body is not valid JSON ({error.detail})")
        return _error(error.status_code, str(error.detail))

    @app.exception_handler(_BodyTooLarge)
    async def too_large(request: Request, error: _BodyTooLarge):
        return _error(413, f"the request body is over {settings.max_body_bytes} bytes")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception):
        log.exception("biseq serve: %s %s failed", request.method, request.url.path)
        return _error(500, f"internal error ({type(error).__name__}); the server keeps running")

    def ready_or_503() -> JSONResponse | None:
        if state["failed"]:
            return _error(503, f"the model could not be loaded: {state['failed']}")
        if not state["ready"]:
            return _error(503, "the model is loading; try again in a few seconds")
        return None

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse((importlib.resources.files("biseq.server") / "page.html").read_text(encoding="utf-8"))

    @app.get("/health")
    async def health():
        """200 with the model's name once it can serve (503 while loading), and the batching counters."""
        return ready_or_503() or {"status": "ok", "model": g2p.name, "waiting_words": batcher.waiting_words,
                                  "batching": batcher.stats.to_dict()}

    @app.get("/v1/model")
    async def model():
        """The system's card, settings and the network's state routing."""
        if (refusal := ready_or_503()) is not None:
            return refusal
        config = g2p.system.config
        decoder = g2p.decoder
        first = getattr(decoder, "members", [decoder])[0]
        return {"name": g2p.name, "card": config.card, "models": len(g2p.system.model_paths),
                "joint_sequence": {"weight": config.joint_weight, "nbest": config.joint_nbest,
                                   "skip_above": config.skip_joint_above}
                if g2p.system.joint_path is not None else None,
                "beam": config.beam, "dictionary_words": len(g2p.dictionary),
                "routing": first.model.routing(), "limits": settings.to_dict()}

    @app.post("/v1/predict", response_model=PredictResponse)
    async def predict(request: PredictRequest):
        """Pronunciations, best first; ``prob`` is normalised over the candidates returned for the word."""
        if request.nbest > settings.max_nbest:
            return _error(422, f"nbest: at most {settings.max_nbest}, got {request.nbest}")
        if request.text is not None:
            words = text_module.words(request.text, expand_numbers=g2p.system.config.expand_numbers)
        else:
            words = request.words or []
        if len(words) > settings.max_request_words:
            return _error(413, f"{len(words)} words in one request; at most {settings.max_request_words}")
        for i, word in enumerate(words):
            _, problem = text_module.check_word(word, max_length=64)
            if problem:
                return _error(422, f"words[{i}] ({word!r}) {problem}: give single words, or 'text'")
        if (refusal := ready_or_503()) is not None:
            return refusal
        if not words:
            return {"results": []}
        # dictionary words are answered here, on the event loop; only the others wait for the decoding thread
        results = g2p.lookup(words, nbest=request.nbest, stress=request.stress)
        missing = [w for w, r in zip(words, results, strict=True) if r is None]
        try:
            if missing:
                decoded = iter(await batcher.submit(missing, nbest=request.nbest, stress=request.stress))
                results = [r if r is not None else next(decoded) for r in results]
        except QueueFullError as error:
            return _error(503, str(error))
        except G2PError as error:
            return _error(422, str(error))
        except Exception as error:  # noqa: BLE001 - answered and logged; the server keeps serving
            log.exception("biseq serve: decoding %d words failed", len(words))
            return _error(500, f"internal error while decoding ({type(error).__name__}: {error}); "
                               "the server keeps running")
        # built here rather than validated again against PredictResponse: the response model documents it
        return JSONResponse({"results": [_result_out(r) for r in results]})

    @app.post("/v1/attention")
    async def attention(request: AttentionRequest):
        """The attention of the network while it reads ``phones`` for ``word`` (for the page's heatmap)."""
        if (refusal := ready_or_503()) is not None:
            return refusal
        from biseq.attention_map import NoAttentionError, attention_weights

        def compute():
            decoder = g2p.decoder
            source = decoder.tokenize_source(text_module.fold(request.word).strip())
            return source, attention_weights(decoder, source, request.phones.split())

        try:
            source, weights = await batcher.run_blocking(compute)
        except NoAttentionError as error:
            return _error(409, str(error))
        return {"word": request.word, "source": list(source), "target": [*request.phones.split(), "</s>"],
                "weights": [[round(float(x), 4) for x in row] for row in weights]}

    app.state.batcher = batcher
    return app
