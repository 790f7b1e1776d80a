# shellcheck shell=bash
# jobs/sweep.sh: a 2x2x2 grid gives 8 points with the expected names and
# overrides, invalid keys are reported, finished points are skipped, and
# --slurm writes an 8-task job array that bash accepts.
set -u
dmnsp=${DMNSP_BINARY:?}
source_dir=${DMNSP_SOURCE_DIR:?}
sweep=$source_dir/jobs/sweep.sh
config=$source_dir/configs/class/fashionmnist_2-2.yaml
failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

rm -rf points
# shellcheck disable=SC2054 # the commas belong to the grid values
grid=(--grid top_select=1,2 --grid top_k_ratio=0.1,0.2 --grid lambda_scale=10,30)
output=$(bash "$sweep" "$config" "${grid[@]}" --root points --dry-run --dmnsp "$dmnsp" 2>&1)
status=$?
echo "$output"
[[ $status -eq 0 ]] || fail "dry run exited with $status"
expected=(
    top_select-1_top_k_ratio-0.1_lambda_scale-10
    top_select-1_top_k_ratio-0.1_lambda_scale-30
    top_select-1_top_k_ratio-0.2_lambda_scale-10
    top_select-1_top_k_ratio-0.2_lambda_scale-30
    top_select-2_top_k_ratio-0.1_lambda_scale-10
    top_select-2_top_k_ratio-0.1_lambda_scale-30
    top_select-2_top_k_ratio-0.2_lambda_scale-10
    top_select-2_top_k_ratio-0.2_lambda_scale-30
)
mapfile -t names < <(awk '$2 == "new" { print $3 }' <<<"$output")
[[ ${#names[@]} -eq 8 ]] || fail "dry run listed ${#names[@]} new points, expected 8"
for i in "${!expected[@]}"; do
    [[ ${names[$i]:-} == "${expected[$i]}" ]] || fail "point $i is '${names[$i]:-}', expected '${expected[$i]}'"
done
grep -q "top_select=2 top_k_ratio=0.1 lambda_scale=30 output_dir=points/top_select-2_top_k_ratio-0.1_lambda_scale-30 resume=auto" \
    <<<"$output" || fail "point 5's overrides are missing from the listing"
[[ ! -e points ]] || fail "the dry run created the sweep folder"

# An unknown key fails the dry run and names the key.
output=$(bash "$sweep" "$config" --grid top_select=1,2 --grid no_such_key=1 --root points --dry-run --dmnsp "$dmnsp" 2>&1)
status=$?
[[ $status -eq 1 ]] || fail "dry run with an unknown key exited with $status, expected 1"
grep -q "unknown key 'no_such_key'" <<<"$output" || fail "unknown key not named: $output"
output=$(bash "$sweep" "$config" --grid top_select=1,x --root points --dmnsp "$dmnsp" 2>&1)
status=$?
[[ $status -eq 1 ]] || fail "a local sweep with an invalid value exited with $status, expected 1"
grep -q "nothing was run" <<<"$output" || fail "invalid sweep does not say that nothing was run: $output"

# Finished points (metrics.json with a summary line) are skipped without
# starting dmnsp train; the dry run marks them.
for name in "${expected[@]}"; do
    mkdir -p "points/$name"
    echo '{"summary": true, "last": 50.00, "avg": 60.00, "avg_forgetting": 5.00}' >"points/$name/metrics.json"
done
output=$(bash "$sweep" "$config" "${grid[@]}" --root points --dmnsp "$dmnsp" 2>&1)
status=$?
echo "$output"
[[ $status -eq 0 ]] || fail "sweep over finished points exited with $status"
[[ $(grep -c "is finished; skipped" <<<"$output") -eq 8 ]] || fail "not all 8 finished points were skipped"
output=$(bash "$sweep" "$config" "${grid[@]}" --root points --dry-run --dmnsp "$dmnsp" 2>&1)
[[ $(awk '$2 == "finished"' <<<"$output" | wc -l) -eq 8 ]] || fail "dry run does not mark 8 points finished"

# A point with only a checkpoint is listed for resuming.
rm "points/${expected[3]}/metrics.json"
touch "points/${expected[3]}/checkpoint.h5"
output=$(bash "$sweep" "$config" "${grid[@]}" --root points --dry-run --dmnsp "$dmnsp" 2>&1)
grep -q "resume   ${expected[3]}" <<<"$output" || fail "interrupted point not listed as resume: $output"

# --slurm writes a job array with one index per point.
output=$(bash "$sweep" "$config" "${grid[@]}" --root points --slurm points/array.sbatch --dmnsp "$dmnsp" \
    -- -svd_type lanczos 2>&1)
status=$?
echo "$output"
[[ $status -eq 0 ]] || fail "--slurm exited with $status"
grep -q '^#SBATCH --array=0-7$' points/array.sbatch || fail "array.sbatch lacks --array=0-7"
grep -q '^#SBATCH --signal=USR1@300$' points/array.sbatch || fail "array.sbatch does not ask for SIGUSR1"
bash -n points/array.sbatch || fail "array.sbatch is not valid bash"
[[ $(grep -c "output_dir=.*/points/top_select-" points/array.sbatch) -eq 8 ]] || fail "array.sbatch lacks 8 output folders"
grep -q "petsc=( -svd_type lanczos )" points/array.sbatch || fail "array.sbatch lacks the PETSc options"

# Index 3 of the array starts the interrupted point through srun.
mkdir -p fakebin
# The stand-in srun prints its command line and rejects empty arguments.
cat >fakebin/srun <<'SRUN'
#!/bin/bash
echo "srun $*"
for argument in "$@"; do
    [[ -n $argument ]] || { echo "srun: an empty argument"; exit 3; }
done
SRUN
chmod +x fakebin/srun
output=$(SLURM_ARRAY_TASK_ID=3 SLURM_CPUS_PER_TASK=2 PATH="$PWD/fakebin:$PATH" bash points/array.sbatch 2>&1)
echo "$output"
grep -q "srun --cpus-per-task=2 --cpu-bind=cores $dmnsp train .* top_select=1 top_k_ratio=0.2 lambda_scale=30 .*resume=auto -svd_type lanczos" \
    <<<"$output" || fail "array index 3 did not launch its point"
output=$(SLURM_ARRAY_TASK_ID=0 PATH="$PWD/fakebin:$PATH" bash points/array.sbatch 2>&1)
grep -q "is finished; nothing to do" <<<"$output" || fail "array index 0 ran a finished point"

# Without PETSc options the array passes no empty argument to dmnsp.
bash "$sweep" "$config" "${grid[@]}" --root points --slurm points/plain.sbatch --dmnsp "$dmnsp" >/dev/null 2>&1 ||
    fail "--slurm without PETSc options failed"
output=$(SLURM_ARRAY_TASK_ID=3 PATH="$PWD/fakebin:$PATH" bash points/plain.sbatch 2>&1)
status=$?
[[ $status -eq 0 ]] || fail "array index 3 without PETSc options exited with $status: $output"

# --help prints the usage to stdout and succeeds; no arguments is a usage error.
help=$(bash "$sweep" --help 2>/dev/null)
status=$?
[[ $status -eq 0 ]] || fail "--help exited with $status, expected 0"
[[ $help == *"--grid KEY=V1,V2"* ]] || fail "--help printed no usage on stdout: $help"
bash "$sweep" >/dev/null 2>&1
status=$?
[[ $status -eq 2 ]] || fail "no arguments exited with $status, expected 2"

if [[ $failures -gt 0 ]]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all checks passed"
