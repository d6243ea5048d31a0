"""JSON and TOML nested thousands of levels deep make Python's parsers recurse past the stack
(RecursionError). Every file we read that a user, a download or another program wrote says so
in one line (or is skipped, where it is only a cache): config.toml (tests/test_config_write.py),
a GPT-2 folder's config.json, a GAN checkpoint's header, a history row's stats."""

from __future__ import annotations

import json
import sqlite3
import struct
from pathlib import Path

import pytest

from aigc_chat.errors import AigcError
from aigc_chat.history_store import HistoryStore

DEEP = "[" * 100_000 + "]" * 100_000


def test_a_history_row_with_deep_json_reads_as_empty() -> None:
    with HistoryStore() as store:
        cid = store.create_conversation("t")
        mid = store.add_message(cid, "assistant", "hi", stats={"ok": 1})
        path = store.path
    conn = sqlite3.connect(path)  # another program wrote the row
    conn.execute("UPDATE messages SET stats = ?, meta = ? WHERE id = ?", (DEEP, DEEP, mid))
    conn.commit()
    conn.close()
    with HistoryStore() as store:
        msg = store.get_conversation(cid).messages[0]
        assert (msg.content, msg.stats, msg.meta) == ("hi", {}, {})


def test_a_gan_checkpoint_with_a_deep_header_is_not_a_checkpoint(tmp_path: Path) -> None:
    from aigc_chat.gan.safetensors_io import read_safetensors

    header = ("[" * 5000 + "]" * 5000).encode()
    path = tmp_path / "deep.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(AigcError, match="not a safetensors checkpoint"):
        read_safetensors(path)


def test_a_gpt2_folder_with_a_deep_config_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from aigc_chat.backends.torch_gpt.hf_gpt2_loader import load_hf_gpt2

    (tmp_path / "config.json").write_text(DEEP)
    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "tokenizer.json").write_text(json.dumps({}))
    with pytest.raises(AigcError, match="nested too deeply"):
        load_hf_gpt2(tmp_path)
