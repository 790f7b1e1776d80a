#!/usr/bin/env bash
# A run killed with SIGKILL during task 2 and continued with resume=auto
# ends with the same metrics as an uninterrupted run.
source "$(dirname "$0")/common.sh" "$@"

# Longer tasks so the kill lands inside task 2.
settings=(method=DMNSP epochs=3)

run 2 train small.yaml "${settings[@]}" output_dir=runs/whole >whole.log 2>&1 || {
    cat whole.log
    fail "the uninterrupted run failed"
    finish
}

# wait_for_line LINE LOG LAUNCHER: polls LOG until it contains LINE (returns
# 0), LAUNCHER ends (1) or 240 s pass (2): on a loaded machine the first
# tasks can take a while.
wait_for_line() {
    local line=$1 log=$2 launcher=$3 deadline=$((SECONDS + 240))
    while ((SECONDS < deadline)); do
        grep -q "$line" "$log" 2>/dev/null && return 0
        kill -0 "$launcher" 2>/dev/null || return 1
        sleep 0.02
    done
    return 2
}

run 2 train small.yaml "${settings[@]}" output_dir=runs/killed >killed.log 2>&1 &
launcher=$!
killed=0
wait_for_line "=== task 2 of 0..2" runs/killed/train.log "$launcher"
case $? in
0)
    kill_tree "$launcher"
    killed=1
    ;;
2)
    kill_tree "$launcher"
    fail "task 2 did not start within 240 s"
    ;;
esac
wait "$launcher" 2>/dev/null
[[ $killed -eq 1 ]] || fail "the run ended before it could be killed during task 2: $(tail -n 5 killed.log)"
if grep -q '"summary"' runs/killed/metrics.json; then
    fail "the killed run had already finished"
fi

# Without resume the folder is protected.
run 2 train small.yaml "${settings[@]}" output_dir=runs/killed >refused.log 2>&1 &&
    fail "a second run into the unfinished folder was not refused"
grep -q "resume=auto" refused.log || fail "the refusal does not mention resume=auto: $(cat refused.log)"

# A checkpoint written with other settings, or a truncated one, is rejected.
run 2 train small.yaml "${settings[@]}" output_dir=runs/killed resume=auto lambda_scale=10 >other.log 2>&1 &&
    fail "resuming with another lambda_scale was not rejected"
grep -q "lambda_scale = 30, but this run has lambda_scale = 10" other.log ||
    fail "the rejection does not name lambda_scale: $(grep error other.log)"
head -c 4000 runs/killed/checkpoint.h5 >truncated.h5
run 2 train small.yaml "${settings[@]}" output_dir=runs/truncated resume=$PWD/truncated.h5 >truncated.log 2>&1 &&
    fail "resuming from a truncated checkpoint was not rejected"
grep -q "truncated.h5" truncated.log || fail "the rejection does not name the file: $(grep error truncated.log)"

run 2 train small.yaml "${settings[@]}" output_dir=runs/killed resume=auto >resumed.log 2>&1 ||
    fail "the resumed run failed: $(tail -n 20 resumed.log)"
grep -q "resume: .* finished 2 of 3 tasks" resumed.log || fail "the resumed run did not resume: $(head -n 30 resumed.log)"

strip() { grep -v '"summary"' "$1"; }
diff <(strip runs/whole/metrics.json) <(strip runs/killed/metrics.json) >metrics.diff ||
    fail "resumed metrics differ from the uninterrupted run: $(cat metrics.diff)"

# A finished 2-task run extended to all 3 tasks (resume=PATH, larger
# max_tasks) measures the forward transfer of task 2 it never measured and
# ends as the 3-task run.
run 2 train small.yaml "${settings[@]}" max_tasks=2 output_dir=runs/two >two.log 2>&1 ||
    fail "the 2-task run failed: $(tail -n 5 two.log)"
run 2 train small.yaml "${settings[@]}" output_dir=runs/extended resume="$PWD/runs/two/checkpoint.h5" \
    >extended.log 2>&1 || fail "extending the 2-task run failed: $(tail -n 5 extended.log)"
grep -q "task 2 before training it: .* (forward transfer" extended.log ||
    fail "the extended run did not measure task 2 before training it"
# The same extension on 1 rank warns that the checkpoint came from 2.
run 1 train small.yaml "${settings[@]}" max_tasks=2 output_dir=runs/one-rank resume="$PWD/runs/two/checkpoint.h5" \
    >one-rank.log 2>&1 || fail "resuming on 1 rank failed: $(tail -n 5 one-rank.log)"
grep -q "was written by a run on 2 ranks and this run has 1" one-rank.log ||
    fail "resuming on another rank count gave no warning"
diff <(strip runs/whole/metrics.json) <(strip runs/extended/metrics.json) >extended.diff ||
    fail "the extended run differs from the 3-task run: $(cat extended.diff)"

# SIGUSR1 (Slurm's --signal=USR1@SECONDS) saves progress after the next
# step, and the run goes on to the same results.
run 2 train small.yaml "${settings[@]}" output_dir=runs/usr1 >usr1.log 2>&1 &
launcher=$!
wait_for_line "=== task 1 of 0..2" runs/usr1/train.log "$launcher"
pkill -USR1 -P "$launcher" 2>/dev/null # mpiexec forwards SIGUSR1 to the ranks
wait "$launcher" || fail "the run that got SIGUSR1 failed: $(tail -n 5 usr1.log)"
grep -q "as SIGUSR1 requested" runs/usr1/train.log || fail "SIGUSR1 did not request a save: $(tail -n 5 usr1.log)"
grep -q "checkpoint: task 1 step" runs/usr1/train.log || fail "SIGUSR1 saved no progress checkpoint in task 1"
diff <(strip runs/whole/metrics.json) <(strip runs/usr1/metrics.json) >usr1.diff ||
    fail "a progress save changed the metrics: $(cat usr1.diff)"

# SIGTERM (what a scheduler sends at the time limit) leaves a line in the
# log that tells how to continue.
run 2 train small.yaml "${settings[@]}" output_dir=runs/term >term.log 2>&1 &
launcher=$!
wait_for_line "=== task 1 of 0..2" runs/term/train.log "$launcher"
pkill -TERM -P "$launcher" 2>/dev/null # the launcher is a subshell around mpiexec
wait "$launcher" 2>/dev/null
grep -q "stopped by SIGTERM; continue the run with resume=auto" runs/term/train.log ||
    fail "train.log does not say that SIGTERM stopped the run: $(tail -n 3 runs/term/train.log)"
finish
