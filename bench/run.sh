#!/usr/bin/env bash
# Runs dmnsp's benchmarks and the PyTorch reference on this machine and
# prints one table with the ratios dmnsp / PyTorch and dmnsp / sgemm
# ceiling. Run it from anywhere on an otherwise idle machine:
#
#   bash bench/run.sh [--threads N] [--quick] [--build DIR] [--log FILE]
#                     [--table-only] [--help]
#
#   --threads N  threads per process for both dmnsp and PyTorch (default 1:
#                the per-core comparison)
#   --quick      only batch 8 and the tiny preset (about 5 minutes instead
#                of about 18)
#   --build DIR  build folder with the bench programs (default build; it is
#                configured and built when the programs are missing)
#   --log FILE   where every program's output goes (default
#                DIR/bench-results.log)
#   --table-only print the table from an existing --log file without
#                running anything
#
# Every program prints a "result ..." line of key=value fields; the table
# is made from those lines. PyTorch columns need Debian's python3-torch
# (/usr/bin/python3); without it they show "n/a". bench/RESULTS.md explains
# the columns.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
top="$(dirname "$here")"
threads=1
quick=0
build="$top/build"
log=""
table_only=0

usage() {
    sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case "$1" in
    --threads)
        [ $# -ge 2 ] || { echo "run.sh: --threads needs a value" >&2; exit 2; }
        threads="$2"
        shift 2
        ;;
    --quick)
        quick=1
        shift
        ;;
    --table-only)
        table_only=1
        shift
        ;;
    --build)
        [ $# -ge 2 ] || { echo "run.sh: --build needs a folder" >&2; exit 2; }
        build="$2"
        shift 2
        ;;
    --log)
        [ $# -ge 2 ] || { echo "run.sh: --log needs a file" >&2; exit 2; }
        log="$2"
        shift 2
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        echo "run.sh: unknown option '$1'" >&2
        usage >&2
        exit 2
        ;;
    esac
done
case "$threads" in
'' | *[!0-9]* | 0)
    echo "run.sh: --threads needs a positive integer (got '$threads')" >&2
    exit 2
    ;;
esac
[ -n "$log" ] || log="$build/bench-results.log"

# Runs one program, appends its output to the log and shows its progress.
run() {
    local label="$1"
    shift
    echo "run.sh: $label" >&2
    {
        echo "## $label: $*"
        "$@" 2>&1
    } >>"$log" || {
        echo "run.sh: '$label' failed; its output is in $log" >&2
        exit 1
    }
}

# Builds what is missing and runs every benchmark into the log.
run_all() {
    local programs=(bench_gemm bench_clip bench_train bench_nullspace) missing=0 program
    for program in "${programs[@]}"; do
        [ -x "$build/bench/$program" ] || missing=1
    done
    if [ "$missing" = 1 ]; then
        echo "run.sh: building the bench programs in $build" >&2
        cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
        cmake --build "$build" -j "$(nproc)" --target "${programs[@]}" >/dev/null
    fi

    local cores
    cores="$(nproc)"
    export OPENBLAS_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads" OMP_WAIT_POLICY=passive
    local have_torch=0
    if /usr/bin/python3 -c "import torch" 2>/dev/null; then
        have_torch=1
    else
        echo "run.sh: /usr/bin/python3 cannot import torch (Debian package python3-torch), so the PyTorch" \
            "columns show n/a" >&2
    fi
    local mpiexec_cmd=(mpiexec -n 2)
    if [ "$(id -u)" = 0 ]; then
        mpiexec_cmd+=(--allow-run-as-root)
    fi
    mpiexec_cmd+=(--oversubscribe)
    local dmnsp_bench="$build/bench"
    local torch_bench=(/usr/bin/python3 "$here/torch_bench.py" --threads "$threads")

    mkdir -p "$(dirname "$log")"
    : >"$log"
    local cpu openblas torch_version="n/a"
    cpu="$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)"
    openblas="$(dpkg-query -W -f '${Package} ${Version}' libopenblas0-pthread 2>/dev/null || echo "OpenBLAS unknown")"
    [ "$have_torch" = 1 ] && torch_version="$(/usr/bin/python3 -c 'import torch; print(torch.__version__)')"
    {
        echo "# machine: $cpu, $cores usable cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
        echo "# software: $openblas; torch $torch_version"
        echo "# settings: $threads thread(s) per process, quick $quick, $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo "# load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
    } >>"$log"

    local batch
    for batch in "${batches_b16[@]}"; do
        run "sgemm ceiling, ViT-B/16 batch $batch shapes" "$dmnsp_bench/bench_gemm" --preset ViT-B/16 --batch "$batch"
    done
    [ "$quick" = 1 ] || run "sgemm ceiling, ViT-B/16 batch 128 shapes" "$dmnsp_bench/bench_gemm" --preset ViT-B/16 \
        --batch 128
    run "sgemm ceiling, tiny batch 128 shapes" "$dmnsp_bench/bench_gemm" --preset tiny --batch 128
    for batch in "${batches_b16[@]}"; do
        run "dmnsp ViT-B/16 forward, batch $batch" "$dmnsp_bench/bench_clip" --preset ViT-B/16 --batch "$batch" \
            --steps 2
        run "dmnsp ViT-B/16 train step, batch $batch" "$dmnsp_bench/bench_train" --preset ViT-B/16 --batch "$batch" \
            --steps 2
        if [ "$have_torch" = 1 ]; then
            run "PyTorch ViT-B/16 forward, batch $batch" "${torch_bench[@]}" --preset ViT-B/16 --mode forward \
                --batch "$batch"
            run "PyTorch ViT-B/16 train step, batch $batch" "${torch_bench[@]}" --preset ViT-B/16 --mode train \
                --batch "$batch"
            run "PyTorch ViT-B/16 train step, batch $batch, prompts cut" "${torch_bench[@]}" --preset ViT-B/16 \
                --mode train --batch "$batch" --cut-text
        fi
    done
    run "dmnsp tiny forward, batch 128" "$dmnsp_bench/bench_clip" --preset tiny --batch 128 --steps 10
    run "dmnsp tiny train step, batch 128" "$dmnsp_bench/bench_train" --preset tiny --batch 128 --steps 10
    if [ "$have_torch" = 1 ]; then
        run "PyTorch tiny forward, batch 128" "${torch_bench[@]}" --preset tiny --mode forward --batch 128 --steps 10
        run "PyTorch tiny train step, batch 128" "${torch_bench[@]}" --preset tiny --mode train --batch 128 --steps 10
    fi

    run "DMNSP basis step, ViT-B/16 shapes" "$dmnsp_bench/bench_nullspace" --solvers lapack --tasks 1,9
    if [ "$quick" = 0 ]; then
        run "dmnsp ViT-B/16 train step, batch 128 (memory)" "$dmnsp_bench/bench_train" --preset ViT-B/16 \
            --batch 128 --steps 1 --warmup 0
        if [ "$threads" = 1 ]; then
            run "dmnsp tiny train step, batch 128, 2 ranks" "${mpiexec_cmd[@]}" "$dmnsp_bench/bench_train" \
                --preset tiny --batch 128 --steps 10
            run "dmnsp ViT-B/16 train step, batch 32, 2 ranks" "${mpiexec_cmd[@]}" "$dmnsp_bench/bench_train" \
                --preset ViT-B/16 --batch 32 --steps 2
            if [ "$have_torch" = 1 ]; then
                run "PyTorch ViT-B/16 train step, batch 32, 2 threads" env OPENBLAS_NUM_THREADS=2 \
                    OMP_NUM_THREADS=2 /usr/bin/python3 "$here/torch_bench.py" --threads 2 --preset ViT-B/16 \
                    --mode train --batch 32
            fi
        fi
    fi
    echo "# load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$log"
}

if [ "$table_only" = 1 ]; then
    [ -f "$log" ] || { echo "run.sh: --table-only: log file '$log' not found" >&2; exit 2; }
    settings="$(sed -n 's/^# settings: //p' "$log" | head -n 1)"
    threads="$(echo "$settings" | awk '{print $1}')"
    quick="$(echo "$settings" | sed -n 's/.*quick \([01]\).*/\1/p')"
    if [ -z "$threads" ] || [ -z "$quick" ]; then
        echo "run.sh: --table-only: '$log' has no settings line; is it a log of bench/run.sh?" >&2
        exit 2
    fi
fi
batches_b16=(8 32)
[ "$quick" = 1 ] && batches_b16=(8)
[ "$table_only" = 1 ] || run_all

# ---- the table ----------------------------------------------------------

# Prints field KEY of the last result line that contains every KEY=VALUE
# given before it, or "n/a".
field() {
    local key="${*: -1}"
    local filters=("${@:1:$#-1}")
    awk -v key="$key" -v filters="${filters[*]}" '
        BEGIN { n = split(filters, want, " ") }
        $1 == "result" {
            ok = 1
            for (i = 1; i <= n; i++) {
                found = 0
                for (f = 2; f <= NF; f++)
                    if ($f == want[i]) found = 1
                if (!found) ok = 0
            }
            if (!ok) next
            value = ""
            for (f = 2; f <= NF; f++)
                if (index($f, key "=") == 1) value = substr($f, length(key) + 2)
            last = value
        }
        END { print (last == "" ? "n/a" : last) }' "$log"
}

# ratio A B [SCALE]: A / B · SCALE with two decimals, or n/a.
ratio() {
    awk -v a="$1" -v b="$2" -v s="${3:-1}" 'BEGIN {
        if (a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a"; else printf "%.2f\n", a / b * s }'
}

if ! grep -q '^result impl=dmnsp' "$log"; then
    echo "run.sh: warning: '$log' has no dmnsp result lines (an interrupted run?); the table shows n/a" >&2
fi
echo
sed -n 's/^# //p' "$log"
echo

# Both programs are credited with the same model FLOPs per step (dmnsp's
# count: prompts up to their end token), so the GFLOP/s columns compare
# like with like. "ceil." is the percentage of the sgemm ceiling measured
# at that row's preset and batch.
header="| %-46s | %11s | %11s | %13s | %21s | %21s | %10s | %10s |\n"
# shellcheck disable=SC2059
printf "$header" run "dmnsp img/s" "torch img/s" "dmnsp / torch" "dmnsp GFLOP/s (ceil.)" "torch GFLOP/s (ceil.)" \
    "dmnsp RSS" "torch RSS"
dashes() { printf -- '-%.0s' $(seq 1 "$1"); }
echo "|$(dashes 48)|$(dashes 13)|$(dashes 13)|$(dashes 15)|$(dashes 23)|$(dashes 23)|$(dashes 12)|$(dashes 12)|"

# with_ceiling VALUE CEILING: "VALUE (PERCENT)", or n/a.
with_ceiling() {
    [ "$1" = "n/a" ] && { echo "n/a"; return; }
    awk -v value="$1" -v ceiling="$2" 'BEGIN {
        if (ceiling == "n/a" || ceiling + 0 == 0) printf "%.1f\n", value
        else printf "%.1f (%.0f %%)\n", value, 100 * value / ceiling }'
}

# row LABEL PRESET MODE BATCH [CUT]: one line of the table. CUT=1 takes the
# PyTorch run whose prompts were cut after their end token.
row() {
    local label="$1" preset="$2" mode="$3" batch="$4" cut="${5:-0}"
    local filters=("preset=$preset" "mode=$mode" "batch=$batch")
    local torch_filters=("${filters[@]}" "threads=$threads")
    [ "$mode" = train ] && torch_filters+=("cut_text=$cut")
    local ours theirs gflops gflop_per_step theirs_gflops ours_rss theirs_rss ceiling
    ceiling="$(field impl=sgemm "preset=$preset" "batch=$batch" ceiling_gflops)"
    ours="$(field impl=dmnsp "${filters[@]}" ranks=1 images_per_s)"
    theirs="$(field impl=torch "${torch_filters[@]}" images_per_s)"
    gflops="$(field impl=dmnsp "${filters[@]}" ranks=1 gflops)"
    gflop_per_step="$(field impl=dmnsp "${filters[@]}" ranks=1 model_gflop_per_step)"
    theirs_gflops="$(ratio "$gflop_per_step" "$batch" "$theirs")"
    [ "$theirs" = "n/a" ] && theirs_gflops="n/a"
    ours_rss="$(field impl=dmnsp "${filters[@]}" ranks=1 peak_rss_mib)"
    theirs_rss="$(field impl=torch "${torch_filters[@]}" peak_rss_mib)"
    [ "$ours_rss" = "n/a" ] || ours_rss="$ours_rss MiB"
    [ "$theirs_rss" = "n/a" ] || theirs_rss="$theirs_rss MiB"
    # shellcheck disable=SC2059
    printf "$header" "$label" "$ours" "$theirs" "$(ratio "$ours" "$theirs")" "$(with_ceiling "$gflops" "$ceiling")" \
        "$(with_ceiling "$theirs_gflops" "$ceiling")" "$ours_rss" "$theirs_rss"
}

for batch in "${batches_b16[@]}"; do
    row "ViT-B/16 eval forward, batch $batch" ViT-B/16 forward "$batch"
    row "ViT-B/16 training step, batch $batch" ViT-B/16 train "$batch"
    row "ViT-B/16 training step, batch $batch, torch cut" ViT-B/16 train "$batch" 1
done
row "tiny eval forward, batch 128" tiny forward 128
row "tiny training step, batch 128" tiny train 128
if [ "$quick" = 0 ]; then
    row "ViT-B/16 training step, batch 128" ViT-B/16 train 128
fi

echo
# dmnsp train collects covariances from the adapters' hidden activations
# (factored); the dsyrk collect of the full outputs is the fallback.
factored="$(field impl=dmnsp bench=collect_factored ranks=1 seconds)"
build_s="$(field impl=dmnsp bench=basis solver=lapack ranks=1 build_s)"
lambda_s="$(field impl=dmnsp bench=basis solver=lapack ranks=1 lambda_s)"
basis="$(awk -v a="$factored" -v b="$build_s" 'BEGIN { if (a == "n/a" || b == "n/a") print "n/a"; else printf "%.2f\n", a + b }')"
lambda="$(awk -v a="$factored" -v b="$lambda_s" 'BEGIN { if (a == "n/a" || b == "n/a") print "n/a"; else printf "%.2f\n", a + b }')"
projection_1="$(field impl=dmnsp bench=projection past_tasks=1 union=concat ms_per_step)"
projection_9="$(field impl=dmnsp bench=projection past_tasks=9 union=concat ms_per_step)"
step_batch="${batches_b16[-1]}"
step_s="$(field impl=dmnsp preset=ViT-B/16 mode=train "batch=$step_batch" ranks=1 seconds_per_step)"
echo "DMNSP on ViT-B/16 shapes (12 blocks of width 768, 128 images x 197 tokens, LAPACK):"
echo "  basis step $basis s (factored collect $factored s + bases $build_s s), lambda step $lambda s"
echo "  projection $projection_1 ms (1 past task), $projection_9 ms (9 past tasks):" \
    "$(ratio "$projection_9" "$step_s" 0.1) % of a batch-$step_batch training step"

if [ "$quick" = 0 ] && [ "$threads" = 1 ]; then
    echo
    echo "Data parallel, 1 thread per rank:"
    for spec in "tiny 128" "ViT-B/16 32"; do
        set -- $spec
        one="$(field impl=dmnsp "preset=$1" mode=train "batch=$2" ranks=1 images_per_s)"
        two="$(field impl=dmnsp "preset=$1" mode=train "batch=$2" ranks=2 images_per_s)"
        echo "  $1 training step, batch $2: 1 rank $one img/s, 2 ranks $two img/s, speed-up $(ratio "$two" "$one")"
    done
    torch_two="$(field impl=torch preset=ViT-B/16 mode=train batch=32 threads=2 cut_text=0 images_per_s)"
    echo "Both cores: dmnsp on 2 ranks $two img/s, PyTorch with 2 threads $torch_two img/s," \
        "dmnsp / torch $(ratio "$two" "$torch_two") (ViT-B/16 training step, batch 32)"
fi
echo
echo "Every program's output: $log"
