"""`/metrics` parsed by the official Prometheus client's OpenMetrics parser:
every metric hearth documents is present, and the request counters, the
latency histogram and the loaded-model gauge move with real requests."""

import time

import httpx
from prometheus_client.openmetrics.parser import text_string_to_metric_families


def _scrape(server):
    response = httpx.get(server.url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def _value(families, name, sample, **labels):
    for s in families[name].samples:
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return 0.0


def test_metrics_are_present_and_move(server, ollama_client, model):
    # Loaded, so that the per-model gauge has a series.
    ollama_client.generate(model=model, prompt="hi", options={"num_predict": 1})
    before = _scrape(server)
    for name in (
        "hearth_requests",
        "hearth_request_duration_seconds",
        "hearth_model_loaded",
        "hearth_model_load_seconds",
        "hearth_kv_cache_usage_ratio",
        "vllm:gpu_cache_usage_perc",
        "hearth_prefix_cache_hits",
        "hearth_prefix_cache_queries",
        "hearth_time_to_first_token_seconds",
        "hearth_inter_token_latency_seconds",
        "hearth_prompt_tokens",
        "hearth_generated_tokens",
        "hearth_queue_depth",
        "hearth_running_sequences",
        "vllm:num_requests_waiting",
        "vllm:num_requests_running",
        "process_resident_memory_bytes",
        "process_cpu_seconds",
        "process_open_fds",
        "process_start_time_seconds",
    ):
        assert name in before, name
    labels = {"api": "ollama", "endpoint": "/api/generate", "model": model, "code": "200"}
    count = _value(before, "hearth_requests", "hearth_requests_total", **labels)
    timed = _value(
        before, "hearth_request_duration_seconds", "hearth_request_duration_seconds_count",
        api="ollama", endpoint="/api/generate",
    )
    first = _value(before, "hearth_time_to_first_token_seconds", "hearth_time_to_first_token_seconds_count")
    gaps = _value(before, "hearth_inter_token_latency_seconds", "hearth_inter_token_latency_seconds_count")
    generated = _value(before, "hearth_generated_tokens", "hearth_generated_tokens_total", model=model)
    prompted = _value(before, "hearth_prompt_tokens", "hearth_prompt_tokens_total", model=model)
    made = 0
    for _ in range(3):
        r = ollama_client.generate(model=model, prompt="hi", options={"num_predict": 4})
        made += r.eval_count
    # A model that does not exist is counted under a bounded label.
    try:
        ollama_client.generate(model="no-such-model-xyz", prompt="hi")
    except Exception:
        pass
    after = _scrape(server)
    assert _value(after, "hearth_requests", "hearth_requests_total", **labels) == count + 3
    assert _value(
        after, "hearth_request_duration_seconds", "hearth_request_duration_seconds_count",
        api="ollama", endpoint="/api/generate",
    ) >= timed + 3
    assert _value(after, "hearth_requests", "hearth_requests_total", model="other", code="404") >= 1
    assert all(s.labels.get("model") != "no-such-model-xyz" for s in after["hearth_requests"].samples)
    assert _value(after, "hearth_model_loaded", "hearth_model_loaded", model=model) == 1
    assert _value(after, "hearth_model_load_seconds", "hearth_model_load_seconds", model=model) > 0
    # Tokens and their timing, from the answers' own counts.
    assert _value(after, "hearth_generated_tokens", "hearth_generated_tokens_total", model=model) == generated + made
    assert _value(after, "hearth_prompt_tokens", "hearth_prompt_tokens_total", model=model) > prompted
    assert _value(after, "hearth_time_to_first_token_seconds", "hearth_time_to_first_token_seconds_count") == first + 3
    assert _value(after, "hearth_inter_token_latency_seconds", "hearth_inter_token_latency_seconds_count") > gaps
    assert _value(after, "process_resident_memory_bytes", "process_resident_memory_bytes") > 0


def test_prefix_cache_and_kv_usage_move(server, ollama_client, model):
    before = _scrape(server)
    hits = _value(before, "hearth_prefix_cache_hits", "hearth_prefix_cache_hits_total", model=model)
    queries = _value(before, "hearth_prefix_cache_queries", "hearth_prefix_cache_queries_total", model=model)
    # The same long prompt twice: the second finds the first's blocks.
    shared = "the same words again " * 30
    for _ in range(2):
        ollama_client.generate(model=model, prompt=shared, raw=True, options={"num_predict": 1})
    after = _scrape(server)
    assert _value(after, "hearth_prefix_cache_hits", "hearth_prefix_cache_hits_total", model=model) >= hits + 32
    assert _value(after, "hearth_prefix_cache_queries", "hearth_prefix_cache_queries_total", model=model) > queries + 64
    usage = _value(after, "hearth_kv_cache_usage_ratio", "hearth_kv_cache_usage_ratio")
    assert 0 <= usage <= 1
    assert _value(after, "vllm:gpu_cache_usage_perc", "vllm:gpu_cache_usage_perc") == usage


def test_kv_usage_rises_during_a_stream_and_falls_after(server, ollama_client, model):
    def usage():
        return _value(_scrape(server), "hearth_kv_cache_usage_ratio", "hearth_kv_cache_usage_ratio")

    stream = iter(ollama_client.generate(
        model=model, prompt="count with me " * 10, raw=True, stream=True,
        options={"num_predict": 300, "ignore_eos": True, "temperature": 0},
    ))
    next(stream)  # the first piece: the sequence holds its prompt's blocks
    during = usage()
    pieces = 0
    for _ in stream:
        pieces += 1
        # A scrape that raced the step's publication reads again while the
        # stream still runs.
        if during == 0 and pieces % 10 == 0:
            during = usage()
    assert pieces > 0
    assert during > 0
    # Once the stream has ended, its blocks are back in the pool (cached
    # prefixes are not held by a sequence). The gauge follows within a step.
    deadline = time.monotonic() + 10
    while usage() > 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert usage() == 0
