#!/bin/bash
# Submits jobs/slurm/CONFIG.sbatch with the job shape taken from the
# environment (NODES, RANKS_PER_NODE, THREADS_PER_RANK; unset ones keep the
# script's #SBATCH defaults). DATA_ROOT, WEIGHTS, VOCAB, OUTPUT_ROOT, EXTRA
# and DMNSP reach the job through --export=ALL (see jobs/launch.sh).
#
#   jobs/slurm/submit.sh CONFIG [--chain N] [--dry-run] [SBATCH_OPTION...]
#
# --chain N submits N jobs, each starting after the previous one ends
# (afterany), so a run longer than the time limit continues by itself; the
# jobs after the finish exit at once. --dry-run prints the sbatch commands.
set -euo pipefail

usage() {
    echo "usage: $0 CONFIG [--chain N] [--dry-run] [SBATCH_OPTION...]" >&2
    local names=() file
    for file in "$root"/jobs/slurm/*.sbatch; do
        names+=("$(basename "$file" .sbatch)")
    done
    echo "configs: ${names[*]}" >&2
    exit 2
}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
[[ $# -ge 1 ]] || usage
name=$1
shift
script=$root/jobs/slurm/$name.sbatch
[[ -f $script ]] || { echo "submit: no batch script $script" >&2; usage; }

chain=1
dry_run=0
sbatch_options=()
while [[ $# -gt 0 ]]; do
    case $1 in
    --chain)
        [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || { echo "submit: --chain needs a positive count" >&2; exit 2; }
        chain=$2
        shift 2
        ;;
    --dry-run)
        dry_run=1
        shift
        ;;
    *)
        sbatch_options+=("$1")
        shift
        ;;
    esac
done

shape=()
[[ -n ${NODES:-} ]] && shape+=(--nodes="$NODES")
[[ -n ${RANKS_PER_NODE:-} ]] && shape+=(--ntasks-per-node="$RANKS_PER_NODE")
[[ -n ${THREADS_PER_RANK:-} ]] && shape+=(--cpus-per-task="$THREADS_PER_RANK")
export DMNSP_ROOT=$root

previous=""
for ((i = 0; i < chain; i++)); do
    dependency=()
    [[ -n $previous ]] && dependency=(--dependency="afterany:$previous")
    command=(sbatch --parsable --export=ALL "${shape[@]}" "${dependency[@]}" "${sbatch_options[@]}" "$script")
    if [[ $dry_run -eq 1 ]]; then
        echo "${command[*]}"
        previous="JOB_$i"
    else
        previous=$(cd "$root" && "${command[@]}")
        previous=${previous%%;*}
        echo "submitted job $previous ($name, part $((i + 1)) of $chain)"
    fi
done
