#!/usr/bin/env bash
# The bench programs run on the tiny preset and small null-space shapes and
# print their result lines, and `bench/run.sh --table-only` turns such a log
# into its table. Timings are not checked.
set -u
gemm=$1 clip=$2 train=$3 nullspace=$4
run_sh="$DMNSP_SOURCE_DIR/bench/run.sh"
failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

log=$PWD/bench.log
{
    echo "# machine: test machine"
    echo "# software: test libraries"
    echo "# settings: 1 thread(s) per process, quick 1, test"
    echo "## sgemm"
    "$gemm" --preset tiny --batch 128 --repeat 1
    echo "## forward"
    "$clip" --preset tiny --batch 128 --steps 1 --warmup 0
    echo "## train"
    "$train" --preset tiny --batch 128 --steps 1 --warmup 0
    echo "## null space"
    "$nullspace" --images 2 --tokens 17 --blocks 2 --width 32 --rank 8 --bottleneck 4 --solvers lapack --tasks 1,9
} >"$log" 2>&1 || fail "a bench program failed: $(tail -n 5 "$log")"

for kind in impl=sgemm "impl=dmnsp preset=tiny mode=forward" "impl=dmnsp preset=tiny mode=train" \
    "impl=dmnsp bench=collect_factored" "impl=dmnsp bench=basis" "impl=dmnsp bench=projection past_tasks=9"; do
    grep -q "^result $kind" "$log" || fail "no result line starting with '$kind' in $log"
done

table=$(bash "$run_sh" --table-only --log "$log" 2>&1) || fail "--table-only failed: $table"
echo "$table"
# the tiny rows have dmnsp numbers and no PyTorch ones
tiny_row=$(grep "^| tiny training step, batch 128" <<<"$table")
[[ -n $tiny_row ]] || fail "the table has no tiny training row"
ours=$(awk -F'|' '{print $3}' <<<"$tiny_row" | tr -d ' ')
[[ $ours =~ ^[0-9]+\.[0-9]+$ ]] || fail "tiny training row: dmnsp images/s '$ours' is not a number"
ceiling_share=$(awk -F'|' '{print $6}' <<<"$tiny_row")
[[ $ceiling_share =~ \([0-9]+\ %\) ]] || fail "tiny training row: no share of the tiny sgemm ceiling in '$ceiling_share'"
theirs=$(awk -F'|' '{print $4}' <<<"$tiny_row" | tr -d ' ')
[[ $theirs == "n/a" ]] || fail "tiny training row: PyTorch images/s '$theirs', expected n/a without a PyTorch run"
grep -q "^| ViT-B/16 eval forward, batch 8 .*n/a" <<<"$table" || fail "the ViT-B/16 row should be n/a"
grep -q "basis step [0-9.]* s (factored collect" <<<"$table" || fail "the table lacks the basis step"
grep -q "settings: 1 thread(s) per process, quick 1" <<<"$table" || fail "the table lacks the settings line"

# bad calls: exit 2 with a message
out=$(bash "$run_sh" --table-only --log "$PWD/missing.log" 2>&1)
[[ $? -eq 2 && $out == *"missing.log"*"not found"* ]] || fail "a missing log: '$out'"
printf 'result impl=sgemm ceiling_gflops=1\n' >no_settings.log
out=$(bash "$run_sh" --table-only --log "$PWD/no_settings.log" 2>&1)
[[ $? -eq 2 && $out == *"no settings line"* ]] || fail "a log without settings: '$out'"
out=$(bash "$run_sh" --threads x 2>&1)
[[ $? -eq 2 && $out == *"positive integer"* ]] || fail "--threads x: '$out'"
out=$(bash "$run_sh" --fast 2>&1)
[[ $? -eq 2 && $out == *"unknown option '--fast'"* ]] || fail "--fast: '$out'"
bash "$run_sh" --help | grep -q -- "--table-only" || fail "--help lacks --table-only"
for program in "$gemm" "$clip" "$train" "$nullspace"; do
    "$program" --help | grep -q -- "--batch\|--images" || fail "$(basename "$program") --help lacks its options"
    "$program" --no-such-option >/dev/null 2>&1
    status=$?
    [[ $status -ne 0 ]] || fail "$(basename "$program") accepted --no-such-option"
done

if [[ $failures -ne 0 ]]; then
    echo "test_bench_table: $failures check(s) failed"
    exit 1
fi
echo "test_bench_table: all checks passed"
