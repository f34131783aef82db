"""How a batch runs: the GIL is released, Ctrl-C aborts cleanly, threads, the progress bar,
and every request ends exactly once without leaking KV blocks."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import inferd
from inferd import SamplingParams


def test_gil_is_released_while_the_engine_runs(llm):
    ticks = []
    done = threading.Event()
    window = {}

    def work():
        window["start"] = time.monotonic()
        # Long enough that a held GIL would show as one long gap (about 1 s on 2 cores).
        llm.generate(["Tell me about the moon."] * 4, SamplingParams(temperature=0, max_tokens=384, ignore_eos=True),
                     use_tqdm=False)
        window["end"] = time.monotonic()
        done.set()

    t = threading.Thread(target=work)
    t.start()
    while not done.is_set():
        ticks.append(time.monotonic())
        time.sleep(0.005)
    t.join()
    inside = [x for x in ticks if window["start"] < x < window["end"]]
    duration = window["end"] - window["start"]
    # Python kept running beside the engine: ticks all through the batch (at least 0.1 s of
    # them), not only at its ends; no gap near the batch's own length, however fast it ran.
    assert len(inside) >= 20, duration
    gaps = [b - a for a, b in zip([window["start"], *inside], [*inside, window["end"]])]
    assert max(gaps) < duration / 4, (max(gaps), duration)


def test_threads_share_one_llm(llm):
    prompts = {0: "The first planet is", 1: "Water boils at", 2: "The largest ocean is"}
    params = SamplingParams(temperature=0, max_tokens=16)
    solo = {i: llm.generate(p, params, use_tqdm=False)[0].outputs[0].token_ids for i, p in prompts.items()}
    results, errors = {}, []

    def run(i):
        try:
            results[i] = llm.generate([prompts[i]] * 3, params, use_tqdm=False)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, outs in results.items():
        assert [o.outputs[0].token_ids for o in outs] == [solo[i]] * 3
    assert llm._engine.stats()["has_unfinished"] is False


def test_no_request_or_block_is_left_behind(llm):
    llm.generate(["a b c d e f g h i j k l m n o p q r s t u v w x y z"] * 5,
                 SamplingParams(n=2, temperature=1.0, max_tokens=8, seed=1), use_tqdm=False)
    st = llm._engine.stats()
    assert st["has_unfinished"] is False and st["num_running"] == 0 and st["num_waiting"] == 0
    assert st["kv_usage"] == 0.0


def test_progress_bar(llm, capfd, monkeypatch):
    llm.generate(["One", "Two", "Three"], SamplingParams(temperature=0, max_tokens=4))
    err = capfd.readouterr().err
    assert "Processed prompts: 100%" in err and "3/3" in err
    assert "est. speed input:" in err and "toks/s, output:" in err
    llm.generate(["One"], SamplingParams(temperature=0, max_tokens=4), use_tqdm=False)
    assert "Processed prompts" not in capfd.readouterr().err
    # Without tqdm, a plain line in the same format.
    monkeypatch.setattr(inferd._progress, "_tqdm", None)
    llm.generate(["One", "Two"], SamplingParams(temperature=0, max_tokens=4))
    err = capfd.readouterr().err
    assert "Processed prompts: 100%| 2/2 [" in err and "est. speed input:" in err
    assert err.count("Processed prompts: 100%") == 1  # the final state once


CTRL_C_SCRIPT = """
import sys, time
from inferd import LLM, SamplingParams
llm = LLM(model={model!r}, kv_cache_memory="256MiB", max_model_len=2048)
prompts = ["Write a very long essay about the history of the world."] * 32
long_params = SamplingParams(temperature=0.8, max_tokens=1500, ignore_eos=True, seed=1)
print("generating", flush=True)
start = time.monotonic()
try:
    llm.generate(prompts, long_params)
    print("finished without interruption", flush=True)
except KeyboardInterrupt:
    print(f"interrupted {{time.monotonic():.3f}}", flush=True)
    st = llm._engine.stats()
    print(f"unfinished={{st['has_unfinished']}} kv_usage={{st['kv_usage']}}", flush=True)
    again = llm.generate("The capital of France is", SamplingParams(temperature=0, max_tokens=6), use_tqdm=False)
    print("after: " + again[0].outputs[0].text, flush=True)
    {tail}
"""


def _run_and_interrupt(model_path, tail):
    script = textwrap.dedent(CTRL_C_SCRIPT.format(model=model_path, tail=tail))
    # A shell without job control starts background commands with SIGINT ignored, and Python
    # keeps an ignored SIGINT ignored: give the child the default disposition a terminal's
    # foreground process has, so that it installs its KeyboardInterrupt handler.
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        line = p.stdout.readline()
        assert line.strip() == "generating", line + p.stderr.read()
        time.sleep(2.0)  # well inside the batch (32 x 1500 tokens take minutes here)
        sent = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    return p.returncode, line + out, err, sent


def test_ctrl_c_aborts_the_batch(model_path):
    rc, out, err, sent = _run_and_interrupt(model_path, "sys.exit(0)")
    assert rc == 0, out + err
    lines = out.splitlines()
    assert lines[1].startswith("interrupted "), out
    # KeyboardInterrupt came promptly (within one engine step of the signal).
    assert float(lines[1].split()[1]) - sent < 3.0
    # Every request ended (aborted), every KV block is free, and the LLM still works.
    assert lines[2] == "unfinished=False kv_usage=0.0"
    assert lines[3].startswith("after: ") and "Paris" in lines[3]
    assert "Processed prompts:" in err  # the bar was drawn and closed


def test_uncaught_ctrl_c_exits_like_python(model_path):
    # Re-raised, KeyboardInterrupt ends the process as Python does on Ctrl-C (killed by SIGINT).
    rc, out, err, _ = _run_and_interrupt(model_path, "raise")
    assert rc == -signal.SIGINT, out + err
    assert "KeyboardInterrupt" in err
    assert "Segmentation fault" not in err and "Fatal Python error" not in err
