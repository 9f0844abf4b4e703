"""``biseq serve``: the micro-batcher, the HTTP contract and its errors, SIGTERM, the page in Chromium."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

import biseq  # noqa: E402
from biseq.g2p import Pronunciation, WordResult  # noqa: E402
from biseq.server.app import create_app  # noqa: E402
from biseq.server.batcher import MicroBatcher, QueueFullError, truncated  # noqa: E402
from biseq.server.settings import ServeConfig  # noqa: E402

BISEQ = str(Path(sys.executable).with_name("biseq"))


def fake_decode(calls):
    """A decoder that records its calls and gives every word nbest candidates scored 3:2:1..."""
    def decode(words, nbest, stress):
        calls.append((list(words), nbest))
        out = []
        for w in words:
            weights = [float(nbest - k) for k in range(nbest)]
            total = sum(weights)
            out.append(WordResult(w, tuple(Pronunciation(f"{w.upper()} {k}", x / total, "model")
                                           for k, x in enumerate(weights))))
        return out
    return decode


def test_concurrent_requests_are_decoded_together_each_with_its_own_nbest():
    calls: list = []

    async def scenario():
        batcher = MicroBatcher(fake_decode(calls), max_batch_words=100, max_wait_ms=50, max_queue_words=100)
        await batcher.start()
        results = await asyncio.gather(*(batcher.submit([f"w{i}", "same"], nbest=1 + i % 3) for i in range(8)))
        await batcher.stop()
        return results, batcher.stats

    results, stats = asyncio.run(scenario())
    assert len(calls) == 1 and stats.batches == 1 and stats.requests == 8  # one decoding call for all 8
    words, nbest = calls[0]
    assert nbest == 3 and words.count("same") == 1 and len(words) == 9  # shared words decoded once
    for i, result in enumerate(results):
        assert [r.word for r in result] == [f"w{i}", "same"]
        assert all(len(r.pronunciations) == 1 + i % 3 for r in result)
        assert sum(p.prob for p in result[0].pronunciations) == pytest.approx(1.0)


def test_batches_stop_at_the_word_limit_and_without_batching_each_request_is_alone():
    calls: list = []

    async def scenario(**kwargs):
        batcher = MicroBatcher(fake_decode(calls), max_wait_ms=50, max_queue_words=100, **kwargs)
        await batcher.start()
        await asyncio.gather(*(batcher.submit([f"a{i}", f"b{i}", f"c{i}"], nbest=1) for i in range(6)))
        await batcher.stop()

    asyncio.run(scenario(max_batch_words=6))
    assert [len(w) for w, _ in calls] == [6, 6, 6]
    calls.clear()
    asyncio.run(scenario(max_batch_words=100, batching=False))
    assert [len(w) for w, _ in calls] == [3] * 6


def test_a_full_queue_refuses_and_stop_answers_what_was_queued():
    release = threading.Event()
    calls: list = []
    decode = fake_decode(calls)

    def slow(words, nbest, stress):
        release.wait(5)
        return decode(words, nbest, stress)

    async def scenario():
        batcher = MicroBatcher(slow, max_batch_words=2, max_wait_ms=0, max_queue_words=4)
        await batcher.start()
        first = asyncio.create_task(batcher.submit(["a", "b"], nbest=1))  # taken by the worker, decoding
        await asyncio.sleep(0.05)
        queued = [asyncio.create_task(batcher.submit([c, c + c], nbest=1)) for c in "xy"]  # fills the queue
        await asyncio.sleep(0.05)
        with pytest.raises(QueueFullError, match="4 words are waiting"):
            await batcher.submit(["z"], nbest=1)
        stopping = asyncio.create_task(batcher.stop())
        release.set()
        await stopping
        return await first, [await q for q in queued]

    first, queued = asyncio.run(scenario())
    assert [r.word for r in first] == ["a", "b"] and [r.word for r in queued[1]] == ["y", "yy"]


def test_truncation_renormalises():
    result = WordResult("w", (Pronunciation("A", 0.5, "model"), Pronunciation("B", 0.3, "model"),
                              Pronunciation("C", 0.2, "model")))
    cut = truncated(result, 2)
    assert [p.phones for p in cut.pronunciations] == ["A", "B"]
    assert [p.prob for p in cut.pronunciations] == pytest.approx([0.625, 0.375])


def test_settings_reject_unknown_keys_and_bad_values():
    from biseq.config import ConfigError

    with pytest.raises(ConfigError, match="Unknown key"):
        ServeConfig.from_dict({"max_batch": 3})
    with pytest.raises(ConfigError, match="max_nbest must be at least 1"):
        ServeConfig(max_nbest=0)


@pytest.fixture(scope="module")
def client():
    settings = ServeConfig(max_request_words=20, max_body_bytes=2000, max_nbest=5)
    with TestClient(create_app(biseq.load(), settings=settings)) as c:
        for _ in range(600):  # the network loads and compiles in the background
            if c.get("/health").status_code == 200:
                break
            time.sleep(0.1)
        yield c


def test_predict_contract_words_and_text(client):
    response = client.post("/v1/predict", json={"words": ["hello", "Quizzaciously"], "nbest": 2})
    assert response.status_code == 200
    hello, odd = response.json()["results"]
    assert hello["word"] == "hello" and hello["pronunciations"][0] == {
        "phones": "HH AH0 L OW1", "prob": 0.5, "source": "dictionary"}
    assert odd["word"] == "quizzaciously" and len(odd["pronunciations"]) == 2
    assert {p["source"] for p in odd["pronunciations"]} == {"model"}
    assert sum(p["prob"] for p in odd["pronunciations"]) == pytest.approx(1.0, abs=1e-5)
    assert odd["pronunciations"][0]["prob"] >= odd["pronunciations"][1]["prob"]
    text = client.post("/v1/predict", json={"text": "The 3 foxes!", "stress": False}).json()["results"]
    assert [(r["word"], r["pronunciations"][0]["phones"]) for r in text] == [
        ("the", "DH AH"), ("three", "TH R IY"), ("foxes", "F AA K S AH Z")]


def test_dictionary_words_skip_the_batcher_and_keep_their_places(client):
    """Words the dictionary answers are answered on the event loop; only the others are queued for decoding
    (the batcher's counters move by those alone), and the answer keeps the request's order."""
    before = client.get("/health").json()["batching"]["words"]
    response = client.post("/v1/predict", json={"words": ["hello", "zqxubs", "world", "zqxubs", "the"]})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [(r["word"], r["pronunciations"][0]["source"]) for r in results] == [
        ("hello", "dictionary"), ("zqxubs", "model"), ("world", "dictionary"), ("zqxubs", "model"),
        ("the", "dictionary")]
    assert results[1] == results[3]
    assert client.get("/health").json()["batching"]["words"] - before == 2
    only_known = client.post("/v1/predict", json={"words": ["hello", "world"]})
    assert only_known.status_code == 200 and client.get("/health").json()["batching"]["words"] - before == 2


def test_health_model_page_and_docs(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model"] == "biseq English G2P (CMUdict)"
    assert health["batching"]["batches"] >= 1
    model = client.get("/v1/model").json()
    assert any("<-" in line for line in model["routing"]) and model["joint_sequence"]["weight"] == 0.4
    assert model["joint_sequence"]["skip_above"] == 0.9
    assert "task" in model["card"] and model["dictionary_words"] > 100_000
    page = client.get("/")
    assert page.status_code == 200 and 'id="heatmap"' in page.text
    assert "/v1/predict" in client.get("/openapi.json").json()["paths"]


def test_attention_rows_are_distributions(client):
    found = client.post("/v1/attention", json={"word": "hello", "phones": "HH AH0 L OW1"}).json()
    assert found["source"] == list("hello") and found["target"] == ["HH", "AH0", "L", "OW1", "</s>"]
    assert len(found["weights"]) == 5 and all(len(row) == 5 for row in found["weights"])
    assert all(sum(row) == pytest.approx(1.0, abs=1e-3) for row in found["weights"])
    assert found["weights"][0].index(max(found["weights"][0])) == 0  # HH is read from the h


@pytest.mark.parametrize(("body", "status", "message"), [
    (b'{"words": ["hello"', 422, "not valid JSON"),
    (b'\x80', 422, "not valid JSON"),
    (b'{"words": "hello"}', 422, "words: Input should be a valid list"),
    (b'{"words": ["a"], "colour": 1}', 422, "colour: Extra inputs are not permitted"),
    (b'{"words": ["a"], "text": "a"}', 422, "exactly one of"),
    (b'{"words": ["a"], "nbest": 9}', 422, "nbest: at most 5"),
    (b'{"words": [""]}', 422, "words[0] ('') is empty"),
    (b'{"words": ["two words"]}', 422, "has spaces inside"),
    (json.dumps({"words": ["a"] * 21}).encode(), 413, "21 words in one request; at most 20"),
    (json.dumps({"text": "a " * 1500}).encode(), 413, "at most 2000"),
])
def test_errors_are_json_with_a_message(client, body, status, message):
    response = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert message in response.json()["message"]


def test_a_failing_decode_is_a_500_and_the_server_keeps_serving(client, monkeypatch):
    batcher = client.app.state.batcher

    def broken(words, nbest, stress):
        raise RuntimeError("boom")

    monkeypatch.setattr(batcher, "_decode", broken)
    response = client.post("/v1/predict", json={"words": ["zzyzx"]})
    assert response.status_code == 500 and "RuntimeError" in response.json()["message"]
    monkeypatch.undo()
    assert client.post("/v1/predict", json={"words": ["zzyzx"]}).status_code == 200


def test_a_full_queue_is_a_503(client, monkeypatch):
    async def full(words, **kwargs):
        raise QueueFullError("the server is busy")

    monkeypatch.setattr(client.app.state.batcher, "submit", full)
    response = client.post("/v1/predict", json={"words": ["hello", "zqxubz"]})  # one word for the model
    assert response.status_code == 503 and response.json()["message"] == "the server is busy"
    assert client.post("/v1/predict", json={"words": ["hello"]}).status_code == 200  # the dictionary's still answer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, log: Path, seconds: float = 180) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        assert process.poll() is None, log.read_text(encoding="utf-8")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} never became healthy")


def post(url: str, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@contextlib.contextmanager
def running_server(log: Path, *args: str):
    """``biseq serve ARGS`` on a free port, logging to ``log``, healthy: ``(url, process)``; killed at the end."""
    port = free_port()
    with open(log, "w", encoding="utf-8") as out:
        process = subprocess.Popen([BISEQ, "serve", "--port", str(port), *args],
                                   stdout=out, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, log)
        yield url, process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with running_server(log, "--max-wait-ms", "300") as (url, process):
        yield url, process, log


def test_page_in_headless_chromium_shows_phonemes_and_the_heatmap(live_server, tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.skip("Debian's chromium and chromium-driver are not installed "
                    "(apt-get install chromium chromium-driver)")
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, _, _ = live_server
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1400"):
        options.add_argument(flag)
    from selenium.webdriver.chrome.service import Service

    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get(url + "/")
        box = driver.find_element(By.ID, "text")
        box.clear()
        box.send_keys("Hello quizzaciously")
        driver.find_element(By.ID, "go").click()
        wait = WebDriverWait(driver, 120)
        wait.until(lambda d: "quizzaciously" in d.find_element(By.ID, "heatmap-caption").text
                   and "letters read" in d.find_element(By.ID, "heatmap-caption").text)
        rows = driver.find_elements(By.CSS_SELECTOR, "#results tbody tr")
        assert [r.find_elements(By.TAG_NAME, "td")[0].text for r in rows] == ["hello", "quizzaciously"]
        assert rows[0].find_elements(By.TAG_NAME, "td")[1].text == "HH AH0 L OW1"
        assert "model" in rows[1].text and "(0." in rows[1].text  # n-best with probabilities
        cells = driver.find_elements(By.CSS_SELECTOR, "#heatmap td.weight")
        phones = len(rows[1].find_elements(By.TAG_NAME, "td")[1].text.split())
        assert len(cells) == (phones + 1) * len("quizzaciously")
        assert "<-" in driver.find_element(By.ID, "routing").text
        rect = driver.find_element(By.ID, "heatmap").rect
        shot = tmp_path / "page.png"
        driver.save_screenshot(str(shot))
        scale = driver.execute_script("return window.devicePixelRatio") or 1
    finally:
        driver.quit()
    image = Image.open(shot).convert("RGB")
    x, y, w, h = (rect[k] * scale for k in ("x", "y", "width", "height"))
    region = image.crop((int(x), int(y), int(x + w), int(y + h)))
    pixels = list(region.getdata())
    strong = sum(1 for r, g, b in pixels if b > 200 and r < 80)  # the heatmap's saturated (high-weight) cells
    pale = sum(1 for r, g, b in pixels if r > 230 and g > 230 and b > 230)
    assert strong > 0.02 * len(pixels) and pale > 0.2 * len(pixels), (strong, pale, len(pixels))


def test_sigterm_finishes_the_request_in_flight_and_exits_0(live_server):
    url, process, log = live_server
    answer: dict = {}
    words = [f"zq{'x' * (i % 5)}ub{i}" for i in range(30)]  # words the dictionary does not have
    def send() -> None:
        answer["status"], answer["body"] = post(url + "/v1/predict", {"words": words})

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(0.1)  # the request is in the batcher's 300 ms window (or decoding) now
    process.send_signal(signal.SIGTERM)
    sender.join(120)
    assert answer.get("status") == 200 and len(answer["body"]["results"]) == 30
    assert process.wait(60) == 0
    assert "Finished server process" in log.read_text(encoding="utf-8")


def test_the_cache_decodes_a_word_once_and_forgets_the_least_recently_used():
    from biseq.server.app import CachedDecode

    calls: list = []
    decode = fake_decode(calls)

    class Fake:
        def predict(self, words, *, nbest, stress):
            return decode(words, nbest, stress)

    cached = CachedDecode(Fake(), size=2)
    first = cached(["a", "b"], 2, True)
    again = cached(["b", "a"], 2, True)
    assert calls == [(["a", "b"], 2)] and again == first[::-1]
    cached(["a"], 3, True)  # another nbest is another entry: decoded, and "b" (least recent) dropped
    cached(["b", "a"], 2, True)
    assert calls[1:] == [(["a"], 3), (["b"], 2)]


def test_workers_share_the_port_answer_alike_and_stop_on_sigterm(tmp_path):
    """``--workers 2``: two processes, each on its own SO_REUSEPORT socket, serve the same contract and share
    new connections; SIGTERM to the parent stops both and exits 0."""
    log = tmp_path / "serve.log"
    with running_server(log, "--workers", "2") as (url, process):
        text = log.read_text(encoding="utf-8")
        while text.count(" ready") < 2 and process.poll() is None:  # the second worker may still be loading
            time.sleep(0.5)
            text = log.read_text(encoding="utf-8")
        answers = [post(url + "/v1/predict", {"words": ["hello", "zqxub"], "nbest": 2}) for _ in range(24)]
        assert {status for status, _ in answers} == {200}
        assert all(body == answers[0][1] for _, body in answers)  # whichever process answered
        assert answers[0][1]["results"][0]["pronunciations"][0]["phones"] == "HH AH0 L OW1"
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    text = log.read_text(encoding="utf-8")
    assert text.count("biseq serve: biseq English G2P (CMUdict) ready") == 2  # each worker logs as one server does
    assert text.count("Finished server process") == 2
    assert len(set(re.findall(r"Started server process \[(\d+)\]", text))) == 2


def test_workers_must_be_positive():
    result = subprocess.run([BISEQ, "serve", "--workers", "0"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--workers must be at least 1, got 0" in result.stderr


def test_workers_stop_when_their_parent_is_killed(tmp_path):
    """SIGKILL leaves the parent no chance to stop its workers: they notice and stop, freeing the port."""
    log = tmp_path / "serve.log"
    with running_server(log, "--workers", "2") as (url, process):
        port = int(url.rsplit(":", 1)[1])
        process.kill()
        process.wait()
        deadline = time.time() + 60
        while log.read_text(encoding="utf-8").count("Finished server process") < 2 and time.time() < deadline:
            time.sleep(0.5)
        assert log.read_text(encoding="utf-8").count("Finished server process") == 2
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # connections in TIME_WAIT do not count
            s.bind(("127.0.0.1", port))  # nobody listens there any more
