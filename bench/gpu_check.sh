#!/usr/bin/env bash
# Prove the GPU path on a real GPU, in one run of at most 10 minutes (issue 15).
#
#   bench/gpu_check.sh OUTDIR                 on the GPU machine, from the repo root, after
#                                             bench/gpu_prepare.sh was run here and .gpu/ carried
#   bench/gpu_check.sh --self-check [OUTDIR]  here, no GPU: static checks of the script and of
#                                             the prepared folder, then every step's CPU path
#   bench/gpu_check.sh --print-cmake-args     the CUDA build flags
#
# The device tool call (docs/torch.md, "GPU check"):
#   run(command="bash bench/gpu_check.sh $OUT", carry=[".gpu"], timeout_s=600)
#
# Steps (each with a time limit; a failed step is reported and the run goes on; a step whose
# input failed is skipped and says why):
#   env             GPU, driver, torch, nvcc, cmake, ninja, CPU; the CUDA toolkit probe
#   install         our package (wheel built from this tree, else the prepared one) and the
#                   carried wheels into a --target folder; every requirement checked
#   build           (in the background, at lower CPU priority) llama-cpp-python from the
#                   trimmed sdist with CUDA for compute capability 9.0 only, ninja, all cores
#   bandwidth       device-to-device copy GB/s (CUDA events): the ceiling for every share
#   pytest-cuda     tests/test_torch_cuda.py (CUDA graphs = eager; the backend reports graphs)
#   model-f16       random-weight models at the exact shapes of Gemma 3 270M (the parity
#                   model) and of the default chat model (bench/gpu_tools.py)
#   decode          bench/bench_torch_decode.py --device cuda: eager and CUDA graphs at the
#                   shapes of Gemma 3 270M, Llama 3.2 1B and Llama 3.1 8B
#   decode-compile  the same with torch.compile + CUDA graphs
#   model           llama.cpp quantises them like the real files (Q4_K_M; the default's
#                   own type): the real files' per-tensor type mix, checked
#   doctor          aigc-chat doctor: "llama.cpp GPU offload yes"
#   oneshot         one-shot --json --verbose on the default model: llama backend
#                   (n_gpu_layers auto) and torch on cuda
#   parity          bench/gpu_parity.py on each model: torch vs llama.cpp CUDA, llama.cpp CPU
#                   vs CUDA, CUDA graphs vs eager
#   speed           bench/bench_torch.py --device cuda on each model: decode tok/s, shares
# OUTDIR gets summary.txt (the table), steps.log (every step's log), build.log (the CUDA
# build's full output) and figures.json (the figures and the issue's targets).
#
# Environment: PYTHON (python3), GPU_CHECK_BUDGET (seconds for the run, 560),
# GPU_CHECK_STEPS (a comma list: run only these), GPU_CHECK_MODEL (a GGUF to use instead of
# the generated one, e.g. the real default model if it was brought some other way),
# GPU_CHECK_PREPARED (the prepared folder, .gpu).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
# shellcheck source=bench/gpu_steps.sh
source "$HERE/gpu_steps.sh"

# CUDA for compute capability 9.0 (H100/H200) only; no multimodal library (the chat client
# does not use it; it is CPU code that would only lengthen the build); one GPU, no NCCL.
LLAMA_CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAVA_BUILD=OFF -DGGML_CUDA_NCCL=OFF"

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }

python_sites() {  # one per line
  "$PY" -c 'import site, sys; print("\n".join(site.getsitepackages() + [site.getusersitepackages()] + sys.path[1:]))' 2>/dev/null
}

probe_here() {  # cuda_probe with this interpreter's package folders
  local sites=()
  mapfile -t sites < <(python_sites)
  cuda_probe "" "${sites[@]}"
}

# ---------------------------------------------------------------------------------- steps
step_env() {
  echo "date: $(date -u +%FT%TZ); host: $(uname -srm); cores: $(nproc)"
  grep -m1 'model name' /proc/cpuinfo || true
  grep -q -m1 'amx' /proc/cpuinfo && echo "CPU AMX: yes" || echo "CPU AMX: no"
  free -g | head -2 || true
  if [ "$PROFILE" = gpu ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv || return 1
  fi
  "$PY" --version
  "$PY" -m pip --version
  for t in nvcc cmake ninja gcc; do echo "$t: $(command -v "$t" || echo missing) $("$t" --version 2>/dev/null | grep -m1 -iE 'release|version|^[0-9]')"; done
  echo "CUDA toolkit probe:"
  probe_here || echo "(the build would fail at CMake's CUDA toolkit search)"
  echo "LLAMA_CMAKE_ARGS=$LLAMA_CMAKE_ARGS"
  "$PY" - <<'EOF'
import torch
print("torch", torch.__version__, "CUDA", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"device 0: {p.name}, {p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs, capability {p.major}.{p.minor}")
EOF
  if [ "$PROFILE" = gpu ]; then
    "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'
  fi
}

step_install() {
  set -e
  rm -rf "$SITE" "$W/dist" "$W/pkg"
  mkdir -p "$SITE" "$W/dist" "$W/pkg"
  local whl=() ours=""
  # Our wheel from this very tree, so the installed package is the code the tests run;
  # the prepared wheel if that build fails (setuptools missing, say).
  cp -r "$REPO/pyproject.toml" "$REPO/README.md" "$REPO/src" "$REPO/backends" "$REPO/tui" "$REPO/gan" "$W/pkg/"
  find "$W/pkg" -name __pycache__ -prune -exec rm -rf {} +
  if "$PY" -m pip wheel -q --no-deps --no-build-isolation --no-index -w "$W/dist" "$W/pkg" >"$W/pkg.log" 2>&1; then
    ours=$(ls "$W"/dist/aigc_chat-*.whl)
    echo "our wheel: built from this tree: $(basename "$ours")"
  else
    ours=$(ls "$PREP"/wheels/aigc_chat-*.whl)
    tail -5 "$W/pkg.log"
    echo "our wheel: could not be built here; the prepared one: $(basename "$ours")"
  fi
  for f in "$PREP"/wheels/*.whl; do
    case $(basename "$f") in aigc_chat-*) ;; *) whl+=("$f") ;; esac
  done
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "${whl[@]}" "$ours"
  "$PY" "$HERE/gpu_tools.py" env-check "$PREP/wheels" --also aigc-chat
}

step_build() {
  set -e
  rm -rf "$W/src" "$W/lcp-dist" "$SITE_LLAMA"
  mkdir -p "$W/src" "$W/lcp-dist"
  tar xzf "$(ls "$PREP"/llama_cpp_python-*-trimmed.tar.gz)" -C "$W/src"
  local src jobs
  src=$(ls -d "$W"/src/llama_cpp_python-*)
  jobs=$(($(nproc) > 2 ? $(nproc) - 1 : 1))
  probe_here || true
  export CMAKE_ARGS="$LLAMA_CMAKE_ARGS $GC_CUDA_EXTRA" CMAKE_BUILD_PARALLEL_LEVEL=$jobs CMAKE_GENERATOR=Ninja
  [ -n "$GC_CUDACXX" ] && export CUDACXX=$GC_CUDACXX
  [ -n "$GC_CPATH" ] && export CPATH=$GC_CPATH${CPATH:+:$CPATH}
  echo "CMAKE_ARGS=$CMAKE_ARGS"
  echo "CMAKE_BUILD_PARALLEL_LEVEL=$jobs; nice 10; full output in build.log"
  local t=$SECONDS
  if ! nice -n 10 "$PY" -m pip wheel -v --no-build-isolation --no-deps --no-index -w "$W/lcp-dist" "$src" >"$OUT/build.log" 2>&1; then
    echo "BUILD FAILED after $((SECONDS - t))s; the end of build.log:"
    grep -E -m 20 'error|Error|CMake Error' "$OUT/build.log" || true
    tail -40 "$OUT/build.log"
    return 1
  fi
  echo "built in $((SECONDS - t))s: $(ls "$W"/lcp-dist)"
  grep -E 'CMAKE_CUDA_ARCHITECTURES|CUDA Toolkit found|Including CUDA backend' "$OUT/build.log" | head -5 || true
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE_LLAMA" "$W"/lcp-dist/*.whl
  "$PY" -c 'import llama_cpp, sys; ok = llama_cpp.llama_supports_gpu_offload(); print("llama_cpp", llama_cpp.__version__, "from", llama_cpp.__file__, "GPU offload", ok); sys.exit(0 if ok else 1)'
}

step_llama_here() {  # the CPU rehearsal: the llama-cpp-python this interpreter already has
  "$PY" -c 'import llama_cpp; print("llama_cpp", llama_cpp.__version__, "from", llama_cpp.__file__, "GPU offload", llama_cpp.llama_supports_gpu_offload())'
}

step_bandwidth() {
  "$PY" "$HERE/gpu_tools.py" bandwidth $BW_ARGS --json "$W/bandwidth.json"
}

step_pytest_cuda() {
  local rc=0
  "$PY" -m pytest -p no:cacheprovider -rs -q "$REPO/tests/test_torch_cuda.py" || rc=$?
  if [ "$rc" -eq 0 ] && [ "$PROFILE" = gpu ] && grep -q 'skipped' "$GC_WORK/logs/pytest-cuda.log"; then
    echo "tests were skipped on the GPU machine: CUDA not seen"
    return 3
  fi
  return "$rc"
}

bandwidth_gbs() {
  "$PY" -c 'import json, sys; print(round(json.load(open(sys.argv[1]))["median_gbs"], 1))' "$W/bandwidth.json"
}

roles() {  # the models prepared: parity (Gemma 3 270M), and default when it is another file
  local r
  for r in parity default; do [ -s "$PREP/spec-$r.gguf" ] && echo "$r"; done
}

step_model_f16() {
  if [ -n "${GPU_CHECK_MODEL:-}" ]; then
    echo "GPU_CHECK_MODEL=$GPU_CHECK_MODEL: no model generated"
    return 0
  fi
  set -e
  local r
  for r in $(roles); do
    "$PY" "$HERE/gpu_tools.py" make-model "$PREP/spec-$r.gguf" "$W/$r-f16.gguf" $MAKE_ARGS
  done
}

step_decode() {  # MODES
  "$PY" "$HERE/bench_torch_decode.py" $DECODE_ARGS --modes "$1" --bandwidth-gbs "$(bandwidth_gbs)"
}

step_model() {
  set -e
  local r info=()
  if [ -n "${GPU_CHECK_MODEL:-}" ]; then
    ln -sf "$(readlink -f "$GPU_CHECK_MODEL")" "$MODEL_PARITY"
    info=("parity=$MODEL_PARITY")
  else
    for r in $(roles); do
      echo "--- $r model, like $("$PY" "$HERE/gpu_tools.py" spec-source "$PREP/spec-$r.gguf")"
      "$PY" "$HERE/gpu_tools.py" quantize "$W/$r-f16.gguf" "$W/$r.gguf" --like "$PREP/spec-$r.gguf" 2>&1 | tail -3
      "$PY" "$HERE/gpu_tools.py" check-mix "$W/$r.gguf" "$PREP/spec-$r.gguf" $MIX_ARGS
      info+=("$r=$W/$r.gguf=$("$PY" "$HERE/gpu_tools.py" spec-source "$PREP/spec-$r.gguf")")
    done
  fi
  if [ ! -e "$MODEL_DEFAULT" ]; then  # one bundled model only: it is the default too
    ln -sf "$MODEL_PARITY" "$MODEL_DEFAULT"
    info+=("default=$MODEL_DEFAULT=${info[0]##*=}")
  fi
  "$PY" "$HERE/gpu_tools.py" model-info "${info[@]}" --out "$W/models.json"
  printf 'backend = "llama"\nmodel = "%s"\n' "$MODEL_DEFAULT" >"$AIGC_CHAT_CONFIG"
  echo "config $AIGC_CHAT_CONFIG:"
  cat "$AIGC_CHAT_CONFIG"
}

step_doctor() {
  local rc=0 m
  if [ ! -e "$AIGC_CHAT_CONFIG" ]; then  # the model step did not pass: any model there is
    for m in "$MODEL_DEFAULT" "$W/default-f16.gguf" "$W/parity-f16.gguf"; do
      [ -e "$m" ] && printf 'backend = "llama"\nmodel = "%s"\n' "$m" >"$AIGC_CHAT_CONFIG" && break
    done
  fi
  "$PY" -m aigc_chat doctor || rc=$?
  if [ "$PROFILE" = gpu ] && ! grep -qE '^llama\.cpp GPU offload +yes' "$GC_WORK/logs/doctor.log"; then
    echo "doctor does not say 'llama.cpp GPU offload yes'"
    [ "$rc" -eq 0 ] && rc=3
  fi
  return "$rc"
}

step_oneshot() {  # the torch half runs on the F16 model when llama.cpp (and so Q4) is missing
  local rc=0 prompt="Write a long story about a lighthouse keeper and the sea." m=$MODEL_DEFAULT
  if [ -e "$MODEL_DEFAULT" ]; then
    echo "--- llama backend, n_gpu_layers auto, the default model"
    "$PY" -m aigc_chat -b llama -m "$MODEL_DEFAULT" -p "$prompt" -n "$ONESHOT_N" -t 0 --json --verbose --no-history || rc=$?
  else
    echo "--- llama backend: no quantised model (the model step did not pass)"
    rc=1
    m=$W/default-f16.gguf
    [ -e "$m" ] || m=$W/parity-f16.gguf
  fi
  echo "--- torch backend on $DEV, $(basename "$m")"
  "$PY" -m aigc_chat -b torch --device "$DEV" -m "$m" -p "$prompt" -n "$ONESHOT_N" -t 0 --json --verbose --no-history || rc=$?
  return "$rc"
}

model_roles() {  # parity, then default when it is another model
  echo parity
  [ "$(readlink -f "$MODEL_DEFAULT")" != "$(readlink -f "$MODEL_PARITY")" ] && echo default
  return 0
}

step_parity() {
  local r rc=0
  for r in $(model_roles); do
    echo "--- $r model"
    "$PY" "$HERE/gpu_parity.py" --model "$W/$r.gguf" $PARITY_ARGS --json "$W/agree-$r.json" || rc=$?
  done
  return "$rc"
}

step_speed() {
  local r rc=0
  for r in $(model_roles); do
    echo "--- $r model"
    "$PY" "$HERE/bench_torch.py" --model "$W/$r.gguf" $SPEED_ARGS || rc=$?
  done
  return "$rc"
}

step_figures() {
  "$PY" "$HERE/gpu_tools.py" figures "$W" "$OUT/figures.json" $FIG_ARGS
}

# static checks of the self-check
step_syntax() {
  local f rc=0
  for f in "$HERE/gpu_check.sh" "$HERE/gpu_steps.sh" "$HERE/gpu_prepare.sh"; do
    bash -n "$f" && echo "bash -n $(basename "$f"): ok" || rc=1
  done
  if command -v shellcheck >/dev/null; then
    shellcheck -x -S warning "$HERE/gpu_check.sh" "$HERE/gpu_steps.sh" "$HERE/gpu_prepare.sh" && echo "shellcheck: clean" || rc=1
  else
    echo "shellcheck: not installed here, not run"
  fi
  return "$rc"
}

step_flags() {
  echo "LLAMA_CMAKE_ARGS=$LLAMA_CMAKE_ARGS"
  local want
  for want in -DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90; do
    case " $LLAMA_CMAKE_ARGS " in *" $want "*) echo "has $want" ;; *) echo "MISSING $want"; return 1 ;; esac
  done
  if [ "$(grep -o 'CMAKE_CUDA_ARCHITECTURES=[^ ]*' <<<"$LLAMA_CMAKE_ARGS")" != CMAKE_CUDA_ARCHITECTURES=90 ]; then
    echo "more than compute capability 9.0 asked for"
    return 1
  fi
  echo "CUDA toolkit probe on this machine (informational; the build runs there):"
  probe_here || true
}

step_prepared() {
  local rc=0 f sdist
  for f in "$PREP/MANIFEST.txt" "$PREP/spec-parity.gguf"; do
    [ -s "$f" ] && echo "present: ${f#"$REPO"/}" || { echo "MISSING: $f (run bench/gpu_prepare.sh)"; rc=1; }
  done
  sdist=$(ls "$PREP"/llama_cpp_python-*-trimmed.tar.gz 2>/dev/null | head -1)
  [ -n "$sdist" ] && echo "present: ${sdist#"$REPO"/}" || { echo "MISSING: the trimmed sdist"; return 1; }
  [ -n "$(ls "$PREP"/wheels/aigc_chat-*.whl 2>/dev/null)" ] || { echo "MISSING: our wheel"; rc=1; }
  grep -q '^verify-build: ok' "$PREP/MANIFEST.txt" && grep '^verify-build' "$PREP/MANIFEST.txt" ||
    { echo "the trimmed sdist has no recorded CPU build (bench/gpu_prepare.sh --verify-build)"; rc=1; }
  local reqs
  mapfile -t reqs < <(tar xzf "$sdist" -O --wildcards '*/PKG-INFO' | sed -n 's/^Requires-Dist: //p' | grep -v 'extra ==')
  echo "llama-cpp-python requires: ${reqs[*]}"
  "$PY" "$HERE/gpu_tools.py" closure "$PREP/wheels" --extras torch --requires "${reqs[@]}" || rc=1
  "$PY" "$HERE/gpu_tools.py" travel-size "$REPO" --carry "${PREP#"$REPO"/}" || rc=1
  return "$rc"
}

export -f step_env step_install step_build step_llama_here step_bandwidth step_pytest_cuda bandwidth_gbs \
  roles model_roles step_model_f16 step_decode step_model step_doctor step_oneshot step_parity step_speed step_figures \
  step_syntax step_flags step_prepared cuda_probe python_sites probe_here

want() { [ -z "${GPU_CHECK_STEPS:-}" ] || [[ ",$GPU_CHECK_STEPS," == *",$1,"* ]]; }

run_plan() {
  want env && gc_step env 30 -- step_env
  want install && gc_step install 90 -- step_install
  if [ "$PROFILE" = gpu ]; then
    want build && gc_step_bg build 420 --needs install -- step_build
  else
    want build && gc_step build 30 --needs install -- step_llama_here
  fi
  want bandwidth && gc_step bandwidth 40 -- step_bandwidth
  want pytest-cuda && gc_step pytest-cuda 150 --needs install -- step_pytest_cuda
  want model-f16 && gc_step model-f16 60 --needs install -- step_model_f16
  want decode && gc_step decode 120 --needs install,bandwidth -- step_decode eager,graphs
  # compile + graphs while the build still runs; once it is done, after the llama.cpp steps
  local compiled=0
  if want decode-compile && [ -n "${GC_BG[build]:-}" ] && kill -0 "${GC_BG[build]}" 2>/dev/null; then
    gc_step decode-compile 150 --needs install,bandwidth -- step_decode compile+graphs
    compiled=1
  fi
  want model && gc_step model 60 --needs build,model-f16 -- step_model
  want doctor && gc_step doctor 30 --needs install -- step_doctor
  want oneshot && gc_step oneshot 60 --needs model-f16 -- step_oneshot
  want parity && gc_step parity 150 --needs model -- step_parity
  want speed && gc_step speed 150 --needs model -- step_speed
  if [ "$compiled" = 0 ] && want decode-compile; then
    gc_step decode-compile 150 --needs install,bandwidth -- step_decode compile+graphs
  fi
  GC_RESERVE=0 gc_step figures 15 -- step_figures
}

setup() {  # PROFILE OUT
  PROFILE=$1 OUT=$(mkdir -p "$2" && cd "$2" && pwd)
  PY=${PYTHON:-python3}
  [ "$PROFILE" = cpu ] && [ -z "${PYTHON:-}" ] && [ -x "$REPO/.venv/bin/python" ] && PY=$REPO/.venv/bin/python
  PREP=$(cd "${GPU_CHECK_PREPARED:-$REPO/.gpu}" 2>/dev/null && pwd || echo "$REPO/.gpu")
  W=${GPU_CHECK_WORK:-$(mktemp -d /tmp/gpu-check.XXXXXX)}
  SITE=$W/site SITE_LLAMA=$W/site-llama MODEL_PARITY=$W/parity.gguf MODEL_DEFAULT=$W/default.gguf
  export PROFILE OUT PY PREP W SITE SITE_LLAMA MODEL_PARITY MODEL_DEFAULT HERE REPO LLAMA_CMAKE_ARGS
  export PYTHONPATH=$SITE_LLAMA:$SITE${PYTHONPATH:+:$PYTHONPATH}
  export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
  export AIGC_CHAT_CONFIG=$W/config.toml AIGC_CHAT_DATA_DIR=$W/data AIGC_CHAT_CACHE_DIR=$W/cache
  if [ "$PROFILE" = gpu ]; then
    BW_ARGS="--device cuda --mib 2048 --reps 20" DEV=cuda MAKE_ARGS="" MIX_ARGS=""
    DECODE_ARGS="--device cuda --tokens 128 --context 64 --rounds 3"
    PARITY_ARGS="--device cuda" SPEED_ARGS="--device cuda --rounds 3 --tokens 128" ONESHOT_N=64 FIG_ARGS=""
    # llama.cpp's CUDA library finds cuBLAS where the probe found it
    probe_here >/dev/null || true
    [ -n "$GC_LDPATH" ] && export LD_LIBRARY_PATH=$GC_LDPATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  else
    BW_ARGS="--device cpu --mib 256 --reps 5" DEV=cpu MAKE_ARGS="--layers 2 --vocab 8192" MIX_ARGS="--partial"
    DECODE_ARGS="--device cpu --shapes gemma3-270m --tokens 16 --context 8 --rounds 1"
    PARITY_ARGS="--device cpu --gpu-layers 0 --prompts 2 --tokens 8 --dtypes float32"
    SPEED_ARGS="--device cpu --rounds 1 --tokens 8" ONESHOT_N=8 FIG_ARGS="--cpu"
  fi
  export BW_ARGS DEV MAKE_ARGS MIX_ARGS DECODE_ARGS PARITY_ARGS SPEED_ARGS ONESHOT_N FIG_ARGS
  cd "$REPO" || exit 2
}

finish() {
  echo
  echo "== figures and targets"
  cat "$GC_WORK/logs/figures.log" 2>/dev/null | sed -n '3,200p' | grep -v '^(exit'
  echo
  echo "== steps ($PROFILE)"
  gc_summary
  local rc=$?
  echo "logs: $OUT (summary.txt, steps.log, figures.json${1:+, build.log}); work: $W"
  return "$rc"
}

case "${1:-}" in
  --print-cmake-args)
    echo "$LLAMA_CMAKE_ARGS"
    ;;
  --self-check)
    setup cpu "${2:-$(mktemp -d /tmp/gpu-self-check.XXXXXX)}"
    gc_init "$W" "$OUT" "${GPU_CHECK_BUDGET:-900}"
    echo "self-check: python $PY, prepared folder $PREP, logs $OUT"
    want syntax && gc_step syntax 60 -- step_syntax
    want flags && gc_step flags 20 -- step_flags
    want prepared && gc_step prepared 60 -- step_prepared
    run_plan
    finish
    ;;
  -h | --help | "")
    usage
    [ -n "${1:-}" ]
    ;;
  -*)
    echo "unknown option $1" >&2
    usage >&2
    exit 2
    ;;
  *)
    setup gpu "$1"
    gc_init "$W" "$OUT" "${GPU_CHECK_BUDGET:-560}"
    echo "GPU check: python $PY, prepared folder $PREP, logs $OUT, budget ${GPU_CHECK_BUDGET:-560}s"
    run_plan
    finish build
    ;;
esac
