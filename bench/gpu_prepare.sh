#!/usr/bin/env bash
# Prepare, here, what bench/gpu_check.sh needs on the GPU machine (no network there), in
# .gpu/ (ignored through .git/info/exclude; never committed):
#
#   .gpu/llama_cpp_python-VERSION-trimmed.tar.gz  the sdist of the llama-cpp-python installed
#                             here, less what its build never reads: the vendored vocabulary
#                             GGUFs, docs, the git pack, tests, examples, tools other than
#                             mtmd, and the ggml backends other than CPU, CUDA, BLAS and RPC
#   .gpu/wheels/*.whl         our wheel and every pure-Python wheel we need that the GPU
#                             machine's image lacks (or may hold too old), for CPython 3.12
#   .gpu/spec-parity.gguf     Gemma 3 270M (the torch parity model) less its matrices:
#                             metadata, tokenizer, norms, each matrix's shape, type and scale
#   .gpu/spec-default.gguf    the same for the default chat model, when that is another file
#   .gpu/MANIFEST.txt         what is there, sizes, checksums, checks
#
#   bench/gpu_prepare.sh [--verify-build] [--force]
#     --verify-build  also build the trimmed sdist here on the CPU in a temporary venv (the
#                     proof that trimming kept everything the build reads; minutes)
#     --force         download and rebuild everything
#
# Needs the project's .venv (PYTHON overrides) and the package registry. Ends with the size
# of what one device call would carry against its 64 MiB limit.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
PY=${PYTHON:-$REPO/.venv/bin/python}
PREP=$REPO/.gpu
VERIFY=0 FORCE=0
for a in "$@"; do
  case $a in
    --verify-build) VERIFY=1 ;;
    --force) FORCE=1 ;;
    *) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
cd "$REPO"

# Wheels carried, pinned to the versions tested here (what .venv has); names the .venv
# lacks are pinned below. llama-cpp-python is built there; torch, numpy, tokenizers,
# safetensors, jinja2, pyyaml, requests, tqdm, typing-extensions, pytest come from its image.
CARRY=(textual rich markdown-it-py mdurl mdit-py-plugins linkify-it-py uc-micro-py pygments
  platformdirs tomlkit gguf diskcache scikit-build-core packaging)
declare -A PINS=([uc-micro-py]=1.0.3 [scikit-build-core]=1.1.2)
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)

log() { echo "== $*"; }

exclude() {
  local ex
  ex=$(git rev-parse --git-path info/exclude)
  mkdir -p "$(dirname "$ex")"
  grep -qxF '/.gpu/' "$ex" 2>/dev/null || echo '/.gpu/' >>"$ex"
  git check-ignore -q .gpu/x || { echo ".gpu/ is not ignored"; exit 1; }
}

version_of() {
  "$PY" -c 'import sys; from importlib.metadata import version; print(version(sys.argv[1]))' "$1" 2>/dev/null
}

# what the build of llama-cpp-python never reads (its CMake adds vendor/llama.cpp with
# LLAMA_STANDALONE off: no tests, tools, examples; tools/mtmd only through LLAVA_BUILD)
trim_tree() {  # DIR
  local d=${1:?} v=${1:?}/vendor/llama.cpp x
  rm -rf "$d"/.git "$d"/.github "$d"/docs "$d"/docker "$d"/examples "$d"/tests
  rm -rf "${v:?}"/.git "$v"/.github "$v"/.devops "$v"/.gemini "$v"/.pi "$v"/skills "$v"/docs "${v:?}"/media \
    "$v"/tests "$v"/benches "$v"/examples "$v"/pocs "$v"/app "$v"/gguf-py "$v"/conversion \
    "$v"/grammars "$v"/requirements "$v"/ci "$v"/scripts "$v"/models/ggml-vocab-* "$v"/convert_*.py
  for x in "$v"/tools/*; do
    [ "$(basename "$x")" = mtmd ] || rm -rf "$x"
  done
  for x in cann et hexagon hip metal musa opencl openvino sycl virtgpu vulkan webgpu zdnn zendnn; do
    rm -rf "$v/ggml/src/ggml-$x"
  done
}

# every directory the kept CMake files add outside any if() (the others are behind options
# that are off in this build: tests, tools, examples), and the directories the build needs
check_tree() {  # DIR
  local v=$1/vendor/llama.cpp missing=0 f sub
  for f in "$1/CMakeLists.txt" "$v/CMakeLists.txt" "$v/ggml/CMakeLists.txt" "$v/ggml/src/CMakeLists.txt" \
    "$v/src/CMakeLists.txt" "$v/common/CMakeLists.txt" "$v/vendor/CMakeLists.txt"; do
    [ -f "$f" ] || { echo "missing $f"; missing=1; continue; }
    while read -r sub; do
      [ -d "$(dirname "$f")/$sub" ] || { echo "$f adds $sub, which is gone"; missing=1; }
    done < <(awk '{ line = $0; sub(/#.*/, "", line) }
                  line ~ /^[ \t]*(if|foreach|function|macro)[ \t]*\(/ { depth++ }
                  line ~ /^[ \t]*(endif|endforeach|endfunction|endmacro)[ \t]*\(/ { depth-- }
                  depth == 0 && match(line, /add_subdirectory\([A-Za-z0-9_.\/-]+\)/) {
                    print substr(line, RSTART + 17, RLENGTH - 18) }' "$f")
  done
  for sub in ggml/src/ggml-cpu ggml/src/ggml-cuda ggml/src/ggml-cuda/template-instances src include common vendor tools/mtmd; do
    [ -d "$v/$sub" ] || { echo "missing $v/$sub"; missing=1; }
  done
  return "$missing"
}

sdist() {
  local ver=$1 out=$PREP/llama_cpp_python-$1-trimmed.tar.gz tmp
  if [ -s "$out" ] && [ "$FORCE" = 0 ]; then
    echo "kept: ${out#"$REPO"/}"
    return
  fi
  tmp=$(mktemp -d)
  "$PY" -m pip download -q --no-deps --no-binary=:all: "llama-cpp-python==$ver" -d "$tmp" 2>&1 | grep -v 'is ignored' || true
  local full
  full=$(ls "$tmp"/llama_cpp_python-"$ver".tar.gz)
  tar xzf "$full" -C "$tmp"
  local before after
  before=$(du -sm "$tmp/llama_cpp_python-$ver" | cut -f1)
  trim_tree "$tmp/llama_cpp_python-$ver"
  check_tree "$tmp/llama_cpp_python-$ver"
  after=$(du -sm "$tmp/llama_cpp_python-$ver" | cut -f1)
  tar czf "$out" -C "$tmp" "llama_cpp_python-$ver"
  echo "sdist: $(($(stat -c %s "$full") / 1048576)) MiB as published (${before} MiB unpacked) -> " \
    "$(($(stat -c %s "$out") / 1024)) KiB trimmed (${after} MiB unpacked)"
  echo "sdist-sizes: published $(stat -c %s "$full") B, trimmed $(stat -c %s "$out") B, unpacked ${before} -> ${after} MiB" >"$PREP/.sdist-sizes"
  rm -rf "$tmp"
}

# A CPU build of the trimmed sdist in a throwaway venv, then the wheel loads and runs a tiny
# model under the project's interpreter. The wheel is kept in .test-cache/gpu-verify/ under
# the tarball's checksum, so a later --verify-build of the same tarball only re-runs the load
# (the build takes 15-40 minutes on these 2 shared cores).
verify_build() {  # TARBALL
  local tar=$1 tmp t rc=0 sha cache whl how
  sha=$(sha256sum "$tar" | cut -c1-16)
  cache=$REPO/.test-cache/gpu-verify/$sha
  tmp=$(mktemp -d)
  t=$SECONDS
  whl=$(ls "$cache"/*.whl 2>/dev/null | head -1)
  if [ -n "$whl" ] && [ "$FORCE" = 0 ]; then
    how="wheel built earlier from this tarball ($(cat "$cache/built" 2>/dev/null || echo "?"))"
  else
    python3 -m venv "$tmp/venv"
    "$tmp/venv/bin/pip" install -q "scikit-build-core==${PINS[scikit-build-core]}"
    tar xzf "$tar" -C "$tmp"
    if CMAKE_ARGS="-DLLAVA_BUILD=OFF" CMAKE_BUILD_PARALLEL_LEVEL=2 nice -n 19 "$tmp/venv/bin/pip" wheel \
      --no-build-isolation --no-deps -w "$tmp/dist" "$tmp"/llama_cpp_python-* >"$tmp/build.log" 2>&1; then
      mkdir -p "$cache"
      cp "$tmp"/dist/*.whl "$cache/"
      echo "built in $((SECONDS - t))s on $(date -u +%F)" >"$cache/built"
      whl=$(ls "$cache"/*.whl)
      how=$(cat "$cache/built")
    else
      rc=1
      tail -30 "$tmp/build.log"
    fi
  fi
  if [ "$rc" = 0 ]; then
    "$PY" -m pip install -q --no-deps --target "$tmp/site" "$whl"
    PYTHONPATH=$tmp/site:$REPO "$PY" - "$tmp/site" <<'PYEOF' || rc=1
import sys, tempfile
import llama_cpp
from tests.tiny_gguf import write_tiny_gguf
assert llama_cpp.__file__.startswith(sys.argv[1]), llama_cpp.__file__
path = write_tiny_gguf(tempfile.mkdtemp() + "/t.gguf", "llama", seed=1)
llm = llama_cpp.Llama(model_path=str(path), n_ctx=64, verbose=False)
out = [int(t) for _, t in zip(range(3), llm.generate([1, 40, 41], top_k=1, temp=0.0))]
assert len(out) == 3, out
print("the built llama_cpp", llama_cpp.__version__, "loads and runs a tiny model")
PYEOF
  fi
  if [ "$rc" = 0 ]; then
    echo "verify-build: ok (CPU build of $(basename "$tar"), sha256 $sha: $how; the wheel loads and runs a tiny model)" \
      >"$PREP/.verify-build"
  else
    echo "verify-build: FAILED (see above)" >"$PREP/.verify-build"
  fi
  cat "$PREP/.verify-build"
  rm -rf "$tmp"
  return "$rc"
}

wheels() {
  mkdir -p "$PREP/wheels"
  [ "$FORCE" = 1 ] && rm -f "$PREP"/wheels/*.whl
  # our wheel, from a copy of the tree (the build leaves build/ and *.egg-info behind)
  local tmp reqs=() name v
  tmp=$(mktemp -d)
  cp -r pyproject.toml README.md src backends tui gan "$tmp/"
  find "$tmp" -name __pycache__ -prune -exec rm -rf {} +
  rm -f "$PREP"/wheels/aigc_chat-*.whl
  "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$PREP/wheels" "$tmp" >"$tmp.log" 2>&1 ||
    { cat "$tmp.log"; exit 1; }
  rm -rf "$tmp" "$tmp.log"
  for name in "${CARRY[@]}"; do
    v=${PINS[$name]:-$(version_of "$name")}
    [ -n "$v" ] || { echo "no version for $name"; exit 1; }
    reqs+=("$name==$v")
  done
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]}" -d "$PREP/wheels" "${reqs[@]}"
  ls "$PREP/wheels"
}

# The bundled models' specs: the parity model (Gemma 3 270M, the torch backend's parity
# model) and the default chat model when that is another file. Refreshed when the source
# file changed (the default model is whatever src/aigc_chat/default_model.py says today).
specs() {
  local role path want have found
  found=$(AIGC_CHAT_CACHE_DIR=$REPO/.test-cache "$PY" -c '
from aigc_chat import default_model as d
gemma = d.ensure_gemma() if hasattr(d, "ensure_gemma") else d.ensure_default_model()
default = d.ensure_default_model()
print(f"parity={gemma}")
if default.resolve() != gemma.resolve():
    print(f"default={default}")')
  for role in parity default; do
    path=$(sed -n "s/^$role=//p" <<<"$found")
    if [ -z "$path" ]; then
      rm -f "$PREP/spec-$role.gguf"
      continue
    fi
    want=$(basename "$path")
    have=""
    [ -s "$PREP/spec-$role.gguf" ] && have=$("$PY" "$HERE/gpu_tools.py" spec-source "$PREP/spec-$role.gguf")
    if [ "$want" = "$have" ] && [ "$FORCE" = 0 ]; then
      echo "kept: .gpu/spec-$role.gguf ($want)"
    else
      echo "$role model: $path"
      "$PY" "$HERE/gpu_tools.py" spec "$path" "$PREP/spec-$role.gguf"
    fi
  done
}

manifest() {
  local f
  {
    echo "prepared by bench/gpu_prepare.sh on $(date -u +%FT%TZ) for bench/gpu_check.sh"
    echo "llama-cpp-python $LCP_VERSION; build flags there: $(bash "$HERE/gpu_check.sh" --print-cmake-args)"
    cat "$PREP/.sdist-sizes" 2>/dev/null || true
    cat "$PREP/.verify-build" 2>/dev/null || echo "verify-build: not run (bench/gpu_prepare.sh --verify-build)"
    echo "files:"
    (cd "$PREP" && find . -type f ! -name MANIFEST.txt ! -name '.*' | sort | while read -r f; do
      printf '  %10d  %s  %s\n' "$(stat -c %s "$f")" "$(sha256sum "$f" | cut -c1-16)" "${f#./}"
    done)
  } >"$PREP/MANIFEST.txt"
}

exclude
mkdir -p "$PREP"
LCP_VERSION=$(version_of llama-cpp-python)
[ -n "$LCP_VERSION" ] || { echo "llama-cpp-python is not installed in $PY's environment"; exit 1; }
log "llama-cpp-python $LCP_VERSION sdist, trimmed"
sdist "$LCP_VERSION"
TARBALL=$PREP/llama_cpp_python-$LCP_VERSION-trimmed.tar.gz
if [ "$VERIFY" = 1 ]; then
  log "CPU build of the trimmed sdist (nice 19, 2 jobs)"
  verify_build "$TARBALL" || true
fi
log "wheels"
wheels
log "the bundled models' specs"
specs
manifest
log "checks"
SDIST_REQS=()
mapfile -t SDIST_REQS < <(tar xzf "$TARBALL" -O --wildcards '*/PKG-INFO' | sed -n 's/^Requires-Dist: //p' | grep -v 'extra ==')
rc=0
"$PY" "$HERE/gpu_tools.py" closure "$PREP/wheels" --extras torch --requires "${SDIST_REQS[@]}" | tee -a "$PREP/MANIFEST.txt" || rc=1
"$PY" "$HERE/gpu_tools.py" travel-size "$REPO" --carry .gpu | tee -a "$PREP/MANIFEST.txt" || rc=1
grep -h '^verify-build' "$PREP/MANIFEST.txt"
echo "next: bash bench/gpu_check.sh --self-check; on the GPU machine: run(command=\"bash bench/gpu_check.sh \$OUT\", carry=[\".gpu\"], timeout_s=600)"
exit "$rc"
