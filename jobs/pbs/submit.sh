#!/bin/bash
# Submits jobs/pbs/CONFIG.pbs with the job shape taken from the environment:
# NODES, RANKS_PER_NODE, THREADS_PER_RANK and MEM_PER_NODE (e.g. 40gb) build
# the select statement when any of the first three is set (memory: the
# script's own mem= unless MEM_PER_NODE is set); otherwise the script's #PBS
# defaults apply. The whole environment (DATA_ROOT, WEIGHTS,
# VOCAB, OUTPUT_ROOT, EXTRA, DMNSP) reaches the job through qsub -V.
#
#   jobs/pbs/submit.sh CONFIG [--chain N] [--dry-run] [QSUB_OPTION...]
#
# --chain N submits N jobs, each starting after the previous one ends
# (afterany), so a run longer than the walltime continues by itself.
set -euo pipefail

# shellcheck source=jobs/lib/submit_arguments.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/submit_arguments.sh"
submit_parse_arguments pbs pbs QSUB_OPTION "$@"
submit_check_settings

shape=()
if [[ -n ${NODES:-}${RANKS_PER_NODE:-}${THREADS_PER_RANK:-} ]]; then
    nodes=${NODES:-1} ranks=${RANKS_PER_NODE:-1} threads=${THREADS_PER_RANK:-1}
    select="select=$nodes:ncpus=$((ranks * threads)):mpiprocs=$ranks:ompthreads=$threads"
    # The script's own memory request is kept unless MEM_PER_NODE replaces it:
    # -l select replaces the whole #PBS select line.
    memory=${MEM_PER_NODE:-$(grep -o 'mem=[^:[:space:]]*' "$script" | head -n 1 | cut -d= -f2)}
    [[ -n $memory ]] && select+=":mem=$memory"
    shape=(-l "$select")
    export NODES=$nodes RANKS_PER_NODE=$ranks THREADS_PER_RANK=$threads
fi
export DMNSP_ROOT=$root

previous=""
for ((i = 0; i < chain; i++)); do
    dependency=()
    [[ -n $previous ]] && dependency=(-W "depend=afterany:$previous")
    command=(qsub -V "${shape[@]}" "${dependency[@]}" "${scheduler_options[@]}" "$script")
    if [[ $dry_run -eq 1 ]]; then
        echo "${command[*]}"
        previous="JOB_$i"
    else
        previous=$(cd "$root" && "${command[@]}")
        echo "submitted job $previous ($name, part $((i + 1)) of $chain)"
    fi
done
