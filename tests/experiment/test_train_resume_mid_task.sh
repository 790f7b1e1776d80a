#!/usr/bin/env bash
# A run killed with SIGKILL inside task 1 (and one inside task 0), after a
# progress checkpoint, continues at the saved step with resume=auto and
# ends with the same metrics.json and checkpoint.h5 as an uninterrupted
# run without progress checkpoints. dmnsp eval of that checkpoint evaluates the last finished
# task, and a checkpoint whose /optimizer has the wrong size is rejected
# with a message naming the file and the dataset.
source "$(dirname "$0")/common.sh" "$@"
tool=${2:?path of checkpoint_tool}

# 12 steps per task; progress checkpoints after steps 5 and 10.
settings=(method=DMNSP epochs=3)
progress=(checkpoint.interval_steps=5)

run 2 train small.yaml "${settings[@]}" output_dir=runs/whole >whole.log 2>&1 || {
    cat whole.log
    fail "the uninterrupted run failed"
    finish
}
grep -q "checkpoint: task .* saved" whole.log && fail "the run without interval_steps wrote progress checkpoints"

# Killed right after the first progress checkpoint of task 1 appears.
run 2 train small.yaml "${settings[@]}" "${progress[@]}" output_dir=runs/midtask >midtask.log 2>&1 &
launcher=$!
if ! kill_when_logged "$launcher" runs/midtask/train.log "checkpoint: task 1 step 5/12 saved"; then
    fail "the run did not reach its progress checkpoint in task 1: $(tail -n 5 midtask.log)"
    finish
fi
"$tool" progress runs/midtask/checkpoint.h5 >progress.txt || fail "checkpoint_tool cannot read the checkpoint"
read -r _ tasks _ task _ step <progress.txt
if [[ ${tasks:-} != 1 || ${task:-} != 1 ]]; then
    fail "the kill did not land inside task 1 (machine too slow?): $(cat progress.txt)"
    finish
fi
grep -q '"summary"' runs/midtask/metrics.json && fail "the killed run had already finished"

# dmnsp eval of a checkpoint saved inside task 1 evaluates the adapters
# saved after task 0, which gave R[0][0] in the uninterrupted run.
run 2 eval small.yaml checkpoint=runs/midtask/checkpoint.h5 >eval.log 2>&1 || fail "dmnsp eval failed: $(cat eval.log)"
grep -q "saved inside task 1; evaluating the adapters saved after task 0" eval.log ||
    fail "dmnsp eval does not say which adapters it evaluates: $(cat eval.log)"
accuracy=$(head -n 1 runs/whole/metrics.json | grep -oE '"acc_per_task": \[[0-9.]+' | grep -oE '[0-9.]+$')
grep -q "task 0: $accuracy%" eval.log || fail "dmnsp eval does not give task 0 $accuracy%: $(grep 'task 0' eval.log)"

# A copy whose AdamW moment m lost one value is rejected before any checkpoint is
# written, with the file and dataset named.
mkdir -p corrupt
cp runs/midtask/checkpoint.h5 runs/midtask/metrics.json corrupt/
"$tool" shorten corrupt/checkpoint.h5 /optimizer/m || fail "checkpoint_tool could not shorten /optimizer/m"
run 2 train small.yaml "${settings[@]}" output_dir=runs/from-corrupt resume="$PWD/corrupt/checkpoint.h5" \
    >corrupt.log 2>&1 && fail "resuming from a checkpoint with a short /optimizer/m was not rejected"
grep -q "corrupt/checkpoint.h5: dataset /optimizer/m has shape" corrupt.log ||
    fail "the rejection does not name the file and dataset: $(grep -i error corrupt.log)"
[[ -e runs/from-corrupt/checkpoint.h5 ]] && fail "the rejected resume wrote a checkpoint"

run 2 train small.yaml "${settings[@]}" "${progress[@]}" output_dir=runs/midtask resume=auto >resumed.log 2>&1 ||
    fail "the resumed run failed: $(tail -n 20 resumed.log)"
grep -q "resume: .* finished 1 of 3 tasks and stopped inside task 1; continuing task 1 after step $step of 12" \
    resumed.log || fail "the resumed run does not say it continues task 1 at step $step: $(grep resume resumed.log)"
grep -q "task 1: lambda" resumed.log || fail "the resumed run does not report the restored lambda"

strip() { grep -v '"summary"' "$1"; }
diff <(strip runs/whole/metrics.json) <(strip runs/midtask/metrics.json) >metrics.diff ||
    fail "resumed metrics differ from the uninterrupted run: $(cat metrics.diff)"
"$tool" compare runs/whole/checkpoint.h5 runs/midtask/checkpoint.h5 0 >compare.txt ||
    fail "resumed checkpoint differs from the uninterrupted run: $(grep -E 'FAIL|error' compare.txt)"
grep -E "current adapters|task 2 lambda" compare.txt

# Killed inside the first task, before any task finished (no metrics.json
# yet): the resumed run still ends as the uninterrupted one.
run 2 train small.yaml "${settings[@]}" "${progress[@]}" output_dir=runs/first >first.log 2>&1 &
launcher=$!
if kill_when_logged "$launcher" runs/first/train.log "checkpoint: task 0 step 5/12 saved"; then
    run 2 train small.yaml "${settings[@]}" "${progress[@]}" output_dir=runs/first resume=auto >first-resumed.log 2>&1 ||
        fail "resuming inside task 0 failed: $(tail -n 5 first-resumed.log)"
    grep -q "finished 0 of 3 tasks and stopped inside task 0; continuing task 0 after step" first-resumed.log ||
        fail "the run does not say it continues task 0: $(grep resume first-resumed.log)"
    diff <(strip runs/whole/metrics.json) <(strip runs/first/metrics.json) >first.diff ||
        fail "metrics resumed from inside task 0 differ from the uninterrupted run: $(cat first.diff)"
else
    fail "the run did not reach its progress checkpoint in task 0: $(tail -n 5 first.log)"
fi
finish
