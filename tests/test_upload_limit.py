"""Gradio refuses uploads above the reader's max_file_mb (COD_MAX_FILE_MB) before they reach the data tab."""

from __future__ import annotations

import gradio as gr
import httpx

from app import launch_options
from tests.e2e.app_server import free_port


def test_uploads_above_the_limit_are_refused_by_the_server(monkeypatch):
    monkeypatch.setenv("COD_MAX_FILE_MB", "0.01")  # 10 KB
    options = launch_options()
    assert options["max_file_size"] == 10_485
    with gr.Blocks() as blocks:
        gr.File()
    port = free_port()
    blocks.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **options)
    try:
        url = f"http://127.0.0.1:{port}/gradio_api/upload"
        small = httpx.post(url, files={"files": ("a.csv", b"text,label\ngood,1\n" * 100)}, timeout=30)
        big = httpx.post(url, files={"files": ("b.csv", b"text,label\ngood,1\n" * 1000)}, timeout=30)
    finally:
        blocks.close()
    assert small.status_code == 200
    assert big.status_code == 413, big.text
    assert "File size exceeded maximum allowed size of 10485 bytes" in big.text
