# Shared set-up of the end-to-end tests: generated data, a small config and
# an mpiexec command line. Sourced by the test scripts with the path of
# dmnsp_gen_datasets as $1.
set -u
dmnsp=${DMNSP_BINARY:?}
gen=${1:?path of dmnsp_gen_datasets}
mpiexec=${DMNSP_MPIEXEC:-mpiexec}
read -r -a mpi_flags <<<"${DMNSP_MPIEXEC_FLAGS:-}"
failures=0

fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

finish() {
    if [[ $failures -gt 0 ]]; then
        echo "$failures check(s) failed"
        exit 1
    fi
    echo "all checks passed"
    exit 0
}

# run NP ARGS...: dmnsp under mpiexec with NP ranks.
run() {
    local np=$1
    shift
    "$mpiexec" -n "$np" "${mpi_flags[@]}" "$dmnsp" "$@"
}

rm -rf data runs
"$gen" data --only cifar100 --train-per-class 24 --test-per-class 8 >/dev/null || {
    echo "dmnsp_gen_datasets failed"
    exit 1
}

# Six CIFAR-100 classes in three tasks of two.
cat >order.yaml <<'YAML'
class_order: [3, 17, 42, 58, 71, 90]
YAML
cat >small.yaml <<YAML
dataset: cifar100
dataset_root: $PWD/data
class_order: order.yaml
initial_increment: 2
increment: 2
model_name: tiny
train_per_class: 24
test_per_class: 8
batch_size: 12
eval_batch_size: 16
epochs: 2
lr: 1e-3
warmup_steps: 2
log_interval: 4
nullspace:
  basis_batch_size: 16
YAML

# kill_tree PID: SIGKILL for PID and all its descendants, children first,
# as a scheduler's time limit would end a job. Only processes started by
# this test are touched.
kill_tree() {
    local child
    for child in $(pgrep -P "$1"); do
        kill_tree "$child"
    done
    kill -9 "$1" 2>/dev/null
}

# kill_when_logged PID LOG PATTERN: kills the run PID with kill_tree as soon
# as LOG matches PATTERN. Returns 1 when the run ends first or the pattern
# does not appear within 240 s (a loaded machine can be slow), killing the
# run in that case too.
kill_when_logged() {
    local launcher=$1 log=$2 pattern=$3 deadline=$((SECONDS + 240))
    while ((SECONDS < deadline)); do
        if grep -q "$pattern" "$log" 2>/dev/null; then
            kill_tree "$launcher"
            wait "$launcher" 2>/dev/null
            return 0
        fi
        kill -0 "$launcher" 2>/dev/null || break
        sleep 0.02
    done
    kill_tree "$launcher"
    wait "$launcher" 2>/dev/null
    return 1
}
