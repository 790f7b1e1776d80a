#!/usr/bin/env bash
# DMNSP-both (text adapters projected by text null spaces) resumes like
# DMNSP: a run killed after task 1 of 3 continues with resume=auto, is
# killed again inside task 2 after a progress checkpoint, and still ends
# with the metrics.json and checkpoint.h5 of an uninterrupted run.
# lambda_apply=step makes the restored lambda act through update factors.
source "$(dirname "$0")/common.sh" "$@"
tool=${2:?path of checkpoint_tool}

settings=(method=DMNSP-both lambda_apply=step)

run 2 train small.yaml "${settings[@]}" output_dir=runs/whole >whole.log 2>&1 || {
    cat whole.log
    fail "the uninterrupted run failed"
    finish
}

# run_until PATTERN ARGS...: starts a run and kills it once train.log of
# runs/both matches PATTERN; fails when the run ends or stalls first.
run_until() {
    local pattern=$1
    shift
    run 2 train small.yaml "${settings[@]}" output_dir=runs/both "$@" >>both.log 2>&1 &
    kill_when_logged $! runs/both/train.log "$pattern" ||
        fail "the run did not reach '$pattern': $(tail -n 5 both.log)"
}

run_until "task 1 finished"
"$tool" progress runs/both/checkpoint.h5 >progress1.txt || fail "checkpoint_tool cannot read the checkpoint"
grep -qx "tasks 2" progress1.txt || fail "expected 2 finished tasks and none in progress: $(cat progress1.txt)"

# 8 steps per task: the progress checkpoint after step 5 of task 2.
run_until "checkpoint: task 2 step 5/8 saved" resume=auto checkpoint.interval_steps=5
grep -q "resume: .* finished 2 of 3 tasks; continuing with task 2" both.log ||
    fail "the first resume did not continue with task 2: $(grep resume both.log)"
"$tool" progress runs/both/checkpoint.h5 >progress2.txt || fail "checkpoint_tool cannot read the checkpoint"
grep -qx "tasks 2 in-progress 2 step 5" progress2.txt || fail "expected task 2 in progress at step 5: $(cat progress2.txt)"

run 2 train small.yaml "${settings[@]}" output_dir=runs/both resume=auto >resumed.log 2>&1 ||
    fail "the second resume failed: $(tail -n 20 resumed.log)"
grep -q "continuing task 2 after step 5 of 8" resumed.log ||
    fail "the second resume does not continue task 2 at step 5: $(grep resume resumed.log)"

strip() { grep -v '"summary"' "$1"; }
diff <(strip runs/whole/metrics.json) <(strip runs/both/metrics.json) >metrics.diff ||
    fail "resumed metrics differ from the uninterrupted run: $(cat metrics.diff)"
"$tool" compare runs/whole/checkpoint.h5 runs/both/checkpoint.h5 0 >compare.txt ||
    fail "resumed checkpoint differs from the uninterrupted run: $(grep -E 'FAIL|error' compare.txt)"
grep -q "task 2 text block 0 top" compare.txt || fail "the checkpoints hold no text null spaces: $(head compare.txt)"
finish
