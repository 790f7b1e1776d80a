#!/usr/bin/env bash
# dmnsp train end to end on two ranks: metrics.json has one line per task
# plus the summary with values in range, the checkpoint is readable by
# h5dump and by dmnsp eval, and one rank gives the same metrics.
source "$(dirname "$0")/common.sh" "$@"

check_metrics() { # check_metrics FILE TASKS
    local file=$1 tasks=$2
    local lines
    lines=$(wc -l <"$file")
    [[ $lines -eq $((tasks + 1)) ]] || fail "$file has $lines lines, expected $((tasks + 1))"
    grep -q '"summary": true' <(tail -n 1 "$file") || fail "$file does not end with the summary line"
    for t in $(seq 0 $((tasks - 1))); do
        grep -q "^{\"task\": $t," "$file" || fail "$file has no line for task $t"
    done
    # Every accuracy-like number is a percentage.
    local bad
    bad=$(grep -oE '"(acc|avg_acc|last|avg)": -?[0-9.]+' "$file" | awk -F': ' '$2 < 0 || $2 > 100')
    [[ -z $bad ]] || fail "$file has values outside [0, 100]: $bad"
}

run 2 train small.yaml method=DMNSP output_dir=runs/dmnsp2 >train2.log 2>&1 || {
    cat train2.log
    fail "dmnsp train on 2 ranks failed"
    finish
}
check_metrics runs/dmnsp2/metrics.json 3
for f in config.yaml train.log checkpoint.h5; do
    [[ -s runs/dmnsp2/$f ]] || fail "runs/dmnsp2/$f is missing or empty"
done
grep -q "task 2 finished" train2.log || fail "the log lacks the end of task 2"
grep -q "Accuracy (%) after each task" train2.log || fail "the log lacks the summary table"

if command -v h5dump >/dev/null; then
    h5dump -n runs/dmnsp2/checkpoint.h5 >h5dump.txt 2>&1 || fail "h5dump cannot read the checkpoint"
    for object in /model/visual/block_11/down_w /tasks/task_02/nullspace/block_00/top /tasks/task_01/lambda; do
        grep -q "$object" h5dump.txt || fail "checkpoint lacks $object"
    done
fi

run 2 eval small.yaml checkpoint=runs/dmnsp2/checkpoint.h5 >eval.log 2>&1 || fail "dmnsp eval failed: $(cat eval.log)"
grep -q "all seen tasks" eval.log || fail "dmnsp eval printed no total: $(cat eval.log)"
# A config that describes another model is rejected rather than evaluated.
run 2 eval small.yaml checkpoint=runs/dmnsp2/checkpoint.h5 seed=1 >eval-seed.log 2>&1 &&
    fail "dmnsp eval accepted a config with another seed"
grep -q "was trained with seed = 32, but this config has seed = 1" eval-seed.log ||
    fail "the eval rejection does not name the seed: $(grep error eval-seed.log)"

# dmnsp export writes the run's model; evaluated as a zero-shot model, the
# file gives the accuracies of the run's last row.
"$dmnsp" export runs/dmnsp2 --out exported.safetensors >export.log 2>&1 ||
    fail "dmnsp export failed: $(cat export.log)"
run 2 train small.yaml method=zeroshot weights=$PWD/exported.safetensors output_dir=runs/exported \
    >exported.log 2>&1 || fail "a zero-shot run of the exported model failed: $(tail -n 5 exported.log)"
check_export=${2:?path of check_export}
"$check_export" small.yaml runs/dmnsp2/checkpoint.h5 2 exported.safetensors ||
    fail "the exported file does not hold the run's weights and adapters"
last_row() { grep '"task": 2,' "$1" | grep -oE '"acc_per_task": \[[^]]*\]'; }
[[ -n $(last_row runs/dmnsp2/metrics.json) && "$(last_row runs/dmnsp2/metrics.json)" == "$(last_row runs/exported/metrics.json)" ]] ||
    fail "the exported model's accuracies $(last_row runs/exported/metrics.json) differ from the run's $(last_row runs/dmnsp2/metrics.json)"
"$dmnsp" export runs/dmnsp2 --task 0 --out task0.safetensors >/dev/null 2>&1 || fail "dmnsp export --task 0 failed"
cmp -s task0.safetensors exported.safetensors && fail "the adapters after task 0 equal those after task 2"
"$dmnsp" export runs/dmnsp2 --task 3 --out task3.safetensors >export3.log 2>&1 && fail "export --task 3 was accepted"
grep -q "finished tasks 0..2; --task 3" export3.log || fail "export --task 3 message: $(cat export3.log)"
"$dmnsp" export runs/dmnsp2 --out seed1.safetensors seed=1 >export-seed.log 2>&1 &&
    fail "export accepted an override that changes the model"
grep -q "export: .* was trained with seed = 32, but this config has seed = 1" export-seed.log ||
    fail "export with seed=1: $(cat export-seed.log)"
"$dmnsp" infer --weights runs/dmnsp2/checkpoint.h5 --classes a,b x.png >infer-h5.log 2>&1 &&
    fail "infer accepted a checkpoint as weights"
grep -q "HDF5 file, not safetensors.*dmnsp export" infer-h5.log || fail "infer on a checkpoint: $(cat infer-h5.log)"

# One rank computes the same run (up to reduction order in the last digit).
run 1 train small.yaml method=DMNSP output_dir=runs/dmnsp1 >train1.log 2>&1 || fail "dmnsp train on 1 rank failed"
if ! diff <(grep -oE '"acc_per_task": \[[^]]*\]' runs/dmnsp1/metrics.json) \
          <(grep -oE '"acc_per_task": \[[^]]*\]' runs/dmnsp2/metrics.json) >/dev/null; then
    fail "1 and 2 ranks disagree: $(diff runs/dmnsp1/metrics.json runs/dmnsp2/metrics.json)"
fi

# Every solver runs inside train, from untrained adapters (zero features)
# on: epochs=0 keeps them untrained, epochs=1 trains them.
for solver in slepc scalapack; do
    for epochs in 0 1; do
        run 2 train small.yaml method=DMNSP nullspace.solver=$solver epochs=$epochs max_tasks=2 \
            output_dir=runs/$solver-$epochs >"train-$solver-$epochs.log" 2>&1 ||
            fail "solver $solver with epochs=$epochs failed: $(tail -n 5 "train-$solver-$epochs.log")"
        check_metrics "runs/$solver-$epochs/metrics.json" 2
    done
done

# The other methods run too (two short tasks each).
for method in finetune zeroshot NSP-single DMNSP-fixed DMNSP-both; do
    run 2 train small.yaml method=$method output_dir=runs/$method epochs=1 max_tasks=2 >"train-$method.log" 2>&1 ||
        fail "method $method failed: $(tail -n 5 "train-$method.log")"
    check_metrics "runs/$method/metrics.json" 2
done

"$dmnsp" compare runs/dmnsp2 runs/finetune runs/zeroshot >compare.txt || fail "dmnsp compare failed"
grep -q "^DMNSP" compare.txt || fail "compare table lacks DMNSP: $(cat compare.txt)"
finish
