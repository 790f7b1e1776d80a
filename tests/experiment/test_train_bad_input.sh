#!/usr/bin/env bash
# Bad input at the top level fails with a clear message, a non-zero exit
# and no metrics left behind.
source "$(dirname "$0")/common.sh" "$@"

expect_failure() { # expect_failure NEEDLE OUTPUT_DIR ARGS...
    local needle=$1 dir=$2
    shift 2
    local output status before=$failures
    output=$(run 2 train "$@" output_dir="$dir" 2>&1)
    status=$?
    [[ $status -ne 0 ]] || fail "'$*' succeeded, expected a failure mentioning '$needle'"
    [[ $output == *"$needle"* ]] || fail "'$*' output lacks '$needle': $output"
    [[ ! -e $dir/metrics.json ]] || fail "'$*' left $dir/metrics.json behind"
    local count
    count=$(grep -c "dmnsp: error" <<<"$output")
    [[ $count -eq 1 ]] || fail "'$*' printed $count error lines, expected 1: $output"
    [[ $failures -eq $before ]] && echo "ok: $needle"
}

expect_failure "fashion-mnist" runs/no_data small.yaml dataset=fashionmnist dataset_root=$PWD/nowhere \
    class_order=""
expect_failure "nowhere" runs/no_cifar small.yaml dataset_root=$PWD/nowhere

printf 'x' >runs_file
expect_failure "runs_file" runs_file/sub small.yaml
expect_failure "top_select" runs/top small.yaml top_select=128
# An error after the log file opened is in the log too.
grep -q "dmnsp: error.*top_select=128 must be less than" runs/top/train.log ||
    fail "runs/top/train.log lacks the error: $(tail -n 3 runs/top/train.log)"

# Weights of the tiny preset under a config that names ViT-B/16.
write_weights=${2:?path of write_random_weights}
"$write_weights" tiny 5 tiny.safetensors || fail "write_random_weights failed"
expect_failure "in model preset 'ViT-B/16'" runs/width small.yaml weights=$PWD/tiny.safetensors model_name=ViT-B/16
# The same file with its own architecture trains.
run 2 train small.yaml weights=$PWD/tiny.safetensors model_name=auto max_tasks=1 epochs=1 \
    output_dir=runs/from_file >from_file.log 2>&1 || fail "training from a weights file failed: $(tail -n 5 from_file.log)"
expect_failure "lamda_scale" runs/typo small.yaml lamda_scale=3
# A batch whose activations exceed the node's memory fails before allocating them.
expect_failure "set recompute_activations=true" runs/memory small.yaml batch_size=10000000
expect_failure "lower batch_size" runs/memory_recompute small.yaml batch_size=10000000 recompute_activations=true
# A warm-up longer than a task trains, with a warning about it.
run 2 train small.yaml max_tasks=1 epochs=1 warmup_steps=100 output_dir=runs/warmup >warmup.log 2>&1 ||
    fail "the run with a long warm-up failed: $(tail -n 5 warmup.log)"
grep -q "warmup_steps=100 is at least the task's" warmup.log || fail "no warning about the long warm-up"
finish
