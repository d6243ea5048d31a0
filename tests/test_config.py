"""Configuration: precedence, and one line naming the file and the key for bad values."""

import pytest

from aigc_chat.config import Config, load_config, save_config
from aigc_chat.errors import ConfigError
from aigc_chat.params import GenerationParams
from tests.conftest import run_cli


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_without_a_file(isolated_dirs):
    cfg = load_config()
    assert cfg.path == isolated_dirs["config"]
    assert cfg.backend == "llama" and cfg.model == ""
    assert cfg.generation == GenerationParams()


def test_file_then_env_then_flags(isolated_dirs, monkeypatch):
    write(isolated_dirs["config"], 'model = "/from/file.gguf"\n[generation]\ntemperature = 0.3\nstop = ["END"]\n')
    cfg = load_config()
    assert cfg.model == "/from/file.gguf" and cfg.generation.temperature == 0.3
    assert cfg.generation.stop == ("END",)
    monkeypatch.setenv("AIGC_CHAT_MODEL", "/from/env.gguf")
    cfg = load_config()
    assert cfg.model == "/from/env.gguf"
    cfg = cfg.with_overrides(model="/from/flag.gguf", temperature=0.9)
    assert cfg.model == "/from/flag.gguf" and cfg.generation.temperature == 0.9
    assert cfg.generation.stop == ("END",)  # untouched by the flags


def test_backend_section_validated_against_backend_options(isolated_dirs):
    write(isolated_dirs["config"], "[llama]\nn_ctx = 2048\nn_gpu_layers = 0\n")
    cfg = load_config()
    opts = cfg.backend_options("llama")
    assert opts["n_ctx"] == 2048 and opts["n_gpu_layers"] == 0
    assert opts["extra_buffers"] == "auto"  # default filled in


@pytest.mark.parametrize(
    "text,key,reason",
    [
        ("backend = [", "", "invalid TOML"),
        ('backend = "nosuch"', "backend", "unknown backend 'nosuch'"),
        ("[generation]\ntemperature = 5", "generation.temperature", "must be between 0.0 and 2.0"),
        ("[generation]\nwarmth = 1", "generation.warmth", "unknown key"),
        ("colour = 1", "colour", "unknown key"),
        ('[llama]\nn_gpu_layers = "many"', "llama.n_gpu_layers", "must be"),
        ("[llama]\nn_ctx = true", "llama.n_ctx", "expected int"),
        ("[tui]\nshow_history = 3", "tui.show_history", "expected bool"),
        ("[tui]\nstream_interval_ms = 5", "tui.stream_interval_ms", "must be between 10 and 2000, got 5"),
        ("[tui]\ncursor_blink = 1", "tui.cursor_blink", "expected bool"),
        ('[tui]\non_hangup = "wait"', "tui.on_hangup", "must be one of finish, stop, got 'wait'"),
        ("[tui]\nhangup_limit_s = 0", "tui.hangup_limit_s", "must be between 1 and 86400, got 0"),
        ("[tui]\ninline = 1", "tui.inline", "expected bool"),
    ],
)
def test_bad_config_names_file_and_key(isolated_dirs, text, key, reason):
    path = write(isolated_dirs["config"], text + "\n")
    with pytest.raises(ConfigError) as err:
        load_config()
    msg = str(err.value)
    assert msg.startswith(f"{path}: {key}" if key else f"{path}: ")
    assert reason in msg


def test_bad_config_from_the_cli_is_one_line_exit_2(isolated_dirs, cli):
    write(isolated_dirs["config"], "[generation]\ntemperature = 5\n")
    r = run_cli(cli, "--prompt", "hi")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert str(isolated_dirs["config"]) in r.stderr and "generation.temperature" in r.stderr


def test_bad_flag_value_is_exit_2(cli):
    r = run_cli(cli, "--prompt", "hi", "--temperature", "9")
    assert r.returncode == 2 and "--temperature" in r.stderr and "Traceback" not in r.stderr
    r = run_cli(cli, "--prompt", "hi", "--top-k", "many")
    assert r.returncode == 2 and r.stderr.count("\n") == 1


def test_config_path_and_show(isolated_dirs, cli):
    r = run_cli(cli, "config", "path")
    assert r.returncode == 0 and r.stdout.strip() == str(isolated_dirs["config"])
    write(isolated_dirs["config"], "[generation]\ntop_k = 7\n")
    r = run_cli(cli, "config", "show", "--backend", "llama")
    assert r.returncode == 0
    assert "top_k = 7" in r.stdout and 'backend = "llama"' in r.stdout


def test_save_config_round_trip(isolated_dirs):
    cfg = Config(path=isolated_dirs["config"], system_prompt="be brief",
                 generation=GenerationParams(temperature=0.1, stop=("x",), seed=4))
    save_config(cfg)
    again = load_config()
    assert again.system_prompt == "be brief" and again.generation == cfg.generation
