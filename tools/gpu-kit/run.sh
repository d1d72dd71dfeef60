#!/usr/bin/env bash
# CLNN's GPU kit: does CLNN compute correctly on this host's GPU, and how fast? Needs no Swift, network or root: the
# kit carries a static clnn, the OpenCL ICD loader and Fashion-MNIST; the GPU's own OpenCL driver is found on the host.
#
# Usage: run.sh [RESULTS_FOLDER] [--quick]        (or CLNN_KIT_RESULTS=FOLDER run.sh)
#   Runs clnn devices, then on the default device (a GPU where there is one) clnn check, clnn bench gemm, clnn bench
#   train (default and wide models), clnn train for 5 epochs and, where PyTorch sees CUDA, the same workloads in
#   PyTorch on the same GPU (tools/torch_cuda_mlp.py). Needs glibc 2.34 or later (the binary is built on Debian 12).
#   Writes RESULTS_FOLDER/results.md (a table, then every step's raw log) and prints the table last.
#   --quick: a smoke test (fewer epochs and runs), as `scripts/gpu-kit --self-test` runs it.
# Every step has a time limit; the whole run stays within 8 minutes. The exit status is 1 when a step failed.
set -uo pipefail
kit=$(cd "$(dirname "$0")" && pwd)
quick=0
results=${CLNN_KIT_RESULTS:-}
for argument in "$@"; do
  case $argument in
    --quick) quick=1 ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "run.sh: unknown option $argument (see --help)" >&2; exit 2 ;;
    *) results=$argument ;;
  esac
done
results=${results:-$PWD/clnn-gpu-results}
mkdir -p "$results/logs" || { echo "run.sh: cannot create $results/logs" >&2; exit 2; }
results=$(cd "$results" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/clnn-kit.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT
began=$(date +%s)

# The binary, unpacked (xz, or Python's lzma where xz is missing).
if command -v xz >/dev/null 2>&1; then
  xz -dc "$kit/clnn.xz" >"$work/clnn"
else
  python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
    "$kit/clnn.xz" "$work/clnn"
fi || { echo "run.sh: cannot unpack $kit/clnn.xz" >&2; exit 2; }
chmod +x "$work/clnn"
clnn=$work/clnn

# The host's OpenCL drivers: GPU vendors' first (so that opencl:0 is the GPU), from ldconfig, the usual driver folders
# and the host's own ICD files; each gets an ICD file in a private folder read by the kit's ICD loader.
mkdir -p "$work/vendors"
found=()
add() {
  local path=$1
  [ -e "$path" ] || return 0
  path=$(readlink -f "$path")
  for have in "${found[@]+"${found[@]}"}"; do [ "$have" = "$path" ] && return 0; done
  found+=("$path")
  printf '%s\n' "$path" >"$work/vendors/$(printf %02d ${#found[@]})-$(basename "$path").icd"
}
lookup() {
  local name=$1 dir
  while read -r path; do add "$path"; done < <(ldconfig -p 2>/dev/null | awk -v n="$name" '$1 == n {print $NF}')
  for dir in /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib /usr/local/nvidia/lib64 /usr/local/nvidia/lib \
             /usr/local/cuda/lib64 /usr/lib/wsl/lib /opt/rocm/lib /opt/rocm/opencl/lib /opt/amdgpu/lib64 \
             /opt/intel/oneapi/lib /usr/lib/x86_64-linux-gnu/intel-opencl; do
    add "$dir/$name"
  done
}
for name in libnvidia-opencl.so.1 libnvidia-opencl.so libamdocl64.so libamdocl-orca64.so libigdrcl.so; do
  lookup "$name"
done
gpus=${#found[@]}
# The host's ICD files (what its own loader would use), then CPU drivers only where there is no GPU driver.
for icd in /etc/OpenCL/vendors/*.icd; do
  [ -r "$icd" ] || continue
  library=$(head -n 1 "$icd" | tr -d '[:space:]')
  case $library in
    *pocl*|*Mesa*|*rusticl*|*intelocl*) [ "$gpus" -eq 0 ] || continue ;;
  esac
  case $library in
    /*) add "$library" ;;
    *) lookup "$library" ;;
  esac
done
if [ ${#found[@]} -eq 0 ]; then
  for name in libpocl.so.2 libpocl.so; do lookup "$name"; done
fi
export OCL_ICD_VENDORS=$work/vendors
export CLNN_OPENCL_LIBRARY=$kit/lib/libOpenCL.so.1
export CLNN_CACHE_DIR=$work/cache

# Each step: its command line, log, status and seconds; a step past its limit is stopped (status 124).
steps=()
run_step() {
  local name=$1 limit=$2
  shift 2
  local log=$results/logs/$name.log start status
  start=$(date +%s)
  { echo "\$ $*"; timeout --kill-after=5 "$limit" "$@"; } >"$log" 2>&1
  status=$?
  steps+=("$name|$status|$(( $(date +%s) - start ))")
  echo "run.sh: $name: status $status, $(( $(date +%s) - start )) s" >&2
  return $status
}

data=$kit/data
# The device measured: clnn's default (marked *), a GPU where there is one — the ICD loader may list the drivers in
# any order, so opencl:0 need not be it.
run_step devices 20 "$clnn" devices
gpu=$(awk '$1 == "*" && $2 ~ /^opencl:/ {print $2; exit}' "$results/logs/devices.log")
gpu=${gpu:-opencl:0}
# The limits (with 5 s to stop each, and 20 s to look for PyTorch) add up to under 8 minutes.
if [ $quick -eq 1 ]; then
  # (Generous limits: a smoke test on a CPU host that CI keeps busy with other stages; only a hang should stop one.)
  run_step check 300 "$clnn" check --device "$gpu" --plan-only
  run_step bench-gemm 180 "$clnn" bench gemm --device "$gpu" --runs 1
  run_step bench-train 180 "$clnn" bench train --device "$gpu" --data "$data" --epochs 1 --runs 1
  run_step bench-train-wide 180 "$clnn" bench train --device "$gpu" --data "$data" --epochs 1 --runs 1 \
    --hidden 512 256 --batch-size 128
  run_step train 180 "$clnn" train --device "$gpu" --data "$data" --epochs 1 --save "$results/model.safetensors"
else
  run_step check 80 "$clnn" check --device "$gpu"
  run_step bench-gemm 60 "$clnn" bench gemm --device "$gpu"
  run_step bench-train 55 "$clnn" bench train --device "$gpu" --data "$data" --epochs 3
  run_step bench-train-wide 55 "$clnn" bench train --device "$gpu" --data "$data" --epochs 3 \
    --hidden 512 256 --batch-size 128
  run_step train 55 "$clnn" train --device "$gpu" --data "$data" --epochs 5 --save "$results/model.safetensors"
fi
torch=no
if command -v python3 >/dev/null 2>&1 \
     && timeout 20 python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1; then
  torch=yes
  run_step pytorch-cuda 90 python3 "$kit/tools/torch_cuda_mlp.py" "$data" $([ $quick -eq 1 ] && echo --quick)
fi

# The table: what each step found, CLNN beside PyTorch on CUDA where both ran.
log() { cat "$results/logs/$1.log" 2>/dev/null; }
field() { awk -v d="$gpu" -v c="$2" '$1 == d {print $c; exit}' <(log "$1"); }
gemm() { awk -v n="$2" 'index($0, n) == 1 {for (i = 1; i <= NF; i++) if ($i == "fast") {print $(i + 2); exit}}' \
  <(log "$1"); }
peak() { awk -v n="$1" 'index($0, n) == 1 {for (i = 1; i <= NF; i++) if ($i == "fast" && i + 3 <= NF) {print $(i + 3); exit}}' \
  <(log bench-gemm); }
anchor() { awk -v n="$1" '$1 == "anchor" && $2 == n {print $3; exit}' <(log pytorch-cuda); }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2fx", a / b; else print "-" }'; }
accuracy=$(awk '/^epoch [0-9]+\/[0-9]+ .*test acc/ {for (i = 1; i < NF; i++) if ($i == "acc") a = $(i + 1)} END {print a}' \
  <(log train))
device=$(awk -v d="$gpu" '$1 == d || $2 == d {sub(/^[* ] opencl:[0-9]+ +/, ""); name = $0; getline; sub(/^ +/, "");
  print name "; " $0; exit}' <(log devices))
{
  echo "# CLNN on a GPU: $(date -u '+%Y-%m-%d %H:%M UTC'), $(hostname)"
  echo
  echo "- measured: $gpu: ${device:-not found (see logs/devices.log)}"
  echo "- OpenCL drivers found: ${found[*]:-none}"
  echo "- PyTorch with CUDA: $torch$([ $quick -eq 1 ] && echo '; --quick (smoke test: fewer epochs and runs)')"
  echo
  echo "| step | status | seconds |"
  echo "|---|---|---|"
  for step in "${steps[@]}"; do
    IFS='|' read -r name status seconds <<<"$step"
    case $status in 0) shown=pass ;; 124|137) shown="stopped at its time limit" ;; *) shown="FAILED (status $status)" ;; esac
    echo "| $name | $shown | $seconds |"
  done
  echo
  echo "| measure | CLNN $gpu | PyTorch CUDA | CLNN / PyTorch |"
  echo "|---|---|---|---|"
  e=$(field bench-train 2); a=$(anchor epoch_default_s)
  echo "| epoch 784-50-10, batch 64 (s, median) | ${e:--} | ${a:--} | $(ratio "$e" "$a") |"
  e=$(field bench-train-wide 2); a=$(anchor epoch_wide_s)
  echo "| epoch 784-512-256-10, batch 128 (s) | ${e:--} | ${a:--} | $(ratio "$e" "$a") |"
  e=$(field bench-train 5); a=$(anchor fullbatch_ms)
  echo "| full-batch fwd+bwd 784-50-1, 60000 rows (ms) | ${e:--} | ${a:--} | $(ratio "$e" "$a") |"
  e=$(gemm bench-gemm "1024^3 "); a=$(anchor gemm_1024_gflops); p=$(peak "1024^3 ")
  echo "| SGEMM 1024³ (GFLOP/s$([ -n "$p" ] && echo "; CLNN at $p of the FP32 peak")) | ${e:--} | ${a:--} | $(ratio "$e" "$a") |"
  e=$(gemm bench-gemm "60000x50x784"); a=$(anchor gemm_fwd_60000x50x784_gflops)
  echo "| SGEMM 60000x50x784 (GFLOP/s) | ${e:--} | ${a:--} | $(ratio "$e" "$a") |"
  a=$(anchor accuracy_default)
  echo "| test accuracy after the run's epochs | ${accuracy:--} | ${a:--} | |"
  echo
  echo "Total $(( $(date +%s) - began )) s. Raw logs follow."
  for step in "${steps[@]}"; do
    name=${step%%|*}
    echo
    echo "## $name"
    echo
    echo '```'
    tail -c 20000 "$results/logs/$name.log"
    echo '```'
  done
} >"$results/results.md"

# The table last on the terminal (the logs stay in the file).
sed -n '1,/^Total /p' "$results/results.md"
echo "results: $results/results.md"
for step in "${steps[@]}"; do
  IFS='|' read -r _ status _ <<<"$step"
  [ "$status" -eq 0 ] || exit 1
done
exit 0
