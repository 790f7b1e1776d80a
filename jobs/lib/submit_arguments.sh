# shellcheck shell=bash
# Argument handling shared by jobs/slurm/submit.sh and jobs/pbs/submit.sh.
# Sourced, not executed.

# submit_parse_arguments FOLDER EXTENSION OPTION_WORD ARGUMENT...
#
# Parses "CONFIG [--chain N] [--dry-run] [OPTION...]" for the batch scripts
# jobs/FOLDER/CONFIG.EXTENSION. OPTION_WORD names the scheduler's options in
# the usage line (SBATCH_OPTION). Sets these variables:
#   root               the dmnsp source tree
#   name, script       the config name and the path of its batch script
#   chain              how many jobs to submit (--chain N, default 1)
#   dry_run            1 with --dry-run, else 0
#   scheduler_options  the other arguments, passed on to the scheduler
# Prints the usage and the known configs, then exits with status 2, when
# CONFIG is missing or has no batch script, or --chain has no positive count.
# shellcheck disable=SC2034 # the submit.sh that sources this file reads them
submit_parse_arguments() {
    local folder=$1 extension=$2 option_word=$3
    shift 3
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

    if [[ $# -lt 1 ]]; then
        submit_usage "$folder" "$extension" "$option_word"
    fi
    if [[ $1 == --help || $1 == -h ]]; then
        submit_usage "$folder" "$extension" "$option_word" 0
    fi
    name=$1
    shift
    script=$root/jobs/$folder/$name.$extension
    if [[ ! -f $script ]]; then
        echo "submit: no batch script $script" >&2
        submit_usage "$folder" "$extension" "$option_word"
    fi

    chain=1
    dry_run=0
    scheduler_options=()
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
            scheduler_options+=("$1")
            shift
            ;;
        esac
    done
}

# submit_usage FOLDER EXTENSION OPTION_WORD [STATUS]: prints the usage line
# and the configs that have a batch script in jobs/FOLDER, then exits with
# STATUS (default 2, a usage error, printed to stderr; 0 prints to stdout).
submit_usage() {
    local folder=$1 extension=$2 option_word=$3 status=${4:-2}
    local names=() file
    for file in "$root"/jobs/"$folder"/*."$extension"; do
        names+=("$(basename "$file" ".$extension")")
    done
    local text
    text=$(printf 'usage: %s CONFIG [--chain N] [--dry-run] [%s...]\n' "$0" "$option_word"
        printf '  --chain N   submit N jobs in all, each starting after the previous one ends\n'
        printf '  --dry-run   print the commands instead of submitting\n'
        printf 'configs: %s\n' "${names[*]}")
    if [[ $status -eq 0 ]]; then
        echo "$text"
    else
        echo "$text" >&2
    fi
    exit "$status"
}

# submit_check_settings: before anything is submitted, runs `dmnsp config`
# on configs/class/$name.yaml with the overrides the job will pass
# (DATA_ROOT, WEIGHTS, VOCAB and the key=value words of EXTRA), so that a
# misspelt key fails now rather than after the queue wait. Warns about
# DATA_ROOT, WEIGHTS and VOCAB paths that do not exist on this machine.
# Skipped, with a note, when no dmnsp executable is found ($DMNSP or
# build/dmnsp). Exits with status 1 when the check fails.
submit_check_settings() {
    local config=$root/configs/class/$name.yaml
    local dmnsp=${DMNSP:-$root/build/dmnsp}
    # shellcheck source=jobs/launch.sh
    source "$root/jobs/launch.sh"
    local -a job_overrides job_petsc
    dmnsp_job_overrides
    local variable
    for variable in DATA_ROOT WEIGHTS VOCAB; do
        if [[ -n ${!variable:-} && ! -e ${!variable} ]]; then
            echo "submit: warning: $variable=${!variable} does not exist on this machine" >&2
        fi
    done
    if [[ ! -x $dmnsp ]]; then
        echo "submit: note: $dmnsp not found, so the settings are not checked before submitting" >&2
        return 0
    fi
    if ! "$dmnsp" config "$config" "${job_overrides[@]}" >/dev/null; then
        echo "submit: the settings above are invalid; nothing was submitted" >&2
        exit 1
    fi
}
