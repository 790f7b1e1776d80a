# shellcheck shell=bash source-path=SCRIPTDIR
# A real two-point sweep (lambda_scale=10,30) of `dmnsp train` on generated
# CIFAR-100 data with the tiny model, 2 tasks of 1 epoch, 2 ranks per point: both points finish,
# a second sweep skips them, a point whose summary line is gone is resumed,
# and --analyze writes the sweep table. Skipped while dmnsp has no train
# command.
set -u
if ! "${DMNSP_BINARY:?}" --help 2>/dev/null | grep -q '^  train '; then
    echo "dmnsp has no train command yet: test skipped"
    exit 77
fi
# shellcheck source=../experiment/common.sh
source "${DMNSP_SOURCE_DIR:?}/tests/experiment/common.sh" "${1:?path of dmnsp_gen_datasets}"
sweep=$DMNSP_SOURCE_DIR/jobs/sweep.sh
launcher="$mpiexec ${mpi_flags[*]}"
rm -rf sweep_root
# Two of the three tasks and one epoch keep the test short.
fast=(--set max_tasks=2 --set epochs=1)

bash "$sweep" small.yaml --grid lambda_scale=10,30 "${fast[@]}" --root sweep_root --np 2 --mpirun "$launcher" \
    --dmnsp "$dmnsp" || fail "first sweep failed"
for point in lambda_scale-10 lambda_scale-30; do
    grep -qs '"summary": *true' "sweep_root/$point/metrics.json" || fail "$point has no summary line"
    [[ -f sweep_root/$point/checkpoint.h5 ]] || fail "$point has no checkpoint.h5"
done

output=$(bash "$sweep" small.yaml --grid lambda_scale=10,30 "${fast[@]}" --root sweep_root --np 2 --mpirun "$launcher" \
    --dmnsp "$dmnsp" 2>&1) || fail "second sweep failed"
echo "$output"
[[ $(grep -c "is finished; skipped" <<<"$output") -eq 2 ]] || fail "second sweep did not skip both points"

# Drop the summary line of one point: the next sweep resumes it from its
# checkpoint and writes the summary again.
grep -v '"summary"' sweep_root/lambda_scale-30/metrics.json >metrics.tmp
mv metrics.tmp sweep_root/lambda_scale-30/metrics.json
output=$(bash "$sweep" small.yaml --grid lambda_scale=10,30 "${fast[@]}" --root sweep_root --np 2 --mpirun "$launcher" \
    --dmnsp "$dmnsp" --analyze 2>&1) || fail "resuming sweep failed"
echo "$output"
grep -q "lambda_scale-10 is finished; skipped" <<<"$output" || fail "finished point was not skipped"
grep -qs '"summary": *true' sweep_root/lambda_scale-30/metrics.json || fail "resumed point has no summary line"

[[ -f sweep_root/analysis/sweep.csv ]] || fail "--analyze wrote no sweep.csv"
head -1 sweep_root/analysis/sweep.csv | grep -q '^run,lambda_scale,' || fail "sweep.csv lacks the lambda_scale column"
[[ $(($(wc -l <sweep_root/analysis/sweep.csv) - 1)) -eq 2 ]] || fail "sweep.csv does not have 2 runs"
[[ $(($(wc -l <sweep_root/analysis/lambda_scale-10/metrics_per_task.csv) - 1)) -eq 2 ]] ||
    fail "metrics_per_task.csv of lambda_scale-10 does not have 2 tasks"
[[ -f sweep_root/analysis/lambda_scale-30/lambda_task_01.png ]] || fail "no lambda plot for task 1"
finish
