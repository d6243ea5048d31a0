# shellcheck shell=bash
# The step runner and the CUDA toolkit probe of bench/gpu_check.sh, sourced (and driven by
# tests/test_gpu_check_script.py with fake steps and fake toolkits). A step never stops the run: its exit code, time and log are recorded,
# later steps go on, and a step whose inputs failed is skipped and says why.
#
#   gc_init WORK OUT BUDGET_S      work dir (logs/), output dir, seconds for the whole run
#   gc_step NAME SECONDS [--needs a,b] -- CMD ARGS...   run CMD (a command or exported function)
#   gc_step_bg NAME SECONDS [--needs a,b] -- CMD...     the same, in the background
#   gc_wait NAME                                        wait for a background step
#   gc_ok NAME                                          true when NAME ran and passed
#   gc_summary                                          table on stdout and in OUT/summary.txt
#
# Each step's output goes to WORK/logs/NAME.log; after every step OUT/steps.log is rebuilt
# from them (all steps, in start order, each under a header), so what a run leaves in OUT is
# complete up to the last finished step even when the run is killed at its time limit.

GC_RESERVE=${GC_RESERVE:-20}   # seconds kept back for the summary
GC_MIN_STEP=${GC_MIN_STEP:-5}  # a step given less than this is skipped

gc_init() {
  GC_WORK=$1 GC_OUT=$2
  export GC_WORK GC_OUT
  GC_T0=$(date +%s)
  GC_DEADLINE=$((GC_T0 + $3))
  mkdir -p "$GC_WORK/logs" "$GC_OUT"
  : >"$GC_WORK/steps.tsv"
  : >"$GC_WORK/order"
  declare -gA GC_BG=()
}

gc_now() { echo $(($(date +%s) - GC_T0)); }

# status of a finished step: ok, FAILED, TIMEOUT or SKIPPED; empty when not finished
gc_status() {
  awk -F'\t' -v n="$1" '$1 == n { s = $2 } END { print s }' "$GC_WORK/steps.tsv"
}

gc_ok() { [ "$(gc_status "$1")" = ok ]; }

_gc_record() {  # name status rc seconds started note
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" >>"$GC_WORK/steps.tsv"
}

_gc_run() {
  local name=$1 budget=$2 needs=$3
  shift 3
  local log="$GC_WORK/logs/$name.log" start missing="" dep
  start=$(gc_now)
  echo "$name" >>"$GC_WORK/order"
  for dep in ${needs//,/ }; do
    [ -n "${GC_BG[$dep]:-}" ] && gc_wait "$dep"
    gc_ok "$dep" || missing="$missing${missing:+,}$dep"
  done
  if [ -n "$missing" ]; then
    echo "skipped: needs $missing, which did not pass" >"$log"
    _gc_record "$name" SKIPPED - 0 "$start" "needs $missing"
    echo "[$(gc_now)s] $name: SKIPPED (needs $missing)"
    gc_collect
    return 0
  fi
  local left=$((GC_DEADLINE - $(date +%s) - GC_RESERVE))
  [ "$budget" -gt "$left" ] && budget=$left
  if [ "$budget" -lt "$GC_MIN_STEP" ]; then
    echo "skipped: no time left in the run's budget" >"$log"
    _gc_record "$name" SKIPPED - 0 "$start" "no time left"
    echo "[$(gc_now)s] $name: SKIPPED (no time left)"
    gc_collect
    return 0
  fi
  echo "[$(gc_now)s] $name: start (up to ${budget}s)"
  local t=$SECONDS rc=0
  {
    echo "\$ $*"
    echo "(time limit ${budget}s, started at ${start}s into the run)"
  } >"$log"
  timeout -k 10 "$budget" bash -c '"$@"' gc-step "$@" >>"$log" 2>&1 </dev/null || rc=$?
  local dt=$((SECONDS - t)) status=ok note=""
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    status=TIMEOUT note="killed at its ${budget}s limit"
  elif [ "$rc" -ne 0 ]; then
    status=FAILED note="exit $rc"
  fi
  echo "(exit $rc after ${dt}s: $status)" >>"$log"
  _gc_record "$name" "$status" "$rc" "$dt" "$start" "$note"
  echo "[$(gc_now)s] $name: $status${note:+ ($note)} in ${dt}s"
  gc_collect
  return 0
}

_gc_parse() {  # NAME SECONDS [--needs LIST] -- CMD...  ->  sets _name _budget _needs, rest in _cmd
  _name=$1 _budget=$2 _needs=""
  shift 2
  if [ "${1:-}" = --needs ]; then
    _needs=$2
    shift 2
  fi
  [ "${1:-}" = -- ] && shift
  _cmd=("$@")
}

gc_step() {
  _gc_parse "$@"
  _gc_run "$_name" "$_budget" "$_needs" "${_cmd[@]}"
}

gc_step_bg() {
  _gc_parse "$@"
  _gc_run "$_name" "$_budget" "$_needs" "${_cmd[@]}" &
  GC_BG[$_name]=$!
}

gc_wait() {
  local pid=${GC_BG[$1]:-}
  [ -n "$pid" ] || return 0
  wait "$pid" 2>/dev/null || true
  GC_BG[$1]=""
}

# OUT/steps.log: every step's log so far, in start order; OUT/summary.txt: the table so far
gc_collect() {
  local name tmp="$GC_WORK/.collect.$BASHPID"
  {
    while read -r name; do
      echo "=================== $name ==================="
      cat "$GC_WORK/logs/$name.log" 2>/dev/null
      echo
    done <"$GC_WORK/order"
  } >"$tmp.log"
  gc_table >"$tmp.txt"
  mv -f "$tmp.log" "$GC_OUT/steps.log"
  mv -f "$tmp.txt" "$GC_OUT/summary.txt"
}

gc_table() {
  printf '%-16s %-9s %5s %7s  %s\n' step status rc seconds note
  awk -F'\t' 'NR == FNR { if (!($1 in row)) { order[++n] = $1; row[$1] = "" }; next }
               { row[$1] = sprintf("%-16s %-9s %5s %7s  %s", $1, $2, $3, $4, $6); bad += ($2 != "ok") ; done[$1] = $2 }
               END {
                 for (i = 1; i <= n; i++) {
                   name = order[i]
                   if (row[name] == "") printf "%-16s %-9s %5s %7s  %s\n", name, "running", "-", "-", "not finished"
                   else print row[name]
                 }
               }' "$GC_WORK/order" "$GC_WORK/steps.tsv"
  local failed
  failed=$(awk -F'\t' '$2 != "ok"' "$GC_WORK/steps.tsv" | wc -l)
  echo "$(wc -l <"$GC_WORK/steps.tsv") steps finished, $failed not ok, $(gc_now)s in all"
}

gc_summary() {
  local name
  for name in "${!GC_BG[@]}"; do gc_wait "$name"; done
  gc_collect
  cat "$GC_OUT/summary.txt"
  awk -F'\t' '$2 != "ok" { bad = 1 } END { exit bad }' "$GC_WORK/steps.tsv"
}

# Find the CUDA pieces llama.cpp's CMake wants. Where the toolkit lacks cuBLAS or libcuda
# (a toolkit put together from pip packages, as on this machine), point CMake at the pip
# packages' copies (nvidia/*/include, nvidia/*/lib) and the driver's library.
# Sets GC_CUDACXX, GC_CUDA_EXTRA (CMake arguments), GC_CPATH, GC_LDPATH; prints a report.
# shellcheck disable=SC2034 # GC_* are results for the caller
cuda_probe() {  # [NVCC] [SITE_DIRS...]
  local nvcc=${1:-} root inc="" lib="" lt="" drv="" d f
  shift || true
  GC_CUDACXX="" GC_CUDA_EXTRA="" GC_CPATH="" GC_LDPATH=""
  [ -n "$nvcc" ] || nvcc=$(command -v nvcc || true)
  [ -n "$nvcc" ] || { [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc; }
  if [ -z "$nvcc" ]; then
    echo "cuda probe: no nvcc"
    return 1
  fi
  # a wrapper script (exec .../nvcc "$@") is followed to the real one
  if [ "$(head -c 2 "$nvcc" 2>/dev/null)" = "#!" ]; then
    f=$(grep -o '/[^ "]*/nvcc' "$nvcc" | head -1)
    [ -n "$f" ] && [ -x "$f" ] && nvcc=$f
  fi
  nvcc=$(readlink -f "$nvcc")
  root=$(dirname "$(dirname "$nvcc")")
  GC_CUDACXX=$nvcc
  for d in "$root/include" "$root/targets/x86_64-linux/include"; do
    [ -f "$d/cublas_v2.h" ] && inc=$d && break
  done
  for d in "$root/lib64" "$root/lib" "$root/targets/x86_64-linux/lib"; do
    [ -e "$d/libcublas.so" ] && lib="$d/libcublas.so" && lt="$d/libcublasLt.so" && break
  done
  if [ -z "$inc" ] || [ -z "$lib" ]; then
    for d in "$@"; do
      for f in "$d"/nvidia/*/include/cublas_v2.h "$d"/nvidia/cublas/include/cublas_v2.h; do
        [ -f "$f" ] || continue
        [ -z "$inc" ] && inc=$(dirname "$f") && GC_CPATH=$inc
        local pl
        pl=$(dirname "$(dirname "$f")")/lib
        if [ -z "$lib" ]; then
          lib=$(find "$pl" -maxdepth 1 -name 'libcublas.so*' 2>/dev/null | sort | tail -1)
          lt=$(find "$pl" -maxdepth 1 -name 'libcublasLt.so*' 2>/dev/null | sort | tail -1)
          [ -n "$lib" ] && GC_CUDA_EXTRA="-DCUDA_cublas_LIBRARY=$lib -DCUDA_cublasLt_LIBRARY=$lt" && GC_LDPATH=$pl
        fi
        break 2
      done
    done
  fi
  for f in "$root/lib64/stubs/libcuda.so" "$root/lib64/libcuda.so" "$root/targets/x86_64-linux/lib/stubs/libcuda.so"; do
    [ -e "$f" ] && drv=toolkit && break
  done
  if [ -z "$drv" ]; then
    for f in /usr/local/nvidia/lib64/libcuda.so.1 /usr/local/nvidia/lib/libcuda.so.1 \
      /usr/lib/x86_64-linux-gnu/libcuda.so.1 /usr/lib64/libcuda.so.1 \
      "$(ldconfig -p 2>/dev/null | awk '/libcuda\.so\.1 / { print $NF; exit }')"; do
      [ -n "$f" ] && [ -e "$f" ] && drv=$f && GC_CUDA_EXTRA="$GC_CUDA_EXTRA -DCUDA_cuda_driver_LIBRARY=$f" && break
    done
  fi
  [ -n "$GC_CPATH" ] && GC_CUDA_EXTRA="$GC_CUDA_EXTRA -DCMAKE_CUDA_FLAGS=-I$GC_CPATH -DCMAKE_CXX_FLAGS=-I$GC_CPATH"
  GC_CUDA_EXTRA=${GC_CUDA_EXTRA# }
  echo "cuda probe: nvcc $nvcc (toolkit $root)"
  echo "cuda probe: cublas headers ${inc:-NOT FOUND}; library ${lib:-NOT FOUND}; libcuda ${drv:-NOT FOUND}"
  echo "cuda probe: extra CMake arguments: ${GC_CUDA_EXTRA:-none}"
  [ -n "$inc" ] && [ -n "$lib" ] && [ -n "$drv" ]
}
