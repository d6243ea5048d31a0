"""Run llama-cpp-python's OpenAI-compatible server for the openai backend's tests.

Why not `python -m llama_cpp.server`: on CPUs with AMX, llama.cpp crashes on quantised
models unless its extra buffer types are off, and that server's CLI cannot say so. This
launcher loads the model under the same workaround as our llama backend, then serves it.

    python tests/openai_llama_server.py --model M.gguf --port P [--alias NAME]
"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--alias", default="gemma-3-270m")
    p.add_argument("--n_ctx", type=int, default=2048)
    p.add_argument("--n_threads", type=int, default=1)  # 2-core CI shares its cores
    p.add_argument("--chat_format", default="gemma")
    args = p.parse_args(argv)

    import llama_cpp
    import uvicorn
    from llama_cpp.server.app import create_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    from aigc_chat.backends.llama_cpp_backend import _model_param_override, extra_buffers_enabled

    server = ServerSettings(host="127.0.0.1", port=args.port)
    model = ModelSettings(
        model=args.model,
        model_alias=args.alias,
        n_ctx=args.n_ctx,
        n_threads=args.n_threads,
        n_threads_batch=args.n_threads,
        chat_format=args.chat_format,
        verbose=False,
    )
    # create_app loads the default model right away, so the override covers the load.
    with _model_param_override(llama_cpp, extra_buffers_enabled("auto")):
        app = create_app(server_settings=server, model_settings=[model])
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
