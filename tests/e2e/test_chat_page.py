"""The chat page at GET / in a real browser: Debian's headless Chromium driven by Selenium
against a real `inferd serve`. Covers loading (CSP, same-origin only), streaming an answer
that matches the API byte for byte, stopping mid-stream (the server counts an abort), the
conversation surviving a reload, the markdown renderer's escaping, and the API key field.

Run: cd /work/main && INFERD_BUILD_DIR=build/dev python3 -m pytest tests/e2e/test_chat_page.py -x -q
A screenshot goes to $INFERD_ARTIFACT_DIR/chat-page.png (default build/test-artifacts/)."""

import json
import os
import pathlib
import re
import shutil
import urllib.request

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ROOT = pathlib.Path(__file__).resolve().parents[2]
MODEL = "smollm2"
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'")

try:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError as e:  # pragma: no cover - depends on the machine
    pytest.skip(f"selenium is not installed ({e}); pip install selenium to run the chat page tests",
                allow_module_level=True)

for _path, _what in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromedriver")):
    if not (os.path.exists(_path) or shutil.which(_what)):
        pytest.skip(f"{_what} not found at {_path} (apt-get install chromium chromium-driver)",
                    allow_module_level=True)

LONG = 120  # seconds: generous waits for a 2-core box


# ------------------------------------------------------------------------------ fixtures ----

@pytest.fixture(scope="module")
def page_server(inferd_bin, tmp_path_factory):
    from conftest import ServerProcess, _stop_and_check
    s = ServerProcess(inferd_bin, [], tmp_path_factory.mktemp("chat-page"))
    yield s
    _stop_and_check([s])


@pytest.fixture(scope="module")
def driver():
    opts = Options()
    opts.binary_location = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800",
                "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-default-apps",
                "--disable-extensions", "--metrics-recording-only", "--password-store=basic"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER if os.path.exists(CHROMEDRIVER) else shutil.which("chromedriver"))
    try:
        d = webdriver.Chrome(service=service, options=opts)
    except WebDriverException as e:
        pytest.fail(f"could not start headless chromium through chromedriver: {e}")
    # A 1280x800 viewport (the window size includes the browser's own frame).
    d.set_window_size(1280, 800)
    extra = d.execute_script("return window.outerHeight - window.innerHeight") or 0
    if extra > 0:
        d.set_window_size(1280, 800 + extra)
    d.set_script_timeout(60)
    yield d
    d.quit()


@pytest.fixture(scope="module")
def artifact_dir():
    d = pathlib.Path(os.environ.get("INFERD_ARTIFACT_DIR") or ROOT / "build" / "test-artifacts")
    d.mkdir(parents=True, exist_ok=True)
    return d


# ------------------------------------------------------------------------------- helpers ----

def role(driver, name):
    return driver.find_element(By.CSS_SELECTOR, f'[data-role="{name}"]')


def messages(driver):
    return driver.find_elements(By.CSS_SELECTOR, '[data-role="message"]')


def wait(driver, cond, what, timeout=LONG):
    return WebDriverWait(driver, timeout, poll_frequency=0.05, ignored_exceptions=(StaleElementReferenceException,)
                         ).until(lambda d: cond(d), message=what)


def status(driver):
    s = role(driver, "status")
    return s.get_attribute("data-state"), s.text


def open_page(driver, server, want_ready=True):
    driver.get(server.base_url + "/")
    wait(driver, lambda d: d.execute_script("return !!window.inferdChat"), "the page script did not run")
    if want_ready:
        wait(driver, lambda d: status(d)[0] == "ready", f"status never became ready: {status(driver)}")


def set_field(driver, name, value):
    """Types into a field like a user (input events fire); an empty value clears it."""
    el = role(driver, name)
    el.click()
    el.send_keys(Keys.CONTROL, "a")
    el.send_keys(Keys.DELETE)
    if value != "":
        el.send_keys(str(value))
    assert el.get_attribute("value") == str(value)


def new_chat(driver):
    role(driver, "new-chat").click()
    wait(driver, lambda d: not messages(d), "new chat did not clear the messages", timeout=10)


def send(driver, text, with_enter=False):
    box = role(driver, "input")
    box.click()
    box.send_keys(text)
    if with_enter:
        box.send_keys(Keys.ENTER)
    else:
        role(driver, "send").click()


def last_assistant(driver):
    found = driver.find_elements(By.CSS_SELECTOR, '[data-role="message"][data-author="assistant"]')
    return found[-1] if found else None


def wait_answer_done(driver, count, timeout=LONG):
    """Waits for `count` messages with the last one an assistant message that is no longer streaming."""
    def done(d):
        ms = messages(d)
        if len(ms) != count or ms[-1].get_attribute("data-author") != "assistant":
            return False
        return ms[-1] if ms[-1].get_attribute("data-state") != "streaming" else False
    return wait(driver, done, f"no finished answer ({count} messages expected)", timeout)


def content_text(msg):
    return msg.find_element(By.CSS_SELECTOR, '[data-role="content"]').text


def metric(server, name, **labels):
    with urllib.request.urlopen(server.base_url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', line[len(name):line.index("}") + 1]))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no series {name}{labels} in /metrics:\n" +
                         "\n".join(ln for ln in text.splitlines() if "finished_reason" in ln))


def abort_count(server):
    # The request counter is labelled by finished_reason; its prefix is inferd: (vllm: on some builds).
    for name in ("inferd:request_success_total", "vllm:request_success_total"):
        try:
            return metric(server, name, finished_reason="abort")
        except AssertionError:
            continue
    return metric(server, "inferd:request_success_total", finished_reason="abort")  # raises with the listing


def page_requests(driver):
    """URLs the page asked for since the last call (from Chrome's performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


# --------------------------------------------------------------------------------- tests ----

def fresh_chat(driver, server, system, max_tokens):
    """The page opened on an empty conversation, greedy, with this system prompt and max_tokens."""
    open_page(driver, server)
    new_chat(driver)
    set_field(driver, "system-prompt", system)
    set_field(driver, "temperature", "0")
    set_field(driver, "max_tokens", str(max_tokens))


def test_page_loads_same_origin_only_with_csp(page_server, driver):
    with urllib.request.urlopen(page_server.base_url + "/", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/html")
        assert r.headers["Content-Security-Policy"] == CSP
        body = r.read().decode()
    # One self-contained file: nothing to fetch from anywhere.
    assert not re.search(r"<script[^>]*\bsrc\s*=", body, re.I), "external script"
    assert not re.search(r"<link[^>]*\bhref\s*=\s*[\"']?(https?:)?//", body, re.I), "external stylesheet/font"
    assert not re.search(r"@import|url\(\s*[\"']?(https?:)?//", body, re.I), "CSS loads something remote"
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", body, re.I), "remote src/href"
    for hook in ("input", "send", "stop", "api-key", "model", "system-prompt", "temperature", "top_p",
                 "max_tokens", "new-chat", "status"):
        assert f'data-role="{hook}"' in body, hook

    driver.get("about:blank")
    page_requests(driver)  # drain
    driver.get_log("browser")
    open_page(driver, page_server)
    wait(driver, lambda d: MODEL in [o.get_attribute("value") for o in
                                     role(d, "model").find_elements(By.TAG_NAME, "option")],
         "the model picker does not list smollm2")
    assert role(driver, "model").get_attribute("value") == MODEL
    assert role(driver, "stop").get_attribute("disabled") is not None
    assert role(driver, "send").is_enabled()

    urls = page_requests(driver)
    base = page_server.base_url
    assert base + "/" in urls and base + "/v1/models" in urls and base + "/health" in urls, urls
    foreign = [u for u in urls if not (u == base or u.startswith(base + "/") or u.startswith("data:"))]
    assert not foreign, f"the page asked for something outside its origin: {foreign}"
    csp_errors = [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]
    assert not csp_errors, csp_errors
    # The DOM, after the script ran, still loads nothing from elsewhere.
    remote = driver.execute_script(
        "return Array.from(document.querySelectorAll('[src],[href]'))"
        ".map(e => e.getAttribute('src') || e.getAttribute('href'))"
        ".filter(u => /^(https?:)?\\/\\//i.test(u));")
    assert remote == [], remote


def test_streamed_answer_matches_the_api(page_server, driver, artifact_dir):
    import openai
    open_page(driver, page_server)
    new_chat(driver)
    system = "You are a concise assistant."
    prompt = "Write a Python function that adds two numbers, in a code block, then explain it briefly."
    set_field(driver, "system-prompt", system)
    set_field(driver, "temperature", "0")
    set_field(driver, "top_p", "1")
    set_field(driver, "max_tokens", "80")
    set_field(driver, "seed", "")
    send(driver, prompt)

    def user_shown(d):
        ms = messages(d)
        return len(ms) >= 1 and ms[0].get_attribute("data-author") == "user" and content_text(ms[0]) == prompt
    wait(driver, user_shown, "the user message did not appear", timeout=10)
    wait(driver, lambda d: len(messages(d)) == 2 and messages(d)[1].get_attribute("data-author") == "assistant",
         "no assistant message appeared", timeout=10)
    # While it streams, Send is disabled and Stop enabled (unless it already finished).
    answer = wait_answer_done(driver, 2)
    assert answer.get_attribute("data-state") == "done", answer.get_attribute("outerHTML")[:2000]
    assert role(driver, "send").is_enabled()
    assert not role(driver, "stop").is_enabled()
    assert content_text(answer).strip(), "empty answer"

    client = openai.OpenAI(base_url=page_server.base_url + "/v1", api_key="x", max_retries=0)
    ref = client.chat.completions.create(
        model=MODEL, messages=[{"role": "system", "content": system}, {"role": "user", "content": prompt}],
        temperature=0, top_p=1, max_tokens=80)
    expected = ref.choices[0].message.content
    assert expected

    conv = driver.execute_script("return window.inferdChat.getConversation()")
    assert [m["role"] for m in conv] == ["user", "assistant"]
    assert conv[0]["content"] == prompt
    assert conv[1]["content"] == expected, "the page lost or duplicated streamed text"
    # What is shown is exactly the rendering of that text.
    same = driver.execute_script(
        "const c = arguments[0].querySelector('[data-role=\"content\"]');"
        "return c.innerHTML === window.inferdChat.renderMarkdown(arguments[1]);", answer, expected)
    assert same, "the displayed answer differs from the rendered API answer"

    stats_el = answer.find_element(By.CSS_SELECTOR, '[data-role="stats"]')
    stats = stats_el.text
    m_ttft = re.search(r"TTFT (\d+) ms", stats)
    m_tps = re.search(r"(\d+(?:\.\d+)?) tok/s", stats)
    assert m_ttft and m_tps, stats
    assert 0 < int(m_ttft.group(1)) < 60000 and float(m_tps.group(1)) > 0, stats
    assert f"{ref.usage.completion_tokens} tokens" in stats, stats
    assert f"finish: {ref.choices[0].finish_reason}" in stats, stats
    assert stats_el.get_attribute("data-finish-reason") == ref.choices[0].finish_reason

    shot = artifact_dir / "chat-page.png"
    if shot.exists():
        shot.unlink()
    assert driver.save_screenshot(str(shot))
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stop_keeps_the_partial_answer_and_aborts_on_the_server(page_server, driver):
    fresh_chat(driver, page_server, system="", max_tokens=1500)
    before = abort_count(page_server)
    send(driver, "Write a very long story about a dragon who learns to cook. Make it at least 2000 words, "
                 "with many chapters.", with_enter=True)  # Enter sends

    def streaming_text(d):
        a = last_assistant(d)
        return a is not None and a.get_attribute("data-state") == "streaming" and len(content_text(a)) > 20
    wait(driver, streaming_text, "no streamed text appeared")
    assert not role(driver, "send").is_enabled(), "send must be disabled while streaming"
    assert role(driver, "stop").is_enabled(), "stop must be enabled while streaming"
    role(driver, "stop").click()

    answer = wait(driver, lambda d: last_assistant(d) if last_assistant(d).get_attribute("data-state") == "stopped"
                  else False, "the answer was not marked stopped", timeout=20)
    wait(driver, lambda d: role(d, "send").is_enabled() and not role(d, "stop").is_enabled(),
         "send/stop buttons did not switch back", timeout=10)
    partial = content_text(answer)
    assert partial.strip()
    # The server saw the client go away and counted an aborted request.
    wait(driver, lambda d: abort_count(page_server) > before, "/metrics shows no aborted request", timeout=60)
    # By now the answer would have grown had the stream continued (the server aborts promptly).
    assert content_text(last_assistant(driver)) == partial, "the answer kept growing after stop"
    assert "stopped" in answer.find_element(By.CSS_SELECTOR, '[data-role="stats"]').text
    conv = driver.execute_script("return window.inferdChat.getConversation()")
    assert conv[-1]["state"] == "stopped" and conv[-1]["content"].strip()
    assert len(conv[-1]["content"]) < 2000, "far more text than was shown when stopping"
    assert not driver.execute_script("return window.inferdChat.isStreaming()")


def test_conversation_survives_reload_and_new_chat_clears_it(page_server, driver):
    fresh_chat(driver, page_server, system="Answer in one sentence.", max_tokens=24)
    send(driver, "Say hello to the reader.")
    answer = wait_answer_done(driver, 2)
    before = [(m.get_attribute("data-author"), content_text(m)) for m in messages(driver)]
    assert before[0] == ("user", "Say hello to the reader.") and before[1][1].strip()
    stats_before = answer.find_element(By.CSS_SELECTOR, '[data-role="stats"]').text

    driver.refresh()
    wait(driver, lambda d: status(d)[0] == "ready", "not ready after reload")
    after = [(m.get_attribute("data-author"), content_text(m)) for m in messages(driver)]
    assert after == before
    assert last_assistant(driver).find_element(By.CSS_SELECTOR, '[data-role="stats"]').text == stats_before
    # Settings came back too.
    assert role(driver, "max_tokens").get_attribute("value") == "24"
    assert role(driver, "temperature").get_attribute("value") == "0"
    assert role(driver, "system-prompt").get_attribute("value") == "Answer in one sentence."

    new_chat(driver)
    assert driver.execute_script("return window.inferdChat.getConversation().length") == 0
    driver.refresh()
    wait(driver, lambda d: status(d)[0] == "ready", "not ready after reload")
    assert messages(driver) == []


MARKDOWN = """# Title <i>x</i>

Some `inline <b>` code, **bold** and *italic* text.

```python
print('<hi>' & "x")
```

<script>alert(1)</script>

[bad](javascript:alert(1)) [also bad](data:text/html,hi) [good](https://example.com/a?b=1&c=2)

- one
- two **2**

3. three
4. four
"""


def test_markdown_renderer_is_safe(page_server, driver):
    open_page(driver, page_server, want_ready=False)
    html = driver.execute_script("return window.inferdChat.renderMarkdown(arguments[0])", MARKDOWN)
    assert "<h1>Title &lt;i&gt;x&lt;/i&gt;</h1>" in html, html
    assert "<code>inline &lt;b&gt;</code>" in html, html
    assert "<strong>bold</strong>" in html and "<em>italic</em>" in html, html
    assert ('<pre><code class="language-python">print(&#39;&lt;hi&gt;&#39; &amp; &quot;x&quot;)</code></pre>'
            in html), html
    assert "<script" not in html.lower() and "&lt;script&gt;alert(1)&lt;/script&gt;" in html, html
    assert "javascript:" not in html and "data:text" not in html, html
    assert "<p>bad also bad <a href=" in html, html  # a dropped link keeps its text
    assert ('<a href="https://example.com/a?b=1&amp;c=2" target="_blank" rel="noopener noreferrer">good</a>'
            in html), html
    assert "<ul><li>one</li><li>two <strong>2</strong></li></ul>" in html, html
    assert '<ol start="3"><li>three</li><li>four</li></ol>' in html, html
    # Parsed by the browser: no script elements, no event handlers, only http(s) links.
    parsed = driver.execute_script("""
        const doc = new DOMParser().parseFromString('<div>' + arguments[0] + '</div>', 'text/html');
        const all = Array.from(doc.body.querySelectorAll('*'));
        return {scripts: doc.querySelectorAll('script').length,
                handlers: all.filter(e => Array.from(e.attributes).some(a => /^on/i.test(a.name))).length,
                hrefs: Array.from(doc.querySelectorAll('a')).map(a => a.getAttribute('href')),
                rels: Array.from(doc.querySelectorAll('a')).map(a => a.getAttribute('rel'))};
    """, html)
    assert parsed["scripts"] == 0 and parsed["handlers"] == 0
    assert parsed["hrefs"] == ["https://example.com/a?b=1&c=2"]
    assert all("noopener" in r for r in parsed["rels"])
    # A fence still open (mid-stream) is already a code block.
    partial = driver.execute_script("return window.inferdChat.renderMarkdown(arguments[0])",
                                    "Here:\n```js\nlet a = '<x>';")
    assert '<pre><code class="language-js">let a = &#39;&lt;x&gt;&#39;;</code></pre>' in partial, partial
    evil = driver.execute_script("return window.inferdChat.renderMarkdown(arguments[0])",
                                 '<img src=x onerror=alert(1)> [x](https://a.b/"onmouseover="alert(1))')
    assert "<img" not in evil and 'href="https://a.b/&quot;onmouseover=&quot;alert(1)"' in evil, evil


def test_api_key_field(start_server, driver):
    s = start_server("--api-key", "sekret")
    open_page(driver, s, want_ready=False)
    # Without a key, listing models fails: the status says so clearly.
    wait(driver, lambda d: status(d)[0] == "error" and "401" in status(d)[1],
         f"no 401 message in the status: {status(driver)}", timeout=60)
    assert "API key" in status(driver)[1]
    assert role(driver, "api-key").get_attribute("type") == "password"
    new_chat(driver)
    set_field(driver, "max_tokens", "16")
    send(driver, "Hi!")
    answer = wait_answer_done(driver, 2, timeout=60)
    assert answer.get_attribute("data-state") == "error"
    err = answer.find_element(By.CSS_SELECTOR, '[data-role="error"]').text
    assert "401" in err and "API key" in err, err

    set_field(driver, "api-key", "sekret")
    wait(driver, lambda d: status(d)[0] == "ready", f"not ready after entering the key: {status(driver)}")
    assert role(driver, "model").get_attribute("value") == MODEL
    assert driver.execute_script("return localStorage.getItem('inferd.chat.apiKey')") == "sekret"
    send(driver, "Say hello.")
    answer = wait_answer_done(driver, 4)
    assert answer.get_attribute("data-state") == "done", answer.get_attribute("outerHTML")[:2000]
    assert content_text(answer).strip()
    # The key is kept: after a reload the page is ready without typing it again.
    driver.refresh()
    wait(driver, lambda d: status(d)[0] == "ready", f"not ready after reload: {status(driver)}")
    assert role(driver, "api-key").get_attribute("value") == "sekret"
