# shellcheck shell=bash
# jobs/: every config has a Slurm and a PBS script, all scripts are valid
# bash (and shellcheck-clean when shellcheck is installed), submit.sh turns
# NODES/RANKS_PER_NODE/THREADS_PER_RANK into scheduler options, and the
# common launcher builds the srun and mpirun command lines.
set -u
dmnsp=${DMNSP_BINARY:?}
source_dir=${DMNSP_SOURCE_DIR:?}
failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

for config in "$source_dir"/configs/class/*.yaml; do
    name=$(basename "$config" .yaml)
    [[ -f $source_dir/jobs/slurm/$name.sbatch ]] || fail "no jobs/slurm/$name.sbatch"
    [[ -f $source_dir/jobs/pbs/$name.pbs ]] || fail "no jobs/pbs/$name.pbs"
done

scripts=("$source_dir"/jobs/launch.sh "$source_dir"/jobs/sweep.sh "$source_dir"/jobs/lib/* "$source_dir"/jobs/slurm/*
    "$source_dir"/jobs/pbs/*)
for script in "${scripts[@]}"; do
    bash -n "$script" || fail "$script is not valid bash"
done
if command -v shellcheck >/dev/null; then
    (cd "$source_dir" && shellcheck -x jobs/launch.sh jobs/sweep.sh jobs/lib/* jobs/slurm/* jobs/pbs/*) ||
        fail "shellcheck reported problems"
else
    echo "shellcheck not installed: lint part not run"
fi

# submit.sh maps the environment to scheduler options.
output=$(NODES=2 RANKS_PER_NODE=4 THREADS_PER_RANK=8 bash "$source_dir/jobs/slurm/submit.sh" cifar100_10-10 \
    --chain 2 --dry-run --time=02:00:00)
echo "$output"
grep -q -- "--nodes=2 --ntasks-per-node=4 --cpus-per-task=8 --time=02:00:00 .*cifar100_10-10.sbatch" <<<"$output" ||
    fail "slurm submit does not pass the job shape"
grep -q -- "--dependency=afterany:" <<<"$output" || fail "slurm submit --chain does not chain the jobs"
output=$(NODES=3 RANKS_PER_NODE=2 THREADS_PER_RANK=16 MEM_PER_NODE=80gb bash "$source_dir/jobs/pbs/submit.sh" \
    tinyimagenet_100-5 --dry-run)
echo "$output"
grep -q -- "-l select=3:ncpus=32:mpiprocs=2:ompthreads=16:mem=80gb .*tinyimagenet_100-5.pbs" <<<"$output" ||
    fail "pbs submit does not build the select statement"
bash "$source_dir/jobs/slurm/submit.sh" no_such_config --dry-run >/dev/null 2>&1 && fail "unknown config accepted"
# Without MEM_PER_NODE the script's own memory request stays in the select.
output=$(NODES=2 RANKS_PER_NODE=4 THREADS_PER_RANK=8 bash "$source_dir/jobs/pbs/submit.sh" cifar100_10-10 --dry-run)
grep -q -- "-l select=2:ncpus=32:mpiprocs=4:ompthreads=8:mem=40gb " <<<"$output" ||
    fail "pbs submit dropped the script's memory request: $output"
# A misspelt key in EXTRA is caught before anything is submitted.
for scheduler in slurm pbs; do
    output=$(DMNSP=${DMNSP_BINARY:?} EXTRA="lambda_scal=10" bash "$source_dir/jobs/$scheduler/submit.sh" \
        cifar100_10-10 --dry-run 2>&1) && fail "$scheduler submit accepted EXTRA=lambda_scal=10"
    [[ $output == *"did you mean 'lambda_scale'"*"nothing was submitted"* ]] ||
        fail "$scheduler submit with a misspelt key: $output"
    [[ $output != *"sbatch "* && $output != *"qsub "* ]] || fail "$scheduler submit printed a command: $output"
done
for scheduler in slurm pbs; do
    help=$(bash "$source_dir/jobs/$scheduler/submit.sh" --help 2>/dev/null) ||
        fail "$scheduler/submit.sh --help did not exit 0"
    [[ $help == *"--chain N"*"configs: "*"cifar100_10-10"* ]] || fail "$scheduler/submit.sh --help: $help"
done

# The launcher under fake srun/mpirun: thread variables, binding, overrides
# and PETSc options in the right places.
mkdir -p fakebin out
# shellcheck disable=SC2016 # the fake launcher expands these itself
printf '#!/bin/bash\necho "LAUNCH $0 $*"\necho "threads $OMP_NUM_THREADS $OPENBLAS_NUM_THREADS"\n' >fakebin/srun
cp fakebin/srun fakebin/mpirun
chmod +x fakebin/srun fakebin/mpirun
run_launcher() {
    (
        export PATH="$PWD/fakebin:$PATH" DMNSP_ROOT=$source_dir DMNSP=$dmnsp OUTPUT_ROOT=$PWD/out
        export THREADS_PER_RANK=4 NODES=2 RANKS_PER_NODE=3 DATA_ROOT=/data/fmnist
        export EXTRA=${EXTRA-"lambda_scale=10 -svd_type lanczos"}
        set -euo pipefail
        # shellcheck source=/dev/null
        source "$source_dir/jobs/launch.sh"
        dmnsp_launch fashionmnist_2-2 "$1"
    )
}
output=$(run_launcher srun 2>&1)
echo "$output"
grep -q "LAUNCH .*srun --cpus-per-task=4 --cpu-bind=cores $dmnsp train .*fashionmnist_2-2.yaml output_dir=$PWD/out/fashionmnist_2-2 resume=auto dataset_root=/data/fmnist lambda_scale=10 -svd_type lanczos" \
    <<<"$output" || fail "srun launch line is wrong"
grep -q "threads 4 4" <<<"$output" || fail "OMP/OpenBLAS threads not set to THREADS_PER_RANK"
output=$(run_launcher mpirun 2>&1)
echo "$output"
grep -q "LAUNCH .*mpirun -np 6 --map-by ppr:3:node:PE=4 --bind-to core" <<<"$output" || fail "mpirun launch line is wrong"

# A bad override stops the launch before any rank starts.
output=$(EXTRA="lambda_scale=abc" run_launcher srun 2>&1)
status=$?
[[ $status -ne 0 ]] || fail "launcher accepted lambda_scale=abc"
grep -q "LAUNCH" <<<"$output" && fail "launcher started ranks despite an invalid override"

# A finished run is not started again.
mkdir -p out/fashionmnist_2-2
echo '{"summary": true, "last": 1.00}' >out/fashionmnist_2-2/metrics.json
output=$(run_launcher srun 2>&1)
grep -q "is finished" <<<"$output" || fail "launcher did not notice the finished run"
grep -q "LAUNCH" <<<"$output" && fail "launcher started a finished run"
rm -rf out

if [[ $failures -gt 0 ]]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all checks passed"
