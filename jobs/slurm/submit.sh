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

# shellcheck source=jobs/lib/submit_arguments.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/submit_arguments.sh"
submit_parse_arguments slurm sbatch SBATCH_OPTION "$@"
submit_check_settings

shape=()
[[ -n ${NODES:-} ]] && shape+=(--nodes="$NODES")
[[ -n ${RANKS_PER_NODE:-} ]] && shape+=(--ntasks-per-node="$RANKS_PER_NODE")
[[ -n ${THREADS_PER_RANK:-} ]] && shape+=(--cpus-per-task="$THREADS_PER_RANK")
export DMNSP_ROOT=$root

previous=""
for ((i = 0; i < chain; i++)); do
    dependency=()
    [[ -n $previous ]] && dependency=(--dependency="afterany:$previous")
    command=(sbatch --parsable --export=ALL "${shape[@]}" "${dependency[@]}" "${scheduler_options[@]}" "$script")
    if [[ $dry_run -eq 1 ]]; then
        echo "${command[*]}"
        previous="JOB_$i"
    else
        previous=$(cd "$root" && "${command[@]}")
        previous=${previous%%;*}
        echo "submitted job $previous ($name, part $((i + 1)) of $chain)"
    fi
done
